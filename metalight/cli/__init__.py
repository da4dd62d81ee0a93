"""``LightningCLI`` for every method: ``python cli.py fit|validate|test --config configs/....yaml``.

Model and data are given by ``class_path`` (any ``MetacognitionModule`` / ``LightningDataModule``), so a new
method or dataset needs no change here. Runs log to TensorBoard under ``runs/<experiment>/version_N`` (claimed
atomically, so runs started together never share one; ``trainer.default_root_dir`` replaces ``runs``); set the
experiment with ``trainer.logger.init_args.name``.
"""

from __future__ import annotations

import dataclasses
import importlib
import logging
import os
import re
import sys
import warnings
from typing import Any

from lightning.pytorch import LightningDataModule
from lightning.pytorch.callbacks import ProgressBar
from lightning.pytorch.callbacks.progress.rich_progress import _RICH_AVAILABLE
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI

from metalight.callbacks.checkpoints import PreemptionCheckpoint
from metalight.callbacks.progress import StepAwareProgressBar
from metalight.callbacks.report_writer import ReportWriter
from metalight.callbacks.shared_run_dir import SharedRunDirCheck
from metalight.cli.checkpoints import check_checkpoint, check_checkpoint_class, resolve_last
from metalight.cli.config_files import SUBCOMMANDS, check_config_files
from metalight.cli.run_dirs import forget_claims, pin_logger_versions, release_empty_claims
from metalight.cli.stops import signal_stop
from metalight.errors import DataError, MetalightError
from metalight.methods.base import MetacognitionModule
from metalight.strategies import check_strategy, lost_rank_error

TRAINER_DEFAULTS = {
    "logger": {
        "class_path": "lightning.pytorch.loggers.TensorBoardLogger",
        "init_args": {"save_dir": "runs", "name": "default", "default_hp_metric": False},
    },
    # Validation generates text: a sanity pass before training only costs time.
    "num_sanity_val_steps": 0,
}


TOP_LEVEL_OPTIMISATION = re.compile(
    r"(?:[Oo]ption '|Key '|unrecognized arguments: --)(optimizer|lr_scheduler)\b"
)


