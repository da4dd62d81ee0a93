"""Model loading (spec -> model, tokenizer) and batched generation helpers."""

from metalight.models.loading import ModelSource, load_model, load_tokenizer, resolve_model_spec

__all__ = ["ModelSource", "load_model", "load_tokenizer", "resolve_model_spec"]
