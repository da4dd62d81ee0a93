"""Noise schemes: the perturbation ε_m of population member m, regenerated from its seed whenever needed.

* ``esma`` — upstream ESMA / "ES at scale": one generator per member seed, re-seeded once, draws every
  selected tensor in parameter order (``randn`` in the parameter dtype, on the parameter's device).
* ``iid`` — a generator per (member seed, tensor), so any tensor's noise can be drawn on its own.
* ``lowrank`` — EGGROLL (Sarkar et al. 2025): for a weight matrix W (out × in), ε = A Bᵀ/√r with
  A (out × r), B (in × r) drawn per (member seed, tensor); entries of ε have variance 1 as in the full-rank
  schemes. Parameters that are not Linear weights (norms, biases, embeddings, a tied output layer) are left
  unperturbed, or get ``iid`` noise with ``perturb_non_matrix=True``.

Every scheme yields ``(index, ε)`` in the same order for every seed, so the ES gradient
g = −(1/N) Σ cᵢ εᵢ is rebuilt tensor by tensor with one generator stream per member advancing in lock
step: extra memory is one float32 accumulator plus one noise tensor, whatever the scheme.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from typing import Literal

import torch
from torch import Tensor

from metalight.errors import ConfigError
from metalight.methods.esma.selection import SelectedParameter

SchemeName = Literal["esma", "iid", "lowrank"]
NoiseDType = Literal["param", "float32"]
_MASK64 = (1 << 64) - 1


def derive_seed(*values: int) -> int:
    """A 63-bit seed mixed from integers with splitmix64 (stable across runs, platforms and processes)."""
    state = 0x9E3779B97F4A7C15
    for value in values:
        state = (state ^ (int(value) & _MASK64)) & _MASK64
        state = (state + 0x9E3779B97F4A7C15) & _MASK64
        z = state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
        state = z ^ (z >> 31)
    return state >> 1


def _generator(device: torch.device, seed: int) -> torch.Generator:
    return torch.Generator(device=device).manual_seed(seed)


class Scratch:
    """A flat buffer reused for successive noise tensors (grown to the largest shape asked for), one per
    dtype and device."""

    def __init__(self) -> None:
        self._buffers: dict[tuple[torch.dtype, torch.device], Tensor] = {}

    def take(self, shape, dtype: torch.dtype, device: torch.device) -> Tensor:
        """A tensor of ``shape`` viewing the buffer (its contents are whatever was drawn last)."""
        numel = math.prod(shape)
        key = (dtype, torch.device(device))
        buffer = self._buffers.get(key)
        if buffer is None or buffer.numel() < numel:
            buffer = self._buffers[key] = torch.empty(numel, dtype=dtype, device=device)
        return buffer[:numel].view(shape)


class NoiseScheme(ABC):
    """Base: ε for a member seed over the selected parameters (see module docstring).

    Args:
        selected: the parameters to perturb, in parameter order.
        noise_dtype: draw noise in the parameter dtype (``param``, as upstream) or in ``float32`` and
            round it to the parameter dtype.
    """

    name: str = "base"

    def __init__(self, selected: Sequence[SelectedParameter], noise_dtype: NoiseDType = "param"):
        self.selected = list(selected)
        self.noise_dtype = noise_dtype
        # One buffer reused by every in-place perturb / restore: the "one noise tensor" of extra memory.
        self.scratch = Scratch()

    def _randn(
        self, shape, param: Tensor, generator: torch.Generator, scratch: Scratch | None = None
    ) -> Tensor:
        dtype = param.dtype if self.noise_dtype == "param" else torch.float32
        if scratch is not None and dtype == param.dtype:
            # Same values as randn (both fill a contiguous tensor with normal_), without a fresh allocation:
            # on CPU, page-faulting a new 100 MB tensor costs about as much as drawing half of it.
            return scratch.take(shape, dtype, param.device).normal_(generator=generator)
        return torch.randn(shape, dtype=dtype, device=param.device, generator=generator).to(param.dtype)

    def perturbed_indices(self) -> list[int]:
        """Indices (into ``selected``) of the tensors this scheme perturbs."""
        return list(range(len(self.selected)))

    @abstractmethod
    def iter_noise(self, seed: int, scratch: Scratch | None = None) -> Iterator[tuple[int, Tensor]]:
        """``(index, ε)`` for every perturbed tensor in parameter order; ε has the parameter's shape and
        dtype.

        With ``scratch``, full-rank ε are drawn into that reused buffer: each one is valid only until the
        next is drawn (for callers that consume ε at once, like an in-place add).
        """

    def accumulate(self, seeds: Sequence[int], coefficients: Sequence[float]) -> Iterator[tuple[int, Tensor]]:
        """``(index, Σᵢ cᵢ εᵢ)`` per perturbed tensor, summed in float32 (one generator stream per seed,
        each drawing into its own scratch buffer)."""
        streams = [self.iter_noise(seed, Scratch()) for seed in seeds]
        for items in zip(*streams):
            index = items[0][0]
            total = torch.zeros_like(self.selected[index].param, dtype=torch.float32)
            for (_, eps), coefficient in zip(items, coefficients):
                total.add_(eps.float(), alpha=float(coefficient))
            yield index, total


class ESMANoise(NoiseScheme):
    """Upstream's scheme: one generator per member seed over all selected tensors in parameter order."""

    name = "esma"

    def iter_noise(self, seed: int, scratch: Scratch | None = None) -> Iterator[tuple[int, Tensor]]:
        generators: dict[torch.device, torch.Generator] = {}
        for index, item in enumerate(self.selected):
            device = item.param.device
            if device not in generators:  # one stream per device (a model on one device: one stream)
                generators[device] = _generator(device, seed)
            yield index, self._randn(item.param.shape, item.param, generators[device], scratch)


