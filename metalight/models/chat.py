"""Turning a user message into model input text: the tokenizer's chat template, or raw text."""

from __future__ import annotations

import logging
from typing import Literal

from metalight.errors import ConfigError

log = logging.getLogger(__name__)

ChatMode = Literal["auto", "always", "never"]
"""``auto``: chat template when the tokenizer has one, raw text otherwise (logged once);
``always``: the template is required (error if missing); ``never``: raw text (ESMA's meta prompt)."""

_warned: set[str] = set()


def has_chat_template(tokenizer) -> bool:
    """Whether the tokenizer carries a chat template."""
    return bool(getattr(tokenizer, "chat_template", None))


def uses_chat_template(tokenizer, mode: ChatMode) -> bool:
    """Resolve ``mode`` for this tokenizer; raise for ``always`` without a template, log once for ``auto``."""
    if mode == "never":
        return False
    if has_chat_template(tokenizer):
        return True
    name = getattr(tokenizer, "name_or_path", "the model")
    if mode == "always":
        raise ConfigError(
            f"{name} has no chat template but chat_template='always' was requested; set "
            f"chat_template to 'auto' (raw text fallback) or 'never'"
        )
    if name not in _warned:
        _warned.add(name)
        log.warning("%s has no chat template: prompts are sent as raw text", name)
    return False


def render_prompt(
    tokenizer, user: str, mode: ChatMode = "auto", system: str | None = None
) -> tuple[str, bool]:
    """Return ``(text, templated)``: the chat-formatted prompt ending with the assistant header, or raw text.

    ``templated`` tells the caller not to add special tokens again when tokenizing the text.
    """
    if not uses_chat_template(tokenizer, mode):
        return (f"{system}\n\n{user}" if system else user), False
    messages = ([{"role": "system", "content": system}] if system else []) + [
        {"role": "user", "content": user}
    ]
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return text, True


def render_chat(tokenizer, messages: list[dict[str, str]], add_generation_prompt: bool = False) -> str:
    """Chat-format a whole conversation (for training targets); requires a chat template."""
    if not has_chat_template(tokenizer):
        raise ConfigError(
            f"{getattr(tokenizer, 'name_or_path', 'the model')} has no chat template, which "
            f"this step needs; use an instruct model or set its tokenizer.chat_template"
        )
    return tokenizer.apply_chat_template(
        messages, tokenize=False, add_generation_prompt=add_generation_prompt
    )
