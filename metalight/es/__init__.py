"""Evolution-strategy machinery shared by ES methods: parameter selection, noise schemes, in-place
perturbation, the population evaluation engine (sequential or batched low-rank), and the update."""
