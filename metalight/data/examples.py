"""``SFTExample``: one prompt-completion training pair, in TRL's prompt-completion convention.

A row of a JSONL/JSON file (see ``docs/sft.md``)::

    {"prompt": "Question: Who wrote Hamlet?\\nAnswer:", "completion": " William Shakespeare"}
    {"prompt": [{"role": "user", "content": "Who wrote Hamlet?"}], "completion": "William Shakespeare",
     "system": "Answer briefly.", "id": "q17"}

``prompt`` is a user message (str) or a list of chat messages; ``completion`` is the assistant's reply (a
str, or TRL's ``[{"role": "assistant", "content": ...}]``); ``system`` (optional) is a system message.
Only the completion is trained on (the prompt tokens are masked) unless the module says otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from metalight.errors import DataError

ROLES = ("system", "user", "assistant")


@dataclass(frozen=True)
class SFTExample:
    """A training pair: ``prompt`` (user text or chat messages) -> ``completion`` (assistant text).

    ``id`` identifies the source question (used to keep held-out splits apart); ``meta`` carries anything
    else (e.g. the label a judgment target encodes).
    """

    prompt: str | tuple[dict[str, str], ...]
    completion: str
    system: str | None = None
    id: str = ""
    meta: dict[str, Any] = field(default_factory=dict, compare=False)

    def messages(self) -> list[dict[str, str]]:
        """The prompt as chat messages (system message first when given), without the completion."""
        head = [{"role": "system", "content": self.system}] if self.system else []
        if isinstance(self.prompt, str):
            return head + [{"role": "user", "content": self.prompt}]
        return head + [dict(m) for m in self.prompt]


def _check_messages(messages: Any, where: str) -> tuple[dict[str, str], ...]:
    if not isinstance(messages, list) or not messages:
        raise DataError(f"{where}: `prompt` must be a string or a non-empty list of chat messages")
    for index, message in enumerate(messages):
        if (
            not isinstance(message, dict)
            or message.get("role") not in ROLES
            or not isinstance(message.get("content"), str)
        ):
            raise DataError(
                f"{where}: prompt[{index}] must be {{'role': system|user|assistant, "
                f"'content': str}}, got {message!r:.80}"
            )
    if messages[-1]["role"] != "user":
        raise DataError(f"{where}: the last prompt message must have role 'user' (the completion answers it)")
    return tuple({"role": m["role"], "content": m["content"]} for m in messages)


def example_from_row(row: dict[str, Any], where: str) -> SFTExample:
    """Parse one TRL prompt-completion row; raise ``DataError`` naming ``where`` and the fix if malformed."""
    missing = [key for key in ("prompt", "completion") if key not in row]
    if missing:
        raise DataError(
            f"{where}: missing {' and '.join(missing)}; a prompt-completion row is "
            f'{{"prompt": str | [messages], "completion": str}} (optional "system", "id")'
        )
    prompt, completion = row["prompt"], row["completion"]
    if isinstance(prompt, str):
        if not prompt.strip():
            raise DataError(f"{where}: empty prompt")
    else:
        prompt = _check_messages(prompt, where)
    if isinstance(completion, list):  # TRL's conversational form: one assistant message
        single = len(completion) == 1 and isinstance(completion[0], dict)
        if not single or completion[0].get("role") != "assistant":
            raise DataError(f"{where}: a list `completion` must hold exactly one assistant message")
        completion = completion[0].get("content")
    if not isinstance(completion, str) or not completion.strip():
        raise DataError(f"{where}: `completion` must be a non-empty string")
    system = row.get("system")
    if system is not None and not isinstance(system, str):
        raise DataError(f"{where}: `system` must be a string")
    meta = {k: v for k, v in row.items() if k not in ("prompt", "completion", "system", "id")}
    return SFTExample(
        prompt=prompt, completion=completion, system=system or None, id=str(row.get("id", where)), meta=meta
    )


def example_to_row(example: SFTExample) -> dict[str, Any]:
    """The JSON row of an example (inverse of :func:`example_from_row`)."""
    prompt = example.prompt if isinstance(example.prompt, str) else list(example.prompt)
    row: dict[str, Any] = {"id": example.id, "prompt": prompt, "completion": example.completion}
    if example.system:
        row["system"] = example.system
    return row | {k: v for k, v in example.meta.items() if k not in row}


def write_examples(path, examples) -> None:
    """Write examples as a prompt-completion JSONL file (atomically) for ``PromptCompletionDataModule``."""
    from metalight.io import atomic_write_jsonl

    atomic_write_jsonl(path, (example_to_row(e) for e in examples))
