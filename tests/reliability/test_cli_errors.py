"""Errors a user can cause are one 'error:' line with exit code 2, naming the file / row / key and the fix."""

import gzip

import pytest

from tests.reliability.conftest import ROOT, eval_args, run_main


def _key_file(tmp_path):
    bad = tmp_path / "bad_key.yaml"
    bad.write_text("model:\n  init_args:\n    evaluation: {gradig: esma}\n")
    return ["--config", str(bad)]


CASES = {
    "misspelled nested key": (
        _key_file,
        (
            "error: unknown config key 'model.init_args.evaluation.gradig': "
            "metalight.methods.base.EvalModule's evaluation has no setting 'gradig'; check the "
            "spelling (add --print_config to see every valid key)"
        ),
    ),
    "misspelled class_path": (
        lambda tmp: ["--model.class_path", "metalight.methods.base.EvalModul"],
        (
            "error: config key 'model.class_path': cannot import 'metalight.methods.base.EvalModul' "
            "(module 'metalight.methods.base' has no attribute 'EvalModul'); check the spelling of "
            "the module and class"
        ),
    ),
}


@pytest.mark.parametrize("case", CASES)
def test_config_mistakes_name_the_key(case, tmp_path, tiny_model_dir, capsys):
    extra, expected = CASES[case]
    code, errors = run_main(
        eval_args(
            tiny_model_dir,
            tmp_path,
            "--data.init_args.path",
            str(ROOT / "tests/data/fixtures/triviaqa_native_rows.jsonl"),
            *extra(tmp_path),
        ),
        capsys,
    )
    assert (code, errors) == (2, [expected])


def test_a_misspelled_optimizer_argument_names_the_optimizer_key(tmp_path, capsys):
    code, errors = run_main(
        [
            "fit",
            "--config",
            str(ROOT / "configs/esma/quickstart.yaml"),
            "--model.init_args.optimizer.init_args.lrr",
            "0.1",
        ],
        capsys,
    )
    assert (code, errors) == (
        2,
        [
            (
                "error: unknown config key 'model.init_args.optimizer.init_args.lrr': "
                "torch.optim.SGD has no argument 'lrr'; check the spelling (add --print_config to "
                "see every valid key)"
            )
        ],
    )


def _not_utf8(tmp_path):
    path = tmp_path / "latin1.jsonl"
    good = (ROOT / "tests/data/fixtures/triviaqa_native_rows.jsonl").read_bytes()
    path.write_bytes(
        good + '{"question": "café?", "question_id": "x", "answer": {"aliases": ["a"]}}\n'.encode("latin-1")
    )
    return path, f"error: {path}:3: not UTF-8 text (invalid continuation byte); re-save the file as UTF-8"


def _truncated_gzip(tmp_path):
    path = tmp_path / "cut.jsonl.gz"
    path.write_bytes(
        gzip.compress((ROOT / "tests/data/fixtures/triviaqa_native_rows.jsonl").read_bytes())[:60]
    )
    return path, (
        f"error: {path}:1: corrupt or truncated gzip file (Compressed file ended before the "
        f"end-of-stream marker was reached); download or compress it again"
    )


@pytest.mark.parametrize("make", [_not_utf8, _truncated_gzip], ids=["not-utf8", "truncated-gzip"])
def test_data_file_faults_name_file_and_line(make, tmp_path, tiny_model_dir, capsys):
    path, expected = make(tmp_path)
    code, errors = run_main(
        eval_args(tiny_model_dir, tmp_path / "runs", "--data.init_args.path", str(path)), capsys
    )
    assert (code, errors) == (2, [expected])


