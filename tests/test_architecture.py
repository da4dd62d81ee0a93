"""Imports only point down: the import-linter contracts in pyproject.toml hold, they cover every method
package and shared method module, and no module outside metalight/metrics reaches a metric's private
function (docs/architecture.md)."""

import ast
import re
import tomllib
from pathlib import Path
from textwrap import dedent

import importlinter.api  # noqa: F401  (configures import-linter's settings for the use cases below)
import pytest
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


@pytest.mark.parametrize(
    "source,line",
    [
        ("def uses_high():\n    from layered.high import thing\n\n    return thing\n", 2),
        ("from typing import TYPE_CHECKING\n\nif TYPE_CHECKING:\n    from layered.high import thing\n", 4),
    ],
    ids=["inside a function", "under TYPE_CHECKING"],
)
def test_an_import_inside_a_function_or_for_type_checking_breaks_a_contract(
    tmp_path, monkeypatch, capsys, source, line
):
    package = tmp_path / "layered"
    (package / "low").mkdir(parents=True)
    (package / "high").mkdir()
    (package / "__init__.py").write_text("")
    (package / "high" / "__init__.py").write_text("")
    (package / "low" / "__init__.py").write_text(source)
    config = tmp_path / "pyproject.toml"
    config.write_text(
        dedent("""\
        [tool.importlinter]
        root_package = "layered"

        [[tool.importlinter.contracts]]
        name = "low knows nothing of high"
        type = "forbidden"
        source_modules = ["layered.low"]
        forbidden_modules = ["layered.high"]
        """)
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    kept, report = run_contracts(config, capsys)
    assert not kept
    assert f"layered.low -> layered.high (l.{line})" in report


# ---- the contracts cover what exists --------------------------------------------------------------------
def contract(name_start: str) -> dict:
    """The import-linter contract of pyproject.toml whose name starts with ``name_start``."""
    contracts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    (found,) = [c for c in contracts if c["name"].startswith(name_start)]
    return found


def method_packages() -> set[str]:
    """Every package under metalight/methods: one per method."""
    methods = ROOT / "metalight" / "methods"
    return {f"metalight.methods.{path.parent.name}" for path in methods.glob("*/__init__.py")}


def shared_method_modules() -> set[str]:
    """The modules directly in metalight/methods: what every method shares."""
    return {
        f"metalight.methods.{path.stem}"
        for path in (ROOT / "metalight" / "methods").glob("*.py")
        if path.stem != "__init__"
    }


def test_every_method_package_is_in_the_independence_contract():
    assert set(contract("Method packages are independent")["modules"]) == method_packages()


def test_the_shared_method_modules_import_no_method():
    kept = contract("The methods' shared parts")
    assert set(kept["source_modules"]) == shared_method_modules()
    assert set(kept["forbidden_modules"]) == method_packages()


def test_no_module_outside_metrics_imports_a_private_compute_function():
    """The metric registry is the one route to a metric's function: ``_..._compute`` stays inside
    metalight/metrics (the check also reads attribute access such as ``type2._dprime_type2_compute``)."""
    private = re.compile(r"^_\w+_compute$")
    offenders = []
    paths = [path for folder in ("metalight", "scripts", "tests") for path in (ROOT / folder).rglob("*.py")]
    for path in paths:
        if (ROOT / "metalight" / "metrics") in path.parents:
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.ImportFrom)
                else [node.attr]
                if isinstance(node, ast.Attribute)
                else []
            )
            offenders += [
                f"{path.relative_to(ROOT)}:{node.lineno} {name}" for name in names if private.match(name)
            ]
    assert not offenders, offenders
