"""The power-spectrum baseline on Gaussian random fields of known spectral slope."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from pydantic import ValidationError

from turbexp import parallel
from turbexp.parallel import map_images
from turbexp.plugins import load_registry
from turbexp_plugins.power_spectrum import (
    PowerSpectrum,
    PowerSpectrumTransformer,
    fit_power_law,
    radial_power_spectra,
    radial_power_spectrum,
)


def gaussian_field(size: int, beta: float, seed: int) -> np.ndarray:
    """A periodic standardised Gaussian random image with P(k) ∝ k^-beta."""
    rng = np.random.default_rng(seed)
    freq = np.fft.fftfreq(size) * size
    k = np.hypot(freq[:, None], freq[None, :])
    amplitude = np.zeros_like(k)
    amplitude[k > 0] = k[k > 0] ** (-beta / 2)
    field = np.fft.ifft2(np.fft.fft2(rng.standard_normal((size, size))) * amplitude).real
    return ((field - field.mean()) / field.std()).astype(np.float32)


def slopes(images: list[np.ndarray], window: str) -> np.ndarray:
    fitted = []
    for image in images:
        k, P = radial_power_spectrum(image, window)
        fitted.append(fit_power_law(k, P, 2, 16)[0])
    return np.array(fitted)


SEEDS = range(12)


@pytest.mark.parametrize("beta", [2.5, 3.5])
def test_slope_of_periodic_fields(beta: float) -> None:
    fitted = slopes([gaussian_field(64, beta, seed) for seed in SEEDS], "none")
    # one 64×64 image holds ~400 independent modes in the fitted range: about ±0.12 scatter
    assert abs(fitted.mean() + beta) < 0.15
    assert np.median(np.abs(fitted + beta)) < 0.15
    assert np.all(np.abs(fitted + beta) < 0.45)


@pytest.mark.parametrize("beta", [2.5, 3.5])
def test_slope_with_hann_window(beta: float) -> None:
    fitted = slopes([gaussian_field(64, beta, seed) for seed in SEEDS], "hann")
    assert abs(fitted.mean() + beta) < 0.3


def test_window_matters_on_non_periodic_cuts() -> None:
    # quadrants of a periodic 128² field are not periodic: their edges leak power ∝ k^-2
    beta = 4.0
    cuts = [gaussian_field(128, beta, seed)[:64, :64] for seed in SEEDS]
    plain, windowed = slopes(cuts, "none"), slopes(cuts, "hann")
    assert abs(windowed.mean() + beta) < 0.4
    assert abs(windowed.mean() + beta) < abs(plain.mean() + beta) - 0.3
    steep = slopes([gaussian_field(128, 2.5, s)[:64, :64] for s in SEEDS], "hann")
    assert steep.mean() - windowed.mean() > 1.0


@pytest.mark.parametrize(("window", "tolerance"), [("none", 0.15), ("hann", 0.3)])
def test_white_noise_is_flat_with_unit_power(window: str, tolerance: float) -> None:
    noise = np.random.default_rng(1).standard_normal((128, 128))
    k, P = radial_power_spectrum(noise, window)
    assert k.shape == P.shape == (64,)
    assert np.all(np.diff(k) > 0)
    assert abs(P[2:].mean() - 1) < 0.1
    # the window leaves fewer independent modes, hence the wider tolerance
    assert abs(fit_power_law(k, P, 2, 32)[0]) < tolerance


def test_fit_of_an_exact_power_law() -> None:
    k = np.arange(1, 33, dtype=float)
    slope, log_amplitude = fit_power_law(k, 5.0 * k**-3.2, 2, 16)
    assert slope == pytest.approx(-3.2)
    assert log_amplitude == pytest.approx(np.log10(5.0 * np.sqrt(32) ** -3.2))
    with pytest.raises(ValueError, match="fewer than two"):
        fit_power_law(k, k**-3.0, 40, 50)
    with pytest.raises(ValueError, match="kmin < kmax"):
        fit_power_law(k, k**-3.0, 8, 4)


def test_transformer_shape_determinism_and_order() -> None:
    images = np.stack([gaussian_field(64, beta, 7) for beta in (2.5, 3.0, 3.5, 4.0)])
    transformer = PowerSpectrum().build(PowerSpectrum.Params())
    features = transformer.fit_transform(images)
    assert features.shape == (4, 2)
    assert list(transformer.get_feature_names_out()) == ["slope", "log_amplitude"]
    np.testing.assert_array_equal(features, transformer.transform(images))
    assert np.all(np.diff(features[:, 0]) < 0)  # steeper spectrum, more negative slope


def test_parallel_equals_serial(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(parallel, "PARALLEL_SECONDS", 0.0)  # workers for any work
    images = np.stack([gaussian_field(32, 3.0, seed) for seed in range(70)])
    serial = PowerSpectrumTransformer(n_jobs=1).fit_transform(images)
    in_workers = PowerSpectrumTransformer(n_jobs=2).fit_transform(images)
    np.testing.assert_array_equal(in_workers, serial)
    np.testing.assert_array_equal(
        map_images(np.ravel, images[:, :2, :2], n_jobs=2), images[:, :2, :2].reshape(70, 4)
    )


@pytest.mark.parametrize("window", ["none", "hann"])
def test_a_batch_gives_each_image_the_bits_it_gets_alone(
        window: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import turbexp_plugins.power_spectrum as ps

    images = np.stack([gaussian_field(24, 3.5, seed) for seed in range(9)])[:, :, :20]
    monkeypatch.setattr(ps, "BATCH_BYTES", 4 * 16 * 24 * 20)  # batches of 4: 4, 4 and 1
    k, spectra = radial_power_spectra(images, window)
    assert spectra.shape == (9, len(k))
    for image, power in zip(images, spectra, strict=True):
        alone_k, alone = radial_power_spectrum(image, window)
        np.testing.assert_array_equal(k, alone_k)
        np.testing.assert_array_equal(power, alone)


def test_a_batched_function_must_keep_one_row_per_image() -> None:
    images = np.zeros((70, 4, 4), dtype=np.float32)
    np.testing.assert_array_equal(map_images(lambda b: b[:, 0, :2], images, n_jobs=1,
                                             batched=True), np.zeros((70, 2)))
    with pytest.raises(ValueError, match=r"must return \(70, d\) for 70 images"):
        map_images(lambda b: b[:1, 0], images, n_jobs=1, batched=True)


def test_images_too_small_are_refused() -> None:
    transformer = PowerSpectrum().build(PowerSpectrum.Params(kmin=4))
    with pytest.raises(ValueError, match="no range to fit"):
        transformer.fit_transform(np.zeros((2, 12, 12), dtype=np.float32))


@pytest.mark.parametrize(
    "bad", [{"window": "hamming"}, {"kmin": 0.5}, {"kmax_fraction": 0}, {"kmax_fraction": 1.5}]
)
def test_bad_params_are_refused(bad: dict) -> None:
    with pytest.raises(ValidationError):
        PowerSpectrum.Params(**bad)


def test_search_space_is_valid() -> None:
    for key, space in PowerSpectrum.search_space.items():
        PowerSpectrum.Params(**{key: space.low})
        PowerSpectrum.Params(**{key: space.high})


def test_pickle_round_trip() -> None:
    images = np.stack([gaussian_field(32, 3.0, seed) for seed in range(3)])
    transformer = PowerSpectrum().build(PowerSpectrum.Params(window="none")).fit(images)
    restored = pickle.loads(pickle.dumps(transformer))
    np.testing.assert_array_equal(restored.transform(images), transformer.transform(images))


def test_registered() -> None:
    registry = load_registry()
    assert registry.plugins["features"]["power_spectrum"].cls is PowerSpectrum
    assert not [f for f in registry.failures if f.entry_point == "power_spectrum"]
