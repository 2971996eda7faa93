"""Feature plugins that ask for log10 column density instead of standardised images."""

from __future__ import annotations

import csv
import importlib.metadata as md
import sys
from pathlib import Path

import mlflow
import numpy as np
import pytest
from astropy.io import fits
from conftest import fake_distribution, turbexp_cli
from mlflow.tracking import MlflowClient

from turbexp import tracking
from turbexp.campaign import plan_campaign
from turbexp.cli import main
from turbexp.images import images_from_maps, standardise
from turbexp.maps import MEAN_PARTICLE_MASS_AMU
from turbexp.paths import cache_dir
from turbexp.plugins import load_registry
from turbexp.spec import ImagesSpec
from turbexp.store import SimulationStore
from turbexp.testing import TINY_EXPERIMENT, TurbexpProject

COLUMN_STATS = '''
import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin

import turbexp
from turbexp.api import FeatureExtractor


class ColumnStatistics(BaseEstimator, TransformerMixin):
    """Each image's mean and standard deviation; remembers the mean of what it was fitted on."""

    def fit(self, X, y=None):
        self.fitted_mean_ = float(np.mean(X))
        return self

    def transform(self, X):
        X = np.asarray(X, dtype=np.float64)
        return np.stack([X.mean(axis=(1, 2)), X.std(axis=(1, 2))], axis=1)


class ColumnStats(FeatureExtractor):
    name = "column_stats"
    inputs = "log_column_density"

    def build(self, params):
        return ColumnStatistics()


@turbexp.hookimpl
def register_features(register):
    register(ColumnStats)
'''


def test_log_column_density_images_are_the_maps_and_standardised_ones_unchanged() -> None:
    rng = np.random.default_rng(0)
    log_maps = -2.0 + 0.1 * rng.normal(size=(3, 8, 8))
    whole = ImagesSpec(size=8, cuts=1, flips=1)
    physical = images_from_maps(log_maps, whole, "log_column_density")
    assert physical.dtype == np.float32
    np.testing.assert_array_equal(physical, log_maps.astype(np.float32))
    standardised = images_from_maps(log_maps, whole)
    np.testing.assert_array_equal(standardised, np.stack([standardise(m) for m in log_maps]))


def test_a_plugin_with_unknown_inputs_fails_to_register(tmp_path: Path) -> None:
    source = COLUMN_STATS.replace('inputs = "log_column_density"', 'inputs = "physical"')
    site = fake_distribution(tmp_path / "site", "turbexp-odd", "odd", source)
    sys.path.insert(0, str(site))
    try:
        found = load_registry([ep for dist in md.distributions(path=[str(site)])
                               for ep in dist.entry_points if ep.group == "turbexp"])
    finally:
        sys.path.remove(str(site))
    assert "column_stats" not in found.names("features")
    [failure] = found.failures
    assert "ColumnStats.inputs is 'physical'" in failure.error
    assert "standardised, log_column_density" in failure.error


def _write_map(path: Path, data: np.ndarray, unit: str | None) -> Path:
    header = fits.Header()
    if unit is not None:
        header["BUNIT"] = unit
    path.parent.mkdir(parents=True, exist_ok=True)
    fits.PrimaryHDU(data, header=header).writeto(path)
    return path


def _values(path: Path) -> list[float]:
    with open(path, newline="") as handle:
        return [float(row["prediction"]) for row in csv.DictReader(handle)]


@pytest.mark.slow
def test_a_model_on_log_column_density_trains_and_predicts_in_physical_units(
        turbexp_project: TurbexpProject, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    workdir = turbexp_project.root
    site = fake_distribution(workdir / "site", "turbexp-columnstats", "columnstats",
                             COLUMN_STATS)
    env = {"PYTHONPATH": str(site)}
    experiment = turbexp_project.experiment(
        "column-stats", features={"plugin": "column_stats"}, estimator={"plugin": "logistic"},
        data={**TINY_EXPERIMENT["data"], "images": {"size": 8, "cuts": 4, "flips": 1}},
        evaluate={"reports": []})
    result = turbexp_cli("run", str(experiment), "--no-progress", cwd=workdir, env=env)
    assert result.returncode == 0, result.stderr

    [run] = MlflowClient().search_runs(
        [mlflow.get_experiment_by_name("turbexp").experiment_id],
        filter_string="tags.`turbexp.role` = 'experiment'")
    assert run.data.tags[tracking.INPUTS] == "log_column_density"
    monkeypatch.syspath_prepend(str(site))
    pipeline = tracking.load_pipeline(tracking.run_model_uri(run))
    # what it was fitted on is log10 N of the campaign's maps in g/cm², not zero-mean images
    store = SimulationStore(cache_dir())
    maps = [np.log10(store.get(s.key).column_density)
            for s in plan_campaign(workdir / "sims" / "tiny.yaml").simulations]
    fitted = pipeline.named_steps["features"].fitted_mean_
    assert abs(fitted - np.mean(maps)) < 0.02, (fitted, np.mean(maps))
    assert abs(np.mean(maps)) > 0.5  # so a standardised image's mean (0) would fail

    # predict: a map in cm⁻² is converted to g/cm² (the same answers as in g/cm²) ...
    density = np.exp(0.1 * np.random.default_rng(1).normal(size=(16, 16))) * 10 ** np.mean(maps)
    particle_g = MEAN_PARTICLE_MASS_AMU * 1.66053906892e-24
    _write_map(workdir / "maps" / "grams.fits", density, "g/cm2")
    _write_map(workdir / "maps" / "number.fits", density / particle_g, "cm-2")
    uri = tracking.run_model_uri(run)
    for name in ("grams", "number"):
        main(["predict", uri, f"maps/{name}.fits", "--ignore-scale", "--out", f"out/{name}"])
    grams = _values(workdir / "out" / "grams" / "predictions.csv")
    number = _values(workdir / "out" / "number" / "predictions.csv")
    np.testing.assert_allclose(number, grams, rtol=1e-5)
    # ... and one without a unit is refused, nothing written
    _write_map(workdir / "maps" / "bare.fits", density, None)
    with pytest.raises(SystemExit) as refused:
        main(["predict", uri, "maps/bare.fits", "--ignore-scale", "--out", "out/bare"])
    assert refused.value.code == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "maps/bare.fits: BUNIT: the model reads log10 column density in g/cm2" in err, err
    assert not (workdir / "out" / "bare").exists()
