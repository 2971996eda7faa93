"""HOG features and the parallel image map."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest
from pydantic import ValidationError

from turbexp import parallel
from turbexp.errors import UserError
from turbexp.parallel import JOBS_ENV, default_jobs, map_images
from turbexp.plugins import load_registry
from turbexp_plugins.hog import Hog, HogTransformer


def _images(n: int, size: int = 32, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    images = rng.standard_normal((n, size, size)).astype(np.float32)
    return (images - images.mean(axis=(1, 2), keepdims=True)) / images.std(
        axis=(1, 2), keepdims=True
    )


def _row_sums(image: np.ndarray) -> np.ndarray:
    return image.sum(axis=1)


def _process(image: np.ndarray) -> np.ndarray:
    return np.array([os.getpid()])


def test_feature_shape_and_determinism() -> None:
    images = _images(5)
    transformer = Hog().build(Hog.Params())  # 4 cells of 8 px, 3×3 blocks of 2×2 cells
    features = transformer.fit_transform(images)
    assert features.shape == (5, 3 * 3 * 2 * 2 * 8)
    assert np.all(np.isfinite(features))
    np.testing.assert_array_equal(features, Hog().build(Hog.Params()).fit_transform(images))


def test_params_change_the_dimension() -> None:
    images = _images(2)
    features = Hog().build(Hog.Params(orientations=12, cells=8, cells_per_block=1))
    assert features.fit_transform(images).shape == (2, 8 * 8 * 12)


def test_different_images_differ() -> None:
    images = _images(2)
    features = Hog().build(Hog.Params()).fit_transform(images)
    assert not np.allclose(features[0], features[1])
    # a smooth horizontal gradient has all its gradients in one orientation bin
    ramp = np.tile(np.linspace(-1, 1, 32, dtype=np.float32), (32, 1))[None]
    assert not np.allclose(Hog().build(Hog.Params()).fit_transform(ramp)[0], features[0])


def test_image_too_small_is_a_clear_error() -> None:
    transformer = Hog().build(Hog.Params(cells=16))
    with pytest.raises(ValueError, match="cannot be cut into 16 cells"):
        transformer.fit_transform(_images(2, size=8))


def test_transform_refuses_other_image_size() -> None:
    transformer = Hog().build(Hog.Params()).fit(_images(2, size=32))
    with pytest.raises(ValueError, match="fitted on 32×32"):
        transformer.transform(_images(2, size=48))


@pytest.mark.parametrize(
    "bad",
    [
        {"orientations": 1},
        {"orientations": 37},
        {"cells": 0},
        {"cells_per_block": 0},
        {"cells": 2, "cells_per_block": 3},
        {"block_norm": "L3"},
        {"pixels_per_cell": 8},
    ],
)
def test_bad_params_are_refused(bad: dict) -> None:
    with pytest.raises(ValidationError):
        Hog.Params(**bad)


def test_search_space_is_valid() -> None:
    fields = Hog.Params.model_fields
    for key, space in Hog.search_space.items():
        assert key in fields
        Hog.Params(**{key: int(space.low)})
        Hog.Params(**{key: int(space.high)})


def test_pickle_round_trip() -> None:
    images = _images(3)
    transformer = Hog().build(Hog.Params(orientations=9)).fit(images)
    restored = pickle.loads(pickle.dumps(transformer))
    assert isinstance(restored, HogTransformer)
    assert restored.get_params()["orientations"] == 9
    np.testing.assert_array_equal(restored.transform(images), transformer.transform(images))


def test_parallel_equals_serial(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(parallel, "PARALLEL_SECONDS", 0.0)  # workers for any work
    images = _images(80, size=24)
    serial = HogTransformer(cells=3, n_jobs=1).fit_transform(images)
    in_workers = HogTransformer(cells=3, n_jobs=2).fit_transform(images)
    np.testing.assert_array_equal(in_workers, serial)
    np.testing.assert_array_equal(map_images(_row_sums, images, n_jobs=2), images.sum(axis=2))


def test_map_images_shapes_and_errors() -> None:
    images = _images(3, size=8)
    assert map_images(np.mean, images, n_jobs=1).shape == (3, 1)
    assert map_images(lambda im: np.arange(4), images, n_jobs=1).dtype == np.float64
    with pytest.raises(ValueError, match=r"\(n, H, W\)"):
        map_images(np.mean, images[0])


def test_jobs_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(JOBS_ENV, "3")
    assert default_jobs() == 3
    monkeypatch.setenv(JOBS_ENV, "many")
    with pytest.raises(UserError, match=JOBS_ENV):
        default_jobs()
    monkeypatch.delenv(JOBS_ENV)
    assert default_jobs() >= 1


def test_registered() -> None:
    registry = load_registry()
    assert registry.plugins["features"]["hog"].cls is Hog
    assert not [f for f in registry.failures if f.entry_point == "hog"]


def test_the_parallel_path_is_taken_only_for_work_that_pays(
        monkeypatch: pytest.MonkeyPatch) -> None:
    images = _images(80, size=8)
    here = os.getpid()
    small = map_images(_process, images, n_jobs=2).ravel()
    assert set(small) == {here}  # a few milliseconds of work: no workers started
    monkeypatch.setattr(parallel, "PARALLEL_SECONDS", 0.0)
    large = map_images(_process, images, n_jobs=2).ravel()
    assert set(large[:parallel.PROBE_IMAGES]) == {here}  # the probe, timed here
    assert here not in set(large[parallel.PROBE_IMAGES:])  # the rest on the workers
