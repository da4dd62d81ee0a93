"""The judgment loop: relabelling follows the model's changing answers, selection follows the judgments, an
empty selection stops the run with a message, and a `cli.py fit` run writes the summary."""

import json
from contextlib import nullcontext
from types import SimpleNamespace

import pytest

from metalight.cli import main
from metalight.data.datamodule import QADataModule
from metalight.data.records import QARecord
from metalight.data.sources.judgment import JudgmentDataModule
from metalight.io import read_jsonl
from metalight.methods.judgment.asking import JudgmentResult
from metalight.methods.judgment.labels import LabelSettings
from metalight.methods.judgment.loop import JudgmentLoop
from metalight.methods.sft.answers import AnswerSettings
from metalight.models.generation import Generation
from tests.report_keys import assert_report_keys

QUESTIONS = {"q1": ("Who wrote Hamlet?", "Shakespeare"), "q2": ("Capital of France?", "Paris")}


class ListQA(QADataModule):
    """Records given in memory."""

    def __init__(self, splits):
        super().__init__()
        self.splits = splits

    def parse_row(self, row, where):
        raise NotImplementedError


class ScriptedModel:
    """A stand-in model: answers come from ``script[round][question id]`` through a fake ``generate``."""

    training = False

    def __init__(self):
        self.round, self.script, self.judgments = 0, {}, {}

    def eval(self):
        return self

    def train(self, mode=True):
        return self

    def generate(self, model, tok, prompts, decoding, max_input_tokens, num_return_sequences=1, **kwargs):
        texts = []
        for prompt in prompts:
            qid = next(q for q, (text, _) in QUESTIONS.items() if text in prompt.text)
            answers = self.script[self.round][qid]
            assert len(answers) == num_return_sequences
            texts.extend(answers)
        return Generation(texts, [1] * len(texts), [[0]] * len(texts))

    def ask(self, model, tok, records, label_mode, settings, synced=False):
        return [
            JudgmentResult(t, p, True, 0.9 if p == "can" else 0.1)
            for t, p in (self.judgments[self.round][r.id] for r in records)
        ]


@pytest.fixture
def loop_env(monkeypatch, tiny, tmp_path):
    fake = ScriptedModel()
    monkeypatch.setattr("metalight.methods.sft.answers.generate", fake.generate)
    monkeypatch.setattr("metalight.methods.judgment.loop.ask_judgments", fake.ask)
    records = [QARecord(q, text, [gold]) for q, (text, gold) in QUESTIONS.items()]
    dm = JudgmentDataModule(ListQA({"train": records, "val": [], "test": []}), batch_size=2)
    trainer = SimpleNamespace(
        datamodule=dm,
        global_step=0,
        world_size=1,
        global_rank=0,
        is_global_zero=True,
        loggers=[],
        callback_metrics={},
        log_dir=str(tmp_path),
        current_epoch=0,
        max_epochs=5,
        should_stop=False,
        strategy=SimpleNamespace(restore_checkpoint_after_setup=False),
    )
    module = SimpleNamespace(
        model=fake, tokenizer=tiny[1], synced_generation=lambda: False, generation_context=nullcontext
    )
    return fake, trainer, module


NO, YES = ("\\boxed{no}", "cannot"), ("\\boxed{yes}", "can")


def test_relabelling_moves_a_question_between_can_and_cannot(loop_env):
    fake, trainer, module = loop_env
    fake.script = {
        0: {"q1": ["William Shakespeare"], "q2": ["Lyon"]},
        1: {"q1": ["Marlowe"], "q2": ["Paris."]},
    }
    fake.judgments = {0: {"q1": NO, "q2": NO}, 1: {"q1": NO, "q2": NO}}
    loop = JudgmentLoop()
    loop.on_fit_start(trainer, module)
    train0 = loop.history[0]["train"]
    assert train0["label_frac_can"] == 0.5 and train0["judgment_accuracy"] == 0.5
    assert [(e.id, e.completion) for e in trainer.datamodule.train_examples] == [("q1", "\\boxed{yes}")]
    fake.round = 1
    loop.on_train_epoch_end(trainer, module)
    # q1 is now answered wrongly (can -> cannot), q2 rightly (cannot -> can): only q2's judgment is wrong
    assert [(e.id, e.completion) for e in trainer.datamodule.train_examples] == [("q2", "\\boxed{yes}")]
    assert [r["epoch"] for r in loop.history] == [0, 1]
    rows = read_jsonl(f"{trainer.log_dir}/judgment/train_epoch1.jsonl")
    assert {r["id"]: r["ability"] for r in rows} == {"q1": "cannot", "q2": "can"}
    assert trainer.callback_metrics["train/judgment_accuracy"] == 0.5


