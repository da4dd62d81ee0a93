"""Prompt-completion examples -> token ids and labels (prompt tokens masked with -100), right-padded batches.

With a chat template the prompt is ``apply_chat_template(messages, add_generation_prompt=True)`` and the
completion is what the full conversation adds after it (the reply and its end-of-turn tokens), so the model
learns to stop. Without one (or ``chat_template: never``) the prompt text and the completion are concatenated
as they are (TRL's convention; put any separator in the data) and EOS is appended. Prompt and completion are
tokenised separately, so the boundary between masked and trained tokens is exact.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from metalight.data.examples import SFTExample
from metalight.errors import ConfigError
from metalight.models.chat import ChatMode, uses_chat_template

IGNORE_INDEX = -100


@dataclass
class EncodedExample:
    """Token ids of one example and its labels (``IGNORE_INDEX`` where no loss is taken)."""

    input_ids: list[int]
    labels: list[int]


@dataclass
class TokenBatch:
    """A right-padded batch: ``input_ids``, ``attention_mask`` and ``labels``, each [rows, longest]."""

    input_ids: Tensor
    attention_mask: Tensor
    labels: Tensor

    def to(self, device) -> TokenBatch:
        """The batch on ``device``."""
        return TokenBatch(self.input_ids.to(device), self.attention_mask.to(device), self.labels.to(device))

    @property
    def num_tokens(self) -> int:
        """Real (non-padding) tokens in the batch."""
        return int(self.attention_mask.sum())


def render_example(tokenizer, example: SFTExample, chat_template: ChatMode = "auto") -> tuple[str, str, bool]:
    """``(prompt_text, completion_text, templated)`` of an example (see module docstring)."""
    if uses_chat_template(tokenizer, chat_template):
        messages = example.messages()
        prompt = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        reply = {"role": "assistant", "content": example.completion}
        full = tokenizer.apply_chat_template(messages + [reply], tokenize=False)
        if not full.startswith(prompt):
            name = getattr(tokenizer, "name_or_path", "the model")
            raise ConfigError(
                f"{name}'s chat template renders the conversation differently from its "
                f"generation prompt, so the completion cannot be separated; set chat_template: "
                f"never and write the prompt text in the data"
            )
        return prompt, full[len(prompt) :], True
    if not isinstance(example.prompt, str):
        raise ConfigError(
            f"example {example.id!r} has a chat-message prompt but no chat template is used; "
            f"give the prompt as a string or use a model with a chat template (chat_template: "
            f"auto)"
        )
    prompt = f"{example.system}\n\n{example.prompt}" if example.system else example.prompt
    return prompt, example.completion, False


def encode_example(
    tokenizer,
    example: SFTExample,
    max_length: int = 512,
    chat_template: ChatMode = "auto",
    completion_only: bool = True,
) -> EncodedExample:
    """Token ids and labels of one example, at most ``max_length`` tokens.

    A longer example loses the start of its prompt first (the question sits at the end of it); a completion
    longer than ``max_length - 1`` tokens is cut at its end. ``completion_only=False`` trains on every token.
    """
    prompt, completion, templated = render_example(tokenizer, example, chat_template)
    prompt_ids = tokenizer(prompt, add_special_tokens=not templated)["input_ids"]
    completion_ids = tokenizer(completion, add_special_tokens=False)["input_ids"]
    if not templated and tokenizer.eos_token_id is not None:
        completion_ids = completion_ids + [tokenizer.eos_token_id]
    if not completion_ids:
        raise ConfigError(f"example {example.id!r}: the completion encodes to no tokens")
    completion_ids = completion_ids[: max_length - 1]
    keep = max_length - len(completion_ids)
    prompt_ids = prompt_ids[-keep:] if keep > 0 else []
    prompt_labels = [IGNORE_INDEX] * len(prompt_ids) if completion_only else list(prompt_ids)
    return EncodedExample(prompt_ids + completion_ids, prompt_labels + completion_ids)


def collate(encoded: Sequence[EncodedExample], pad_id: int) -> TokenBatch:
    """Right-pad encoded examples into a :class:`TokenBatch` (padding is masked and carries no loss)."""
    width = max(len(e.input_ids) for e in encoded)
    ids = torch.full((len(encoded), width), pad_id, dtype=torch.long)
    labels = torch.full((len(encoded), width), IGNORE_INDEX, dtype=torch.long)
    mask = torch.zeros((len(encoded), width), dtype=torch.long)
    for row, example in enumerate(encoded):
        n = len(example.input_ids)
        ids[row, :n] = torch.as_tensor(example.input_ids)
        labels[row, :n] = torch.as_tensor(example.labels)
        mask[row, :n] = 1
    return TokenBatch(ids, mask, labels)


def encode_batch(
    tokenizer,
    examples: Sequence[SFTExample],
    max_length: int = 512,
    chat_template: ChatMode = "auto",
    completion_only: bool = True,
) -> TokenBatch:
    """Encode and collate ``examples`` (see :func:`encode_example`)."""
    if not examples:
        raise ValueError("cannot encode an empty batch")
    encoded = [encode_example(tokenizer, e, max_length, chat_template, completion_only) for e in examples]
    return collate(encoded, tokenizer.pad_token_id)
