"""What decoding takes and gives, shared by both decoders: the settings, the result, the stop tokens.

:mod:`metalight.models.generation` (``model.generate``) and :mod:`metalight.models.row_decoding` (rows
leave the batch as they finish) both import this module, so neither imports the other for its types.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from torch import Tensor

DecodingStrategy = Literal["greedy", "sample", "model_default"]
Decoder = Literal["auto", "compact", "hf"]


@dataclass(frozen=True)
class Decoding:
    """How to decode: ``greedy`` (default), ``sample`` (temperature, top_p) or ``model_default`` (the model's
    own generation_config, which samples for e.g. Qwen2.5-Instruct, as upstream ESMA silently did)."""

    max_new_tokens: int = 32
    strategy: DecodingStrategy = "greedy"
    temperature: float = 1.0
    top_p: float = 1.0


@dataclass
class Generation:
    """Decoded completions (prompt removed, special tokens skipped, stripped), their token counts, the raw
    logits of the requested token ids at the first generated position ([rows, len(ids)]) if asked, and the
    stop token that ended each row (``None``: it ran out of ``max_new_tokens``; not part of
    ``completion_ids``)."""

    texts: list[str]
    num_tokens: list[int]
    completion_ids: list[list[int]] = field(repr=False)
    first_token_logits: Tensor | None = None
    stop_ids: list[int | None] = field(default_factory=list, repr=False)

    def generated_ids(self, row: int) -> list[int]:
        """Every token the model chose for ``row``: the completion plus its stop token, if any."""
        stop = self.stop_ids[row] if self.stop_ids else None
        return self.completion_ids[row] + ([stop] if stop is not None else [])


def stop_token_ids(model, tokenizer) -> list[int]:
    """EOS ids from the model's generation config and the tokenizer."""
    ids = model.generation_config.eos_token_id
    ids = [ids] if isinstance(ids, int) else list(ids or [])
    if tokenizer.eos_token_id is not None and tokenizer.eos_token_id not in ids:
        ids.append(tokenizer.eos_token_id)
    return ids
