"""The main job's script end to end on the tiny model: before (held-out testbed questions and the transfer
family), training, after; the per-level table, the before / after table with 95% intervals, the transfer line,
the verdict line and the per-level figure."""

from pathlib import Path

from scripts.quickstart import main

ROOT = Path(__file__).resolve().parents[2]


def test_quickstart_prints_levels_intervals_transfer_and_a_verdict(
    tiny_model_dir, tmp_path, monkeypatch, capsys
):
    monkeypatch.chdir(tmp_path)
    # The tiny random model answers no arithmetic right, so the AUROC reward would be undefined: train with a
    # reward that is defined on one class (any cli.py argument passes through).
    main(
        [
            "--config",
            str(ROOT / "configs/competence/demo.yaml"),
            "--model",
            str(tiny_model_dir),
            "--steps",
            "1",
            "--model.init_args.reward",
            "brier_alignment",
            "--model.init_args.population_size",
            "2",
            "--model.init_args.num_data_per_iteration",
            "4",
            "--model.init_args.evaluation.max_new_tokens",
            "2",
            "--data.init_args.per_level",
            "{train: 2, val: 1, test: 2}",
            "--trainer.enable_progress_bar",
            "false",
        ]
    )
    out = capsys.readouterr().out
    levels = out[out.index("level ") :].splitlines()
    assert levels[1].split()[:3] == ["arithmetic", "L1", "one-digit"] and "->" in levels[1]
    table = out[out.index("held-out (n=16)") :].splitlines()
    assert [line.split()[0] for line in table[1:5]] == [
        "d′₂",
        "AUROC₂",
        "accuracy",
        "yes",
    ]  # the registry's labels
    assert "transfer (spelling, never trained on" in out
    verdict = next(line for line in out.splitlines() if line.startswith("verdict: "))
    assert verdict.startswith("verdict: not shown")  # a random model learns nothing in one step
    (figure,) = (tmp_path / "runs" / "competence-demo").glob("version_*/levels.png")
    assert figure.stat().st_size > 10_000
