"""Seeded train/val/test splits and per-split caps, optionally stratified by a label.

A record's label is its ``.label`` attribute, else ``meta["label"]`` (``label_of``); ``stratify`` may instead
name a meta key (e.g. ``category``) so any record field with few values can balance the splits.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import Any

LabelFn = Callable[[Any], Any]


def label_of(record: Any, key: str | None = None) -> Any:
    """The record's label: ``meta[key]`` (or attribute ``key``) if given, else ``.label``, else
    ``meta["label"]``; ``None`` when it has none."""
    meta = getattr(record, "meta", None)
    if key is not None:
        if isinstance(meta, dict) and key in meta:
            return meta[key]
        return getattr(record, key, None)
    label = getattr(record, "label", None)
    if label is None and isinstance(meta, dict):
        label = meta.get("label")
    return label


def labeller(stratify: bool | str) -> LabelFn | None:
    """The label function for a ``stratify`` setting (``False`` -> ``None``)."""
    if stratify is False or stratify is None:
        return None
    key = None if stratify is True else str(stratify)
    return lambda record: label_of(record, key)


def _by_label(items: Sequence[Any], label_fn: LabelFn) -> dict[str, list[Any]]:
    buckets: dict[str, list[Any]] = {}
    for item in items:
        buckets.setdefault(str(label_fn(item)), []).append(item)
    return dict(sorted(buckets.items()))


def split_records(
    records: Sequence[Any],
    val_fraction: float,
    test_fraction: float,
    seed: int,
    group_of=lambda r: r.id,
    label_fn: LabelFn | None = None,
) -> dict[str, list[Any]]:
    """Split records into train/val/test by seed; records of one group (``group_of``) stay together.

    With ``label_fn`` each label's groups are split by the fractions separately (a group takes the label of
    its first record), so every split keeps the label proportions.
    """
    groups: dict[Any, list[Any]] = {}
    for record in records:
        groups.setdefault(group_of(record), []).append(record)
    keys = sorted(groups, key=str)
    strata = {"": keys} if label_fn is None else _by_label(keys, lambda key: label_fn(groups[key][0]))
    parts: dict[str, list[Any]] = {"test": [], "val": [], "train": []}
    rng = random.Random(seed)
    for stratum in strata.values():
        rng.shuffle(stratum)
        n_test, n_val = round(len(stratum) * test_fraction), round(len(stratum) * val_fraction)
        parts["test"] += stratum[:n_test]
        parts["val"] += stratum[n_test : n_test + n_val]
        parts["train"] += stratum[n_test + n_val :]
    if label_fn is not None:  # interleave the labels (they were appended stratum by stratum)
        for part in parts.values():
            rng.shuffle(part)
    return {split: [r for k in part for r in groups[k]] for split, part in parts.items()}


def cap_records(
    records: list[Any], limit: int | None, seed: int, split: str, label_fn: LabelFn | None = None
) -> list[Any]:
    """At most ``limit`` records, drawn by a seeded shuffle and kept in their original order; with
    ``label_fn`` each label gets its proportional share (largest remainders)."""
    if limit is None or limit >= len(records):
        return records
    rng = random.Random(f"{seed}-{split}")
    if label_fn is None:
        order = list(range(len(records)))
        rng.shuffle(order)
        return [records[i] for i in sorted(order[:limit])]
    buckets = _by_label(range(len(records)), lambda i: label_fn(records[i]))
    exact = {label: limit * len(idx) / len(records) for label, idx in buckets.items()}
    quota = {label: int(x) for label, x in exact.items()}
    for label in sorted(exact, key=lambda k: (quota[k] - exact[k], k))[: limit - sum(quota.values())]:
        quota[label] += 1
    chosen = []
    for label, idx in buckets.items():
        rng.shuffle(idx)
        chosen += idx[: quota[label]]
    return [records[i] for i in sorted(chosen)]
