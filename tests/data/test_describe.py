"""`python -m metalight.data describe`: counts per split and label, examples, clear errors."""

import json
import runpy
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from metalight.data.describe import data_section, main, summarize

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = Path(__file__).parent / "fixtures"
SHIPPED = ["fanoutqa", "fanoutqa_multihop", "ehq", "gsm8k"]


@pytest.mark.parametrize("name", SHIPPED)
def test_describe_every_shipped_sample(name, capsys):
    config = ROOT / "configs" / "data" / f"{name}.yaml"
    assert main(["describe", str(config), "--json", "--examples", "2"]) == 0
    summary = json.loads(capsys.readouterr().out)
    counts = {split: entry["n"] for split, entry in summary["splits"].items()}
    assert set(counts) == {"train", "val", "test"} and min(counts.values()) > 0
    assert all(len(entry["examples"]) == 2 for entry in summary["splits"].values())
    assert all(example["question"] for entry in summary["splits"].values() for example in entry["examples"])


def test_text_output_counts_categories_for_ehq(capsys):
    assert main(["describe", str(ROOT / "configs/data/ehq.yaml")]) == 0
    out = capsys.readouterr().out
    assert "EHQDataModule(" in out and "train" in out and "category: CCQ: 75, FEQ: 75" in out
    assert "examples (val):" in out


def test_experiment_config_and_overrides_point_at_a_user_file(capsys):
    rows = FIXTURES / "nq_open_native_rows.jsonl"
    argv = [
        "describe",
        str(ROOT / "configs/data/nq_open.yaml"),
        "--set",
        f"path={{val: {rows}}}",
        "--set",
        "hub_name=null",
    ]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "NQOpenDataModule" in out and "val         3 records" in out and "where is the capital" in out


@dataclass(frozen=True)
class Claim:
    id: str
    text: str
    label: bool


class LabelledModule:
    """Any DataModule with records(split): labels are counted per split."""

    def records(self, split):
        return {
            "train": [Claim("a", "x", True), Claim("b", "y", False), Claim("c", "z", True)],
            "val": [Claim("d", "w", False)],
            "test": [],
        }[split]


def test_labels_of_any_record_type_are_counted():
    summary = summarize(LabelledModule(), examples=1)
    assert summary["splits"]["train"]["labels"] == {"False": 1, "True": 2}
    assert summary["splits"]["val"]["examples"] == [{"id": "d", "text": "w", "label": False}]


def test_skipped_rows_are_reported(tmp_path, capsys):
    bad = tmp_path / "rows.jsonl"
    rows = [{"question": "q?", "answer": ["a"]}, {"question": "", "answer": ["a"]}]
    bad.write_text("".join(json.dumps(row) + "\n" for row in rows))
    config = tmp_path / "c.yaml"
    config.write_text(
        f"data:\n  class_path: metalight.data.sources.nq_open.NQOpenDataModule\n"
        f"  init_args: {{path: {{val: {bad}}}, strict: false}}\n"
    )
    assert main(["describe", str(config)]) == 0
    assert f"skipped 1 malformed rows (strict: false) at: {bad}:2" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("model: {class_path: x}\n", "no `data:` section"),
        ("data:\n  class_path: metalight.data.sources.nope.Missing\n", "cannot be imported"),
        (
            "data:\n  class_path: metalight.data.sources.nq_open.NQOpenDataModule\n  init_args: {pathh: x}\n",
            "unexpected keyword argument 'pathh'",
        ),
    ],
)
def test_bad_configs_are_one_line_errors(tmp_path, capsys, content, message):
    config = tmp_path / "bad.yaml"
    config.write_text(content)
    assert main(["describe", str(config)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and message in err and "\n" not in err


def test_later_configs_and_sets_override_earlier_ones(tmp_path):
    extra = tmp_path / "extra.yaml"
    extra.write_text("data:\n  init_args: {max_samples: 5}\n")
    class_path, args = data_section([str(ROOT / "configs/data/mkqa.yaml"), str(extra)], ["language=ko"])
    assert class_path.endswith("MKQADataModule") and args == {
        "hub_name": "apple/mkqa",
        "language": "ko",
        "max_samples": 5,
    }


def test_module_entry_point_help(monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["python -m metalight.data", "describe", "--help"])
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_module("metalight.data", run_name="__main__")
    out = capsys.readouterr().out
    assert exit_info.value.code == 0 and "--set KEY=VALUE" in out and "--by META_KEY" in out


DATA_CONFIGS = sorted(
    str(p.relative_to(ROOT)) for p in (ROOT / "configs").rglob("*.yaml") if "\ndata:" in "\n" + p.read_text()
)


@pytest.mark.parametrize("config", DATA_CONFIGS)
def test_describe_every_config_with_a_data_section(config, capsys, monkeypatch):
    """Describe works on every config (data fragments and whole experiments, nested `source:` /
    `eval_source:` DataModules too): it prints counts, or one `error:` line when the data is absent here."""
    monkeypatch.chdir(ROOT)
    code = main(["describe", config, "--examples", "0"])
    captured = capsys.readouterr()
    if code == 0:
        assert " records" in captured.out
    else:
        assert code == 2 and captured.err.startswith("error: ") and captured.err.count("\n") == 1, (
            captured.err
        )


@pytest.mark.parametrize("config", ["configs/sft/metaconf_stage1.yaml", "configs/sft/prompt_completion.yaml"])
def test_describe_a_config_with_an_eval_source(config, tmp_path, capsys):
    rows = tmp_path / "rows.jsonl"
    rows.write_text(
        "".join(
            json.dumps({"prompt": f"What is {i} plus {i}?", "completion": str(2 * i)}) + "\n"
            for i in range(4)
        )
    )
    assert main(["describe", str(ROOT / config), "--set", f"path={rows}"]) == 0
    out = capsys.readouterr().out
    assert "PromptCompletionDataModule(" in out and "/ eval " in out and "train       4 records" in out
