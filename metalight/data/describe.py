"""``python -m metalight.data describe <config.yaml>``: counts per split and label, and a few examples.

Works for any DataModule with ``records(split)``: the config is a data fragment (``data: {class_path,
init_args}``) or a whole experiment config (its ``data:`` section is used); several configs are merged in
order, and ``--set key=value`` overrides one init arg (the value is read as YAML).
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import yaml

from metalight.data.splits import label_of
from metalight.errors import ConfigError, MetalightError

SPLITS = ("train", "val", "test")


def data_section(paths: list[str], overrides: list[str] = ()) -> tuple[str, dict[str, Any]]:
    """``(class_path, init_args)`` of the ``data:`` section merged from ``paths``, then ``overrides``."""
    class_path, init_args = None, {}
    for path in paths:
        try:
            config = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        except FileNotFoundError as err:
            raise ConfigError(f"config file not found: {path}") from err
        except yaml.YAMLError as err:
            raise ConfigError(f"{path}: not valid YAML ({str(err).splitlines()[0]})") from err
        section = config.get("data", config) if isinstance(config, dict) else None
        if isinstance(section, str):
            section = {"class_path": section}
        if not isinstance(section, dict) or ("class_path" not in section and "init_args" not in section):
            raise ConfigError(
                f"{path}: no `data:` section with class_path / init_args; pass a data config "
                f"(e.g. configs/data/fanoutqa.yaml) or an experiment config"
            )
        if section.get("class_path") and section["class_path"] != class_path:
            class_path, init_args = section["class_path"], {}
        init_args.update(section.get("init_args") or {})
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set {item!r}: expected key=value (e.g. --set path=data/nq_open.jsonl)")
        init_args[key.removeprefix("init_args.")] = yaml.safe_load(value)
    if not class_path:
        raise ConfigError(f"{', '.join(paths)}: the data section names no class_path")
    return class_path, init_args


def build_datamodule(class_path: str, init_args: dict[str, Any]):
    """Import ``class_path`` and instantiate it with ``init_args`` (errors name the class and the fix); an
    init arg that is itself ``{class_path, init_args}`` (e.g. a judgment ``source:`` or an ``eval_source:``)
    is built first, as LightningCLI does."""
    module_name, _, class_name = class_path.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError, ValueError) as err:
        raise ConfigError(f"data class_path {class_path!r} cannot be imported ({err})") from err
    args = {key: _built(value) for key, value in init_args.items()}
    try:
        return cls(**args)
    except TypeError as err:
        raise ConfigError(f"{class_name}: {err}; check the init_args in the data config") from err


def _built(value: Any) -> Any:
    """``value``, or the object it describes when it is a ``{class_path, init_args}`` mapping."""
    if (
        isinstance(value, dict)
        and isinstance(value.get("class_path"), str)
        and set(value) <= {"class_path", "init_args", "dict_kwargs"}
    ):
        return build_datamodule(value["class_path"], value.get("init_args") or {})
    return value


def record_view(record: Any, width: int = 100) -> dict[str, Any]:
    """A record as a short JSON-ready dict: long strings cut to ``width`` characters, meta keys listed."""
    if dataclasses.is_dataclass(record):
        fields = {f.name: getattr(record, f.name) for f in dataclasses.fields(record)}
    else:
        fields = dict(vars(record)) if hasattr(record, "__dict__") else {"value": record}

    def short(value: Any) -> Any:
        if isinstance(value, str):
            return value if len(value) <= width else f"{value[:width]}... ({len(value)} chars)"
        if isinstance(value, list):
            return [short(v) for v in value[:5]] + ([f"... ({len(value)} in all)"] if len(value) > 5 else [])
        if isinstance(value, dict):
            return {k: short(v) for k, v in list(value.items())[:12]}
        return value

    return {k: short(v) for k, v in fields.items() if v is not None}


def summarize(datamodule, by: str | None = None, examples: int = 3) -> dict[str, Any]:
    """Counts per split (and per label, and per ``meta[by]``, by default the meta key the module stratifies
    by) plus the first ``examples`` records per split."""
    summary: dict[str, Any] = {"datamodule": _name(datamodule), "splits": {}}
    stratify = getattr(datamodule, "stratify", None)
    by = by or (stratify if isinstance(stratify, str) else None)
    for split in SPLITS:
        records = datamodule.records(split)
        labels = Counter(str(label_of(r)) for r in records if label_of(r) is not None)
        entry: dict[str, Any] = {"n": len(records)}
        if labels:
            entry["labels"] = dict(sorted(labels.items()))
        if by:
            entry[f"by_{by}"] = dict(sorted(Counter(str(label_of(r, by)) for r in records).items()))
        entry["examples"] = [record_view(r) for r in records[:examples]]
        summary["splits"][split] = entry
    skipped = getattr(datamodule, "skipped", None) or []
    summary["skipped_malformed"] = len(skipped)
    if skipped:
        summary["skipped_where"] = [s.split(": ")[0] for s in skipped[:20]]
    if getattr(datamodule, "dropped", 0):
        summary["left_out_on_purpose"] = datamodule.dropped
    return summary


def _name(datamodule) -> str:
    describe = getattr(datamodule, "describe_name", None)
    return describe() if callable(describe) else type(datamodule).__name__


def format_summary(summary: dict[str, Any]) -> str:
    """The summary as readable text."""
    lines = [summary["datamodule"]]
    for split, entry in summary["splits"].items():
        lines.append(f"  {split:<5} {entry['n']:>7} records")
        for key in [k for k in entry if k == "labels" or k.startswith("by_")]:
            counts = ", ".join(f"{label}: {n}" for label, n in entry[key].items())
            lines.append(f"        {key.removeprefix('by_')}: {counts}")
    if summary.get("skipped_malformed"):
        lines.append(
            f"  skipped {summary['skipped_malformed']} malformed rows (strict: false) at: "
            f"{'; '.join(summary['skipped_where'])}"
        )
    if summary.get("left_out_on_purpose"):
        lines.append(
            f"  left out {summary['left_out_on_purpose']} rows on purpose (see the DataModule's docstring)"
        )
    for split, entry in summary["splits"].items():
        if entry["examples"]:
            lines.append(f"examples ({split}):")
            lines += [f"  {json.dumps(example, ensure_ascii=False)}" for example in entry["examples"]]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m metalight.data``."""
    parser = argparse.ArgumentParser(
        prog="python -m metalight.data", description="Inspect a dataset through its DataModule."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    describe = commands.add_parser(
        "describe",
        help="counts per split and label, and a few examples",
        description=__doc__.split("\n\n")[1].replace("\n", " "),
    )
    describe.add_argument(
        "configs", nargs="+", metavar="config.yaml", help="data fragment or experiment config"
    )
    describe.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override an init arg, e.g. --set path=my.jsonl (repeatable)",
    )
    describe.add_argument(
        "--by", metavar="META_KEY", help="also count records per meta[META_KEY], e.g. category"
    )
    describe.add_argument("--examples", type=int, default=3, help="examples shown per split (default 3)")
    describe.add_argument("--json", action="store_true", help="print the summary as JSON")
    args = parser.parse_args(argv)
    try:
        datamodule = build_datamodule(*data_section(args.configs, args.set))
        summary = summarize(datamodule, args.by, args.examples)
    except MetalightError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(summary, indent=2, ensure_ascii=False, default=str))
    else:
        print(format_summary(summary))
    return 0
