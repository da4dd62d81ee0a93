"""Know-thyself's three-phase pipeline (the legacy ``run_multiphase_pipeline.sh``), resumable.

    phase 1  judgment training on the base model (JudgmentLoop)      -> phase1_judgment/run/hf (judgment v1)
    phase 2  knowledge SFT (LoRA, then merged) on the questions the    -> phase2_knowledge/run/hf
             base model could not answer in phase 1's round 0            (base_with_knowledge)
    phase 3  judgment training again, on base_with_knowledge: its      -> phase3_judgment/run/hf (judgment v2)
             round 0 re-collects answers, so labels reflect the new knowledge

Each phase is one ``cli.py fit`` run of a config (``--judgment`` for phases 1 and 3, ``--knowledge`` for
phase 2) with the model, data file, run directory and export set by the pipeline. ``pipeline_state.json``
(written atomically) records each phase's status, model and last finished epoch; checkpoints are kept every
epoch, so a stopped pipeline resumes at the phase, and within it at the epoch, where it stopped.
"""

from __future__ import annotations

import json
import logging
import shlex
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal
from unittest import mock

from lightning.pytorch import Callback, Trainer

from metalight.cli import build_cli
from metalight.data.examples import write_examples
from metalight.data.records import QARecord
from metalight.errors import ConfigError
from metalight.io import atomic_write_json, read_jsonl
from metalight.methods.judgment.loop import JudgmentLoop
from metalight.methods.judgment.scores import summary_table
from metalight.methods.sft.targets import knowledge_targets
from metalight.strategies import launch_is_global_zero

log = logging.getLogger(__name__)

PHASES = ("phase1_judgment", "phase2_knowledge", "phase3_judgment")
STATE_FILE = "pipeline_state.json"
RUN_VERSION = "run"


@dataclass
class PipelineSettings:
    """What the pipeline runs.

    Args:
        out: experiment directory (state file, one sub-directory per phase).
        base_model: model spec of the starting model.
        judgment_config: ``fit`` config of phases 1 and 3 (SFTModule + JudgmentDataModule + JudgmentLoop).
        knowledge_config: ``fit`` config of phase 2 (SFTModule + PromptCompletionDataModule).
        knowledge_on: ``unknown`` trains knowledge only on questions labelled cannot / uncertain in phase 1's
            round 0 (upstream's ``--filter_ability cannot uncertain``); ``all`` on every train question.
        judgment_args: extra ``cli.py`` arguments for phases 1 and 3 (e.g. smaller sizes).
        knowledge_args: extra ``cli.py`` arguments for phase 2.
        no_lora: fine-tune all weights in every phase instead of LoRA adapters (upstream's ``--no_lora``), at
            ``full_lr``; phases 1 and 3 then export full weights.
        full_lr: learning rate of full fine-tuning (upstream legacy trainer: 1e-5 full, 1e-4 LoRA).
    """

    out: str
    base_model: str = "embedded:smollm2-135m-instruct"
    judgment_config: str = "configs/judgment/pipeline.yaml"
    knowledge_config: str = "configs/judgment/pipeline_knowledge.yaml"
    knowledge_on: Literal["unknown", "all"] = "unknown"
    judgment_args: list[str] = field(default_factory=list)
    knowledge_args: list[str] = field(default_factory=list)
    no_lora: bool = False
    full_lr: float = 1.0e-5


class PipelineState:
    """``pipeline_state.json``: settings, and per phase its status, input / output model and last epoch."""

    def __init__(self, path: Path, settings: PipelineSettings):
        self.path = path
        if path.is_file():
            self.data = json.loads(path.read_text())
            if self.data.get("settings") != asdict(settings):
                raise ConfigError(
                    f"{path} belongs to a pipeline with other settings "
                    f"({self.data.get('settings')}); resume with the same arguments or "
                    f"choose a new --out"
                )
        else:
            self.data = {
                "version": 1,
                "settings": asdict(settings),
                "phases": {p: {"status": "pending"} for p in PHASES},
            }
            self.save()

    def save(self) -> None:
        """Write the state atomically (global rank 0 only: under a multi-process strategy every rank runs the
        pipeline, and only rank 0 records the epochs)."""
        if launch_is_global_zero():
            atomic_write_json(self.path, self.data)

    def phase(self, name: str) -> dict[str, Any]:
        """The record of one phase."""
        return self.data["phases"][name]

    def update(self, name: str, **values: Any) -> None:
        """Change a phase's record and save."""
        self.data["phases"][name].update(values)
        self.save()


class PhaseProgress(Callback):
    """Records each finished (and checkpointed) epoch of a phase in the state file."""

    def __init__(self, state: PipelineState, phase: str):
        self.state, self.phase = state, phase

    def on_train_epoch_end(self, trainer: Trainer, pl_module) -> None:
        if trainer.is_global_zero:
            self.state.update(self.phase, epoch=trainer.current_epoch + 1)


def say(text: str) -> None:
    """Print on global rank 0 only (under a multi-process strategy every rank runs the pipeline)."""
    if launch_is_global_zero():
        print(text, flush=True)


def latest_checkpoint(run_dir: Path) -> Path | None:
    """The newest ``.ckpt`` of a run, or ``None``."""
    checkpoints = sorted((run_dir / "checkpoints").glob("*.ckpt"), key=lambda p: p.stat().st_mtime)
    return checkpoints[-1] if checkpoints else None


