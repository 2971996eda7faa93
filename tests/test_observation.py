"""The observation model: a Gaussian beam in pc, the same for simulations at any
resolution and for observed maps, recorded with the model."""

from __future__ import annotations

from pathlib import Path

import mlflow
import numpy as np
import pytest
from conftest import TINY_CAMPAIGN, TINY_EXPERIMENT, turbexp_cli, write

from turbexp.campaign import run_campaign
from turbexp.experiment import plan_experiment
from turbexp.image_set import build_image_set
from turbexp.observation import (
    FWHM_PER_SIGMA,
    NOISE_FLOOR,
    beam_sigma_pixels,
    coarsened,
    noisy,
    observe,
    simulated,
    views,
)
from turbexp.spec import ObservationSpec
from turbexp.store import SimulationStore, content_hash

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
    assert run.data.params["observation.augment_beams_pc"] == "none"
    assert run.data.params["campaign.mach"] == "1.41"


def _power_above(log_map: np.ndarray, k_min: int) -> float:
    power = np.abs(np.fft.fft2(log_map - log_map.mean())) ** 2
    k = np.hypot(*np.meshgrid(np.fft.fftfreq(len(log_map)) * len(log_map),
                              np.fft.fftfreq(len(log_map)) * len(log_map)))
    return float(power[k >= k_min].sum() / power.sum())


def test_views_are_the_observed_maps_then_one_per_augmentation() -> None:
    rng = np.random.default_rng(1)
    maps = np.exp(rng.normal(size=(3, 32, 32)))
    spec = ObservationSpec(beam_fwhm_pc=0.2, augment_beams_pc=[0.8],
                           augment_pixel_factors=[4])
    seen = views(maps, 10 / 32, spec)
    assert spec.views == len(seen) == 3
    np.testing.assert_allclose(seen[0], np.log10(observe(maps, 10 / 32, spec)))
    np.testing.assert_allclose(
        seen[1], np.log10(observe(maps, 10 / 32, ObservationSpec(beam_fwhm_pc=0.8))))
    assert seen[2].shape == maps.shape
    # coarser pixels keep the large scales and lose the small ones
    for fine, coarse in zip(seen[0], seen[2], strict=True):
        assert _power_above(coarse, 8) < 0.5 * _power_above(fine, 8)
        assert coarse.mean() == pytest.approx(fine.mean(), abs=0.05)
    assert views(maps, 10 / 32, ObservationSpec())[0] == pytest.approx(np.log10(maps))


def test_coarsened_maps_lose_what_the_coarse_pixels_cannot_hold() -> None:
    smooth, fine = _wave(32, waves=2)[0], _wave(32, waves=12)[0]
    # two waves on 8 coarse pixels: 4 pixels per wave, drawn
    assert np.ptp(coarsened(np.log10(smooth), 4)) > 0.7 * np.ptp(np.log10(smooth))
    # twelve waves cannot be drawn on 8 coarse pixels
    assert np.ptp(coarsened(np.log10(fine), 4)) < 0.3 * np.ptp(np.log10(fine))


def test_augmented_images_stay_with_their_simulation(workdir: Path) -> None:
    write(workdir / "sims" / "tiny.yaml", TINY_CAMPAIGN)
    plain = write(workdir / "experiments" / "plain.yaml", TINY_EXPERIMENT)
    augmented = write(workdir / "experiments" / "augmented.yaml", TINY_EXPERIMENT.replace(
        "  split:", "  observation: {augment_beams_pc: [0.5, 1.0], augment_pixel_factors: [2]}"
                    "\n  split:"))
    store = SimulationStore(workdir / "cache")
    base_plan, plan = plan_experiment(plain), plan_experiment(augmented)
    run_campaign(plan.campaign, store, show_progress=False)
    base, data = build_image_set(base_plan, store), build_image_set(plan, store)
    per = 3 * 4 * 2
    assert len(data.images) == 4 * len(base.images)
    for sim in np.unique(data.simulation):
        mine = data.simulation == sim
        assert len(np.unique(data.split[mine])) == 1
        assert data.split[mine][0] == base.split[base.simulation == sim][0]
        # the first view is the unaugmented one, the others differ from it
        np.testing.assert_array_equal(data.images[mine][:per],
                                      base.images[base.simulation == sim])
        assert not np.allclose(data.images[mine][per:2 * per], data.images[mine][:per])
    assert plan.data_hash != base_plan.data_hash
    assert plan.spec_hash != base_plan.spec_hash


def test_a_beam_alone_keeps_the_hashes_it_had_before_augmentation(workdir: Path) -> None:
    write(workdir / "sims" / "tiny.yaml", TINY_CAMPAIGN)
    path = write(workdir / "experiments" / "beam.yaml", TINY_EXPERIMENT.replace(
        "  split:", "  observation: {beam_fwhm_pc: 0.6}\n  split:"))
    plan = plan_experiment(path)
    spec = plan.spec
    before = {"campaign": plan.campaign.content_hash,
              "images": spec.data.images.model_dump(mode="json"),
              "split": spec.data.split.model_dump(mode="json"),
              "task": spec.task.model_dump(mode="json"),
              "observation": {"beam_fwhm_pc": 0.6}}
    assert plan.data_hash == content_hash(before)
    resolved = spec.model_dump(mode="json")
    resolved["data"]["observation"] = {"beam_fwhm_pc": 0.6}
    assert plan.spec_hash == content_hash({"spec": resolved,
                                           "campaign": plan.campaign.content_hash})


def test_noise_is_white_of_the_asked_level_and_the_same_every_time() -> None:
    rng = np.random.default_rng(4)
    maps = np.exp(rng.normal(size=(3, 64, 64)))
    seen = noisy(maps, 0.2)
    residual = (seen - maps) / maps.mean(axis=(1, 2), keepdims=True)
    assert residual.std() == pytest.approx(0.2, rel=0.05)
    assert abs(np.corrcoef(residual[0, :, :-1].ravel(), residual[0, :, 1:].ravel())[0, 1]) < 0.05
    np.testing.assert_array_equal(noisy(maps, 0.2), seen)
    assert not np.array_equal(noisy(maps * 1.01, 0.2) / 1.01, seen)  # other maps, other noise
    assert noisy(maps, 0.0) is maps
    # strong noise never leaves a pixel the log cannot take
    loud = noisy(maps, 5.0)
    assert (loud >= NOISE_FLOOR * maps.mean(axis=(1, 2), keepdims=True) * (1 - 1e-12)).all()
    # the beam acts first, the noise on what it left
    spec = ObservationSpec(beam_fwhm_pc=1.0, noise=0.1)
    np.testing.assert_array_equal(simulated(maps, 10 / 64, spec),
                                  noisy(observe(maps, 10 / 64, spec), 0.1))
    assert np.isfinite(views(maps, 10 / 64, spec)[0]).all()