def condense_parser_error(message: str) -> str:
    """One line from jsonargparse's nested error text: the offending key, the problem, and where to look;
    when no known pattern fits, the first nested cause is kept rather than only the outer key."""
    top_level = TOP_LEVEL_OPTIMISATION.search(message)
    if top_level:
        key = top_level.group(1)
        return (
            f"a top-level `{key}:` is not read (each method builds its optimizer once its model is loaded): "
            f"move it under model.init_args.{key} (same class_path and init_args)"
        )
    keys = re.findall(r'Parser key "([^"]+)"', message)
    class_path = re.search(r"Problem with given class_path '([^']+)'", message)
    bad_option = re.search(r"Option '([^']+)' is not accepted", message)
    classes = re.findall(r"Problem with given class_path '([^']+)'", message)
    bad_group = re.search(r"Group '([^']+)' does not accept option '([^']+)'", message)
    listing = "check the spelling (add --print_config to see every valid key)"
    if bad_option and class_path and keys:
        inner = re.search(r"Got value: Namespace\(class_path='([^']+)'", message)
        if len(keys) > 1 and inner:  # an option of a nested class (an optimizer, a logger, ...)
            return (
                f"unknown config key '{keys[0]}.init_args.{keys[-1]}.init_args.{bad_option.group(1)}': "
                f"{inner.group(1)} has no argument '{bad_option.group(1)}'; {listing}"
            )
        if len(keys) > 1 and len(classes) > 1:  # a field of a nested settings dataclass (e.g. `evaluation`)
            return (
                f"unknown config key '{keys[0]}.init_args.{keys[1]}.{bad_option.group(1)}': {classes[0]}'s "
                f"{keys[1]} has no setting '{bad_option.group(1)}'; {listing}"
            )
        return (
            f"unknown config key '{keys[0]}.init_args.{bad_option.group(1)}': {class_path.group(1)} has no "
            f"argument '{bad_option.group(1)}'; {listing}"
        )
    if bad_group and class_path and keys:
        group, option = bad_group.groups()
        return (
            f"unknown config key '{keys[0]}.init_args.{group}.{option}': {class_path.group(1)}'s {group} has "
            f"no setting '{option}'; {listing}"
        )
    if class_path and len(keys) > 1:
        detail = message.split(f'Parser key "{keys[-1]}":', 1)[1].strip().splitlines()[0].strip()
        return f"config key '{nested_key(keys, classes)}' of {class_path.group(1)}: {detail}"
    if class_path and keys:
        detail = message.split(class_path.group(0), 1)[1].lstrip(":").strip().splitlines()[0].strip()
        if "has no attribute" in detail or "No module named" in detail or "not found" in detail:
            return (
                f"config key '{keys[0]}.class_path': cannot import '{class_path.group(1)}' ({detail}); check "
                f"the spelling of the module and class"
            )
        return f"config key '{keys[0]}' ({class_path.group(1)}): {detail}"
    first = message.strip().splitlines()[0]
    unknown = re.fullmatch(
        r"Option '([^']+)' is not accepted|Subcommand '\w+' does not accept option '([^']+)'", first
    )
    if unknown:
        return f"unknown config key '{unknown.group(1) or unknown.group(2)}'; {listing}"
    if "does not accept option" in first:
        first += " (check the spelling; add --help to list the options)"
    causes = [
        line.strip()[2:]
        for line in message.splitlines()
        if line.strip().startswith("- ") and "Expected a <class 'NoneType'>" not in line
    ]
    if first.endswith(":") and causes:
        first = f"{first} {causes[0]}"
    return first


def nested_key(keys: list[str], classes: list[str]) -> str:
    """The dotted config key of a nested setting: ``keys`` are jsonargparse's parser keys from the outside in,
    ``classes`` the class parsed at each level; a settings dataclass nests its fields directly
    (``evaluation.grading``), any other class under ``init_args``."""
    out = keys[0]
    for depth, key in enumerate(keys[1:]):
        owner = classes[depth] if depth < len(classes) else None
        out += f".{key}" if owner and _is_dataclass(owner) else f".init_args.{key}"
    return out


def _is_dataclass(class_path: str) -> bool:
    module, _, name = class_path.rpartition(".")
    try:
        return dataclasses.is_dataclass(getattr(importlib.import_module(module), name))
    except (ImportError, AttributeError, ValueError):
        return False


class ConciseArgumentParser(LightningArgumentParser):
    """Prints configuration errors as one line (cause and fix) instead of usage plus a nested report."""

    def error(self, message: str, ex: Exception | None = None):
        if not self.exit_on_error:
            return super().error(message, ex)
        sys.stderr.write(f"error: {condense_parser_error(str(message))}\n")
        raise SystemExit(2)


