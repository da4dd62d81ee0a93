"""What scripts read back from runs and write into docs: samples, TensorBoard scalars, a marked section."""

import json

import pytest

from metalight.errors import ConfigError
from metalight.report.runs import read_samples, read_scalars, replace_section

DOC = "# Results\n\n<!-- r:begin -->\nold\n<!-- r:end -->\n\nafter\n"


def test_a_marked_section_is_replaced_and_the_markers_stay(tmp_path):
    doc = tmp_path / "doc.md"
    doc.write_text(DOC)
    assert replace_section(doc, "<!-- r:begin -->", "<!-- r:end -->", "new\nlines\n")
    assert doc.read_text() == "# Results\n\n<!-- r:begin -->\nnew\nlines\n<!-- r:end -->\n\nafter\n"


def test_a_doc_without_the_markers_is_an_error_or_left_alone(tmp_path):
    doc = tmp_path / "doc.md"
    doc.write_text("no markers\n")
    with pytest.raises(ConfigError, match=r"doc.md has no <!-- x --> \.\.\. <!-- y --> section to fill"):
        replace_section(doc, "<!-- x -->", "<!-- y -->", "text")
    assert not replace_section(doc, "<!-- x -->", "<!-- y -->", "text", required=False)
    assert doc.read_text() == "no markers\n"


def test_samples_and_scalars_of_a_run(tmp_path):
    from torch.utils.tensorboard import SummaryWriter

    (tmp_path / "samples").mkdir()
    rows = [{"id": "a", "correct": True}, {"id": "b", "correct": False}]
    (tmp_path / "samples" / "val.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows) + "\n")
    samples = read_samples(tmp_path / "samples" / "val.jsonl")
    assert [(s.id, s.correct) for s in samples] == [("a", True), ("b", False)]
    with SummaryWriter(str(tmp_path)) as writer:
        for step, value in enumerate([0.5, 0.25]):
            writer.add_scalar("train/reward", value, step)
        writer.add_scalar("train/loss", 1.0, 0)
    logged = read_scalars(tmp_path, ("train/reward", "train/missing"))
    assert list(logged) == ["train/reward"]
    assert [(s.step, s.value) for s in logged["train/reward"]] == [(0, 0.5), (1, 0.25)]
    assert set(read_scalars(tmp_path)) == {"train/reward", "train/loss"}
