"""JudgmentLoop options: skip_collect (answers of the previous round reused) and train_on: wrong_weighted."""

import json

import pytest

from metalight.errors import ConfigError
from metalight.io import read_jsonl
from metalight.methods.judgment.loop import JudgmentLoop
from tests.methods.judgment.test_judgment_loop import NO, YES, loop_env  # noqa: F401  (fixture)


def test_skip_collect_reuses_round_zero_answers_and_asks_only_the_judgment(loop_env):  # noqa: F811
    fake, trainer, module = loop_env
    fake.script = {0: {"q1": ["William Shakespeare"], "q2": ["Lyon"]}}  # round 1 has no answers scripted
    fake.judgments = {0: {"q1": NO, "q2": NO}, 1: {"q1": YES, "q2": YES}}
    loop = JudgmentLoop(skip_collect=True)
    loop.on_fit_start(trainer, module)
    fake.round = 1
    loop.on_train_epoch_end(trainer, module)  # would raise KeyError if answers were collected again
    rows = read_jsonl(f"{trainer.log_dir}/judgment/train_epoch1.jsonl")
    assert {r["id"]: (r["answers"], r["ability"]) for r in rows} == {
        "q1": (["William Shakespeare"], "can"),
        "q2": (["Lyon"], "cannot"),
    }
    assert [e.id for e in trainer.datamodule.train_examples] == ["q2"]  # YES for q2 is now the wrong judgment
    resumed = JudgmentLoop(skip_collect=True)
    resumed.load_state_dict(json.loads(json.dumps(loop.state_dict())))
    assert resumed.collected["train"]["q1"]["answers"] == ["William Shakespeare"]


def test_without_skip_collect_answers_are_collected_again(loop_env):  # noqa: F811
    fake, trainer, module = loop_env
    fake.script = {0: {"q1": ["William Shakespeare"], "q2": ["Lyon"]}}
    fake.judgments = {0: {"q1": NO, "q2": NO}, 1: {"q1": YES, "q2": YES}}
    loop = JudgmentLoop()
    loop.on_fit_start(trainer, module)
    fake.round = 1
    with pytest.raises(KeyError):
        loop.on_train_epoch_end(trainer, module)


def test_wrong_weighted_repeats_a_question_by_its_count_of_wrong_rounds(loop_env):  # noqa: F811
    fake, trainer, module = loop_env
    answers = {"q1": ["Shakespeare"], "q2": ["Lyon"]}  # q1: can, q2: cannot, every round
    fake.script = {k: answers for k in range(4)}
    fake.judgments = {
        0: {"q1": NO, "q2": NO},
        1: {"q1": NO, "q2": YES},
        2: {"q1": NO, "q2": NO},
        3: {"q1": NO, "q2": NO},
    }
    loop = JudgmentLoop(train_on="wrong_weighted", max_repeats=2)
    loop.on_fit_start(trainer, module)

    def served():
        return sorted(e.id for e in trainer.datamodule.train_examples)

    assert served() == ["q1"]  # wrong once
    for round_index, expected in [(1, ["q1", "q1", "q2"]), (2, ["q1", "q1"]), (3, ["q1", "q1"])]:
        fake.round = round_index
        loop.on_train_epoch_end(trainer, module)
        assert served() == expected  # q1 capped at max_repeats = 2; q2 judged right again in round 2
    assert loop.wrong_counts == {"q1": 4, "q2": 1}
    assert loop.history[-1]["train"]["selected_for_training"] == 2


def test_max_repeats_below_one_is_a_config_error():
    with pytest.raises(ConfigError, match="max_repeats must be >= 1"):
        JudgmentLoop(max_repeats=0)