class IIDNoise(NoiseScheme):
    """A generator per (member seed, tensor index): tensors and ranks can draw independently."""

    name = "iid"

    def tensor_noise(self, seed: int, index: int, scratch: Scratch | None = None) -> Tensor:
        """ε of one tensor."""
        param = self.selected[index].param
        return self._randn(param.shape, param, _generator(param.device, derive_seed(seed, index)), scratch)

    def iter_noise(self, seed: int, scratch: Scratch | None = None) -> Iterator[tuple[int, Tensor]]:
        for index in range(len(self.selected)):
            yield index, self.tensor_noise(seed, index, scratch)


class LowRankNoise(NoiseScheme):
    """EGGROLL low-rank noise ε = A Bᵀ/√r per selected Linear weight (see module docstring).

    Args:
        rank: r, the rank of each matrix's perturbation (1 <= r <= min(out, in)).
        perturb_non_matrix: give the selected non-matrix parameters ``iid`` noise (full rank, per member;
            the batched engine then evaluates one member per batch).
    """

    name = "lowrank"

    def __init__(
        self,
        selected: Sequence[SelectedParameter],
        noise_dtype: NoiseDType = "param",
        rank: int = 1,
        perturb_non_matrix: bool = False,
    ):
        super().__init__(selected, noise_dtype)
        self.rank, self.perturb_non_matrix = rank, perturb_non_matrix
        self.matrices = [i for i, item in enumerate(self.selected) if item.is_matrix]
        self.others = [i for i, item in enumerate(self.selected) if not item.is_matrix]
        if not self.matrices:
            raise ConfigError(
                "noise: lowrank needs at least one Linear weight matrix in the selected parameters "
                f"(selected: {[s.name for s in self.selected][:5]}...); widen `parameters` or use "
                "noise: esma / iid"
            )
        if rank < 1:
            raise ConfigError(f"rank: {rank} must be >= 1")
        smallest = min(min(self.selected[i].param.shape) for i in self.matrices)
        if rank > smallest:
            raise ConfigError(
                f"rank: {rank} is larger than the smallest side ({smallest}) of a selected matrix; "
                f"use rank <= {smallest}"
            )
        self._iid = IIDNoise(self.selected, noise_dtype)

    def perturbed_indices(self) -> list[int]:
        return sorted(self.matrices + (self.others if self.perturb_non_matrix else []))

    def factors(self, seed: int, index: int) -> tuple[Tensor, Tensor]:
        """(A [out, r], B [in, r]) of one matrix, in the parameter dtype."""
        param = self.selected[index].param
        generator = _generator(param.device, derive_seed(seed, index, self.rank))
        out_features, in_features = param.shape
        a = self._randn((out_features, self.rank), param, generator)
        b = self._randn((in_features, self.rank), param, generator)
        return a, b

    def iter_noise(self, seed: int, scratch: Scratch | None = None) -> Iterator[tuple[int, Tensor]]:
        scale = 1.0 / math.sqrt(self.rank)
        for index in self.perturbed_indices():
            if index in self.matrices:
                a, b = self.factors(seed, index)
                yield index, (a.float() @ b.float().T).mul_(scale).to(a.dtype)
            else:
                yield index, self._iid.tensor_noise(seed, index, scratch)

    def accumulate(self, seeds: Sequence[int], coefficients: Sequence[float]) -> Iterator[tuple[int, Tensor]]:
        """Matrices: Σᵢ cᵢ AᵢBᵢᵀ/√r = [c₁A₁ … c_NA_N] [B₁ … B_N]ᵀ/√r in one float32 product."""
        weights = torch.tensor([float(c) for c in coefficients], dtype=torch.float32)
        for index in self.perturbed_indices():
            if index not in self.matrices:
                total = torch.zeros_like(self.selected[index].param, dtype=torch.float32)
                for seed, coefficient in zip(seeds, coefficients):
                    total.add_(self._iid.tensor_noise(seed, index).float(), alpha=float(coefficient))
                yield index, total
                continue
            pairs = [self.factors(seed, index) for seed in seeds]
            a = torch.cat([p[0].float() * w for p, w in zip(pairs, weights.to(pairs[0][0].device))], dim=1)
            b = torch.cat([p[1].float() for p in pairs], dim=1)
            yield index, (a @ b.T).mul_(1.0 / math.sqrt(self.rank))


SCHEMES: dict[str, type[NoiseScheme]] = {"esma": ESMANoise, "iid": IIDNoise, "lowrank": LowRankNoise}


def make_scheme(
    name: SchemeName,
    selected: Sequence[SelectedParameter],
    noise_dtype: NoiseDType = "param",
    rank: int = 1,
    perturb_non_matrix: bool = False,
) -> NoiseScheme:
    """Build a noise scheme by name (``esma``, ``iid`` or ``lowrank``)."""
    if name not in SCHEMES:
        raise ConfigError(f"noise: unknown scheme {name!r}; use one of {sorted(SCHEMES)}")
    if name == "lowrank":
        return LowRankNoise(selected, noise_dtype, rank, perturb_non_matrix)
    return SCHEMES[name](selected, noise_dtype)
