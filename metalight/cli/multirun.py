"""Evaluations that need more than one ``cli.py`` call: a threshold chosen on val and applied to test, and
one model evaluated across a list of dataset / prompt configurations (ESMA's generalisation tests).

Both run the ordinary ``cli.py`` entry point once per step, so each step is a normal run directory with
its config, report, samples, plots and TensorBoard events.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from metalight.cli import main as cli_main
from metalight.errors import ConfigError
from metalight.io import atomic_write_json, atomic_write_text
from metalight.metrics.registry import metric_names, metric_spec


def sweep_columns() -> list[tuple[str, str]]:
    """(report key, header) of the sweep summary: the registry's table metrics."""
    return [(key, metric_spec(key).label) for key in metric_names("report", "table")]


def run_cli(args: list[str]) -> Path:
    """Run ``cli.py <args>`` in this process; return the run directory. A configuration or data error
    (printed as one line by the CLI) becomes ``ConfigError`` naming the command."""
    try:
        cli = cli_main(args)
    except SystemExit as exit_:
        if exit_.code in (0, None):
            raise ConfigError(f"`cli.py {' '.join(args)}` exited without running (e.g. --help)") from None
        raise ConfigError(f"`cli.py {' '.join(args)}` failed (the error is printed above)") from None
    return Path(cli.trainer.log_dir)


def _read_report(run: Path) -> dict[str, Any]:
    return json.loads((run / "report.json").read_text())


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return "n/a" if math.isnan(value) else f"{value:.4f}"
    return "n/a" if value is None else str(value)


# ---- threshold: choose on val, apply to test ---------------------------------------------------------------
def threshold_evaluation(config_args: list[str]) -> tuple[Path, Path, str]:
    """Validate (each source's threshold chosen on val), then test with those thresholds; returns the two
    run directories and a markdown table of every source's operating point on val and on test."""
    # Thresholds are chosen on val and applied to test: a single data file must give disjoint slices.
    config_args = [*config_args, "--data.init_args.eval_split", "held_out"]
    val_run = run_cli(["validate", *config_args])
    val_report = _read_report(val_run)
    if not val_report.get("thresholds"):
        raise ConfigError(
            "the validation report has no thresholds: the model must be a ConfidenceEvalModule "
            "or APIEvalModule with at least one source that scores answers"
        )
    test_run = run_cli(
        ["test", *config_args, "--model.init_args.thresholds_from", str(val_run / "report.json")]
    )
    test_report = _read_report(test_run)
    keys = metric_names("threshold")
    lines = [
        "| source | threshold (chosen on val) | split | "
        + " | ".join(metric_spec(key).label for key in keys)
        + " |",
        "|---|---:|---|" + "---:|" * len(keys),
    ]
    for source, entry in val_report["thresholds"].items():
        for split, report in (("val", val_report), ("test", test_report)):
            at = report["thresholds"].get(source, {}).get("at_threshold", {})
            lines.append(
                f"| {source} | {_fmt(entry['threshold'])} | {split} | "
                + " | ".join(_fmt(at.get(key)) for key in keys)
                + " |"
            )
    table = "\n".join(lines)
    atomic_write_text(test_run / "threshold_summary.md", table + "\n")
    return val_run, test_run, table


# ---- sweep: one model, many dataset / prompt configurations ------------------------------------------------
@dataclass
class SweepEntry:
    """One evaluation of a sweep: a name (its run directory) and the ``cli.py`` arguments it adds."""

    name: str
    args: list[str] = field(default_factory=list)


