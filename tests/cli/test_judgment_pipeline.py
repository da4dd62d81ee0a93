"""The three-phase pipeline runs end to end, and a stopped pipeline resumes at the phase and epoch it
stopped at (state file + epoch checkpoints)."""

import json

import pytest

from metalight.cli.judgment_pipeline import KnowThyselfPipeline, PipelineSettings
from metalight.io import read_jsonl
from metalight.methods.judgment.loop import JudgmentLoop

TINY = [
    "--data.init_args.source.init_args.max_samples",
    '{"train": 4, "val": 2}',
    "--data.init_args.batch_size",
    "2",
    "--trainer.callbacks.init_args.answers.max_new_tokens",
    "3",
    "--trainer.callbacks.init_args.judgment.max_new_tokens",
    "3",
]


def test_pipeline_resumes_at_the_phase_and_epoch_where_it_stopped(tmp_path, tiny_model_dir, monkeypatch):
    calls = []
    original = JudgmentLoop.run_round

    def tracked_round(self, trainer, pl_module, epoch):
        phase = "phase1" if "phase1" in str(trainer.log_dir) else "phase3"
        calls.append((phase, epoch))
        if (phase, epoch) == ("phase1", 2) and calls.count(("phase1", 2)) == 1:
            raise RuntimeError("simulated stop in phase 1, epoch 2")
        return original(self, trainer, pl_module, epoch)

    monkeypatch.setattr(JudgmentLoop, "run_round", tracked_round)
    settings = PipelineSettings(
        out=str(tmp_path / "exp"),
        base_model=str(tiny_model_dir),
        judgment_config="configs/judgment/pipeline_quickstart.yaml",
        knowledge_config="configs/judgment/pipeline_knowledge_quickstart.yaml",
        judgment_args=[*TINY, "--trainer.max_epochs", "2"],
        knowledge_args=["--trainer.max_epochs", "1", "--data.init_args.batch_size", "2"],
    )
    with pytest.raises(RuntimeError, match="simulated stop"):
        KnowThyselfPipeline(settings).run()
    state = json.loads((tmp_path / "exp" / "pipeline_state.json").read_text())
    assert state["phases"]["phase1_judgment"]["status"] == "running"
    assert state["phases"]["phase1_judgment"]["epoch"] == 1  # one epoch finished and checkpointed
    assert state["phases"]["phase2_knowledge"]["status"] == "pending"

    final = KnowThyselfPipeline(settings).run()
    # rounds 0 and 1 of phase 1 ran once: the resumed run restored them and went on with epoch 2
    assert calls == [
        ("phase1", 0),
        ("phase1", 1),
        ("phase1", 2),
        ("phase1", 2),
        ("phase3", 0),
        ("phase3", 1),
        ("phase3", 2),
    ]
    phases = final["phases"]
    assert all(phases[p]["status"] == "done" for p in phases)
    assert [r["epoch"] for r in phases["phase1_judgment"]["judgment"]] == [0, 1, 2]
    knowledge_model = tmp_path / "exp" / "phase2_knowledge" / "run" / "hf"
    assert phases["phase3_judgment"]["model_in"] == str(knowledge_model)
    assert (knowledge_model / "model.safetensors").is_file()  # LoRA merged into base_with_knowledge
    assert (tmp_path / "exp" / "phase1_judgment" / "run" / "hf" / "adapter_config.json").is_file()
    rows = read_jsonl(tmp_path / "exp" / "phase2_knowledge" / "qa_training_data.jsonl")
    assert len(rows) == 4 and rows[0]["system"].startswith("You are a helpful assistant")

    calls.clear()
    KnowThyselfPipeline(settings).run()  # everything done: nothing runs again
    assert calls == []


def test_state_of_another_pipeline_is_refused(tmp_path):
    from metalight.errors import ConfigError

    KnowThyselfPipeline(PipelineSettings(out=str(tmp_path), base_model="a"))
    with pytest.raises(ConfigError, match="belongs to a pipeline with other settings"):
        KnowThyselfPipeline(PipelineSettings(out=str(tmp_path), base_model="b"))
