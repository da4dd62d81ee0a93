"""MetaConf stage-1 targets: confidence = 10 x sampled accuracy, reflections from a writer, prompt-completion
rows that the parser (and the SFT data reader) accept; provided files (upstream ShareGPT, collected
outputs)."""

import json

import pytest

from metalight.data.records import QARecord
from metalight.errors import DataError
from metalight.methods.metaconf.judge import ChatBackend
from metalight.methods.metaconf.rewards import parse_response
from metalight.methods.metaconf.stage1_data import (
    Stage1Row,
    collect_targets,
    read_provided,
    sft_rows,
    write_reflections,
)


class Writer(ChatBackend):
    def __init__(self, replies):
        self.replies, self.asked = list(replies), []

    def complete_many(self, conversations):
        self.asked += conversations
        return [self.replies.pop(0) for _ in conversations]

    def describe(self):
        return {"backend": "scripted"}


def test_confidence_is_ten_times_the_sampled_accuracy(tiny, monkeypatch):
    model, tokenizer = tiny
    records = [QARecord("a", "Q1?", ["right"]), QARecord("b", "Q2?", ["right"])]
    replies = iter(
        [
            ["right", "wrong"],  # greedy answers of a, b
            ["right", "right", "no", "right", "no", "no", "no", "right"],
        ]
    )  # 4 samples each

    def scripted(model, tokenizer, prompts, decoding, max_input_tokens=128, num_return_sequences=1, **kw):
        texts = next(replies)
        assert len(texts) == len(prompts) * num_return_sequences
        return type("G", (), {"texts": texts})()

    monkeypatch.setattr("metalight.methods.metaconf.stage1_data.generate", scripted)
    rows = collect_targets(model, tokenizer, records, samples=4)
    assert [(r.answer, r.correct, r.confidence) for r in rows] == [("right", 1.0, 7.5), ("wrong", 0.0, 2.5)]


def test_collect_targets_runs_a_real_model(tiny):
    model, tokenizer = tiny
    rows = collect_targets(model, tokenizer, [QARecord("a", "Who?", ["x"])], samples=2, max_new_tokens=2)
    assert len(rows) == 1 and 0 <= rows[0].confidence <= 10 and rows[0].correct in (0.0, 1.0)


def test_reflections_are_written_and_failures_left_out():
    rows = [
        Stage1Row("a", "Who directed Avatar?", "James Cameron", 1.0, 8.0),
        Stage1Row("b", "Q?", "x", 0.0, 2.0),
    ]
    writer = Writer(["I recall the\n credits of this film.", None])
    kept, failed = write_reflections(rows, writer)
    assert (
        failed == 1
        and [r.id for r in kept] == ["a"]
        and kept[0].reflection == "I recall the credits of this film."
    )
    asked = writer.asked[0][0]["content"]
    assert "Who directed Avatar?" in asked and "James Cameron" in asked and "(0-10): 8" in asked
    assert "Objective score of the answer (0-10): 10" in asked
    (row,) = sft_rows(kept)
    assert "Question: Who directed Avatar?" in row["prompt"] and row["id"] == "a"
    (bare,) = sft_rows(kept, prompt="bare")  # upstream's stage-1 turns are the bare question
    assert bare["prompt"] == "Who directed Avatar?" and bare["completion"] == row["completion"]
    parsed = parse_response(row["completion"])
    assert (parsed.answer, parsed.reflection, parsed.confidence) == (
        "James Cameron",
        "I recall the credits of this film.",
        8.0,
    )


def test_rows_without_reflection_are_refused():
    with pytest.raises(DataError, match="no reflection"):
        sft_rows([Stage1Row("a", "Q?", "x", 0.0, 2.0)])


def test_provided_files_upstream_sharegpt_and_collected_outputs(tmp_path):
    path = tmp_path / "provided.jsonl"
    lines = [
        {
            "conversations": [
                {"from": "human", "value": "Tell me about X."},
                {"from": "gpt", "value": "Answer: X is Y\nSelf-reflection: I am unsure.\nConfidence: 3.6"},
            ]
        },
        {"question": "Q?", "answer": "A", "confidence": 7, "reflection": "Fine."},
    ]
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    ready, rows = read_provided(path)
    assert (
        ready[0]["prompt"] == "Tell me about X." and parse_response(ready[0]["completion"]).confidence == 3.6
    )
    assert rows == [Stage1Row(f"{path}:2", "Q?", "A", 0.7, 7.0, "Fine.")]
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"question": "Q?", "answer": "A", "confidence": 11}) + "\n")
    with pytest.raises(DataError, match=r"bad.jsonl:1: confidence must be a number in \[0, 10\]"):
        read_provided(bad)


def test_script_writes_reflections_through_an_endpoint(tmp_path, monkeypatch):
    from scripts.build_metaconf_sft import main
    from tests.api.conftest import ScriptedChatServer

    server = ScriptedChatServer()
    server.reply = lambda body: "I am not sure I remember this correctly."
    monkeypatch.setenv("WRITER_KEY", "sk-writer")
    src, out = tmp_path / "src.jsonl", tmp_path / "out.jsonl"
    src.write_text(
        json.dumps({"question": "Who?", "answer": "Me", "confidence": 4})
        + "\n"
        + json.dumps({"question": "Why?", "answer": "So", "confidence": 9, "reflection": "Known."})
        + "\n"
    )
    try:
        assert (
            main(
                [
                    "--input",
                    str(src),
                    "--out",
                    str(out),
                    "--base-url",
                    server.base_url,
                    "--api-model",
                    "w",
                    "--api-key-env",
                    "WRITER_KEY",
                ]
            )
            == 0
        )
    finally:
        server.close()
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(server.requests) == 1 and server.headers[0]["Authorization"] == "Bearer sk-writer"
    assert [parse_response(r["completion"]).reflection for r in rows] == [
        "I am not sure I remember this correctly.",
        "Known.",
    ]
    assert "sk-writer" not in out.read_text()
    assert main(["--input", str(tmp_path / "missing.jsonl"), "--out", str(out)]) == 2


def test_script_refuses_to_write_a_file_without_reflections(tmp_path, tiny_model_dir, capsys):
    """The tiny random model answers a chat prompt with whitespace: no reflection for any question."""
    from scripts.build_metaconf_sft import main

    out = tmp_path / "out.jsonl"
    assert (
        main(
            [
                "--out",
                str(out),
                "--model",
                str(tiny_model_dir),
                "--writer-model",
                str(tiny_model_dir),
                "--questions",
                "2",
                "--samples",
                "1",
                "--max-new-tokens",
                "2",
                "--writer-max-new-tokens",
                "2",
                "--threads",
                "1",
            ]
        )
        == 2
    )
    assert not out.exists()
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"error: the reflection writer ({tiny_model_dir}) gave no usable reflection for any of the 2 "
        f"questions, so {out} would be empty; give a writer model that follows instructions "
        f"(--writer-model) or an endpoint (--base-url)"
    )


def test_script_counts_must_be_positive(capsys):
    from scripts.build_metaconf_sft import main

    with pytest.raises(SystemExit) as exit_info:
        main(["--out", "x.jsonl", "--samples", "0"])
    assert exit_info.value.code == 2
    assert (
        capsys.readouterr().err.strip().splitlines()[-1].endswith("argument --samples: must be >= 1, got 0")
    )
