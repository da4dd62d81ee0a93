"""Reports of evaluation runs: plots of one run and side-by-side comparison of several."""
