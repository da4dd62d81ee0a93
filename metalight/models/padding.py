"""Left padding of token-id rows and the positions that ignore it (every batched forward and generation)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor


def left_pad(
    sequences: Sequence[Sequence[int]], pad_id: int, device=None, width: int | None = None
) -> tuple[Tensor, Tensor]:
    """Left-pad id lists into ``(input_ids, attention_mask)`` of shape [rows, width] (default width: the
    longest row)."""
    width = max(len(s) for s in sequences) if width is None else width
    ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, seq in enumerate(sequences):
        if seq:
            ids[row, width - len(seq) :] = torch.as_tensor(seq, dtype=torch.long)
            mask[row, width - len(seq) :] = 1
    return ids.to(device), mask.to(device)


def position_ids(attention_mask: Tensor) -> Tensor:
    """Positions that start at 0 on each row's first real token, so left padding does not shift them."""
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
