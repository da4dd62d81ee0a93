"""MetaConfModule: rewards reach the advantages (scripted completions, fake judge), the verbal confidence
feeds the core metrics, and `cli.py fit` with the quickstart config writes the verbal metrics into
report.json."""

import json
import math

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from metalight.cli import main
from metalight.data.records import QARecord
from metalight.errors import ConfigError
from metalight.io import read_jsonl
from metalight.methods.grpo.rollout import Rollout
from metalight.methods.metaconf.judge import ChatBackend
from metalight.methods.metaconf.module import MetaConfModule
from metalight.methods.metaconf.verbal import VerbalResult, verbal_tensors
from tests.report_keys import assert_report_keys

RECORD = QARecord("1", "What is the capital of France?", ["Paris"])


class FixedJudge(ChatBackend):
    """Scores every reflection 1.5 / 2 and remembers what it was asked."""

    def __init__(self):
        self.asked = []

    def complete_many(self, conversations):
        self.asked += conversations
        return ['{"consistency": 2, "specificity": 1, "plausibility": 1.5, "total_score": 1.5}'] * len(
            conversations
        )

    def describe(self):
        return {"backend": "fixed"}


def test_metaconf_rewards_reach_the_advantages(tiny_model_dir, monkeypatch):
    texts = [
        "Answer: Paris\nSelf-reflection: I know it.\nConfidence: 9",
        "Answer: Rome\nSelf-reflection: No.\nConfidence: 9",
        "Answer: Paris",
        "Answer: Paris\nSelf-reflection: Unsure.\nConfidence: 2",
    ]

    def scripted(model, tokenizer, prompts, num_generations, decoding, max_prompt_length, synced_gpus=False):
        ids = [tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]
        return Rollout(
            [[1, 2, 3]] * 4, ids, list(texts), torch.zeros(4, dtype=torch.bool), prompts=[prompts[0].text] * 4
        )

    monkeypatch.setattr("metalight.methods.grpo.module.sample_rollout", scripted)
    judge = FixedJudge()
    module = MetaConfModule(model=str(tiny_model_dir), judge=judge, num_generations=4, accuracy_weight=0.2)
    module.configure_model()
    rollout = module.make_rollout([RECORD])  # samples (scripted), scores, advantages
    names, table = module.score(rollout)
    assert names == ["format", "calibration", "accuracy", "reflection"]
    calibration = [1 - 0.1**2, 1 - 0.9**2, 0.0, 1 - 0.8**2]
    torch.testing.assert_close(table[:, 1], torch.tensor(calibration))
    torch.testing.assert_close(table[:, 3], torch.tensor([0.75, 0.75, 0.0, 0.75]))
    assert len(judge.asked) == 6  # three well-formed completions, judged in make_rollout and in score
    assert (
        "Unsure." in judge.asked[2][0]["content"]
        and "Reference correctness of the answer (0-1): 1" in judge.asked[2][0]["content"]
    )
    combined = table[:, 1] + 0.6 * table[:, 3] + 0.2 * table[:, 2]
    expected = (combined - combined.mean()) / (combined.std() + 1e-4)
    torch.testing.assert_close(rollout.advantages, expected)


def test_reflection_weight_without_a_judge_is_a_config_error():
    with pytest.raises(ConfigError, match="needs a `judge:`"):
        MetaConfModule(judge=None)
    assert MetaConfModule(judge=None, reflection_weight=0.0).scorer.judge is None


def test_verbal_confidence_becomes_metric_inputs():
    results = [
        VerbalResult("a", "p", "c", "Paris", "r", 8.0, True, True),
        VerbalResult("b", "p", "c", "Lyon", "r", 5.0, False, True),
        VerbalResult("c", "p", "c", None, None, None, True, False),
    ]
    tensors = verbal_tensors(results, threshold=0.5)
    assert tensors["said_yes"].tolist() == [True, True, False]  # 5/10 >= 0.5; undefined counts as "no"
    assert tensors["confidence"][:2].tolist() == pytest.approx([0.8, 0.5]) and math.isnan(
        tensors["confidence"][2]
    )
    assert tensors["parsed"].tolist() == [True, True, False] and tensors["correct"].tolist() == [
        True,
        False,
        True,
    ]


def test_fit_quickstart_config_with_a_tiny_model_reports_verbal_metrics(tiny_model_dir, tmp_path):
    main(
        [
            "fit",
            "--config",
            "configs/grpo/quickstart.yaml",
            "--model.init_args.model",
            str(tiny_model_dir),
            "--model.init_args.judge.init_args.model",
            str(tiny_model_dir),
            "--model.init_args.num_generations",
            "2",
            "--model.init_args.max_completion_length",
            "4",
            "--model.init_args.verbal_max_new_tokens",
            "4",
            "--model.init_args.evaluation.max_new_tokens",
            "3",
            "--trainer.max_steps",
            "2",
            "--trainer.val_check_interval",
            "2",
            "--data.init_args.max_samples.val",
            "4",
            "--trainer.logger.init_args.save_dir",
            str(tmp_path),
        ]
    )
    (run,) = (tmp_path / "grpo-quickstart").iterdir()
    report = json.loads((run / "report.json").read_text())
    assert report["n"] == 4 and report["step"] == 2 and report["method"] == "MetaConfModule"
    assert_report_keys(report, "metaconf")
    for key in (
        "verbal_accuracy",
        "verbal_ece",
        "verbal_brier",
        "verbal_auroc_type2",
        "verbal_meta_unparsed_rate",
        "accuracy",
        "dprime_type2",
        "ece",
    ):
        assert key in report
    assert report["verbal_meta_unparsed_rate"] == 1.0  # a random model never writes the format: counted
    assert report["judge"]["backend"] == "local" and report["metaconf_prompt_version"] == "metaconf-v1"
    samples = read_jsonl(run / "samples" / "val.jsonl")
    assert len(samples) == 4 and {"direct_answer", "verbal_completion", "verbal_confidence"} <= set(
        samples[0]
    )
    events = EventAccumulator(str(run))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {
        "train/rewards/calibration/mean",
        "train/rewards/format/mean",
        "train/rewards/reflection/mean",
        "train/confidence_undefined_rate",
        "train/judge/missing_rate",
        "val/verbal_ece",
        "val/accuracy",
    } <= tags
