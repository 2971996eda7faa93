"""Shared fixtures: every test works in its own folder with its own MLflow store and cache."""

from __future__ import annotations

from pathlib import Path

import pytest

from turbexp.testing import fake_distribution, turbexp_command, write  # noqa: F401  (tests import them from here)

ROOT = Path(__file__).resolve().parents[1]
# the example package's own tests need it installed: test_plugins runs them that way
collect_ignore = ["example_plugin"]
RAMSES_FIXTURES = ROOT.parent / "shared" / "fixtures" / "ramses"


@pytest.fixture
def workdir(turbexp_folder: Path) -> Path:
    """An empty working folder with a private SQLite MLflow store and turbexp home (the
    fixture turbexp.testing gives plugin packages)."""
    return turbexp_folder


TINY_CAMPAIGN = """
name: tiny
preset: reference
grid: 16
seed: 3
groups:
  - {label: kolmogorov, index: 3.6666667, count: 3}
  - {label: burgers, index: 4.0, count: 3}
"""

TINY_EXPERIMENT = """
name: tiny-hog-svm
data:
  campaign: ../sims/tiny.yaml
  images: {size: 8, cuts: 4, flips: 2}
  split: {train: 0.4, test: 0.3, holdout: 0.3, seed: 0}
task: {kind: classify, classes: {kolmogorov: 3.6666667, burgers: 4.0}}
features: {plugin: hog, orientations: 6, cells: 2}
estimator: {plugin: svm, C: {low: 0.1, high: 10, log: true}}
tune: {trials: 3, metric: roc_auc, seed: 0, defaults: false}
evaluate:
  reports: [roc, confusion_matrix, tsne]
"""


@pytest.fixture
def tiny(workdir: Path) -> Path:
    """A tiny campaign and experiment in the working folder; returns the experiment file."""
    write(workdir / "sims" / "tiny.yaml", TINY_CAMPAIGN)
    return write(workdir / "experiments" / "tiny.yaml", TINY_EXPERIMENT)


turbexp_cli = turbexp_command  # the real ``turbexp`` command in a subprocess
