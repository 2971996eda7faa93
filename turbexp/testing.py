"""A pytest plugin for plugin authors: a private turbexp folder, a tiny campaign, a runner.

Installed with turbexp (entry point ``pytest11``), so a plugin package's tests can use
these fixtures (``turbexp_folder``, ``turbexp_project``, ``run_turbexp``) without
importing anything::

    def test_my_features_run(turbexp_project, run_turbexp):
        experiment = turbexp_project.experiment(features={"plugin": "my_features"})
        result = run_turbexp("run", str(experiment), "--no-progress")
        assert result.returncode == 0, result.stderr

Helpers: :func:`turbexp_command` (the command in a subprocess), :func:`write` and
:func:`fake_distribution` (a one-module plugin package installed into a folder, for a
test that needs a second plugin beside the one it tests).

Everything happens in the test's temporary folder: a SQLite MLflow store (its real
database backend), the Optuna journal and the simulation cache. The tiny campaign has
six 16³ boxes, simulated by the embedded solver in a few seconds.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

TINY_CAMPAIGN: dict[str, Any] = {
    "name": "tiny",
    "preset": "reference",
    "grid": 16,
    "seed": 3,
    "groups": [{"label": "kolmogorov", "index": 3.6666667, "count": 3},
               {"label": "burgers", "index": 4.0, "count": 3}],
}
"""Six 16³ boxes, three of each class: the smallest campaign a classifier can split."""

TINY_EXPERIMENT: dict[str, Any] = {
    "name": "tiny",
    "data": {"campaign": "../sims/tiny.yaml", "images": {"size": 8, "cuts": 4, "flips": 2},
             "split": {"train": 0.4, "test": 0.3, "holdout": 0.3, "seed": 0}},
    "task": {"kind": "classify", "classes": {"kolmogorov": 3.6666667, "burgers": 4.0}},
    "features": {"plugin": "hog", "orientations": 6, "cells": 2},
    "estimator": {"plugin": "svm"},
    "tune": {"trials": 1, "seed": 0, "defaults": False},
    "evaluate": {"reports": ["roc"]},
}
"""An experiment on the tiny campaign; :meth:`TurbexpProject.experiment` changes any part."""


@dataclass(frozen=True)
class TurbexpProject:
    """A project folder with ``sims/tiny.yaml``, and its own store, journal and cache."""

    root: Path
    tracking_uri: str

    @property
    def campaign(self) -> Path:
        return self.root / "sims" / "tiny.yaml"

    def experiment(self, name: str = "tiny", **sections: Any) -> Path:
        """Write ``experiments/NAME.yaml``: :data:`TINY_EXPERIMENT` with the given top-level
        sections replaced (``features={"plugin": "mine"}``, ``task={...}``)."""
        content = {**TINY_EXPERIMENT, "name": name, **sections}
        path = self.root / "experiments" / f"{name}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(content, sort_keys=False))
        return path


TEST_COLUMNS = 160
"""The width the commands' tables are drawn at in tests (``COLUMNS``), whatever terminal the
tests run in, or none: a worker of pytest-xdist has none, a test run from a shell has it."""


def pytest_configure(config: pytest.Config) -> None:
    """Every test, and every command it runs, sees the same terminal width (a test of another
    width sets its own ``COLUMNS``)."""
    os.environ["COLUMNS"] = str(TEST_COLUMNS)


@pytest.fixture
def turbexp_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The test's empty folder as the working directory, with its own SQLite MLflow store,
    TURBEXP_HOME (journal and cache) and one worker process; the plugin registry is
    reloaded, so plugins put on PYTHONPATH by the test are found."""
    import mlflow

    from turbexp.plugins import registry

    tracking_uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking_uri)
    monkeypatch.setenv("TURBEXP_HOME", str(tmp_path / ".turbexp"))
    monkeypatch.setenv("TURBEXP_JOBS", "1")
    monkeypatch.delenv("TURBEXP_CACHE", raising=False)
    monkeypatch.delenv("MLFLOW_EXPERIMENT_NAME", raising=False)
    mlflow.set_tracking_uri(tracking_uri)
    registry.cache_clear()
    yield tmp_path
    registry.cache_clear()
    mlflow.set_tracking_uri(None)


@pytest.fixture
def turbexp_project(turbexp_folder: Path) -> TurbexpProject:
    """:func:`turbexp_folder` with the tiny campaign in ``sims/tiny.yaml``."""
    project = TurbexpProject(turbexp_folder, os.environ["MLFLOW_TRACKING_URI"])
    project.campaign.parent.mkdir(parents=True, exist_ok=True)
    project.campaign.write_text(yaml.safe_dump(TINY_CAMPAIGN, sort_keys=False))
    return project


def write(path: Path, text: str) -> Path:
    """Write ``text``, dedented, to ``path`` (its folders made); returns ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip())
    return path


def fake_distribution(site: Path, name: str, entry_point: str, source: str,
                      version: str = "0.1") -> Path:
    """Install, for real, a one-module distribution ``name`` whose module (``source``)
    registers the entry point ``entry_point`` in the ``turbexp`` group, into the folder
    ``site``; put it on ``sys.path`` (``monkeypatch.syspath_prepend``) or PYTHONPATH and
    reload the registry to use it."""
    module = name.replace("-", "_")
    dist = site / f"{module}-{version}.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    (dist / "entry_points.txt").write_text(f"[turbexp]\n{entry_point} = {module}\n")
    (site / f"{module}.py").write_text(textwrap.dedent(source))
    return site


def turbexp_command(*args: str, cwd: Path, env: dict[str, str] | None = None,
                    timeout: float = 600) -> subprocess.CompletedProcess:
    """The real ``turbexp`` command in a subprocess in ``cwd``, this environment plus
    ``env``; stdout and stderr captured as text."""
    return subprocess.run([sys.executable, "-m", "turbexp.cli", *args], cwd=cwd,
                          env={**os.environ, **(env or {})}, capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture
def run_turbexp(turbexp_project: TurbexpProject
                ) -> Callable[..., subprocess.CompletedProcess]:
    """``run_turbexp(*args, env={...})``: :func:`turbexp_command` in the project folder,
    with its store."""
    def run(*args: str, env: dict[str, str] | None = None,
            timeout: float = 600) -> subprocess.CompletedProcess:
        return turbexp_command(*args, cwd=turbexp_project.root, env=env, timeout=timeout)

    return run
