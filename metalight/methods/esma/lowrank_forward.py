"""Per-row low-rank perturbation of a batch: rows of one forward pass belong to different members.

A selected Linear layer computes, for each row with member m,
    y = x Wᵀ + b + s_m · σ/√r · ((x B_m) A_mᵀ)
(s_m = ±1 the antithetic sign), i.e. the output of weights W + s_m σ A_m B_mᵀ/√r, without touching W.
Forward hooks add the low-rank term; the factors of the group's members are drawn once and kept
(r·(out + in) numbers per member and matrix). The hook costs two dense products with members·r columns,
so its overhead relative to the layer is about members·r·(1/in + 1/out).

The hooks need to know which member each row of the *current* forward belongs to. Callers run every
forward inside the context of :meth:`LowRankPopulation.row_context`, giving each row's index into the
original row list (prefix-cache prefills see one row per prefix, compacted decode steps only the
unfinished rows), which maps to the row's member.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager

import torch
from torch import Tensor, nn

from metalight.methods.esma.noise import LowRankNoise
from metalight.methods.esma.update import Member


class LowRankPopulation:
    """Forward hooks that perturb the scheme's matrices per row (see module docstring); use as a context
    manager (hooks registered on enter, removed on exit).

    Args:
        scheme: the ``lowrank`` noise scheme (selected matrices, rank, seeds -> factors).
        members: the members evaluated together (their seeds and signs).
        sigma: perturbation scale σ.
    """

    def __init__(self, scheme: LowRankNoise, members: Sequence[Member], sigma: float):
        self.scheme, self.members = scheme, list(members)
        self.device = scheme.selected[scheme.matrices[0]].param.device
        signs = torch.tensor([m.sign for m in self.members], dtype=torch.float32, device=self.device)
        self.member_scale = signs * (sigma / math.sqrt(scheme.rank))
        # Per matrix, all members' factors side by side: B [in, members·r] and A [members·r, out].
        self.factors: dict[int, tuple[Tensor, Tensor]] = {}
        for index in scheme.matrices:
            pairs = [scheme.factors(m.seed, index) for m in self.members]
            self.factors[index] = (
                torch.cat([b for _, b in pairs], dim=1),
                torch.cat([a.T for a, _ in pairs], dim=0),
            )
        self._row_weights: Tensor | None = None
        self._handles: list = []

    # ---- which rows are in the current forward -----------------------------------------------------------
    def row_context(self, row_member: Sequence[int]) -> Callable[[Tensor], AbstractContextManager]:
        """A ``row_context`` for :func:`metalight.models.row_decoding.decode_rows`: original row i belongs to
        member ``row_member[i]`` (an index into ``members``)."""
        members_of_rows = torch.as_tensor(list(row_member), dtype=torch.long, device=self.device)
        rank = self.scheme.rank

        @contextmanager
        def rows(index: Tensor) -> Iterator[None]:
            previous = self._row_weights
            members = members_of_rows[index.to(self.device)]
            # Row weights [rows, members·r]: the row's member scale on its member's r columns, 0 elsewhere.
            weights = torch.zeros(len(members), len(self.members), device=self.device)
            weights[torch.arange(len(members), device=self.device), members] = self.member_scale[members]
            self._row_weights = weights.repeat_interleave(rank, dim=1)
            try:
                yield
            finally:
                self._row_weights = previous

        return rows

    # ---- hooks -------------------------------------------------------------------------------------------
    def __enter__(self) -> LowRankPopulation:
        for index in self.scheme.matrices:
            for linear in self.scheme.selected[index].linears:
                self._handles.append(linear.register_forward_hook(self._hook(index)))
        return self

    def __exit__(self, *exc) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def _hook(self, index: int):
        b_cat, a_cat = self.factors[index]

        def hook(module: nn.Module, inputs: tuple[Tensor, ...], output: Tensor) -> Tensor:
            weights = self._row_weights
            if weights is None:
                raise RuntimeError(
                    "a perturbed Linear ran outside a row context: the rows' members are unknown"
                )
            x = inputs[0]
            if x.shape[0] != weights.shape[0]:
                raise RuntimeError(
                    f"batch of {x.shape[0]} rows but {weights.shape[0]} row members were given"
                )
            # Two dense products instead of a per-row gather: every row is projected on all members'
            # r columns of B (members·r extra outputs), the other members' columns are zeroed, then A.
            xb = (x @ b_cat) * weights.to(x.dtype).view(x.shape[0], *([1] * (x.dim() - 2)), -1)
            return output.add_(xb @ a_cat)

        return hook
