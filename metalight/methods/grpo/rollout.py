"""GRPO rollouts: G sampled completions per prompt, and their per-token log-probabilities under a model.

Sampling goes through the core :func:`~metalight.models.generation.generate` (one batched call, shared prompt
prefixes prefilled once). A completion keeps the stop token that ended it (as TRL does, so the policy learns
to stop); one that ran out of ``max_completion_length`` tokens is "truncated".

Log-probabilities are computed with the same shared-prefix trick, but with gradients: the prompt prefix that
all rows share (system prompt, instruction) is run through the model once, its KV cache is expanded to every
row, and only each row's prompt suffix and completion are processed — gradients flow back through the cache.
Only the completion positions go through the LM head.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor

from metalight.models.generation import Decoding, Prompt, encode_prompts, generate
from metalight.models.modes import eval_mode
from metalight.models.padding import position_ids
from metalight.models.prefix_cache import prepare_batch


@dataclass
class Rollout:
    """One generation batch: R = prompts × G rows, prompt-major. ``completion_ids`` include the stop token.

    ``old_logps`` / ``ref_logps`` ([R, C], detached) are filled when π_old differs from the policy / β ≠ 0;
    ``advantages`` [R] after scoring; ``active_tokens`` is the loss-token count of the whole generation batch
    on all processes (the dapo / cispo / vespo normaliser), kept by every slice of :meth:`split`.
    """

    prompt_ids: list[list[int]]
    completion_ids: list[list[int]]
    texts: list[str]
    truncated: Tensor
    records: list = field(default_factory=list, repr=False)
    prompts: list[str] = field(default_factory=list, repr=False)
    advantages: Tensor | None = None
    old_logps: Tensor | None = None
    ref_logps: Tensor | None = None
    active_tokens: float = 0.0

    @property
    def lengths(self) -> Tensor:
        """Completion lengths in tokens (stop token included), [R]."""
        return torch.tensor([len(c) for c in self.completion_ids], dtype=torch.float32)

    def mask(self, device=None) -> Tensor:
        """[R, C] 1.0 on completion tokens, 0.0 on right padding (C = longest completion, at least 1)."""
        width = max(1, max(len(c) for c in self.completion_ids))
        positions = torch.arange(width)
        return (positions[None, :] < self.lengths[:, None]).float().to(device)

    def split(self, parts: int) -> list[Rollout]:
        """``parts`` consecutive slices of equal row count (the micro-batches of one generation batch, as
        TRL's ``split_tensor_dict``); log-prob tensors are cut to each slice's longest completion."""
        rows = len(self.completion_ids)
        if rows % parts:
            raise ValueError(f"{rows} rows do not split into {parts} equal parts")
        size, slices = rows // parts, []
        for start in range(0, rows, size):
            rows_ = slice(start, start + size)
            width = max(1, max(len(c) for c in self.completion_ids[rows_]))
            slices.append(
                Rollout(
                    self.prompt_ids[rows_],
                    self.completion_ids[rows_],
                    self.texts[rows_],
                    self.truncated[rows_],
                    self.records[rows_],
                    self.prompts[rows_],
                    None if self.advantages is None else self.advantages[rows_],
                    _cut(self.old_logps, rows_, width),
                    _cut(self.ref_logps, rows_, width),
                    self.active_tokens,
                )
            )
        return slices


def _cut(values: Tensor | None, rows: slice, width: int) -> Tensor | None:
    return None if values is None else values[rows, :width]


@torch.no_grad()
def sample_rollout(
    model,
    tokenizer,
    prompts: Sequence[Prompt],
    num_generations: int,
    decoding: Decoding,
    max_prompt_length: int | None,
    synced_gpus: bool = False,
) -> Rollout:
    """Sample ``num_generations`` completions per prompt in one batched ``generate`` (model in eval mode)."""
    with eval_mode(model):
        out = generate(
            model,
            tokenizer,
            prompts,
            decoding,
            max_input_tokens=max_prompt_length,
            num_return_sequences=num_generations,
            synced_gpus=synced_gpus,
        )
    prompt_ids = [
        ids for ids in encode_prompts(tokenizer, prompts, max_prompt_length) for _ in range(num_generations)
    ]
    completion_ids = [
        ids + ([stop] if stop is not None else []) for ids, stop in zip(out.completion_ids, out.stop_ids)
    ]
    truncated = torch.tensor([stop is None for stop in out.stop_ids], dtype=torch.bool)
    return Rollout(
        prompt_ids,
        completion_ids,
        out.texts,
        truncated,
        prompts=[p.text for p in prompts for _ in range(num_generations)],
    )


def _right_pad(rows: Sequence[Sequence[int]], pad_id: int) -> tuple[Tensor, Tensor]:
    width = max(1, max(len(r) for r in rows))
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = torch.as_tensor(row, dtype=torch.long)
        mask[i, : len(row)] = 1
    return ids, mask


def completion_logprobs(
    model,
    prompt_ids: Sequence[Sequence[int]],
    completion_ids: Sequence[Sequence[int]],
    pad_id: int,
    temperature: float = 1.0,
    share_prefix: bool = True,
    entropy_chunk_rows: int = 8,
) -> tuple[Tensor, Tensor]:
    """Per-token log-probabilities [R, C] of each completion given its prompt, under logits / ``temperature``,
    and the per-token entropy [R, C] (nats, detached) of the same distribution. Differentiable when grad is
    on.

    ``share_prefix`` runs the prompt prefix shared by the rows once (off under gradient checkpointing, which
    forbids a KV cache in training mode).
    """
    device = next(model.parameters()).device
    prompts = prepare_batch(model, prompt_ids, pad_id, enabled=share_prefix)
    completions, completion_mask = _right_pad(completion_ids, pad_id)
    completions, completion_mask = completions.to(device), completion_mask.to(device)
    input_ids = torch.cat([prompts.input_ids, completions], dim=1)
    attention_mask = torch.cat([prompts.attention_mask, completion_mask], dim=1)
    width = completions.shape[1]
    cached = prompts.cache is not None
    positions = position_ids(attention_mask)[:, prompts.prefix_len :]
    # The last prompt position predicts the first completion token: keep width + 1 positions, drop the last.
    logits = model(
        input_ids=input_ids[:, prompts.prefix_len :],
        attention_mask=attention_mask,
        position_ids=positions,
        cache=prompts.cache,
        use_cache=cached,
        logits_to_keep=width + 1,
    ).logits[:, :-1]
    return token_logprobs(logits, completions, temperature, entropy_chunk_rows)


def token_logprobs(
    logits: Tensor, ids: Tensor, temperature: float = 1.0, entropy_chunk_rows: int = 8
) -> tuple[Tensor, Tensor]:
    """log softmax(logits / temperature) at ``ids`` ([R, C, V] and [R, C] -> [R, C], in float32), and the
    entropy of the same distribution per position ([R, C], detached, computed a few rows at a time)."""
    logits = logits.float()
    if temperature != 1.0:
        logits = logits / temperature
    logps = logits.gather(-1, ids.unsqueeze(-1)).squeeze(-1) - torch.logsumexp(logits, dim=-1)
    with torch.no_grad():
        entropy = torch.cat([_entropy(chunk) for chunk in logits.detach().split(entropy_chunk_rows)])
    return logps, entropy


def _entropy(logits: Tensor) -> Tensor:
    logp = torch.log_softmax(logits, dim=-1)
    return -(logp.exp() * logp).sum(-1)
