"""report.json is strict JSON (null for undefined values); ESMA's substring rule's weak matches are
counted."""

import json
import math

from metalight.grading import is_correct, suspect_match
from metalight.io import atomic_write_json, atomic_write_jsonl, strict_json
from tests.reliability.conftest import ROOT, eval_args, report_of, run_main


def test_undefined_metrics_are_null_in_a_strict_json_report(tmp_path, tiny_model_dir, capsys):
    code, _ = run_main(
        eval_args(
            tiny_model_dir,
            tmp_path,
            "--data.init_args.path",
            str(ROOT / "tests/data/fixtures/triviaqa_native_rows.jsonl"),
        ),
        capsys,
    )
    report = report_of(tmp_path)  # fails on a bare NaN / Infinity
    assert code == 0 and report["accuracy"] == 0.0 and report["dprime_type2"] is None  # no correct answer


def test_writers_turn_nan_and_inf_into_null(tmp_path):
    data = {"a": math.nan, "b": [math.inf, 1.5], "c": {"d": -math.inf}}
    assert strict_json(data) == {"a": None, "b": [None, 1.5], "c": {"d": None}}
    atomic_write_json(tmp_path / "r.json", data)
    atomic_write_jsonl(tmp_path / "s.jsonl", [data])
    strict = {"parse_constant": lambda name: (_ for _ in ()).throw(ValueError(name))}
    assert json.loads((tmp_path / "r.json").read_text(), **strict)["a"] is None
    assert json.loads((tmp_path / "s.jsonl").read_text(), **strict)["b"] == [None, 1.5]


def test_suspect_matches_are_flagged_but_still_credited_under_esma():
    assert is_correct("110", ["11"]) and suspect_match("110", ["11"])
    assert is_correct("I am not sure", ["I"]) and suspect_match("I am not sure", ["I"])
    assert not suspect_match("It was 11 years", ["11"])  # the whole number
    assert not suspect_match("I", ["I"]) and not suspect_match("Paris, France", ["Paris"])
    assert not suspect_match("The 110th", ["11", "110th"])  # a solid alias matched too
    assert not suspect_match("Paris", ["London"])  # not credited at all
