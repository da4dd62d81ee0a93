"""MetaConf on its task families: task graders inside the rewards (graded once per batch, routed by
task_type), and `cli.py validate` with the baselines config reporting every baseline's metrics and samples."""

import json

import pytest

from metalight.cli import main
from metalight.data.records import QARecord
from metalight.errors import ConfigError
from metalight.io import read_jsonl
from metalight.methods.metaconf.rewards import MetaConfScorer
from metalight.methods.metaconf.task_graders import BoxedAnswerGrader, TaskGrader
from metalight.methods.metaconf.verbal import ReplySettings, evaluate_baseline, evaluate_verbal

MATH = QARecord("m", "What is 3/4 times 2?", ["\\frac{3}{2}"], meta={"task_type": "math"})
FACT = QARecord(
    "f", "Tell me about Marie Curie.", [], meta={"task_type": "long_fact", "title": "Marie Curie"}
)
SHORT = QARecord("s", "What is the capital of France?", ["Paris"])


class CountingGrader(TaskGrader):
    """Grades every reply 0.25 (``None`` for the reply "fail") and counts its calls."""

    def __init__(self):
        self.calls = []

    def grade(self, records, replies):
        self.calls.append(list(replies))
        return [None if r == "fail" else 0.25 for r in replies]


def reply(answer, confidence):
    return f"Answer: {answer}\nSelf-reflection: I checked it.\nConfidence: {confidence}"


def test_task_graders_route_by_task_type_and_run_once_per_batch():
    facts = CountingGrader()
    scorer = MetaConfScorer(task_graders={"math": BoxedAnswerGrader(), "long_fact": facts})
    records = [MATH, FACT, SHORT, FACT]
    completions = [
        reply("so \\boxed{1.5}", 10),
        reply("She was a physicist.", 5),
        reply("Paris", 10),
        reply("fail", 5),
    ]
    assert scorer.accuracy([], completions, records).tolist() == [1.0, 0.25, 1.0, 0.0]
    calibration = scorer.calibration([], completions, records).tolist()
    assert calibration == pytest.approx([1.0, 1 - (0.25 - 0.5) ** 2, 1.0, 1 - 0.5**2])
    assert facts.calls == [
        ["She was a physicist.", "fail"]
    ]  # the answer fields, graded once for both rewards
    assert scorer.stats["grader/missing"] == 1.0 and scorer.stats["grader/requests"] == 3.0


def test_self_refine_grades_the_second_reply(monkeypatch):
    seen = []

    def fake_replies(model, tokenizer, conversations, settings):
        seen.append(conversations)
        texts = (
            ["Answer: 2/3\nConfidence: 9"]
            if len(seen) == 1
            else ["Review: fixed\nAnswer: \\boxed{3/2}\nConfidence: 6"]
        )
        return [type("P", (), {"text": str(c)})() for c in conversations], texts

    monkeypatch.setattr("metalight.methods.metaconf.verbal._replies", fake_replies)
    grader = BoxedAnswerGrader()
    (result,) = evaluate_baseline(
        "self_refine", None, None, [MATH], lambda rs, a: [g >= 0.5 for g in grader.grade(rs, a)]
    )
    assert result.correct and result.confidence == 6.0 and result.parsed
    assert seen[1][0][1] == {"role": "assistant", "content": "Answer: 2/3\nConfidence: 9"}
    assert seen[1][0][2]["content"].startswith("Review your previous answer")


def test_baselines_config_validates_with_a_tiny_model(tiny_model_dir, tmp_path):
    main(
        [
            "validate",
            "--config",
            "configs/grpo/metaconf_baselines.yaml",
            "--model.init_args.model",
            str(tiny_model_dir),
            "--model.init_args.verbal_max_new_tokens",
            "4",
            "--model.init_args.evaluation.max_new_tokens",
            "3",
            "--trainer.logger.init_args.save_dir",
            str(tmp_path),
        ]
    )
    (run,) = (tmp_path / "metaconf-baselines").iterdir()
    report = json.loads((run / "report.json").read_text())
    assert report["n"] == 4 and report["baselines"] == ["direct", "cot", "self_refine"]
    assert report["task_graders"] == {"math": {"grader": "boxed", "use_sympy": True}}
    assert report["metaconf_baseline_version"] == "metaconf-baselines-v1"
    for kind in ("verbal", "baseline_direct", "baseline_cot", "baseline_self_refine"):
        assert {f"{kind}_accuracy", f"{kind}_ece", f"{kind}_meta_unparsed_rate"} <= set(report)
    samples = read_jsonl(run / "samples" / "val.jsonl")
    assert len(samples) == 4
    assert {"baseline_cot_completion", "baseline_self_refine_confidence", "baseline_direct_correct"} <= set(
        samples[0]
    )


def test_a_record_without_gold_and_without_a_grader_is_a_config_error():
    with pytest.raises(
        ConfigError, match=r"record f \(task_type 'long_fact'\) has no gold answer.*task_graders\.long_fact"
    ):
        MetaConfScorer().accuracy([], [reply("x", 5)], [FACT])


@pytest.mark.parametrize(("prompt", "accuracy_on"), [("instructed", "answer"), ("bare", "completion")])
def test_verbal_evaluation_prompt_and_accuracy_options(monkeypatch, prompt, accuracy_on):
    """``bare``: the question alone, as upstream sends it; ``completion``: the whole reply is graded."""
    seen = []

    def fake_replies(model, tokenizer, conversations, settings):
        seen.extend(conversations)
        return (
            [type("P", (), {"text": c[0]["content"]})() for c in conversations],
            ["Answer: Lyon\nSelf-reflection: or Paris.\nConfidence: 4"] * len(conversations),
        )

    monkeypatch.setattr("metalight.methods.metaconf.verbal._replies", fake_replies)
    record = QARecord("1", "What is the capital of France?", ["Paris"])
    (result,) = evaluate_verbal(
        None,
        None,
        [record],
        lambda rs, answers: ["Paris" in a for a in answers],
        settings=ReplySettings(prompt=prompt, accuracy_on=accuracy_on),
    )
    content = seen[0][0]["content"]
    assert (content == record.question) is (prompt == "bare")
    assert content.endswith("Question: What is the capital of France?\n") is (prompt == "instructed")
    assert result.correct is (accuracy_on == "completion") and result.answer == "Lyon"


def test_module_prompt_option_reaches_rollouts_and_report():
    from metalight.methods.metaconf import MetaConfModule

    record = QARecord("1", "What is the capital of France?", ["Paris"])
    module = MetaConfModule(model="unused", reflection_weight=0.0, prompt="bare", accuracy_on="completion")
    assert module.prompt_text(record) == record.question
    assert module.scorer.accuracy_on == "completion"
    settings = module.report_settings()
    assert settings["metaconf_prompt"] == "bare" and settings["accuracy_on"] == "completion"
    assert (
        MetaConfModule(model="unused", reflection_weight=0.0)
        .prompt_text(record)
        .startswith("Answer the following")
    )
