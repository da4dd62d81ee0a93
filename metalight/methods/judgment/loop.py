"""``JudgmentLoop``: Know-thyself's judgment training loop (upstream ``scripts/run_judgment_training.py``).

    round 0 (fit start):  collect answers on train and val -> ability labels; ask the pretrained judgment
    each epoch N:         train 1 epoch on the judgment examples selected at round N-1
                          round N: re-collect answers with the current model -> new labels (QA ability
                          drifts); ask the judgment on train and val; select the next training examples
    end:                  print the summary table; write it to report.json

Selection (``train_on``): ``wrong``, the README's rule, trains only on questions whose judgment was wrong
in the last round; ``all``, what upstream's code does ("to prevent forgetting"), trains on every question;
``wrong_weighted`` trains on the wrongly judged questions, each repeated as many times as it has been judged
wrong so far (at most ``max_repeats``) — the epoch-level stand-in for upstream's legacy per-sample adaptive
trainer (which took up to 10 optimizer steps on one sample, re-testing it after each). An empty selection ends
the loop with a message. ``skip_collect`` (upstream's flag) keeps the answers, and so the ability labels,
collected in round 0 for every later round: only the judgment is asked again. Use with ``SFTModule``
(``targets.builder: given``), ``JudgmentDataModule`` and ``trainer.reload_dataloaders_every_n_epochs: 1``. Per
round it logs ``{train,val}/judgment_accuracy``, ``judgment_auroc``, ``qa_accuracy``, ``answer_accuracy``,
``judgment_unparsed_rate``, ``label_frac_<class>``, ``pred_frac_<class>`` and writes
``judgment/<split>_epoch<N>.jsonl`` (answers, labels, judgments, P(yes)) and ``judgment/epoch<N>.json``
(metrics with the confusion matrix).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, replace
from typing import Any, Literal

import torch
from lightning.pytorch import Callback, LightningModule, Trainer

from metalight.callbacks.report_writer import add_to_report, run_dir
from metalight.errors import ConfigError
from metalight.io import atomic_write_json, atomic_write_jsonl
from metalight.methods.evaluation import gather_objects
from metalight.methods.judgment.asking import JudgmentSettings, ask_judgments
from metalight.methods.judgment.labels import LabelSettings, classify_ability
from metalight.methods.judgment.scores import confusion_text, judgment_metrics, scalar_metrics, summary_table
from metalight.methods.judgment.targets import judgment_example
from metalight.methods.sft.answers import AnswerSettings, collect_answers
from metalight.prompts import KNOW_THYSELF_PROMPT_VERSION

log = logging.getLogger(__name__)

SPLITS = ("train", "val")
ANSWER_FIELDS = ("answers", "correct", "fraction_correct")


def map_sharded(trainer: Trainer, items: Sequence[Any], fn: Callable[[list[Any]], list[Any]]) -> list[Any]:
    """``fn`` over ``items`` split across ranks (every rank gets the same count, padded with repeats, so that
    synced generation runs the same steps everywhere); results gathered back in ``items`` order."""
    world = trainer.world_size if trainer is not None else 1
    if world < 2 or not items:
        return fn(list(items))
    mine = list(range(trainer.global_rank, len(items), world))
    per_rank = math.ceil(len(items) / world)
    padded = mine + [mine[-1] if mine else 0] * (per_rank - len(mine))
    results = fn([items[i] for i in padded])
    gathered = gather_objects([(i, r) for i, r in zip(mine, results)])
    out: list[Any] = [None] * len(items)
    for i, result in gathered:
        out[i] = result
    return out


class JudgmentLoop(Callback):
    """Relabel, test and reselect the judgment training data every epoch (see module docstring).

    Args:
        labels: label mode (binary / uncertainty), thresholds, reasons in targets.
        answers: how answers are collected for the labels (default: Know-thyself's QA prompt, one greedy
            answer of at most 64 tokens, Know-thyself's alias match; uncertainty mode: ``decoding: sample``,
            ``num_answers: 5`` (upstream code: 10), ``temperature: 0.7``).
        judgment: how the judgment is asked (greedy, 32 tokens).
        train_on: ``wrong`` (README), ``all`` (upstream code) or ``wrong_weighted`` (repeat each wrongly
            judged question by its count of wrong rounds).
        training_context: put open-book passages in the training prompts (upstream's trainer dropped them).
        write_samples: write per-question JSONL files each round.
        skip_collect: reuse the previous round's collected answers instead of collecting them again (the
            labels stay those of round 0; rounds cost only the judgment generations).
        max_repeats: most copies of one question per epoch under ``train_on: wrong_weighted`` (upstream's
            ``max_steps_per_sample``: 10).
    """

    def __init__(
        self,
        labels: LabelSettings | None = None,
        answers: AnswerSettings | None = None,
        judgment: JudgmentSettings | None = None,
        train_on: Literal["wrong", "all", "wrong_weighted"] = "wrong",
        training_context: bool = True,
        write_samples: bool = True,
        skip_collect: bool = False,
        max_repeats: int = 10,
    ):
        labels = LabelSettings() if labels is None else labels
        answers = AnswerSettings() if answers is None else answers
        judgment = JudgmentSettings() if judgment is None else judgment
        self.labels, self.answers, self.judgment = labels, answers, judgment
        self.train_on, self.training_context, self.write_samples = train_on, training_context, write_samples
        self.skip_collect, self.max_repeats = skip_collect, max_repeats
        if max_repeats < 1:
            raise ConfigError(f"JudgmentLoop: max_repeats must be >= 1, got {max_repeats}")
        self.collected: dict[str, dict[str, dict[str, Any]]] = {}  # split -> id -> answers of the last round
        self.wrong_counts: dict[str, int] = {}  # train id -> rounds in which its judgment was wrong
        if labels.label_mode == "uncertainty" and answers.num_answers < 2:
            raise ConfigError(
                "labels.label_mode: uncertainty needs several sampled answers per question; "
                "set answers: {decoding: sample, num_answers: 5, temperature: 0.7}"
            )
        self.history: list[dict[str, Any]] = []
        self.selection: list[dict[str, str]] = []
        self.stopped_reason: str | None = None

    # ---- checks -----------------------------------------------------------------------------------------
    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if stage != "fit":
            return
        problems = []
        if not hasattr(trainer.datamodule, "set_train_examples"):
            problems.append(
                "data must be metalight.data.sources.judgment.JudgmentDataModule (with `source:` "
                "the QA DataModule)"
            )
        if trainer.reload_dataloaders_every_n_epochs != 1:
            problems.append(
                "set trainer.reload_dataloaders_every_n_epochs: 1 (the training set changes every epoch)"
            )
        targets = getattr(pl_module, "targets", None)
        if targets is None or targets.builder != "given":
            problems.append(
                "model must be metalight.methods.sft.module.SFTModule with targets.builder: given"
            )
        if problems:
            raise ConfigError("JudgmentLoop: " + "; ".join(problems))

    # ---- the loop ---------------------------------------------------------------------------------------
    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.strategy.restore_checkpoint_after_setup:
            # FSDP and DeepSpeed restore a resumed run's weights and this loop's state after this hook: round
            # 0 and the first selection wait until the first train loader is built, after the restore.
            trainer.datamodule.defer_train_examples(lambda: self._start(trainer, pl_module))
        else:
            self._start(trainer, pl_module)

    def _start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not self.history:  # a resumed run restored its rounds from the checkpoint
            self.run_round(trainer, pl_module, epoch=0)
        self.serve(trainer)

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.run_round(trainer, pl_module, epoch=trainer.current_epoch + 1)
        if trainer.current_epoch + 1 < (trainer.max_epochs or 0) or trainer.max_epochs == -1:
            self.serve(trainer)

    def serve(self, trainer: Trainer) -> None:
        """Hand the selected examples to the DataModule; stop the run if there are none."""
        records = {r.id: r for r in trainer.datamodule.records("train")}
        examples = [
            judgment_example(records[s["id"]], s["ability"], self.labels, self.training_context)
            for s in self.selection
            if s["id"] in records
        ]
        epoch = self.history[-1]["epoch"] if self.history else 0
        trainer.datamodule.set_train_examples(examples, epoch)
        if not examples:
            self.stopped_reason = (
                f"no training examples after round {epoch}: every train judgment is right "
                f"(train_on: {self.train_on}); the judgment loop ends here"
            )
            if trainer.is_global_zero:  # every rank selects the same (gathered) rounds: say it once
                log.warning(self.stopped_reason)
                print(f"[judgment] {self.stopped_reason}", flush=True)
            trainer.should_stop = True

    def run_round(self, trainer: Trainer, pl_module: LightningModule, epoch: int) -> dict[str, Any]:
        """Collect answers, label, ask the judgment on train and val; log, write files, select examples."""
        row: dict[str, Any] = {"epoch": epoch, "step": trainer.global_step}
        for split in SPLITS:
            records = trainer.datamodule.records(split)
            if not records:
                continue
            reuse = self.collected.get(split, {}) if self.skip_collect else {}
            per_record = map_sharded(
                trainer,
                records,
                lambda chunk, split=split, reuse=reuse: self._judge(pl_module, chunk, epoch, split, reuse),
            )
            self.collected[split] = {p["id"]: {k: p[k] for k in ANSWER_FIELDS} for p in per_record}
            column = {
                key: [p[key] for p in per_record]
                for key in ("ability", "predicted", "p_yes", "parsed", "fraction_correct")
            }
            metrics = judgment_metrics(
                column["ability"],
                column["predicted"],
                column["p_yes"],
                column["parsed"],
                column["fraction_correct"],
                self.labels.classes,
            )
            row[split] = metrics
            self._write_samples(trainer, split, epoch, per_record)
            if split == "train":
                self.selection = self._select(per_record)
                metrics["selected_for_training"] = len(self.selection)
        self.history.append(row)
        self._log(trainer, row)
        return row

    def _select(self, per_record: list[dict]) -> list[dict[str, str]]:
        """The next epoch's training questions under ``train_on`` (repeated ones appear several times)."""
        for p in per_record:
            self.wrong_counts[p["id"]] = self.wrong_counts.get(p["id"], 0) + (not p["judgment_correct"])
        selection = []
        for p in per_record:
            if self.train_on == "all":
                copies = 1
            elif p["judgment_correct"]:
                copies = 0
            else:
                copies = (
                    min(self.wrong_counts[p["id"]], self.max_repeats)
                    if self.train_on == "wrong_weighted"
                    else 1
                )
            selection += [{"id": p["id"], "ability": p["ability"]}] * copies
        return selection

    def _judge(
        self,
        pl_module: LightningModule,
        records: list,
        epoch: int,
        split: str,
        reuse: dict[str, dict[str, Any]],
    ) -> list[dict]:
        model, tokenizer, synced = pl_module.model, pl_module.tokenizer, pl_module.synced_generation()
        settings = replace(self.answers, seed=self.answers.seed + 2 * epoch + SPLITS.index(split))
        with pl_module.generation_context():
            if all(r.id in reuse for r in records):
                answers = {r.id: reuse[r.id] for r in records}
            else:
                collected = collect_answers(model, tokenizer, records, settings, synced_gpus=synced)
                answers = {
                    r.id: {key: getattr(collected[r.id], key) for key in ANSWER_FIELDS} for r in records
                }
            judgments = ask_judgments(
                model, tokenizer, records, self.labels.label_mode, self.judgment, synced
            )
        out = []
        for record, judgment in zip(records, judgments):
            answer_set = answers[record.id]
            ability = classify_ability(answer_set["fraction_correct"], self.labels)
            out.append(
                {
                    "id": record.id,
                    "question": record.question,
                    "aliases": list(record.answers),
                    "context": record.context,
                    "answers": answer_set["answers"],
                    "correct": answer_set["correct"],
                    "fraction_correct": answer_set["fraction_correct"],
                    "ability": ability,
                    "judgment": judgment.text,
                    "predicted": judgment.predicted,
                    "parsed": judgment.parsed,
                    "p_yes": judgment.p_yes,
                    "judgment_correct": judgment.predicted == ability,
                }
            )
        return out

    # ---- outputs ----------------------------------------------------------------------------------------
    def _write_samples(self, trainer: Trainer, split: str, epoch: int, per_record: list[dict]) -> None:
        if not self.write_samples:
            return
        out = run_dir(trainer)  # a broadcast under multi-process strategies: every rank must make it
        if trainer.is_global_zero:
            atomic_write_jsonl(out / "judgment" / f"{split}_epoch{epoch}.jsonl", per_record)

    def _log(self, trainer: Trainer, row: dict[str, Any]) -> None:
        values = {
            f"{split}/{k}": v
            for split in SPLITS
            if split in row
            for k, v in scalar_metrics(row[split]).items()
        }
        values = {k: v for k, v in values.items() if not math.isnan(v)}
        # Visible to ModelCheckpoint / EarlyStopping monitors (e.g. monitor: val/judgment_auroc).
        trainer.callback_metrics.update({k: torch.tensor(v) for k, v in values.items()})
        out = run_dir(trainer)  # every rank: see _write_samples
        if trainer.is_global_zero:
            for logger in trainer.loggers:
                logger.log_metrics(
                    {**values, "judgment/round": float(row["epoch"])}, step=trainer.global_step
                )
            atomic_write_json(out / "judgment" / f"epoch{row['epoch']}.json", row)
            brief = "  ".join(
                f"{split}: judg={row[split]['judgment_accuracy']:.3f} "
                f"auroc={row[split]['judgment_auroc']:.3f} qa={row[split]['qa_accuracy']:.3f}"
                for split in SPLITS
                if split in row
            )
            print(f"[judgment round {row['epoch']}] {brief}", flush=True)

    def summary(self) -> dict[str, Any]:
        """The run's judgment results: per-round metrics, the table, and the settings that produced them."""
        return {
            "rounds": self.history,
            "table": summary_table(self.history),
            "stopped_reason": self.stopped_reason,
            "settings": {
                "labels": asdict(self.labels),
                "answers": asdict(self.answers),
                "judgment": asdict(self.judgment),
                "train_on": self.train_on,
                "training_context": self.training_context,
                "skip_collect": self.skip_collect,
                "max_repeats": self.max_repeats,
                "prompt_version": KNOW_THYSELF_PROMPT_VERSION,
            },
        }

    def on_fit_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not self.history:  # the same on every rank (rounds are gathered)
            return
        out = run_dir(trainer)  # every rank: see _write_samples
        if not trainer.is_global_zero:
            return
        summary = self.summary()
        atomic_write_json(out / "judgment" / "summary.json", summary)
        report_path = add_to_report(out, {"judgment": summary})
        last = self.history[-1]
        text = f"\nKnow-thyself judgment training ({self.labels.label_mode}, train_on: {self.train_on})\n"
        text += summary["table"]
        if "val" in last:
            text += f"\n\nval confusion matrix, round {last['epoch']}:\n{confusion_text(last['val'])}"
        print(text + f"\nreport: {report_path}", flush=True)

    # ---- checkpointing ----------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "history": self.history,
            "selection": self.selection,
            "stopped_reason": self.stopped_reason,
            "collected": self.collected if self.skip_collect else {},
            "wrong_counts": self.wrong_counts,
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.history = list(state_dict.get("history", []))
        self.selection = list(state_dict.get("selection", []))
        self.stopped_reason = state_dict.get("stopped_reason")
        self.collected = dict(state_dict.get("collected", {}))
        self.wrong_counts = dict(state_dict.get("wrong_counts", {}))