def test_a_corrupt_model_file_is_named(tmp_path, tiny_model_dir, capsys):
    broken = tmp_path / "broken-model"
    broken.mkdir()
    for item in tiny_model_dir.iterdir():
        (broken / item.name).write_bytes(item.read_bytes())
    (broken / "model.safetensors").write_bytes(b"\xff" * 1000)
    code, errors = run_main(
        eval_args(
            broken,
            tmp_path / "runs",
            "--data.init_args.path",
            str(ROOT / "tests/data/fixtures/triviaqa_native_rows.jsonl"),
        ),
        capsys,
    )
    assert code == 2 and len(errors) == 1
    assert errors[0].startswith(
        f"error: model spec '{broken}': model.safetensors in {broken} could not be read ("
    )
    assert errors[0].endswith("the file is corrupt or truncated: save or download the model again")


def test_a_corrupt_checkpoint_is_named(tmp_path, tiny_model_dir, capsys):
    ckpt = tmp_path / "last.ckpt"
    ckpt.write_bytes(b"\x80\x02garbage" * 50)
    code, errors = run_main(
        eval_args(
            tiny_model_dir,
            tmp_path / "runs",
            "--data.init_args.path",
            str(ROOT / "tests/data/fixtures/triviaqa_native_rows.jsonl"),
            "--ckpt_path",
            str(ckpt),
        ),
        capsys,
    )
    assert (code, errors) == (
        2,
        [
            (
                f"error: checkpoint {ckpt} is not a readable PyTorch checkpoint (corrupt or "
                f"truncated); use another one, e.g. an earlier file in {tmp_path}"
            )
        ],
    )


def test_samples_are_written_before_the_report_step_that_can_fail(
    tmp_path, tiny_model_dir, capsys, monkeypatch
):
    from metalight.methods.base import EvalModule

    def broken(self):
        raise RuntimeError("report settings failed")

    monkeypatch.setattr(EvalModule, "report_settings", broken)
    with pytest.raises(RuntimeError, match="report settings failed"):
        run_main(
            eval_args(
                tiny_model_dir,
                tmp_path,
                "--data.init_args.path",
                str(ROOT / "tests/data/fixtures/triviaqa_native_rows.jsonl"),
            ),
            capsys,
        )
    samples = tmp_path / "eval-triviaqa" / "version_0" / "samples" / "val.jsonl"
    assert len(samples.read_text().splitlines()) == 2  # the generated answers survived the failure


# ---- issue 32, item 11: messages that lost the file, line, key or fix --------------------------------------
def _config(name: str, content: bytes):
    def make(tmp_path):
        path = tmp_path / name
        path.write_bytes(content)
        return path

    return make


MESSAGES = {
    "yaml syntax": (
        _config("flow.yaml", b"model:\n  init_args: {model: [a, b\n"),
        ["--config", "{path}"],
        "error: {path}:3:1: not valid YAML (expected ',' or ']', but got '<stream end>' while parsing a "
        "flow sequence); fix the brackets, quotes or indentation there",
    ),
    "json syntax": (
        _config("bad.json", b'{"model": {"init_args": {"model": "x",, "dtype": "float32"}}}\n'),
        ["--config", "{path}"],
        "error: {path}:1:39: not valid JSON (expected the node content, but found ',' while parsing a flow "
        "node); fix the brackets, quotes or indentation there",
    ),
    "empty config": (
        _config("empty.yaml", b"# nothing yet\n"),
        ["--config", "{path}"],
        "error: {path}: the config is empty (no settings); add settings or leave out --config {path}",
    ),
    "latin-1 config": (
        _config(
            "latin.yaml", "model:\n  init_args:\n    evaluation: {system_prompt: café}\n".encode("latin-1")
        ),
        ["--config", "{path}"],
        "error: {path}:3: not UTF-8 text (invalid continuation byte); re-save the config as UTF-8",
    ),
    "duplicate key": (
        _config("twice.yaml", b"trainer:\n  max_steps: 1\ntrainer:\n  max_steps: 2\n"),
        ["--config", "{path}"],
        "error: {path}:3: key 'trainer' is given twice in one mapping (first at line 1), and only the "
        "last would count; keep one",
    ),
    "misspelt key before the subcommand": (
        _config("typo.yaml", b"modle:\n  init_args: {model: x}\n"),
        ["--config", "{path}", "validate"],
        "error: {path}: key 'modle' is ignored in a config given before the subcommand "
        "(only fit:, validate:, test: sections are read there); "
        "give the file after the subcommand: python cli.py validate --config {path}",
    ),
    "misspelt key": (
        _config("typo.yaml", b"modle:\n  init_args: {model: x}\n"),
        ["--config", "{path}"],
        "error: unknown config key 'modle.init_args.model'; check the spelling (add --print_config to see "
        "every valid key)",
    ),
    "bad literal": (
        None,
        ["--model.init_args.evaluation.grading", "bad_lit"],
        "error: config key 'model.init_args.evaluation.grading' of metalight.methods.base.EvalModule: "
        "Expected a typing.Literal['esma', 'normalized', 'know_thyself', 'final']. Got value: bad_lit",
    ),
    "data path is a directory": (
        None,
        ["--data.init_args.path", "{tmp}"],
        "error: data path {tmp} is a directory, not a file; give one of its files (.jsonl, "
        ".json, .parquet, .csv, .jsonl.gz, .json.gz, .csv.gz) as `path:` (or a dict of files "
        "per split)",
    ),
    "every row malformed": (
        _config("broken.jsonl", b'{"question": 1}\n{"question": 2}\n'),
        ["--data.init_args.path", "{path}", "--data.init_args.strict", "false"],
        "error: TriviaQADataModule: the val split is empty (2 rows read, 2 skipped as malformed, "
        "first: {path}:1: field `question` must be a string, got int (schema: question: str, "
        "question_id: str, answer: {{value: str, aliases: [str], normalized_aliases: [str]}}); fix "
        "the row or set strict: false to skip such rows); check the data source, max_samples and "
        "the split fractions",
    ),
}


