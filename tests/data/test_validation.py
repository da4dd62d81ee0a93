"""Every dataset, every validation rule: a malformed native row (missing field, wrong type, empty question,
empty answers) raises an error naming file and line; ``strict: false`` skips it and reports where."""

import copy
import json
import re
from pathlib import Path

import pytest

from metalight.data.sources.ehq import EHQDataModule
from metalight.data.sources.fanoutqa import FanOutQAMultiHopDataModule
from metalight.data.sources.fictional_qa import FictionalQADataModule
from metalight.data.sources.freebase_qa import FreebaseQADataModule
from metalight.data.sources.gsm8k import GSM8KDataModule
from metalight.data.sources.hotpot_qa import HotpotQADataModule
from metalight.data.sources.mkqa import MKQADataModule
from metalight.data.sources.nq_open import NQOpenDataModule
from metalight.data.sources.triviaqa import TriviaQADataModule
from metalight.data.sources.web_questions import WebQuestionsDataModule
from metalight.errors import DataError

FIXTURES = Path(__file__).parent / "fixtures"
RULES = {
    "missing_field": "missing field",
    "wrong_type": "must be",
    "empty_question": "empty or non-text question",
    "empty_answers": "empty answer list",
}


def first_row(name):
    path = FIXTURES / name
    if path.suffix == ".jsonl":
        return json.loads(path.read_text().splitlines()[0])
    data = json.loads(path.read_text())
    return (data["Questions"] if isinstance(data, dict) else data)[0]


def setter(*keys, value):
    def mutate(row):
        target = row
        for key in keys[:-1]:
            target = target[key]
        target[keys[-1]] = value
        return row

    return mutate


def deleter(key):
    return lambda row: {k: v for k, v in row.items() if k != key}


def both(*fns):
    def mutate(row):
        for fn in fns:
            row = fn(row)
        return row

    return mutate


# dataset: (module class, extra init args, fixture, file layout, one mutation per rule)
DATASETS = {
    "triviaqa": (
        TriviaQADataModule,
        {},
        "triviaqa_native_rows.jsonl",
        "jsonl",
        {
            "missing_field": deleter("answer"),
            "wrong_type": setter("answer", "aliases", value="Sunset Boulevard"),
            "empty_question": setter("question", value=""),
            "empty_answers": both(setter("answer", "aliases", value=[]), setter("answer", "value", value="")),
        },
    ),
    "nq_open": (
        NQOpenDataModule,
        {},
        "nq_open_native_rows.jsonl",
        "jsonl",
        {
            "missing_field": deleter("answer"),
            "wrong_type": setter("answer", value="Pretoria"),
            "empty_question": setter("question", value="  "),
            "empty_answers": setter("answer", value=[]),
        },
    ),
    "web_questions": (
        WebQuestionsDataModule,
        {},
        "web_questions_native_rows.jsonl",
        "jsonl",
        {
            "missing_field": deleter("answers"),
            "wrong_type": setter("answers", value=3),
            "empty_question": setter("question", value=""),
            "empty_answers": setter("answers", value=[""]),
        },
    ),
    "freebase_qa": (
        FreebaseQADataModule,
        {},
        "freebase_qa_native_rows.json",
        "json_object",
        {
            "missing_field": deleter("RawQuestion"),
            "wrong_type": lambda row: setter("Parses", value=[{"Answers": [{"AnswersName": "mars"}]}])(row),
            "empty_question": setter("RawQuestion", value=""),
            "empty_answers": setter("Parses", value=[]),
        },
    ),
    "mkqa": (
        MKQADataModule,
        {"language": "en"},
        "mkqa_native_rows.jsonl",
        "jsonl",
        {
            "missing_field": deleter("queries"),
            "wrong_type": setter("answers", "en", value="Dave Edmunds"),
            "empty_question": both(setter("queries", "en", value=""), setter("query", value="")),
            "empty_answers": setter("answers", "en", value=[{"type": "entity", "text": "", "aliases": []}]),
        },
    ),
    "fictional_qa": (
        FictionalQADataModule,
        {"split": "fractions"},
        "fictional_qa_native_rows.jsonl",
        "jsonl",
        {
            "missing_field": deleter("natural_answer"),
            "wrong_type": setter("question", value=5),
            "empty_question": setter("question", value=""),
            "empty_answers": setter("natural_answer", value=" "),
        },
    ),
    "hotpot_qa": (
        HotpotQADataModule,
        {},
        "hotpot_qa_native_rows.jsonl",
        "jsonl",
        {
            "missing_field": deleter("context"),
            "wrong_type": setter("context", value="Ed Wood was a filmmaker."),
            "empty_question": setter("question", value=""),
            "empty_answers": setter("answer", value=""),
        },
    ),
    "fanoutqa_multihop": (
        FanOutQAMultiHopDataModule,
        {},
        "fanoutqa_native_rows.json",
        "json",
        {
            "missing_field": deleter("answer"),
            "wrong_type": setter("question", value=["a", "list"]),
            "empty_question": setter("question", value=""),
            "empty_answers": setter("answer", value={}),
        },
    ),
    "ehq": (
        EHQDataModule,
        {"stratify": False},
        "ehq_native_rows.json",
        "json",
        {
            "missing_field": deleter("question_id"),
            "wrong_type": setter("acceptable_answers", value="Ana Testa"),
            "empty_question": setter("question", value=""),
            "empty_answers": both(
                setter("category", value="HNQ"),
                setter("correct_answer", value=""),
                setter("acceptable_answers", value=[]),
            ),
        },
    ),
    "gsm8k": (
        GSM8KDataModule,
        {},
        "gsm8k_rho_native_rows.json",
        "json",
        {
            "missing_field": deleter("target_answer"),
            "wrong_type": setter("text_clean", value=48),
            "empty_question": setter("text_clean", value=""),
            "empty_answers": setter("target_answer", value=""),
        },
    ),
}