def run_fit(
    config: str, args: Sequence[str], callbacks: Sequence[Callback] = (), ckpt_path: Path | None = None
):
    """One ``cli.py fit`` run of ``config`` with ``args`` and extra ``callbacks``; returns the CLI object."""
    # LightningCLI warns when given args while the process has its own command line (this script's).
    # The phase's run directory is fixed: resumed in place from its checkpoint, or emptied of an attempt that
    # stopped before its first checkpoint.
    fresh = [] if ckpt_path else ["--overwrite_version", "true"]
    with mock.patch.object(sys, "argv", sys.argv[:1]):
        cli = build_cli(
            ["--config", config, *args, *fresh],
            run=False,
            resume_in_place=str(ckpt_path) if ckpt_path else None,
        )
    cli.trainer.callbacks.extend(callbacks)
    cli.trainer.fit(cli.model, cli.datamodule, ckpt_path=str(ckpt_path) if ckpt_path else None)
    return cli


def knowledge_rows(phase1_run: Path, knowledge_on: str) -> list[QARecord]:
    """Phase 1's round-0 train questions (all, or those the base model could not answer) as records."""
    rows = read_jsonl(phase1_run / "judgment" / "train_epoch0.jsonl")
    keep = [r for r in rows if knowledge_on == "all" or r["ability"] != "can"]
    return [QARecord(r["id"], r["question"], r["aliases"], r.get("context")) for r in keep]


class KnowThyselfPipeline:
    """Runs the three phases in order, skipping finished ones and resuming a stopped one."""

    def __init__(self, settings: PipelineSettings, extra_callbacks: dict[str, list[Callback]] | None = None):
        self.settings = settings
        self.out = Path(settings.out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.state = PipelineState(self.out / STATE_FILE, settings)
        self.extra_callbacks = extra_callbacks or {}

    def run_dir(self, phase: str) -> Path:
        """Where a phase's run writes (``<out>/<phase>/run``)."""
        return self.out / phase / RUN_VERSION

    def phase_args(self, phase: str) -> tuple[str, list[str], str]:
        """``(config, cli args, input model)`` of a phase."""
        s = self.settings
        common = [
            "--trainer.logger.init_args.save_dir",
            str(self.out),
            "--trainer.logger.init_args.name",
            phase,
            "--trainer.logger.init_args.version",
            RUN_VERSION,
            "--trainer.enable_checkpointing",
            "true",
        ]
        if s.no_lora:  # before the user's args, so that an explicit --model.init_args.optimizer.lr still wins
            common += [
                "--model.init_args.lora",
                "null",
                "--model.init_args.optimizer.lr",
                str(s.full_lr),
                "--model.init_args.export",
                "full",
            ]
        if phase == "phase2_knowledge":
            data = self.out / phase / "qa_training_data.jsonl"
            args = [
                *common,
                "--model.init_args.model",
                s.base_model,
                "--data.init_args.path",
                str(data),
                "--model.init_args.export",
                "full",
                *s.knowledge_args,
            ]
            return s.knowledge_config, args, s.base_model
        model = s.base_model if phase == "phase1_judgment" else str(self.run_dir("phase2_knowledge") / "hf")
        return s.judgment_config, [*common, "--model.init_args.model", model, *s.judgment_args], model

    def prepare(self, phase: str) -> None:
        """Phase 2 trains on a prompt-completion file built from phase 1's round-0 labels."""
        if phase != "phase2_knowledge":
            return
        records = knowledge_rows(self.run_dir("phase1_judgment"), self.settings.knowledge_on)
        if not records:
            raise ConfigError(
                "phase 2: the base model answered every phase-1 train question; there is no "
                "knowledge to learn (use --knowledge-on all to train on every question)"
            )
        examples = knowledge_targets(records, "know_thyself")
        # Under a multi-process strategy every rank writes the same rows, atomically: no rank waits for
        # another.
        write_examples(self.out / phase / "qa_training_data.jsonl", examples)

    def run_phase(self, phase: str) -> None:
        """Run (or resume) one phase and record its outputs."""
        record = self.state.phase(phase)
        ckpt = latest_checkpoint(self.run_dir(phase)) if record["status"] == "running" else None
        if record["status"] != "running":
            self.prepare(phase)
        config, args, model_in = self.phase_args(phase)
        self.state.update(phase, status="running", run_dir=str(self.run_dir(phase)), model_in=model_in)
        say(f"[pipeline] {phase}: {'resuming from ' + str(ckpt) if ckpt else 'starting'}")
        callbacks = [PhaseProgress(self.state, phase), *self.extra_callbacks.get(phase, [])]
        cli = run_fit(config, args, callbacks, ckpt)
        loop = next((c for c in cli.trainer.callbacks if isinstance(c, JudgmentLoop)), None)
        hf = self.run_dir(phase) / "hf"
        self.state.update(
            phase,
            status="done",
            model_out=str(hf) if hf.is_dir() else None,
            judgment=loop.summary()["rounds"] if loop is not None else None,
        )

    def run(self) -> dict[str, Any]:
        """Run every unfinished phase; returns the final state (also printed as tables)."""
        for phase in PHASES:
            if self.state.phase(phase)["status"] == "done":
                say(f"[pipeline] {phase}: done, skipped")
                continue
            self.run_phase(phase)
        self.print_summary()
        return self.state.data

    def print_summary(self) -> None:
        """Judgment tables of phases 1 and 3 (phase 3's round 0 shows the QA accuracy after phase 2)."""
        for phase in ("phase1_judgment", "phase3_judgment"):
            rounds = self.state.phase(phase).get("judgment")
            if rounds:
                say(f"\n{phase}\n{summary_table(rounds)}")
        say(f"\nstate: {self.state.path}")


def split_args(text: str | None) -> list[str]:
    """Split a shell-style argument string (``--a 1 --b x``) into a list."""
    return shlex.split(text) if text else []
