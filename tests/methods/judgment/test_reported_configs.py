"""The configs that reproduce Know-thyself's reported runs carry that run's settings (upstream results/*.md at
d00b4da with scripts/run_judgment_training.py's code then), as the resolved --print_config shows them."""

from pathlib import Path

import pytest
import yaml

from metalight.cli import main
from metalight.methods.sft.answers import AnswerSettings

ROOT = Path(__file__).resolve().parents[3]
REPORTED = {  # config -> (model, lr, source class, extra source settings)
    "configs/judgment/triviaqa_reported.yaml": (
        "Qwen/Qwen2.5-7B-Instruct",
        1e-5,
        "triviaqa.TriviaQADataModule",
        {"hub_config": "rc.nocontext", "answers_field": "normalized_aliases"},
    ),
    "configs/judgment/hotpotqa_reported.yaml": (
        "Qwen/Qwen2.5-7B-Instruct",
        4e-6,
        "hotpot_qa.HotpotQADataModule",
        {"hub_config": "distractor", "context": "none"},
    ),
}


@pytest.mark.parametrize("config", sorted(REPORTED))
def test_reported_run_config_has_the_reported_settings(config, capsys):
    with pytest.raises(SystemExit):
        main(["fit", "--config", str(ROOT / config), "--print_config"])
    printed = yaml.safe_load(capsys.readouterr().out)
    model_name, lr, source_class, source_settings = REPORTED[config]
    model = printed["model"]["init_args"]
    assert model["model"] == model_name and model["lora"] is None and model["schedule_per_epoch"]
    assert (
        model["optimizer"]["init_args"]["lr"] == lr
        and model["optimizer"]["init_args"]["weight_decay"] == 0.01
    )
    assert model["lr_scheduler"]["init_args"]["warmup_ratio"] == 0.1
    data = printed["data"]["init_args"]
    source = data["source"]
    assert data["batch_size"] == 16 and source["class_path"].endswith(source_class)
    assert source["init_args"]["max_samples"] == {"train": 20000, "val": 1000}
    assert source["init_args"]["max_samples_from"] == "start"
    assert source_settings.items() <= source["init_args"].items()
    trainer = printed["trainer"]
    assert trainer["max_epochs"] == 10 and trainer["gradient_clip_val"] == 1.0
    (loop,) = [c for c in trainer["callbacks"] if c["class_path"].endswith("JudgmentLoop")]
    assert loop["init_args"]["train_on"] == "all" and loop["init_args"]["labels"]["label_mode"] == "binary"
    assert loop["init_args"]["answers"] is None  # the defaults: one greedy answer of <= 64 tokens, upstream's
    defaults = AnswerSettings()
    assert (
        defaults.decoding,
        defaults.num_answers,
        defaults.max_new_tokens,
        defaults.prompt,
        defaults.grading,
    ) == ("greedy", 1, 64, "know_thyself", "know_thyself")
