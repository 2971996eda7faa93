"""The observation model: a Gaussian beam in pc, the same for simulations at any
resolution and for observed maps, recorded with the model."""

from __future__ import annotations

from pathlib import Path

import mlflow
import numpy as np
import pytest
from conftest import TINY_CAMPAIGN, TINY_EXPERIMENT, turbexp_cli, write

from turbexp.observation import FWHM_PER_SIGMA, beam_sigma_pixels, observe
from turbexp.spec import ObservationSpec

BEAM = ObservationSpec(beam_fwhm_pc=0.5)


def _wave(n: int, box_pc: float = 10.0, waves: int = 8) -> np.ndarray:
    x = np.arange(n) * box_pc / n
    return np.exp(np.sin(2 * np.pi * waves * x / box_pc))[None, :, None] * np.ones((3, n, n))


def test_no_beam_is_the_identity() -> None:
    maps = _wave(16)
    assert observe(maps, 10 / 16, ObservationSpec()) is maps


def test_the_same_beam_in_pc_acts_the_same_at_every_resolution() -> None:
    coarse, fine = _wave(64), _wave(128)
    damp = [np.ptp(observe(m, 10 / len(m[0]), BEAM)[0, :, 0]) / np.ptp(m[0, :, 0])
            for m in (coarse, fine)]
    assert damp[0] < 0.9 and damp[0] == pytest.approx(damp[1], rel=0.02)
    # a periodic box keeps its mass
    assert observe(coarse, 10 / 64, BEAM).mean() == pytest.approx(coarse.mean())
    assert beam_sigma_pixels(0.5, 0.25) == pytest.approx(2 / FWHM_PER_SIGMA)


def test_masked_pixels_stay_masked_and_do_not_leak() -> None:
    rng = np.random.default_rng(0)
    data = np.exp(rng.normal(size=(32, 32)))
    holed = data.copy()
    holed[10:14, 10:14] = np.nan
    seen = observe(holed, 0.1, BEAM, periodic=False)
    assert np.isnan(seen[10:14, 10:14]).all() and np.isfinite(seen[~np.isnan(holed)]).all()
    # far from the hole the map is smoothed as if there were none
    whole = observe(data, 0.1, BEAM, periodic=False)
    np.testing.assert_allclose(seen[25:, 25:], whole[25:, 25:], rtol=1e-6)
    # with no periodic wrap, the edges do not see the opposite side
    step = np.ones((32, 32))
    step[:, 16:] = 10.0
    assert observe(step, 0.1, BEAM, periodic=False)[:, 0].max() == pytest.approx(1.0, abs=1e-6)


def test_a_run_records_its_beam_and_trains_on_smoothed_maps(workdir: Path) -> None:
    write(workdir / "sims" / "tiny.yaml", TINY_CAMPAIGN)
    experiment = TINY_EXPERIMENT.replace(
        "  split:", "  observation: {beam_fwhm_pc: 1.5}\n  split:").replace(
        "[roc, confusion_matrix, tsne]", "[]").replace("trials: 3", "trials: 1")
    path = write(workdir / "experiments" / "beam.yaml", experiment)
    result = turbexp_cli("run", str(path), "--no-progress", cwd=workdir)
    assert result.returncode == 0, result.stderr
    [run] = mlflow.search_runs(experiment_names=["turbexp"], output_format="list",
                               filter_string="tags.`turbexp.role` = 'experiment'")
    assert run.data.tags["turbexp.beam_fwhm_pc"] == "1.5"
    assert run.data.params["observation.beam_fwhm_pc"] == "1.5"
