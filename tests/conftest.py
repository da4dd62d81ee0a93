"""Shared fixtures: no network, small thread count, a tiny random Llama saved with a real tokenizer."""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))

EMBEDDED = "embedded:smollm2-135m-instruct"


@pytest.fixture(scope="session")
def embedded_dir():
    """The converted embedded model directory (converted once per machine, then cached)."""
    from metalight.models.embedded import embedded_model_dir

    return embedded_model_dir("smollm2-135m-instruct")


def build_tiny_llama(vocab_size: int, seed: int = 0, layers: int = 2, varied: bool = False):
    """A random-weight Llama built from a real config: 2 layers, hidden 64 (unit tests run in seconds).

    With tied, small embeddings a random model just repeats its last input token; ``varied=True`` unties
    the output head and scales it up so greedy answers differ between questions (for metric tests).
    """
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        tie_word_embeddings=not varied,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=0,
    )
    model = LlamaForCausalLM(config).eval()
    if varied:
        with torch.no_grad():
            model.lm_head.weight.normal_(0.0, 1.0)
    return model


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, embedded_dir):
    """A tiny random Llama saved with SmolLM2's tokenizer (and chat template) in a temporary directory."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(embedded_dir)
    model = build_tiny_llama(len(tokenizer))
    path = tmp_path_factory.mktemp("tiny-llama")
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def varied_model_dir(tmp_path_factory, embedded_dir):
    """Like ``tiny_model_dir`` but with an untied, large output head: answers vary between questions."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(embedded_dir)
    path = tmp_path_factory.mktemp("varied-llama")
    build_tiny_llama(len(tokenizer), varied=True).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny(tiny_model_dir):
    """``(model, tokenizer)`` of the tiny random Llama, loaded through metalight."""
    from metalight.models.loading import load_model

    return load_model(str(tiny_model_dir))


@pytest.fixture(scope="session")
def embedded(embedded_dir):
    """``(model, tokenizer)`` of the embedded SmolLM2-135M-Instruct."""
    from metalight.models.loading import load_model

    return load_model(EMBEDDED)


@pytest.fixture
def composed_config(capsys):
    """``compose(fragment)``: the config that ``cli.py validate --config configs/quickstart.yaml --config
    <fragment> --print_config`` prints, parsed from YAML (a fragment that does not compose fails the test)."""
    import yaml

    from metalight.cli import main

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

    def compose(fragment) -> dict:
        with pytest.raises(SystemExit) as exit_info:
            main(
                [
                    "validate",
                    "--config",
                    os.path.join(root, "configs/quickstart.yaml"),
                    "--config",
                    str(fragment),
                    "--print_config",
                ]
            )
        assert exit_info.value.code in (0, None)
        return yaml.safe_load(capsys.readouterr().out)

    return compose
