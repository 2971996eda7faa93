"""The import contracts of pyproject.toml hold, and they cover every built-in plugin."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

from conftest import ROOT

import turbexp.api


def _config() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_the_import_contracts_are_kept() -> None:
    linter = Path(sys.executable).parent / "lint-imports"
    result = subprocess.run([str(linter), "--no-cache"], cwd=ROOT, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_every_built_in_plugin_is_held_to_the_api_contract() -> None:
    config = _config()
    [contract] = [c for c in config["tool"]["importlinter"]["contracts"]
                  if c["name"] == "Plugins import turbexp.api only"]
    sources = contract["source_modules"]
    projects = [ROOT / "pyproject.toml", *sorted((ROOT / "plugins").glob("*/pyproject.toml"))]
    modules = [module for path in projects for module in
               tomllib.loads(path.read_text())["project"]["entry-points"]["turbexp"].values()]
    assert len(modules) > len(config["project"]["entry-points"]["turbexp"])
    for module in modules:
        assert any(module == s or module.startswith(f"{s}.") for s in sources), module


def test_the_api_exports_what_it_lists() -> None:
    for name in turbexp.api.__all__:
        assert getattr(turbexp.api, name) is not None, name
