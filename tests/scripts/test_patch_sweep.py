"""Weight-patch sweep: upstream's --from-bottom rule (all_but_top) beside top / bottom, the sweep's rows equal
direct evaluations of the base and tuned models, and the script writes one JSON and one figure."""

import json

import pytest
import torch

from metalight.data.records import QARecord
from metalight.evaluation.dual_prompt import EvalSettings, evaluate_records, results_to_tensors
from metalight.methods.esma.patch_sweep import patch_sweep
from metalight.models.loading import load_model
from metalight.models.weight_delta import keep_masks, weight_delta
from scripts.extract_weight_change import main as extract_main
from scripts.weight_patch_sweep import main as sweep_main

SETTINGS = EvalSettings(max_new_tokens=4)
RECORDS = [
    QARecord(f"q{i}", q, [a])
    for i, (q, a) in enumerate(
        [
            ("Who wrote Hamlet?", "Shakespeare"),
            ("Capital of France?", "Paris"),
            ("2 + 2?", "4"),
            ("Largest planet?", "Jupiter"),
        ]
    )
]


@pytest.fixture
def tuned_dir(tiny_model_dir, tmp_path):
    """The tiny model with changes large enough to change its answers and its P(yes)."""
    model, tokenizer = load_model(str(tiny_model_dir))
    torch.manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    model.save_pretrained(tmp_path / "tuned")
    tokenizer.save_pretrained(tmp_path / "tuned")
    return tmp_path / "tuned"


def test_all_but_top_is_upstreams_from_bottom_the_complement_of_top():
    deltas = {"a": torch.tensor([1.0, -2.0, 3.0, -4.0]), "b": torch.tensor([10.0, 0.5, -0.25, 20.0])}
    top, rest = keep_masks(deltas, 0.25, "top"), keep_masks(deltas, 0.25, "all_but_top")
    assert all(torch.equal(rest[k], ~top[k]) for k in deltas)  # the smallest 75%, not the smallest 25%
    assert rest["b"].tolist() == [False, True, True, False] and rest["a"].tolist() == [True] * 4
    assert all(keep_masks(deltas, 0.0, "all_but_top")[k].all() for k in deltas)


def _direct(spec):
    model, tokenizer = load_model(str(spec))
    tensors = results_to_tensors(evaluate_records(model, tokenizer, RECORDS, SETTINGS))
    return tensors["correct"].float().mean().item(), tensors["confidence"].mean().item()


def test_sweep_rows_match_direct_evaluations_and_the_base_is_restored(tiny_model_dir, tuned_dir):
    model, tokenizer = load_model(str(tiny_model_dir))
    deltas = weight_delta(model, load_model(str(tuned_dir))[0])
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rows = patch_sweep(
        model, tokenizer, deltas, RECORDS, [0.0, 0.5, 1.0], ["top", "all_but_top"], settings=SETTINGS
    )
    assert [(r["keep"], r["ratio"]) for r in rows] == [
        ("top", 0.0),
        ("top", 0.5),
        ("top", 1.0),
        ("all_but_top", 0.0),
        ("all_but_top", 0.5),
        ("all_but_top", 1.0),
    ]
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    base, tuned = _direct(tiny_model_dir), _direct(tuned_dir)
    assert base[1] != pytest.approx(tuned[1])  # the change is visible in P(yes)
    for row, (accuracy, p_yes) in [(rows[0], base), (rows[2], tuned), (rows[3], tuned), (rows[5], base)]:
        assert row["accuracy"] == accuracy and row["mean_p_yes"] == pytest.approx(p_yes, abs=1e-6)
    assert rows[1]["applied_share"] == pytest.approx(0.5, abs=0.01)
    assert rows[4]["applied_share"] == pytest.approx(0.5, abs=0.01) and rows[3]["applied_share"] == 1.0


def test_script_writes_one_json_and_one_figure(tiny_model_dir, tuned_dir, tmp_path):
    delta = extract_main(
        ["--base", str(tiny_model_dir), "--tuned", str(tuned_dir), "--out", str(tmp_path / "d.st")]
    )
    out = sweep_main(
        [
            "--delta",
            str(delta),
            "--out",
            str(tmp_path / "sweep"),
            "--base",
            str(tiny_model_dir),
            "--ratios",
            "0",
            "0.1",
            "1",
            "--keep",
            "top",
            "bottom",
            "all_but_top",
            "--data.init_args.max_samples",
            '{"val": 4}',
            "--model.init_args.evaluation.max_new_tokens",
            "3",
        ]
    )
    result = json.loads((out / "patch_sweep.json").read_text())
    assert result["questions"] == 4 and len(result["rows"]) == 9 and result["split"] == "val"
    assert {r["keep"] for r in result["rows"]} == {"top", "bottom", "all_but_top"}
    assert all(
        0 <= r["accuracy"] <= 1 and (r["dprime_type2"] is None or abs(r["dprime_type2"]) < 10)
        for r in result["rows"]
    )
    assert (out / "patch_sweep.png").stat().st_size > 1000


def test_script_reports_a_missing_delta_in_one_line(tiny_model_dir, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        sweep_main(
            [
                "--delta",
                str(tmp_path / "none.st"),
                "--out",
                str(tmp_path / "o"),
                "--base",
                str(tiny_model_dir),
            ]
        )
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.strip() == (
        f"error: delta file not found: {tmp_path / 'none.st'}; "
        "create it with scripts/extract_weight_change.py"
    )