class MetalightCLI(LightningCLI):
    """LightningCLI with metalight's defaults: TensorBoard under ``runs/``, a report writer on every run.

    ``resume_in_place``: with ``run=False``, the checkpoint the caller will pass to ``trainer.fit`` (it may
    lie in the run directory an explicit ``trainer.logger.init_args.version`` names; see
    ``--overwrite_version``).
    """

    def __init__(self, *args, resume_in_place: str | None = None, **kwargs):
        self.resume_in_place = resume_in_place
        super().__init__(*args, **kwargs)

    def add_arguments_to_parser(self, parser) -> None:
        parser.add_lightning_class_args(ReportWriter, "report")
        parser.add_argument(
            "--test_after_fit",
            type=bool,
            default=False,
            help="after `fit`, run `test` on the trained model (upstream ESMA evaluates its test "
            "split after training)",
        )
        parser.add_argument(
            "--overwrite_version",
            type=bool,
            default=False,
            help="with trainer.logger.init_args.version set: empty that run directory if it holds "
            "an earlier run (refused otherwise)",
        )

    @staticmethod
    def subcommands() -> dict[str, set[str]]:
        """fit, validate and test (Lightning's ``predict`` needs a ``forward`` that no method has)."""
        return {name: keys for name, keys in LightningCLI.subcommands().items() if name in SUBCOMMANDS}

    def after_fit(self) -> None:
        """``test_after_fit: true``: test the model as ``fit`` left it (not a checkpoint) on the same data."""
        if self.config[self.subcommand].get("test_after_fit"):
            self.trainer.test(self.model, datamodule=self.datamodule)
            require_measured(self.trainer, "test")

    def after_validate(self) -> None:
        require_measured(self.trainer, "val")

    def after_test(self) -> None:
        require_measured(self.trainer, "test")

    def _instantiate_trainer(self, config: dict, callbacks: list):
        # Lightning's default bar labels step-bounded runs "Epoch 0/-2"; use ours unless the config turns
        # the bar off or brings its own.
        configured = [*callbacks, *(config.get("callbacks") or [])]
        if (
            config.get("enable_progress_bar") is not False
            and _RICH_AVAILABLE
            and not any(isinstance(c, ProgressBar) for c in configured)
        ):
            callbacks = [*callbacks, StepAwareProgressBar()]
        if not any(isinstance(c, PreemptionCheckpoint) for c in configured):
            callbacks = [*callbacks, PreemptionCheckpoint()]
        trainer = super()._instantiate_trainer(config, callbacks)
        # First, so that a node that cannot see the run directory stops every rank before anything is written.
        trainer.callbacks.insert(0, SharedRunDirCheck())
        return trainer

    def _parse_ckpt_path(self) -> None:
        # Lightning reads the checkpoint's hyperparameters here, before anything else: a damaged file must
        # fail with its name, not an unpickling traceback.
        subcommand = self.config.get("subcommand")
        if not subcommand:
            return super()._parse_ckpt_path()
        check_ckpt_path(self.config[subcommand], subcommand)
        before = _model_args(self.config[subcommand])
        super()._parse_ckpt_path()
        # Lightning replaces the model's settings by the checkpoint's without a word; a changed setting that
        # exact resumption depends on is put back so the module's resume guard sees (and refuses) it.
        after = _model_args(self.config[subcommand])
        changed = {k: v for k, v in before.items() if k in after and after[k] != v}
        exact = set(getattr(self._configured_model_class(self.config[subcommand]), "exact_resume_keys", ()))
        for key in set(changed) & exact:
            self.config[subcommand]["model"]["init_args"][key] = changed[key]
        ignored = sorted(set(changed) - exact)
        if ignored:
            logging.getLogger(__name__).warning(
                "--ckpt_path: the checkpoint's values replace the configured %s", ", ".join(ignored)
            )

    def before_instantiate_classes(self) -> None:
        config = self.config.get(self.subcommand) if self.subcommand else self.config
        trainer = config.get("trainer") or {}
        check_strategy(
            trainer.get("strategy"), trainer.get("accelerator"), self._configured_model_class(config)
        )
        pin_logger_versions(
            trainer,
            overwrite=bool(config.get("overwrite_version")),
            ckpt_path=config.get("ckpt_path") or self.resume_in_place,
        )

    @staticmethod
    def _configured_model_class(config) -> type | None:
        """The configured LightningModule class (``model.class_path``), or ``None`` if it cannot be
        imported."""
        model = config.get("model")
        path = model.get("class_path") if hasattr(model, "get") else None
        if not isinstance(path, str) or "." not in path:
            return None
        module, _, name = path.rpartition(".")
        try:
            return getattr(importlib.import_module(module), name, None)
        except ImportError:
            return None