def test_uncertainty_mode_labels_from_sampled_answers(loop_env):
    fake, trainer, module = loop_env
    fake.script = {
        0: {"q1": ["Shakespeare"] * 5, "q2": ["Paris", "Paris", "Paris", "Lyon", "Nice"]},
        1: {"q1": ["Shakespeare", "x", "y", "z", "w"], "q2": ["Paris"] * 5},
    }
    fake.judgments = {0: {"q1": YES, "q2": YES}, 1: {"q1": YES, "q2": YES}}
    loop = JudgmentLoop(
        labels=LabelSettings(label_mode="uncertainty"),
        answers=AnswerSettings(decoding="sample", num_answers=5),
        train_on="all",
    )
    loop.on_fit_start(trainer, module)
    served = {e.id: e.meta["ability"] for e in trainer.datamodule.train_examples}
    assert served == {"q1": "can", "q2": "uncertain"}
    fake.round = 1
    loop.on_train_epoch_end(trainer, module)
    served = {e.id: e.meta["ability"] for e in trainer.datamodule.train_examples}
    assert served == {"q1": "cannot", "q2": "can"}
    assert loop.history[1]["train"]["confusion"]["classes"] == ["can", "uncertain", "cannot"]


def test_empty_selection_stops_with_a_message(loop_env, capsys):
    fake, trainer, module = loop_env
    fake.script = {0: {"q1": ["Marlowe"], "q2": ["Lyon"]}}
    fake.judgments = {0: {"q1": NO, "q2": NO}}
    loop = JudgmentLoop(train_on="wrong")
    loop.on_fit_start(trainer, module)
    assert trainer.should_stop and trainer.datamodule.train_examples == []
    assert "every train judgment is right" in capsys.readouterr().out


def test_state_dict_round_trip_skips_round_zero_on_resume(loop_env):
    fake, trainer, module = loop_env
    fake.script = {0: {"q1": ["Shakespeare"], "q2": ["Lyon"]}}
    fake.judgments = {0: {"q1": NO, "q2": NO}}
    loop = JudgmentLoop()
    loop.on_fit_start(trainer, module)
    resumed = JudgmentLoop()
    resumed.load_state_dict(json.loads(json.dumps(loop.state_dict())))
    fake.script = {}  # any answer collection would now fail
    resumed.on_fit_start(trainer, module)
    assert [e.id for e in trainer.datamodule.train_examples] == ["q1"]


def test_under_fsdp_or_deepspeed_the_start_waits_for_the_restored_state(loop_env):
    # Those strategies restore a resumed run's callback state after on_fit_start: round 0 must not run
    # there (it would relabel with the base weights); the restored selection is served with the first loader.
    fake, trainer, module = loop_env
    fake.script = {0: {"q1": ["Shakespeare"], "q2": ["Lyon"]}}
    fake.judgments = {0: {"q1": NO, "q2": NO}}
    loop = JudgmentLoop()
    loop.on_fit_start(trainer, module)
    trainer.strategy.restore_checkpoint_after_setup = True
    trainer.datamodule.set_train_examples([])
    resumed = JudgmentLoop()
    fake.script = {}  # any answer collection would now fail
    resumed.on_fit_start(trainer, module)
    assert resumed.history == [] and trainer.datamodule.train_examples == []
    resumed.load_state_dict(json.loads(json.dumps(loop.state_dict())))  # Lightning's restore
    trainer.datamodule.train_dataloader()
    assert [e.id for e in trainer.datamodule.train_examples] == ["q1"]
    assert [r["epoch"] for r in resumed.history] == [0]

    fresh = JudgmentLoop()  # a fresh (not resumed) run: round 0 runs when the loader is first built
    fake.script = {0: {"q1": ["Shakespeare"], "q2": ["Lyon"]}}
    fresh.on_fit_start(trainer, module)
    assert fresh.history == []
    trainer.datamodule.train_dataloader()
    assert [r["epoch"] for r in fresh.history] == [0]


