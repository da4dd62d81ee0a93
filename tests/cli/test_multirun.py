"""Cross-configuration sweeps: the spec is validated, every entry is a normal run, one table comes out."""

import json
from pathlib import Path

import pytest

from metalight.cli import main as cli_main
from metalight.cli.evaluate import main
from metalight.cli.multirun import SweepSpec
from metalight.errors import ConfigError
from tests.methods.evaluators.conftest import trivia_data_args, trivia_files  # noqa: F401  (fixture)

ROOT = Path(__file__).resolve().parents[2]
SWEEPS = sorted((ROOT / "configs" / "sweeps").glob("*.yaml"))


def test_sweep_over_fanoutqa_and_triviaqa_gives_one_table(tmp_path, tiny_model_dir, trivia_files, capsys):  # noqa: F811
    spec = tmp_path / "sweep.yaml"
    spec.write_text(
        json.dumps(
            {
                "name": "gen",
                "base": "configs/eval/fanoutqa.yaml",
                "args": [
                    "--model.init_args.evaluation.max_new_tokens",
                    "2",
                    "--report.plots",
                    "false",
                    "--trainer.enable_progress_bar",
                    "false",
                ],
                "entries": [
                    {"name": "fanoutqa", "args": ["--data.init_args.max_samples.val", "3"]},
                    {
                        "name": "triviaqa-es-prompts",
                        "args": [
                            *trivia_data_args(trivia_files),
                            "--model.init_args.evaluation.language",
                            "es",
                        ],
                    },
                    {"name": "broken", "args": ["--data.init_args.path", str(tmp_path / "missing.json")]},
                ],
            }
        )
    )
    code = main(
        [
            "sweep",
            str(spec),
            "--model.init_args.model",
            str(tiny_model_dir),
            "--trainer.logger.init_args.save_dir",
            str(tmp_path / "runs"),
        ]
    )
    assert code == 1  # one entry failed; the others still ran
    summary = json.loads((tmp_path / "runs" / "gen" / "summary.json").read_text())
    rows = {row["entry"]: row for row in summary["rows"]}
    assert rows["fanoutqa"]["n"] == 3 and "FanOutQASingleHopDataModule" in rows["fanoutqa"]["dataset"]
    assert rows["triviaqa-es-prompts"]["n"] == 6 and rows["triviaqa-es-prompts"]["language"] == "es"
    assert "failed" in rows["broken"]["error"]
    assert Path(rows["fanoutqa"]["run"]) == tmp_path / "runs" / "gen" / "fanoutqa" / "version_0"
    table = (tmp_path / "runs" / "gen" / "summary.md").read_text()
    assert table.startswith("| entry | dataset | language | n | accuracy | AUROC₂ | PRR | d′₂ |")
    assert "| triviaqa-es-prompts |" in table and "| broken | failed:" in table
    assert "| fanoutqa |" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ({"name": "x", "base": "b.yaml"}, "missing key 'entries'"),
        ({"name": "x", "base": "b.yaml", "entries": [{"args": []}]}, r"entries\[0\] needs a 'name'"),
        ({"name": "x", "base": "b.yaml", "entries": [{"name": "a"}, {"name": "a"}]}, "unique"),
        (
            {"name": "x", "base": "b.yaml", "entries": [{"name": "a", "argz": []}]},
            "only 'name' and a list 'args'",
        ),
        ({"name": "x", "base": "b.yaml", "entries": [{"name": "a"}], "extra": 1}, "unknown key"),
    ],
)
def test_sweep_spec_errors_name_the_key(tmp_path, content, message):
    path = tmp_path / "s.yaml"
    path.write_text(json.dumps(content))
    with pytest.raises(ConfigError, match=message):
        SweepSpec.load(path)


@pytest.mark.parametrize("path", SWEEPS, ids=lambda p: p.name)
def test_every_shipped_sweep_entry_parses(path, capsys):
    spec = SweepSpec.load(path)
    for entry in spec.entries:
        with pytest.raises(SystemExit) as done:
            cli_main(
                ["validate", "--config", str(ROOT / spec.base), *spec.args, *entry.args, "--print_config"]
            )
        assert done.value.code in (0, None), entry.name
    assert "class_path" in capsys.readouterr().out
