"""The paper configs use upstream's behaviour wherever metalight offers an option (docs: each method's
"Differences from upstream" table); the resolved --print_config shows it."""

from pathlib import Path

import pytest
import yaml

from metalight.cli import main

ROOT = Path(__file__).resolve().parents[2]
UPSTREAM_OPTIONS = {
    "configs/esma/triviaqa.yaml": {
        "es_update": "in_place",
        "noise": "esma",
        "noise_dtype": "param",
        "fitness_shaping": "zscore",
        "engine.restore": "subtract",
        "evaluation.decoding": "model_default",
        "evaluation.truncation_side": "right",
        "evaluation.grading": "esma",
        "evaluation.yes_no_rule": "esma",
        "evaluation.meta_chat_template": "never",
        "dprime_correction": "clip",
    },
    "configs/grpo/metaconf.yaml": {
        "prompt": "bare",
        "accuracy_on": "completion",
        "format_rule": "upstream",
        "response_format": "plain",
        "accuracy_weight": 0.0,
        "missing_judge_score": 0.0,
        "system_prompt": None,
    },
}


def resolved(printed: dict, dotted: str):
    value = printed
    for key in dotted.split("."):
        value = value[key]
    return value


@pytest.mark.parametrize("config", sorted(UPSTREAM_OPTIONS))
def test_paper_config_uses_upstreams_behaviour_where_there_is_an_option(config, capsys):
    with pytest.raises(SystemExit):
        main(["fit", "--config", str(ROOT / config), "--print_config"])
    model = yaml.safe_load(capsys.readouterr().out)["model"]["init_args"]
    assert {key: resolved(model, key) for key in UPSTREAM_OPTIONS[config]} == UPSTREAM_OPTIONS[config]


def test_metaconf_stage1_config_builds_bare_prompts_as_stage2_sends():
    text = (ROOT / "configs/sft/metaconf_stage1.yaml").read_text()
    assert "build_metaconf_sft.py --out runs/data/metaconf_sft.jsonl --prompt bare" in text
