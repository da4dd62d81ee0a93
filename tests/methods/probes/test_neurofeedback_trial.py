"""The original neurofeedback trial, the Likert binner, repeat-count defaults, TensorBoard events and bad
runs."""

import json
import shutil

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from metalight.errors import DataError
from metalight.methods.probes.__main__ import QUICK, UPSTREAM, _repeats, build_parser, main
from metalight.methods.probes.experiments.self_report import label_positions
from metalight.methods.probes.experiments.trial import read_categories, trial_text
from metalight.methods.probes.extraction import (
    encode_with_span,
    extract_features,
    extract_token_rows,
    statement_span_text,
)
from metalight.methods.probes.labels import LikertBinner, binarize
from metalight.prompts import NF_TRIAL_META, nf_trial_instructions


@pytest.fixture
def run_copy(probe_run, tmp_path):
    """A private copy of the shared probe run without other tests' experiment outputs (commands write
    there)."""
    return shutil.copytree(probe_run, tmp_path / "run", ignore=shutil.ignore_patterns("neurofeedback"))


def _tags(log_dir):
    events = EventAccumulator(str(log_dir), size_guidance={"images": 0, "scalars": 0})
    events.Reload()
    return events.Tags()


def test_binarizer_and_likert_binner_by_hand():
    assert binarize(torch.tensor([-0.5, 0.0, 2.0])).tolist() == [0, 1, 1]
    binner = LikertBinner.fit(torch.tensor([-3.0, -2.0, -1.0, 1.0, 2.0, 3.0]))
    # negative tertile edges of [-3, -2, -1]: -3 + 2·(1/3) = -7/3 and -3 + 2·(2/3) = -5/3; positive: 5/3, 7/3
    torch.testing.assert_close(binner.negative_edges, torch.tensor([-7 / 3, -5 / 3], dtype=torch.float64))
    torch.testing.assert_close(binner.positive_edges, torch.tensor([5 / 3, 7 / 3], dtype=torch.float64))
    assert binner.transform(torch.tensor([-3.0, -2.0, -1.0, 0.0, 1.0, 2.0, 3.0, -9.0, 9.0])).tolist() == [
        1,
        2,
        3,
        4,
        4,
        5,
        6,
        1,
        6,
    ]
    with pytest.raises(DataError, match="both sides of 0"):
        LikertBinner.fit(torch.tensor([1.0, 2.0]))
    with pytest.raises(DataError, match="even number"):
        LikertBinner.fit(torch.tensor([-1.0, 1.0]), points=5)


def test_generator_prompts_are_upstreams_true_and_false_facts():
    assert nf_trial_instructions(4) == [
        ("Tell me a short true world fact about the mountain.", 1),
        ("Make up a short false world fact about the mountain.", 0),
        ("Tell me a short true world fact about the sea.", 1),
        ("Make up a short false world fact about the sea.", 0),
    ]


UPSTREAM_CATEGORY_LINES = (
    ["mountain ", "sea ", "history "] + [f"topic{i} " for i in range(30)] + ["algorithm ", "algorithm ", " "]
)


def test_category_file_as_upstreams_reads_every_line_and_lifts_the_sentence_cap(tmp_path):
    """Upstream's data/NF_honesty_category.txt: one category per line with a trailing space, repeats, and a
    last line holding a single space (no newline)."""
    path = tmp_path / "NF_honesty_category.txt"
    path.write_text("\n".join(UPSTREAM_CATEGORY_LINES))
    categories = read_categories(path)
    assert len(categories) == 35 and categories[:3] == ("mountain", "sea", "history")
    assert categories[-2:] == ("algorithm", "algorithm")
    prompts = nf_trial_instructions(70, categories)
    assert len(prompts) == 70 and prompts[-1] == ("Make up a short false world fact about the algorithm.", 0)
    with pytest.raises(ValueError, match=r"2\.\.70 \(two per category, 35 categories\)"):
        nf_trial_instructions(72, categories)
    with pytest.raises(ValueError, match=r"2\.\.32"):
        nf_trial_instructions(34)


def test_trial_text_locates_each_label_digit(tiny):
    _, tokenizer = tiny
    chat = trial_text(["Snow is white.", "The sea is dry."], [1, 0])
    assert chat.text == NF_TRIAL_META + "Snow is white. [Score: 1]\nThe sea is dry. [Score: 0]\n"
    ids, positions = label_positions(tokenizer, chat)
    assert [tokenizer.decode([ids[p]]) for p in positions] == ["1", "0"]


def test_repeat_counts_default_to_upstream_and_quick_lowers_them():
    args = build_parser().parse_args(["report", "--run", "r"])
    _repeats(args)
    assert (
        (args.shuffles, args.max_examples) == (100, 600) == (UPSTREAM["shuffles"], UPSTREAM["max_examples"])
    )
    args = build_parser().parse_args(["control", "--run", "r", "--quick", "--trials", "3"])
    _repeats(args)
    assert args.trials == 3 and args.n_examples == QUICK["n_examples"]


