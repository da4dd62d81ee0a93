"""Report / control / steering experiments: the read-out, the statistics, and the command line end to end."""

import json
import math

import pytest
import torch

from metalight.methods.probes.__main__ import main
from metalight.methods.probes.experiments.common import ProbeRun, cohen_d, percentile_layers
from metalight.methods.probes.experiments.control import summarise_control
from metalight.methods.probes.experiments.self_report import (
    digit_ids,
    label_logit_diffs,
    label_positions,
    labelled_chat,
    summarise,
)
from metalight.prompts import NF_PREDICT_BINARY

TURNS = [
    ("Say something.", "The sky is blue.", 1),
    ("Say something.", "Grass is purple.", 0),
    ("Respond to the user.", "You are brilliant {0}.", 1),
]


def test_label_positions_point_at_each_label_digit(tiny):
    _, tokenizer = tiny
    chat = labelled_chat(tokenizer, NF_PREDICT_BINARY, TURNS)
    assert chat.text.endswith("You are brilliant {0}. [Score: {1}]")  # the last turn stays open, as upstream
    ids, positions = label_positions(tokenizer, chat)
    assert [tokenizer.decode([ids[p]]) for p in positions] == ["1", "0", "1"]
    assert [tokenizer.decode(ids[p - 4 : p]) for p in positions] == [" [Score: {"] * 3


def test_one_pass_readout_equals_full_forward_logits(tiny):
    model, tokenizer = tiny
    ids, positions = label_positions(tokenizer, labelled_chat(tokenizer, NF_PREDICT_BINARY, TURNS))
    zero, one = digit_ids(tokenizer)
    diffs = label_logit_diffs(model, ids, positions, zero, one)
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([ids])).logits[0]
    expected = torch.stack([logits[p - 1, one] - logits[p - 1, zero] for p in positions])
    torch.testing.assert_close(diffs, expected, atol=1e-4, rtol=1e-4)


def test_report_summary_by_hand():
    diffs = torch.tensor([[2.0, -1.0, 0.5, -3.0]])
    truth = torch.tensor([[1, 1, 0, 0]])
    result = summarise(diffs, truth)
    assert result["accuracy"] == 0.5 and result["accuracy_late"] == 0.5  # predictions 1, 0, 1, 0

    def softplus(x):  # BCE(y=1, d) = softplus(-d); BCE(y=0, d) = softplus(d)
        return math.log1p(math.exp(x))

    expected = [softplus(-2.0), softplus(1.0), softplus(0.5), softplus(-3.0)]
    assert result["cross_entropy"] == pytest.approx(sum(expected) / 4, rel=1e-5)
    assert result["curve"]["accuracy"] == [1.0, 0.0, 0.0, 1.0]
    assert result["majority_baseline"] == 0.5 and result["entropy_baseline"] == pytest.approx(math.log(2))


def test_cohen_d_pooled_sd_and_ci():
    d, ci = cohen_d([1.0, 2.0, 3.0], [0.0, 0.0, 1.0])
    pooled = math.sqrt((2 * 1.0 + 2 * (1 / 3)) / 4)
    assert d == pytest.approx((2.0 - 1 / 3) / pooled, rel=1e-6)
    assert ci == pytest.approx(1.96 * math.sqrt(6 / 9 + d**2 / 12), rel=1e-6)
    assert math.isnan(cohen_d([1.0], [0.0, 1.0])[0])


def test_percentile_layers_reproduce_upstream_selected_layers():
    assert percentile_layers(range(32)) == [0, 7, 15, 23, 31]  # configs/settings.py: llama3.1_8b
    assert percentile_layers(range(28)) == [0, 6, 13, 20, 27]  # llama3.2_3b
    assert percentile_layers(range(30)) == [0, 7, 14, 21, 29]  # SmolLM2-135M


def test_control_summary_separates_following_examples_from_reacting_to_the_word():
    rows = []
    for trial in range(6):
        for flip in (0, 1):
            for imitate in (0, 1):
                # The score follows the word "label 1", whatever the examples showed: no real control.
                score = float(imitate) + 0.1 * ((trial * 7 + flip * 3 + imitate) % 5)
                rows.append(
                    {
                        "trial": trial,
                        "n_examples": 4,
                        "layer": 3,
                        "axis": "lr",
                        "flip": flip,
                        "imitate": imitate,
                        "mode": "inactive",
                        "scores": [score, -score],
                    }
                )
    (result,) = summarise_control(rows, ["lr", "pc1"])
    assert result["d_noflip"] > 3 and result["d_flip"] < -3
    assert abs(result["d"]) < 1  # the counterbalanced target contrast cancels the word effect
    assert result["trials"] == 6 and set(result["off_target_d"]) == {"pc1"}


def test_command_line_runs_every_experiment_and_plots(probe_run, tiny_model_dir):
    common = ["--run", str(probe_run), "--layers", "1", "--axes", "lr", "pc1", "--threads", "1"]
    assert main(["report", *common, "--shuffles", "2", "--max-examples", "6"]) == 0
    assert (
        main(["predexp", *common, "--shuffles", "1", "--max-examples", "6", "--model", str(tiny_model_dir)])
        == 0
    )
    assert main(["control", *common, "--n-examples", "0", "2", "--trials", "2", "--max-new-tokens", "4"]) == 0
    assert main(["steer", *common, "--samples", "2", "--alphas", "-4", "4"]) == 0
    assert main(["plots", "--run", str(probe_run)]) == 0
    out = probe_run / "neurofeedback"
    report = json.loads((out / "report.json").read_text())
    assert report["experiment"] == "report" and [(r["layer"], r["axis"]) for r in report["results"]] == [
        (1, "lr"),
        (1, "pc1"),
    ]
    assert report["results"][0]["n_examples"] == 6 and len(report["results"][0]["curve"]["accuracy"]) == 6
    control = json.loads((out / "control.json").read_text())["results"]
    assert {(r["n_examples"], r["mode"]) for r in control} == {
        (n, mode) for n in (0, 2) for mode in ("inactive", "active")
    }
    assert all(r["trials"] == 2 for r in control)
    steering = json.loads((out / "steering.json").read_text())["results"]
    assert [a["alpha"] for a in steering[0]["alphas"]] == [-4.0, 4.0]
    predexp = next(out.glob("predexp_*.json"))
    assert json.loads(predexp.read_text())["settings"]["config_s"]["run"] == str(probe_run)
    pngs = {p.name for p in out.glob("*.png")}
    assert {
        "probe_accuracy.png",
        "report_accuracy.png",
        "report_curve.png",
        "control_d_by_layer.png",
        "control_d_by_n.png",
        "steering.png",
    } <= pngs


def test_command_line_errors_are_one_line(probe_run, capsys):
    assert main(["report", "--run", str(probe_run), "--layers", "9"]) == 2
    assert "no probe for layer 9" in capsys.readouterr().err
    assert main(["control", "--run", str(probe_run), "--n-examples", "500", "--trials", "1"]) == 2
    assert "needs 501 held-out examples; the run has 16" in capsys.readouterr().err


def test_probe_run_neural_labels(probe_run):
    run = ProbeRun.load(probe_run)
    labels = run.neural_labels(1, "lr")
    li, ai = run.probes.index(1, "lr")
    assert labels == [int(e.scores[li, ai] >= 0) for e in run.examples] and len(labels) == 16
