"""The realism report: simulated maps against FITS maps (or mock observations)."""

from __future__ import annotations

from pathlib import Path

import mlflow
import numpy as np
import pytest
from astropy.io import fits
from conftest import TINY_CAMPAIGN, turbexp_cli, write

EXPERIMENT = """
name: realism-{name}
data:
  campaign: ../sims/tiny.yaml
  images: {{size: 8, cuts: 4, flips: 2}}
  split: {{train: 0.4, test: 0.3, holdout: 0.3, seed: 0}}
task: {{kind: classify, classes: {{kolmogorov: 3.6666667, burgers: 4.0}}}}
features: {features}
estimator: {{plugin: logistic}}
tune: {{trials: 0}}
evaluate:
  reports:
    - {report}
"""


HOG = "{plugin: hog, orientations: 6, cells: 2}"


def _run(workdir: Path, name: str, report: str) -> dict[str, float]:
    write(workdir / "sims" / "tiny.yaml", TINY_CAMPAIGN)
    path = write(workdir / "experiments" / f"{name}.yaml",
                 EXPERIMENT.format(name=name, report=report, features=HOG))
    result = turbexp_cli("run", str(path), "--no-progress", cwd=workdir)
    assert result.returncode == 0, result.stderr
    runs = mlflow.search_runs(experiment_names=["turbexp"], output_format="list",
                              filter_string=f"tags.`turbexp.experiment` = 'realism-{name}' "
                                            "and tags.`turbexp.role` = 'experiment'")
    artifacts = mlflow.artifacts.list_artifacts(run_id=runs[0].info.run_id,
                                                artifact_path="reports")
    assert "reports/realism.png" in {a.path for a in artifacts}
    return runs[0].data.metrics


def test_striped_maps_are_told_apart_from_simulations(workdir: Path) -> None:
    """Maps of parallel stripes have every gradient in one direction, the turbulence has
    them in all: on HOG features the classifier separates them."""
    rng = np.random.default_rng(0)
    x = np.arange(40)
    for i in range(4):
        stripes = 0.3 * np.sin(2 * np.pi * (x + 3 * i) / 7)[None, :]
        data = 10 ** (21 + stripes + 0.02 * rng.standard_normal((40, 40)))
        data[:, :6] = np.nan  # a masked border: its tiles are left out
        header = fits.Header({"BUNIT": "cm-2"})
        fits.PrimaryHDU(data, header).writeto(workdir / f"cloud{i}.fits")
    metrics = _run(workdir, "stripes", "{plugin: realism, real: ['../cloud*.fits']}")
    assert metrics["realism_accuracy"] >= 0.9
    assert metrics["realism_roc_auc"] >= 0.9
    assert 0 <= metrics["realism_autoencoder_roc_auc"] <= 1
    assert metrics["realism_real_tiles"] == metrics["realism_simulated_images"] > 0


def test_mock_observations_of_the_same_maps_are_not_told_apart(workdir: Path) -> None:
    """The mock maps are the campaign's own maps, unchanged: the score is near chance."""
    metrics = _run(workdir, "same", "{plugin: realism, mock: {campaign: ../sims/tiny.yaml, "
                                    "beam: 0, noise: 0}}")
    assert metrics["realism_accuracy"] <= 0.7


def test_realism_needs_one_source(workdir: Path) -> None:
    write(workdir / "sims" / "tiny.yaml", TINY_CAMPAIGN)
    path = write(workdir / "experiments" / "bad.yaml",
                 EXPERIMENT.format(name="bad", report="{plugin: realism}", features=HOG))
    result = turbexp_cli("validate", str(path), cwd=workdir)
    assert result.returncode == 2
    assert "either real" in result.stderr and "bad.yaml" in result.stderr


@pytest.mark.parametrize("report", ["{plugin: realism, real: ['../none*.fits']}"])
def test_no_matching_fits_file_is_a_clear_report_failure(workdir: Path, report: str) -> None:
    """The report fails on its own (the run and its model stand), and fails the run in
    strict mode."""
    write(workdir / "sims" / "tiny.yaml", TINY_CAMPAIGN)
    path = write(workdir / "experiments" / "none.yaml",
                 EXPERIMENT.format(name="none", report=report, features=HOG))
    result = turbexp_cli("run", str(path), "--no-progress", cwd=workdir)
    assert result.returncode == 0, result.stderr
    assert "report 'realism' failed" in result.stderr
    assert "no FITS file matches" in result.stderr.replace("\n", " ")
    strict = turbexp_cli("run", str(path), "--no-progress", cwd=workdir,
                         env={"TURBEXP_STRICT_PLUGINS": "1"})
    assert strict.returncode == 2 and "no FITS file matches" in strict.stderr