def check_ckpt_path(config, subcommand: str) -> None:
    """Resolve ``ckpt_path: last`` across the experiment's runs and refuse a missing, damaged or other-method
    checkpoint, before Lightning reads it (:mod:`metalight.cli.checkpoints`)."""
    config["ckpt_path"] = resolve_last(config.get("ckpt_path"), config.get("trainer"))
    check_checkpoint(config["ckpt_path"])
    model = config.get("model")
    check_checkpoint_class(
        config["ckpt_path"], model.get("class_path") if hasattr(model, "get") else None, subcommand
    )


def require_measured(trainer, split: str) -> None:
    """Refuse a ``validate`` / ``test`` that ran no batch (e.g. ``limit_val_batches: 0``): nothing was
    measured."""
    batches = trainer.num_val_batches if split == "val" else trainer.num_test_batches
    if not any(batches):
        raise DataError(
            f"the {split} pass evaluated no rows (n = 0): check the data source, max_samples, "
            f"limit_{split}_batches and (API models) on_failure"
        )


def _model_args(config) -> dict:
    """The model's ``init_args`` as a plain dict (empty when the model is not given by class_path)."""
    model = config.get("model")
    init_args = model.get("init_args") if hasattr(model, "get") else None
    return dict(vars(init_args)) if init_args is not None and hasattr(init_args, "__dict__") else {}


def _quiet_deepspeed_on_cpu() -> None:
    """Tell DeepSpeed it runs on the CPU where no CUDA device is seen: otherwise its import (which happens
    while the config is parsed) prints an accelerator warning to stdout, and ``--print_config`` is no longer
    YAML."""
    import torch

    if not torch.cuda.is_available():
        os.environ.setdefault("DS_ACCELERATOR", "cpu")


def build_cli(args: list[str] | None, **options: Any) -> MetalightCLI:
    """metalight's ``LightningCLI`` on ``args``: any method and DataModule by class path, the project's
    trainer defaults, one-line errors, the saved config overwritten, each method's own optimizer; ``options``
    go to ``LightningCLI`` (e.g. ``run=False``: model, data and trainer built, no subcommand run)."""
    return MetalightCLI(
        MetacognitionModule,
        LightningDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        trainer_defaults=TRAINER_DEFAULTS,
        save_config_kwargs={"overwrite": True},
        parser_class=ConciseArgumentParser,
        auto_configure_optimizers=False,
        args=args,
        **options,
    )


def main(args: list[str] | None = None) -> MetalightCLI | None:
    """Run the CLI; configuration and data errors print one line (cause and fix) and exit with status 2."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    _quiet_deepspeed_on_cpu()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    for noise in (".*overridden `transfer_batch_to_device`.*", ".*isinstance\\(treespec, LeafSpec\\).*"):
        warnings.filterwarnings("ignore", message=noise)
    try:
        check_config_files(sys.argv[1:] if args is None else args)
        cli = build_cli(args)
        forget_claims()
        return cli
    except BaseException as err:
        stopped = signal_stop(err)
        release_empty_claims(say_what_is_kept=stopped is None)  # a stopped run's line says it already
        if stopped is not None:
            print(f"error: {stopped[0]}", file=sys.stderr)
            raise SystemExit(stopped[1]) from None
        cause = metalight_cause(err) or lost_rank_error(err)
        if cause is None:
            raise
        for note in getattr(err, "__notes__", []):
            print(f"note: {note}", file=sys.stderr)
        print(f"error: {cause}", file=sys.stderr)
        raise SystemExit(getattr(cause, "exit_code", 2)) from None


def metalight_cause(err: BaseException) -> MetalightError | None:
    """The ``MetalightError`` behind ``err``: itself, or the one jsonargparse wrapped while instantiating a
    class from the config (a module's ``__init__`` refusing its settings)."""
    seen = set()
    while err is not None and id(err) not in seen:
        if isinstance(err, MetalightError):
            return err
        seen.add(id(err))
        err = err.__cause__  # only explicit wrapping: an error raised while handling one is a new problem
    return None