def test_uncertainty_mode_with_one_greedy_answer_is_a_config_error():
    from metalight.errors import ConfigError

    with pytest.raises(ConfigError, match="several sampled answers"):
        JudgmentLoop(labels=LabelSettings(label_mode="uncertainty"))


def fit(tmp_path, tiny_model_dir, *extra):
    cli = main(
        [
            "fit",
            "--config",
            "configs/judgment/quickstart.yaml",
            "--model.init_args.model",
            str(tiny_model_dir),
            "--trainer.logger.init_args.save_dir",
            str(tmp_path),
            "--trainer.max_epochs",
            "1",
            "--data.init_args.source.init_args.max_samples",
            '{"train": 4, "val": 3}',
            "--trainer.callbacks.init_args.answers.max_new_tokens",
            "3",
            "--trainer.callbacks.init_args.judgment.max_new_tokens",
            "3",
            "--trainer.log_every_n_steps",
            "1",
            *extra,
        ]
    )
    (run,) = (tmp_path / "judgment-quickstart").iterdir()
    return cli, run, json.loads((run / "report.json").read_text())


def test_cli_fit_trains_and_writes_the_summary(tmp_path, tiny_model_dir):
    cli, run, report = fit(tmp_path, tiny_model_dir, "--trainer.callbacks.init_args.train_on", "all")
    rounds = report["judgment"]["rounds"]
    assert [r["epoch"] for r in rounds] == [0, 1]
    assert_report_keys(report, "judgment")
    assert rounds[0]["train"]["n"] == 4 and rounds[0]["val"]["n"] == 3
    assert "Train AUROC" in report["judgment"]["table"]
    logged = set(cli.trainer.callback_metrics)
    assert {
        "train/loss",
        "train/judgment_accuracy",
        "val/judgment_accuracy",
        "val/qa_accuracy",
        "val/label_frac_can",
        "val/pred_frac_cannot",
    } <= logged
    assert (run / "judgment" / "val_epoch1.jsonl").is_file() and list(run.glob("events.out.tfevents.*"))
    assert cli.trainer.global_step == 1  # 4 examples, batch 4


def test_cli_fit_with_nothing_to_train_ends_cleanly(tmp_path, tiny_model_dir, capsys):
    # A random model answers everything wrongly and its unparsable judgments read "cannot": all right.
    cli, _, report = fit(tmp_path, tiny_model_dir, "--trainer.callbacks.init_args.train_on", "wrong")
    assert cli.trainer.global_step == 0
    assert "every train judgment is right" in report["judgment"]["stopped_reason"]
    assert (
        capsys.readouterr().out.count("[judgment] no training examples after round 0") == 1
    )  # global rank 0


def _sharded_worker(rank, world, init_file, out_dir):
    import torch.distributed as dist

    from metalight.methods.judgment.loop import map_sharded

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    seen = []

    def work(chunk):
        seen.append(list(chunk))
        return [x * 10 for x in chunk]

    trainer = SimpleNamespace(world_size=world, global_rank=rank)
    result = map_sharded(trainer, list(range(5)), work)
    (out_dir / f"rank{rank}.json").write_text(json.dumps({"result": result, "seen": seen}))
    dist.destroy_process_group()


def test_map_sharded_splits_across_two_processes_and_gathers_in_order(tmp_path):
    import torch.multiprocessing as mp

    mp.spawn(_sharded_worker, args=(2, str(tmp_path / "init"), tmp_path), nprocs=2, join=True)
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    assert all(r["result"] == [0, 10, 20, 30, 40] for r in ranks)
    # 5 items on 2 ranks: 3 each (rank 1 repeats its last item), so synced generation steps together
    assert ranks[0]["seen"] == [[0, 2, 4]] and ranks[1]["seen"] == [[1, 3, 3]]
