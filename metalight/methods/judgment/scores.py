"""Judgment metrics of one split at one epoch, and Know-thyself's summary table.

* ``judgment_accuracy``: share of questions whose stated ability equals the label (exact class match).
* ``qa_accuracy``: share labelled ``can`` (upstream's "QA acc"); ``answer_accuracy``: mean share of correct
  answers (equal to it with one greedy answer).
* ``judgment_auroc``: AUROC of P(yes) against ``label == can`` (uncertain counts as not-can); NaN when only
  one class is present.
* ``judgment_unparsed_rate``: share of replies without a readable ``\\boxed{...}`` (scored ``cannot``).
* ``label_frac_<c>`` / ``pred_frac_<c>``: label distribution, actual vs predicted.
* ``confusion``: counts, rows = actual class, columns = predicted class, in ``classes`` order.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torchmetrics.functional.classification import binary_auroc, multiclass_confusion_matrix

SUMMARY_COLUMNS = (
    ("train", "judgment_accuracy", "Train Judg"),
    ("train", "qa_accuracy", "Train QA"),
    ("train", "judgment_auroc", "Train AUROC"),
    ("val", "judgment_accuracy", "Val Judg"),
    ("val", "qa_accuracy", "Val QA"),
    ("val", "judgment_auroc", "Val AUROC"),
)


def judgment_metrics(
    actual: Sequence[str],
    predicted: Sequence[str],
    p_yes: Sequence[float],
    parsed: Sequence[bool],
    fraction_correct: Sequence[float],
    classes: Sequence[str],
) -> dict[str, Any]:
    """All judgment metrics of one split (see module docstring); ``classes`` fixes the class order."""
    n = len(actual)
    if n == 0:
        return {"n": 0}
    index = {c: i for i, c in enumerate(classes)}
    target = torch.tensor([index[a] for a in actual])
    preds = torch.tensor([index[p] for p in predicted])
    is_can = (target == index["can"]).long()
    both_classes = 0 < int(is_can.sum()) < n
    scores = torch.tensor(p_yes, dtype=torch.float32)
    auroc = float(binary_auroc(scores, is_can)) if both_classes else math.nan
    confusion = multiclass_confusion_matrix(preds, target, num_classes=len(classes))
    out: dict[str, Any] = {
        "n": n,
        "judgment_accuracy": float((preds == target).float().mean()),
        "qa_accuracy": float(is_can.float().mean()),
        "answer_accuracy": sum(fraction_correct) / n,
        "judgment_auroc": auroc,
        "judgment_unparsed_rate": 1.0 - sum(parsed) / n,
    }
    for c in classes:
        out[f"label_frac_{c}"] = float((target == index[c]).float().mean())
        out[f"pred_frac_{c}"] = float((preds == index[c]).float().mean())
    out["confusion"] = {"classes": list(classes), "rows_actual_cols_predicted": confusion.tolist()}
    return out


def scalar_metrics(metrics: dict[str, Any]) -> dict[str, float]:
    """The loggable (scalar) part of :func:`judgment_metrics`."""
    return {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float)) and k != "n"}


def _cell(value: Any, key: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.4f}" if key == "judgment_auroc" else f"{100 * value:.1f}%"


def summary_table(history: Sequence[dict[str, Any]]) -> str:
    """Know-thyself's end-of-run table: one row per epoch, judgment / QA accuracy and AUROC, train and val."""
    header = f"{'Epoch':<8} " + " ".join(f"{title:<12}" for _, _, title in SUMMARY_COLUMNS)
    lines = [header, "-" * len(header)]
    for row in history:
        cells = [_cell(row.get(split, {}).get(key), key) for split, key, _ in SUMMARY_COLUMNS]
        lines.append(f"{row['epoch']:<8} " + " ".join(f"{c:<12}" for c in cells))
    return "\n".join(lines)


def confusion_text(metrics: dict[str, Any]) -> str:
    """A confusion matrix as text (rows: predicted, columns: actual, as upstream prints it)."""
    classes = metrics["confusion"]["classes"]
    matrix = metrics["confusion"]["rows_actual_cols_predicted"]
    lines = [f"{'':22}" + "".join(f"{'actual_' + c:>16}" for c in classes)]
    for j, predicted in enumerate(classes):
        counts = "".join(f"{matrix[i][j]:>16}" for i in range(len(classes)))
        lines.append(f"{'predicted_' + predicted:<22}" + counts)
    return "\n".join(lines)
