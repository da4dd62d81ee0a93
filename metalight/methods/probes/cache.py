"""On-disk cache of pooled features: one safetensors file per layer, keyed by model, dataset and prompt.

An entry lives in ``<root>/<model>/<dataset>/<span>-<hash of every input text>/``: the hash covers the
rendered chats (system prompt, user prompt, response, chat template), so a changed prompt gets a new entry
and never reads a stale one. ``meta.json`` records the model's fingerprint (its config and a sample of its
weights); reading an entry with a different model — e.g. a checkpoint re-saved at the same path — is an error
naming both, never a silent reuse. Missing layers are extracted and added to an existing entry.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor

from metalight.errors import ConfigError
from metalight.io import atomic_write_json
from metalight.methods.probes.extraction import Span, SpanText, check_layers, extract_features

CACHE_VERSION = 1
SAMPLES_PER_TENSOR = 64


def model_fingerprint(model) -> str:
    """A short hash of the model's config and of ~64 evenly spaced values of every parameter (exact bits,
    so it is deterministic; any fine-tuning or a different dtype changes it)."""
    digest = hashlib.sha256()
    config = {
        k: v for k, v in model.config.to_dict().items() if k not in ("_name_or_path", "transformers_version")
    }
    digest.update(json.dumps(config, sort_keys=True, default=str).encode())
    with torch.no_grad():
        for name, param in model.named_parameters():
            flat = param.detach().reshape(-1)
            sample = flat[:: max(1, flat.numel() // SAMPLES_PER_TENSOR)].float().cpu().contiguous()
            digest.update(name.encode() + str(param.dtype).encode() + sample.numpy().tobytes())
    return digest.hexdigest()[:16]


def texts_hash(items: Sequence[SpanText]) -> str:
    """Hash of the exact model inputs and response spans."""
    digest = hashlib.sha256()
    for item in items:
        digest.update(f"{item.start}:{item.end}:{int(item.templated)}:".encode() + item.text.encode() + b"\0")
    return digest.hexdigest()[:16]


def slug(text: str) -> str:
    """A file-system-safe name for a model spec or dataset description."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_")[:80] or "unnamed"


def save_safetensors_atomic(
    path: Path, tensors: dict[str, Tensor], metadata: dict[str, str] | None = None
) -> None:
    """``safetensors.torch.save_file`` to a temporary name in the same directory, then rename."""
    from safetensors.torch import save_file

    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        save_file(tensors, tmp, metadata=metadata)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class FeatureCache:
    """Features per (model, dataset, span, inputs) under ``root`` (see module docstring)."""

    def __init__(self, root: str | Path):
        self.root = Path(root).expanduser()

    def entry(self, model_spec: str, dataset: str, span: Span, items: Sequence[SpanText]) -> Path:
        """The directory of one entry."""
        return self.root / slug(model_spec) / slug(dataset) / f"{span}-{texts_hash(items)}"

    def features(
        self,
        model,
        tokenizer,
        model_spec: str,
        dataset: str,
        items: Sequence[SpanText],
        ids: Sequence[str],
        layers: Sequence[int],
        span: Span = "response",
        batch_size: int = 16,
        max_tokens: int | None = None,
    ) -> dict[int, Tensor]:
        """``{layer: [len(items), hidden]}``, read from the cache or extracted (and then cached)."""
        layers = check_layers(model, layers)
        path = self.entry(model_spec, dataset, span, items)
        fingerprint = model_fingerprint(model)
        meta = self.read_meta(path, fingerprint, model_spec, items, ids)
        missing = [layer for layer in layers if layer not in meta["layers"]]
        if missing:
            new = extract_features(model, tokenizer, items, missing, span, batch_size, max_tokens)
            path.mkdir(parents=True, exist_ok=True)
            for layer, values in new.items():
                save_safetensors_atomic(
                    path / f"layer_{layer:03d}.safetensors", {"features": values.contiguous()}
                )
            meta["layers"] = sorted(set(meta["layers"]) | set(missing))
            atomic_write_json(path / "meta.json", meta)
        return {layer: self.read_layer(path, layer) for layer in layers}

    def read_meta(
        self, path: Path, fingerprint: str, model_spec: str, items: Sequence[SpanText], ids: Sequence[str]
    ) -> dict:
        """The entry's metadata (fresh if absent); ``ConfigError`` if another model or input built it."""
        fresh = {
            "version": CACHE_VERSION,
            "model_spec": model_spec,
            "model_fingerprint": fingerprint,
            "texts_sha256": texts_hash(items),
            "ids": list(ids),
            "layers": [],
        }
        meta_file = path / "meta.json"
        if not meta_file.is_file():
            return fresh
        meta = json.loads(meta_file.read_text())
        if meta.get("model_fingerprint") != fingerprint:
            raise ConfigError(
                f"feature cache {path} was built by model {meta.get('model_spec')!r} "
                f"(fingerprint {meta.get('model_fingerprint')}), not by this run's "
                f"{model_spec!r} (fingerprint {fingerprint}); delete that directory or set "
                f"another cache_dir"
            )
        if meta.get("texts_sha256") != fresh["texts_sha256"] or meta.get("ids") != fresh["ids"]:
            raise ConfigError(
                f"feature cache {path} holds other inputs than this run's (different texts or "
                f"record ids); delete that directory"
            )
        return meta

    @staticmethod
    def read_layer(path: Path, layer: int) -> Tensor:
        """One layer's features from an entry."""
        from safetensors.torch import load_file

        return load_file(path / f"layer_{layer:03d}.safetensors")["features"]