@pytest.mark.parametrize("case", MESSAGES)
def test_config_and_data_messages_name_the_place_and_the_fix(case, tmp_path, tiny_model_dir, capsys):
    make, extra, expected = MESSAGES[case]
    path = make(tmp_path) if make else None
    fill = {"path": path, "tmp": tmp_path}
    extra = [arg.format(**fill) for arg in extra]
    if "validate" in extra:  # a config given before the subcommand
        args = [*extra[: extra.index("validate")], *eval_args(tiny_model_dir, tmp_path / "runs")]
    else:
        args = [
            *eval_args(
                tiny_model_dir,
                tmp_path / "runs",
                "--data.init_args.path",
                str(ROOT / "tests/data/fixtures/triviaqa_native_rows.jsonl"),
            ),
            *extra,
        ]
    code, errors = run_main(args, capsys)
    assert (code, errors) == (2, [expected.format(**fill)])


def test_predict_says_which_commands_exist(capsys):
    code, errors = run_main(["predict", "--config", str(ROOT / "configs/eval/triviaqa.yaml")], capsys)
    assert (code, errors) == (
        2,
        ["error: argument subcommand: invalid choice: 'predict' (choose from 'fit', 'validate', 'test')"],
    )


def test_http_errors_say_how_many_attempts_and_keep_the_servers_explanation(chat_server):
    from metalight.api.chat_client import ChatClient, ChatEndpoint

    client = ChatClient(ChatEndpoint(chat_server.base_url, "m", api_key_env=None, max_retries=2, backoff_s=0))
    chat_server.error_body = b'{"error": {"message": "model \'m\' does not exist"}}'
    chat_server.script = ["404"]
    result = client.complete([{"role": "user", "content": "a"}])
    assert (result.ok, result.attempts, len(chat_server.requests)) == (False, 1, 1)
    assert result.error == (
        f'{chat_server.base_url}/chat/completions answered HTTP 404: {{"error": {{"message": '
        f"\"model 'm' does not exist\"}}}} (not retried: retrying does not change an HTTP 404)"
    )
    chat_server.error_body = b'{"error": {"message": "max_tokens must be at most 8192"}}'
    chat_server.script = ["400"]
    assert "max_tokens must be at most 8192" in client.complete([{"role": "user", "content": "b"}]).error
