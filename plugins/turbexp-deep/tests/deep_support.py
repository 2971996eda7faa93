"""Tiny data for the deep-learning tests: a fast fake AMR simulator and experiment files.

``fake_amr`` makes Gaussian random fields whose slope follows the index, with
a blocky "refinement" pattern covering a fraction of each map that grows with
the index; that fraction is stored as ``refined_fraction`` in each
simulation's metadata, like the RAMSES simulator's.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import mlflow
import pytest

from turbexp.experiment import plan_experiment
from turbexp.paths import cache_dir
from turbexp.plugins import registry
from turbexp.runner import RunSummary, run_experiment
from turbexp.store import SimulationStore
from turbexp.testing import fake_distribution, write

FAKE_AMR = '''
import numpy as np
from turbexp import hookimpl
from turbexp.plugin_types import SimulationResult, Simulator


class FakeAmr(Simulator):
    name = "fake_amr"

    def simulate(self, request, params):
        rng = np.random.default_rng(request.seed)
        n = request.grid
        k = np.hypot(np.fft.fftfreq(n)[:, None], np.fft.fftfreq(n)[None, :])
        k[0, 0] = np.inf
        amplitude = k ** (-(request.index - 1.0) / 2)
        refined = float(0.15 + 0.5 * (request.index > 3.8) + 0.2 * rng.random())
        maps = []
        for _ in range(3):
            field = np.real(np.fft.ifft2(np.fft.fft2(rng.standard_normal((n, n))) * amplitude))
            blocks = np.kron(rng.random((n // 4, n // 4)) < refined, np.ones((4, 4)))
            maps.append(1e-3 * np.exp(0.5 * field / field.std() + 0.3 * blocks))
        return SimulationResult(np.stack(maps),
                                metadata={"refined_fraction": refined, "code": "fake"})


@hookimpl
def register_simulators(register):
    register(FakeAmr)
'''

CLASSES = "task: {kind: classify, classes: {kolmogorov: 3.6666667, burgers: 4.0}}"

CAMPAIGN = """
name: amr
simulator: fake_amr
grid: 16
seed: 5
groups:
  - {label: kolmogorov, index: 3.6666667, count: 4}
  - {label: burgers, index: 4.0, count: 4}
"""

SPREAD = """
name: amr-spread
simulator: fake_amr
grid: 16
seed: 6
groups:
  - {index: {low: 3.0, high: 4.5}, count: 8}
"""

# a small, quick network: 16×16 images, two conv blocks, few epochs
SMALL_CNN = ("conv_layers: 2, filters: 4, dense_units: 16, epochs: 3, batch_size: 8, "
             "patience: 2, augment: none")


def experiment(name: str, campaign: str, task: str, features: str, estimator: str,
               trials: int = 1, reports: str = "[]") -> str:
    return f"""
name: {name}
data:
  campaign: ../sims/{campaign}.yaml
  images: {{size: 16, cuts: 1, flips: 2}}
  split: {{train: 0.5, test: 0.25, holdout: 0.25, seed: 0}}
{task}
features: {features}
estimator: {estimator}
tune: {{trials: {trials}, seed: 0, defaults: false}}
evaluate:
  reports: {reports}
"""


@dataclass
class Store:
    """A working folder with its MLflow store, turbexp home and fake simulator."""

    root: Path

    @property
    def tracking_uri(self) -> str:
        return f"sqlite:///{self.root / 'mlflow.db'}"

    def use(self, mp: pytest.MonkeyPatch) -> None:
        """Point MLflow, turbexp and the plugin registry at this folder."""
        mp.chdir(self.root)
        mp.setenv("MLFLOW_TRACKING_URI", self.tracking_uri)
        mp.setenv("TURBEXP_HOME", str(self.root / ".turbexp"))
        mp.delenv("TURBEXP_CACHE", raising=False)
        mp.delenv("MLFLOW_EXPERIMENT_NAME", raising=False)
        mp.setenv("TURBEXP_JOBS", "1")
        mp.syspath_prepend(str(self.root / "site"))
        mlflow.set_tracking_uri(self.tracking_uri)
        registry.cache_clear()

    def run(self, text: str) -> RunSummary:
        """Write an experiment file and run it in this process."""
        path = write(self.root / "experiments" / "run.yaml", text)
        return run_experiment(plan_experiment(path), SimulationStore(cache_dir()),
                              show_progress=False)


def make_store(root: Path) -> Store:
    root.mkdir(parents=True, exist_ok=True)
    if not (root / "site").exists():
        fake_distribution(root / "site", "turbexp-fake-amr", "fake_amr", FAKE_AMR)
    write(root / "sims" / "amr.yaml", CAMPAIGN)
    write(root / "sims" / "amr-spread.yaml", SPREAD)
    return Store(root)


def restore_tracking() -> None:
    """Forget the store's plugins and tracking URI (as the ``workdir`` fixture does)."""
    registry.cache_clear()
    mlflow.set_tracking_uri(None)
