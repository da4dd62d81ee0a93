"""Imports only point down: the import-linter contracts in pyproject.toml hold (docs/architecture.md)."""

from pathlib import Path
from textwrap import dedent

import importlinter.api  # noqa: F401  (configures import-linter's settings for the use cases below)
from importlinter.application.use_cases import lint_imports

ROOT = Path(__file__).resolve().parents[1]


def run_contracts(config: Path, capsys) -> tuple[bool, str]:
    """Lint with the contracts in ``config`` (no cache); -> (all kept, the report as printed)."""
    kept = lint_imports(config_filename=str(config), cache_dir=None, no_logo=True)
    return kept, capsys.readouterr().out


def test_import_contracts_are_kept(capsys):
    kept, report = run_contracts(ROOT / "pyproject.toml", capsys)
    broken = report.find("Broken contracts")
    assert kept, report[broken:] if broken >= 0 else report


def test_an_import_inside_a_function_breaks_a_contract(tmp_path, monkeypatch, capsys):
    package = tmp_path / "layered"
    (package / "low").mkdir(parents=True)
    (package / "high").mkdir()
    (package / "__init__.py").write_text("")
    (package / "high" / "__init__.py").write_text("")
    (package / "low" / "__init__.py").write_text(
        "def uses_high():\n    from layered.high import thing\n\n    return thing\n")
    config = tmp_path / "pyproject.toml"
    config.write_text(dedent("""\
        [tool.importlinter]
        root_package = "layered"

        [[tool.importlinter.contracts]]
        name = "low knows nothing of high"
        type = "forbidden"
        source_modules = ["layered.low"]
        forbidden_modules = ["layered.high"]
        """))
    monkeypatch.syspath_prepend(str(tmp_path))
    kept, report = run_contracts(config, capsys)
    assert not kept
    assert "layered.low -> layered.high (l.2)" in report
