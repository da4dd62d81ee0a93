"""Errors a user can cause are one 'error:' line with exit code 2, naming the file / row / key and the fix."""

import gzip

import pytest

from tests.reliability.conftest import ROOT, eval_args, run_main


def _key_file(tmp_path):
    bad = tmp_path / "bad_key.yaml"
    bad.write_text("model:\n  init_args:\n    evaluation: {gradig: esma}\n")
    return ["--config", str(bad)]


CASES = {
    "misspelled nested key": (_key_file, ("error: unknown config key 'model.init_args.evaluation.gradig': "
                              "metalight.methods.base.EvalModule's evaluation has no setting 'gradig'; check the "
                              "spelling (add --print_config to see every valid key)")),
    "misspelled class_path": (lambda tmp: ["--model.class_path", "metalight.methods.base.EvalModul"],
                              ("error: config key 'model.class_path': cannot import 'metalight.methods.base.EvalModul' "
                              "(module 'metalight.methods.base' has no attribute 'EvalModul'); check the spelling of "
                              "the module and class")),
}


@pytest.mark.parametrize("case", CASES)
def test_config_mistakes_name_the_key(case, tmp_path, tiny_model_dir, capsys):
    extra, expected = CASES[case]
    code, errors = run_main(eval_args(tiny_model_dir, tmp_path, "--data.init_args.path",
                                      str(ROOT / "tests/data/fixtures/triviaqa_native_rows.jsonl"), *extra(tmp_path)),
                            capsys)
    assert (code, errors) == (2, [expected])


def test_a_misspelled_optimizer_argument_names_the_optimizer_key(tmp_path, capsys):
    code, errors = run_main(["fit", "--config", str(ROOT / "configs/esma/quickstart.yaml"),
                             "--model.init_args.optimizer.init_args.lrr", "0.1"], capsys)
    assert (code, errors) == (2, [("error: unknown config key 'model.init_args.optimizer.init_args.lrr': "
                                  "torch.optim.SGD has no argument 'lrr'; check the spelling (add --print_config to "
                                  "see every valid key)")])


def _not_utf8(tmp_path):
    path = tmp_path / "latin1.jsonl"
    good = (ROOT / "tests/data/fixtures/triviaqa_native_rows.jsonl").read_bytes()
    path.write_bytes(good + '{"question": "café?", "question_id": "x", "answer": {"aliases": ["a"]}}\n'
                     .encode("latin-1"))
    return path, f"error: {path}:3: not UTF-8 text (invalid continuation byte); re-save the file as UTF-8"


def _truncated_gzip(tmp_path):
    path = tmp_path / "cut.jsonl.gz"
    path.write_bytes(gzip.compress((ROOT / "tests/data/fixtures/triviaqa_native_rows.jsonl").read_bytes())[:60])
    return path, (f"error: {path}:1: corrupt or truncated gzip file (Compressed file ended before the "
                  f"end-of-stream marker was reached); download or compress it again")


@pytest.mark.parametrize("make", [_not_utf8, _truncated_gzip], ids=["not-utf8", "truncated-gzip"])
def test_data_file_faults_name_file_and_line(make, tmp_path, tiny_model_dir, capsys):
    path, expected = make(tmp_path)
    code, errors = run_main(eval_args(tiny_model_dir, tmp_path / "runs", "--data.init_args.path", str(path)), capsys)
    assert (code, errors) == (2, [expected])


def test_a_corrupt_model_file_is_named(tmp_path, tiny_model_dir, capsys):
    broken = tmp_path / "broken-model"
    broken.mkdir()
    for item in tiny_model_dir.iterdir():
        (broken / item.name).write_bytes(item.read_bytes())
    (broken / "model.safetensors").write_bytes(b"\xff" * 1000)
    code, errors = run_main(eval_args(broken, tmp_path / "runs", "--data.init_args.path",
                                      str(ROOT / "tests/data/fixtures/triviaqa_native_rows.jsonl")), capsys)
    assert code == 2 and len(errors) == 1
    assert errors[0].startswith(f"error: model spec '{broken}': model.safetensors in {broken} could not be read (")
    assert errors[0].endswith("the file is corrupt or truncated: save or download the model again")


def test_a_corrupt_checkpoint_is_named(tmp_path, tiny_model_dir, capsys):
    ckpt = tmp_path / "last.ckpt"
    ckpt.write_bytes(b"\x80\x02garbage" * 50)
    code, errors = run_main(eval_args(tiny_model_dir, tmp_path / "runs", "--data.init_args.path",
                                      str(ROOT / "tests/data/fixtures/triviaqa_native_rows.jsonl"), "--ckpt_path",
                                      str(ckpt)), capsys)
    assert (code, errors) == (2, [(f"error: checkpoint {ckpt} is not a readable PyTorch checkpoint (corrupt or "
                                  f"truncated); resume from another one, e.g. an earlier file in {tmp_path}")])


def test_samples_are_written_before_the_report_step_that_can_fail(tmp_path, tiny_model_dir, capsys, monkeypatch):
    from metalight.methods.base import EvalModule

    def broken(self):
        raise RuntimeError("report settings failed")

    monkeypatch.setattr(EvalModule, "report_settings", broken)
    with pytest.raises(RuntimeError, match="report settings failed"):
        run_main(eval_args(tiny_model_dir, tmp_path, "--data.init_args.path",
                           str(ROOT / "tests/data/fixtures/triviaqa_native_rows.jsonl")), capsys)
    samples = tmp_path / "eval-triviaqa" / "version_0" / "samples" / "val.jsonl"
    assert len(samples.read_text().splitlines()) == 2  # the generated answers survived the failure