@dataclass
class SweepSpec:
    """A sweep file: ``name``, the ``base`` config (model, evaluation, trainer), arguments for every entry,
    and the entries (usually a data config plus overrides such as the prompt language)."""

    name: str
    base: str
    entries: list[SweepEntry]
    args: list[str] = field(default_factory=list)

    @classmethod
    def load(cls, path: str | Path) -> SweepSpec:
        """Read and validate a sweep YAML; every problem is named with its key."""
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"sweep file not found: {path}")
        raw = yaml.safe_load(path.read_text()) or {}
        problems = []
        for key in ("name", "base", "entries"):
            if key not in raw:
                problems.append(f"missing key '{key}'")
        unknown = set(raw) - {"name", "base", "entries", "args"}
        if unknown:
            problems.append(f"unknown key(s) {sorted(unknown)} (allowed: name, base, args, entries)")
        entries = raw.get("entries") or []
        if not isinstance(entries, list) or not entries:
            problems.append("'entries' must be a non-empty list of {name, args}")
            entries = []
        parsed = []
        for i, entry in enumerate(entries):
            if not isinstance(entry, dict) or "name" not in entry:
                problems.append(f"entries[{i}] needs a 'name'")
                continue
            if not isinstance(entry.get("args", []), list) or set(entry) - {"name", "args"}:
                problems.append(f"entries[{i}] ({entry['name']}): only 'name' and a list 'args' are allowed")
                continue
            parsed.append(SweepEntry(str(entry["name"]), [str(a) for a in entry.get("args", [])]))
        names = [e.name for e in parsed]
        if len(set(names)) != len(names):
            problems.append(f"entry names must be unique, got {names}")
        if problems:
            raise ConfigError(f"{path}: " + "; ".join(problems))
        return cls(str(raw["name"]), str(raw["base"]), parsed, [str(a) for a in raw.get("args", [])])


def sweep_evaluation(
    spec: SweepSpec, split: str = "val", overrides: list[str] | None = None
) -> tuple[Path | None, str, list[dict[str, Any]]]:
    """Evaluate every entry (``cli.py validate|test --config <base> <spec args> <entry args> <overrides>``,
    logged under ``<save_dir>/<spec name>/<entry name>/version_N``); returns the sweep directory, a
    markdown table and the JSON rows. A failing entry is reported in the table and the rest still run."""
    command = "validate" if split == "val" else "test"
    rows: list[dict[str, Any]] = []
    sweep_dir = None
    for entry in spec.entries:
        args = [
            command,
            "--config",
            spec.base,
            *spec.args,
            *entry.args,
            *(overrides or []),
            "--trainer.logger.init_args.name",
            f"{spec.name}/{entry.name}",
        ]
        try:
            run = run_cli(args)
        except ConfigError as err:
            rows.append({"entry": entry.name, "error": str(err), "args": entry.args})
            continue
        sweep_dir = run.parents[1]
        report = _read_report(run)
        rows.append(
            {
                "entry": entry.name,
                "run": str(run),
                "dataset": report.get("dataset"),
                "language": report.get("language"),
                "model": report.get("model"),
                **{key: report.get(key) for key, _ in sweep_columns()},
                **{k: v for k, v in report.items() if k.endswith(("/auroc_type2", "/prr"))},
            }
        )
    table = sweep_table(rows)
    if sweep_dir is not None:
        atomic_write_text(sweep_dir / "summary.md", table + "\n")
        atomic_write_json(
            sweep_dir / "summary.json",
            {
                "name": spec.name,
                "base": spec.base,
                "split": split,
                "overrides": overrides or [],
                "rows": rows,
            },
        )
    return sweep_dir, table, rows


def sweep_table(rows: list[dict[str, Any]]) -> str:
    """One row per entry: dataset, language, the main metrics, and each confidence source's AUROC₂ / PRR."""
    extra = sorted({k for r in rows for k in r if k.endswith(("/auroc_type2", "/prr"))})
    columns = sweep_columns()
    header = ["entry", "dataset", "language", *(label for _, label in columns), *extra]
    lines = ["| " + " | ".join(header) + " |", "|---|---|---|" + "---:|" * (len(header) - 3)]
    for row in rows:
        if "error" in row:
            lines.append(f"| {row['entry']} | failed: {row['error']} |" + " |" * (len(header) - 2))
            continue
        cells = [
            row["entry"],
            _fmt(row.get("dataset")),
            _fmt(row.get("language")),
            *(_fmt(row.get(key)) for key, _ in columns),
            *(_fmt(row.get(k)) for k in extra),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