def write_pair(tmp_path, dataset, good, bad):
    """The good row then the bad one in the dataset's file layout; returns (path, where of the bad row)."""
    _, _, fixture, layout, _ = DATASETS[dataset]
    path = tmp_path / f"{dataset}_{Path(fixture).name}"
    lines = [json.dumps(good), json.dumps(bad)]
    if layout == "jsonl":
        path.write_text("\n".join(lines) + "\n")
        return path, rf"{path.name}:2"
    body = "[\n" + ",\n".join(lines) + "\n]"
    path.write_text('{"Dataset": "test", "Questions": ' + body + "}" if layout == "json_object" else body)
    return path, rf"{path.name}:3 \(record 1\)"


def make(dataset, path, **kwargs):
    cls, extra, *_ = DATASETS[dataset]
    return cls(path=str(path), val_fraction=0, test_fraction=0, **extra, **kwargs)


def all_records(module):
    return [r for split in ("train", "val", "test") for r in module.records(split)]


@pytest.mark.parametrize("rule", RULES)
@pytest.mark.parametrize("dataset", DATASETS)
def test_malformed_row_names_file_and_line(tmp_path, dataset, rule):
    good = first_row(DATASETS[dataset][2])
    bad = DATASETS[dataset][4][rule](copy.deepcopy(good))
    path, where = write_pair(tmp_path, dataset, good, bad)
    with pytest.raises(DataError, match=rf"{where}: .*{RULES[rule]}"):
        all_records(make(dataset, path))


@pytest.mark.parametrize("dataset", DATASETS)
def test_non_strict_skips_the_malformed_row_and_reports_its_line(tmp_path, caplog, dataset):
    good = first_row(DATASETS[dataset][2])
    bad = DATASETS[dataset][4]["empty_answers"](copy.deepcopy(good))
    path, where = write_pair(tmp_path, dataset, good, bad)
    module = make(dataset, path, strict=False)
    assert len(all_records(module)) == 1
    assert len(module.skipped) == 1 and re.search(where, module.skipped[0])
    assert "skipped 1 malformed rows" in caplog.text and path.name in caplog.text


def test_every_fixture_file_loads_cleanly():
    for dataset, (cls, extra, fixture, *_rest) in DATASETS.items():
        module = cls(path=str(FIXTURES / fixture), val_fraction=0, test_fraction=0, **extra)
        assert all_records(module) and not module.skipped, dataset