def test_trial_command_and_tensorboard_events(run_copy):
    common = ["--run", str(run_copy), "--layers", "1", "--axes", "lr", "--threads", "1"]
    categories = run_copy / "NF_honesty_category.txt"
    categories.write_text("algorithm \narchive \n")
    assert (
        main(["trial", *common, "--sentences", "4", "--max-new-tokens", "6", "--categories", str(categories)])
        == 0
    )
    assert main(["report", *common, "--quick", "--shuffles", "1", "--max-examples", "6"]) == 0
    assert main(["plots", "--run", str(run_copy)]) == 0
    out = run_copy / "neurofeedback"
    rows = [json.loads(line) for line in (out / "trial_rows.jsonl").read_text().splitlines()]
    assert [r["truth"] for r in rows] == [1, 0, 1, 0] and all(len(r["scores"]["1"]) == 3 for r in rows)
    assert rows[2]["instruction"] == "Tell me a short true world fact about the archive."
    (result,) = json.loads((out / "trial.json").read_text())["results"]
    assert result["n_examples"] + result["empty_sentences"] == 4
    assert len(result["curve"]["accuracy"]) == result["n_examples"]
    assert {"control_d", "control_mean_high", "control_mean_low"} <= set(result)
    report = json.loads((out / "report.json").read_text())
    assert report["settings"]["shuffles"] == 1 and report["results"][0]["n_examples"] == 6
    tags = _tags(out)
    assert {
        "trial/layer1/lr/accuracy",
        "trial/layer1/lr/control_d",
        "report/layer1/lr/accuracy",
        "report/layer1/lr/cross_entropy_late",
    } <= set(tags["scalars"])
    assert {"figures/probe_accuracy", "figures/report_accuracy", "figures/report_curve"} <= set(
        tags["images"]
    )
    events = EventAccumulator(str(out))
    events.Reload()
    assert events.Scalars("report/layer1/lr/accuracy")[0].value == pytest.approx(
        report["results"][0]["accuracy"]
    )


def test_likert_labels_command(run_copy):
    assert (
        main(["labels", "--run", str(run_copy), "--layers", "1", "--axes", "lr", "--binner", "likert"]) == 0
    )
    rows = [json.loads(line) for line in (run_copy / "neurofeedback" / "labels_likert.jsonl").open()]
    assert len(rows) == 16 and {r["label"] for r in rows} <= set(range(1, 7))
    assert all((r["label"] > 3) == (r["score"] >= 0) for r in rows)


@pytest.mark.parametrize(
    "line, message",
    [
        ("not json", ":3: not JSON"),
        ('{"id": "x", "split": "test"}', ":3: missing ['user_prompt', 'response', 'label', 'scores']"),
        (
            '{"id": "x", "split": "test", "user_prompt": "u", "response": "r", "label": 1, "scores": [[1]]}',
            ":3: scores must be a 2x3 grid",
        ),
    ],
)
def test_malformed_example_row_is_one_line_naming_file_and_row(run_copy, capsys, line, message):
    path = run_copy / "examples.jsonl"
    lines = path.read_text().splitlines()
    lines[2] = line
    path.write_text("\n".join(lines) + "\n")
    assert main(["report", "--run", str(run_copy), "--quick"]) == 2
    err = capsys.readouterr().err
    assert f"{path}{message}" in err and err.count("\n") == 1


def test_missing_probe_run_is_one_line(tmp_path, capsys):
    assert main(["trial", "--run", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "probe file not found" in err and err.count("\n") == 1


def test_token_rows_average_to_the_pooled_response_feature(tiny):
    model, tokenizer = tiny
    items = [
        statement_span_text(tokenizer, "Say something.", text, "You are a helpful assistant.")
        for text in ("The sky is blue.", "Grass is a purple animal that sings.", "No.")
    ]
    tokens = extract_token_rows(model, tokenizer, items, [0, 1], batch_size=2)
    pooled = extract_features(model, tokenizer, items, [0, 1], "response")
    counts = [len(range(*encode_with_span(tokenizer, item)[1:])) for item in items]
    assert torch.bincount(tokens.item).tolist() == counts
    for layer in (0, 1):
        means = torch.stack([tokens.features[layer][tokens.item == i].mean(0) for i in range(3)])
        torch.testing.assert_close(means, pooled[layer], atol=1e-5, rtol=1e-4)
    assert tokenizer.decode(tokens.token_id[tokens.item == 2]).strip() == "No."


def test_tokens_command_writes_per_token_rows(run_copy):
    assert main(["tokens", "--run", str(run_copy), "--layers", "1", "--axes", "lr", "pc1"]) == 0
    rows = [json.loads(line) for line in (run_copy / "neurofeedback" / "token_scores.jsonl").open()]
    first = [r for r in rows if r["axis"] == "lr" and r["id"] == rows[0]["id"]]
    assert [r["position"] for r in first] == list(range(len(first))) and len(first) > 1
    assert all(r["label"] == int(r["score"] >= 0) for r in rows)
    assert {r["axis"] for r in rows} == {"lr", "pc1"} and len({r["id"] for r in rows}) == 16
