"""The main job's script end to end on the tiny model: baseline, training, the before / after table with
95% intervals and the verdict line."""

from scripts.quickstart import main


def test_quickstart_prints_intervals_and_a_verdict(tiny_model_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    root = __import__("pathlib").Path(__file__).resolve().parents[2]
    main(["--config", str(root / "configs/esma/demo.yaml"), "--model", str(tiny_model_dir), "--heldout", "12",
          "--steps", "1"])
    out = capsys.readouterr().out
    table = out[out.index("held-out (n=12)"):].splitlines()
    assert table[0].split()[-5:] == ["change", "[95%", "CI]", "paired", "p"]
    assert [line.split()[0] for line in table[1:5]] == ["d'type2", "AUROC2", "accuracy", "yes"]
    assert "significant" in table[5] or "undefined" in table[5]
    assert (tmp_path / "runs").is_dir()
