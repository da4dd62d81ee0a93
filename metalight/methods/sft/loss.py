"""Causal-LM loss on the labelled tokens only, with the LM head applied only where there is a label.

The LM head of a small model is a large share of its compute (SmolLM2-135M: a 576 x 49,152 projection at
every position). Like TRL's fused LM head, :func:`completion_loss` runs the backbone over the whole sequence
but projects only the hidden states whose next token carries a label, so masked prompt tokens cost no
vocabulary projection. The loss equals cross-entropy over the full logits at those positions.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from metalight.methods.sft.encoding import IGNORE_INDEX, TokenBatch


@dataclass
class LossOutput:
    """Mean token loss (nats) and counts for logging: labelled tokens and how many were the model's top-1."""

    loss: Tensor
    num_labelled: int
    num_top1: int


def causal_lm(model):
    """The transformers ``*ForCausalLM`` inside ``model`` (unwraps a peft ``PeftModel``)."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def _scale_logits(logits: Tensor, config) -> Tensor:
    text_config = config.get_text_config() if hasattr(config, "get_text_config") else config
    scale = getattr(text_config, "logit_scale", None)
    if scale is not None:
        logits = logits * scale
    cap = getattr(text_config, "final_logit_softcapping", None)
    if cap:
        logits = torch.tanh(logits / cap) * cap
    return logits


def completion_loss(model, batch: TokenBatch) -> LossOutput:
    """Mean cross-entropy over the tokens whose label is not ``IGNORE_INDEX`` (next-token shifted)."""
    lm = causal_lm(model)
    hidden = lm.base_model(
        input_ids=batch.input_ids, attention_mask=batch.attention_mask, use_cache=False
    ).last_hidden_state[:, :-1]
    targets = batch.labels[:, 1:]
    keep = targets != IGNORE_INDEX
    if not bool(keep.any()):
        raise ValueError("the batch has no labelled token (every completion was truncated away or masked)")
    head = lm.get_output_embeddings()
    logits = _scale_logits(head(hidden[keep]).float(), lm.config)
    chosen = targets[keep]
    loss = F.cross_entropy(logits, chosen)
    top1 = int((logits.detach().argmax(-1) == chosen).sum())
    return LossOutput(loss, int(chosen.numel()), top1)
