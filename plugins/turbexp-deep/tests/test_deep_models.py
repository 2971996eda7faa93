"""The Keras image models on tiny images: training, seeding, saving, the input pipeline,
gradient reversal and saliency."""

from __future__ import annotations

import pickle

import keras
import numpy as np
import pytest
import tensorflow as tf
from sklearn.pipeline import Pipeline

from turbexp import training
from turbexp_deep.cnn import Architecture, build, last_conv_layer
from turbexp_deep.data import as_images, make_dataset
from turbexp_deep.debias import DebiasedCnnClassifier, metadata_values
from turbexp_deep.estimator import (
    CnnClassifier,
    CnnRegressor,
    model_from_bytes,
    model_to_bytes,
    validation_rows,
)
from turbexp_deep.gradient_reversal import GradientReversal, dann_weight
from turbexp_deep.pixels import PixelsTransformer
from turbexp_deep.saliency import edge_ratio, saliency_maps

SMALL = {"conv_layers": 2, "filters": 4, "dense_units": 16, "batch_size": 8,
         "augment": "none", "validation_fraction": 0.25}


def _classes(n: int = 48, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """16×16 noise images; class 1 carries a bright horizontal band."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    x = rng.standard_normal((n, 16, 16)).astype(np.float32)
    x[y == 1, 6:10, :] += 2.0
    return x, y


def _index(n: int = 48, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Images whose contrast grows with the index n."""
    rng = np.random.default_rng(seed)
    n_true = rng.uniform(3.0, 4.5, n)
    x = rng.standard_normal((n, 16, 16)) * (n_true - 2.5)[:, None, None]
    return x.astype(np.float32), n_true


def test_classification_head_trains_and_lowers_the_loss() -> None:
    x, y = _classes()
    model = CnnClassifier(**SMALL, epochs=12, patience=12, learning_rate=3e-3).fit(x, y)
    loss = model.history_["loss"]
    assert loss[-1] < 0.8 * loss[0]
    assert "val_loss" in model.history_ and "val_auc" in model.history_
    proba = model.predict_proba(x)
    assert proba.shape == (48, 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-6)
    assert np.mean(model.predict(x) == y) > 0.8
    assert model.model_.layers[-1].activation.__name__ == "sigmoid"


def test_regression_head_trains_in_the_units_of_n() -> None:
    x, n_true = _index()
    model = CnnRegressor(**SMALL, epochs=12, patience=12, learning_rate=3e-3).fit(
        x, n_true)
    loss = model.history_["loss"]
    assert loss[-1] < 0.5 * loss[0]
    predicted = model.predict(x)
    assert predicted.shape == (48,) and predicted.dtype == np.float64
    assert abs(predicted.mean() - n_true.mean()) < 0.3  # output rescaled to the index


def test_the_reference_architecture() -> None:
    model = build((64, 64, 1), Architecture(), "classify")
    kinds = [type(layer).__name__ for layer in model.layers]
    assert kinds.count("Conv2D") == 4 and kinds.count("MaxPooling2D") == 4
    assert kinds.count("Dense") == 3 and kinds.count("Dropout") == 2
    assert [layer.filters for layer in model.layers if kinds[model.layers.index(layer)]
            == "Conv2D"] == [32, 64, 128, 128]
    assert all(layer.activation.__name__ == "relu" for layer in model.layers
               if type(layer).__name__ == "Conv2D")
    assert last_conv_layer(model).name == "conv_4"
    deep = build((16, 16, 1), Architecture(conv_layers=6), "regress", target_mean=3.8)
    assert deep.output_shape == (None, 1)  # "same" pooling: deeper than the image allows


def test_same_seed_same_metrics_other_seed_other_metrics() -> None:
    x, y = _classes()
    first = CnnClassifier(**SMALL, epochs=3, seed=7).fit(x, y)
    second = CnnClassifier(**SMALL, epochs=3, seed=7).fit(x, y)
    assert first.history_ == second.history_
    np.testing.assert_array_equal(first.predict_proba(x), second.predict_proba(x))
    other = CnnClassifier(**SMALL, epochs=3, seed=8).fit(x, y)
    assert other.history_["loss"] != first.history_["loss"]


def test_fitted_model_pickles_with_its_keras_network() -> None:
    x, y = _classes()
    model = CnnClassifier(**SMALL, epochs=2).fit(x, y)
    state = model.__getstate__()
    assert isinstance(state["model_"], bytes)
    restored = pickle.loads(pickle.dumps(model))
    np.testing.assert_allclose(restored.predict_proba(x), model.predict_proba(x), rtol=1e-6)
    assert restored.get_params() == model.get_params()
    layer = GradientReversal(0.3, name="reverse")
    net = keras.Sequential([keras.Input((3,)), layer, keras.layers.Dense(1)])
    loaded = model_from_bytes(model_to_bytes(net))
    assert loaded.get_layer("reverse").weight == pytest.approx(0.3)


def test_gradient_reversal_flips_the_sign_of_the_gradient() -> None:
    x = tf.constant([[1.0, -2.0, 3.0]])
    direction = tf.constant([[0.5, 1.0, -4.0]])
    for weight in (1.0, 0.25):
        with tf.GradientTape(persistent=True) as tape:
            tape.watch(x)
            reversed_ = GradientReversal(weight)(x)
            plain = tf.identity(x)
            loss_reversed = tf.reduce_sum(reversed_ * direction)
            loss_plain = tf.reduce_sum(plain * direction)
        np.testing.assert_array_equal(reversed_.numpy(), x.numpy())  # identity forward
        np.testing.assert_allclose(tape.gradient(loss_plain, x).numpy(), direction.numpy())
        np.testing.assert_allclose(tape.gradient(loss_reversed, x).numpy(),
                                   -weight * direction.numpy())
    assert GradientReversal.from_config(GradientReversal(0.7).get_config()).weight == 0.7
    layer = GradientReversal(1.0)

    @tf.function
    def gradient() -> tf.Tensor:
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = tf.reduce_sum(layer(x) * direction)
        return tape.gradient(loss, x)

    np.testing.assert_allclose(gradient().numpy(), -direction.numpy())
    layer.scale.assign(0.25)  # a schedule's assignment reaches the traced function
    np.testing.assert_allclose(gradient().numpy(), -0.25 * direction.numpy())


def test_input_shapes_and_bad_shapes() -> None:
    images = np.zeros((2, 4, 4), dtype=np.float32)
    assert as_images(images).shape == (2, 4, 4, 1)
    with pytest.raises(ValueError, match="expected images"):
        as_images(images.reshape(2, 16))  # rows are not images
    with pytest.raises(ValueError, match="expected images"):
        as_images(np.zeros((2, 4, 4, 3)))


def _epochs(ds, count: int) -> list[np.ndarray]:
    return [np.concatenate([x.numpy() for x, _ in ds]) for _ in range(count)]


def test_pipeline_augments_once_or_every_epoch_reproducibly() -> None:
    x = np.arange(6 * 4 * 4, dtype=np.float32).reshape(6, 4, 4, 1)
    y = np.arange(6, dtype=np.float32)
    plain = _epochs(make_dataset(x, y, batch_size=4), 1)[0]
    np.testing.assert_array_equal(plain, x)

    once = make_dataset(x, y, batch_size=4, augment="once", seed=3)
    first, second = _epochs(once, 2)
    assert len(first) == 12  # the images and one transformed copy of each
    np.testing.assert_array_equal(first, second)  # made once, not per epoch
    np.testing.assert_array_equal(first[:6], x)
    copies = first[6:]
    assert not np.array_equal(copies, x)
    for image, copy in zip(x, copies, strict=True):  # each copy is a symmetry of its image
        variants = [np.rot90(v, k) for v in (image, image[:, ::-1]) for k in range(4)]
        assert any(np.array_equal(copy, v) for v in variants)

    per_epoch = make_dataset(x, y, batch_size=4, augment="per_epoch", seed=3)
    a, b = _epochs(per_epoch, 2)
    assert len(a) == 6 and not np.array_equal(a, b)
    again = _epochs(make_dataset(x, y, batch_size=4, augment="per_epoch", seed=3), 2)
    np.testing.assert_array_equal(again[0], a)  # seeded

    shuffled = make_dataset(x, y, batch_size=6, shuffle=True, seed=1)
    [(images, targets)] = list(shuffled)
    assert sorted(targets.numpy().tolist()) == y.tolist()
    np.testing.assert_array_equal(images.numpy(), x[targets.numpy().astype(int)])


def test_validation_holds_out_whole_simulations_of_each_class() -> None:
    y = np.repeat([0, 1, 0, 1, 0, 1, 0, 1, 0, 1], 4)
    groups = np.repeat(np.arange(10), 4)
    held = validation_rows(y, groups, 0.2, seed=0, stratify=True)
    assert set(y[held]) == {0, 1}
    for g in np.unique(groups):
        assert len(set(held[groups == g])) == 1  # a simulation is in or out as a whole
    assert not validation_rows(y[:8], groups[:8], 0.2, 0, True).any()  # 1 simulation a class


def test_the_fit_context_reaches_the_cnn_through_the_pipeline() -> None:
    x, y = _classes()
    reporter = training.EpochReporter(log=False)
    context = training.FitContext(reporter, validation=(x[:8], y[:8]))
    pipeline = Pipeline([("features", PixelsTransformer()),
                         ("estimator", CnnClassifier(**SMALL, epochs=2))])
    training.fit(pipeline, x[8:], y[8:], context)
    model = pipeline[-1]
    assert len(model.history_["val_loss"]) == 2  # validated on the context's data
    assert reporter.epochs == 2 and "val_loss" in reporter.history


def test_saliency_has_the_image_shape_and_is_not_constant() -> None:
    x, y = _classes(n=24)
    model = CnnClassifier(**SMALL, epochs=3).fit(x, y)
    inputs = model.image_inputs(x[:5])
    vanilla = saliency_maps(model, inputs, y[:5])
    smooth = saliency_maps(model, inputs, y[:5], smooth_samples=4, smooth_noise=0.2)
    for maps in (vanilla, smooth):
        assert maps.shape == x[:5].shape
        assert np.all(np.isfinite(maps)) and maps.min() >= 0 and maps.max() <= 1
        assert all(np.ptp(m) > 0 for m in maps)
    assert not np.allclose(vanilla, smooth)
    uniform = np.ones((8, 8))
    assert edge_ratio(uniform) == pytest.approx(1.0)
    framed = np.pad(np.zeros((6, 6)), 1, constant_values=1.0)
    assert edge_ratio(framed) > 1.5


def test_debiased_model_learns_and_measures_the_nuisance() -> None:
    x, y = _classes(n=40)
    refined = np.where(np.arange(40) % 4 < 2, 0.7, 0.2) + 0.01 * np.arange(40)
    model = DebiasedCnnClassifier(**SMALL, epochs=2, adversary_weight=1.0).fit(
        x, y, nuisance=refined)
    assert model.nuisance_threshold_ == pytest.approx(np.median(refined))
    assert model.baseline_model_ is not None and model.nuisance_probe_ is not None
    assert {"task_loss", "nuisance_loss", "val_task_loss"} <= set(model.history_)
    assert not any(type(layer).__name__ == "GradientReversal" for layer in model.model_.layers)
    scores = model.nuisance_scores(x[:12], refined[:12], y[:12])
    for label in ("debiased", "baseline"):
        assert 0 <= scores[f"nuisance_balanced_accuracy_{label}"] <= 1
        assert 0 <= scores[f"task_roc_auc_{label}"] <= 1
    restored = pickle.loads(pickle.dumps(model))
    np.testing.assert_allclose(restored.predict_proba(x), model.predict_proba(x), rtol=1e-6)
    assert restored.nuisance_scores(x[:12], refined[:12], y[:12]) == pytest.approx(scores)


def test_reversal_weight_ramps_up_by_the_dann_schedule() -> None:
    assert dann_weight(2.0, 10.0, 0.0) == 0.0
    assert dann_weight(2.0, 10.0, 0.5) == pytest.approx(2.0 * (2 / (1 + np.exp(-5)) - 1))
    assert dann_weight(2.0, 0.0, 0.0) == 2.0  # gamma 0: constant
    x, y = _classes(n=32)
    refined = np.where(np.arange(32) % 4 < 2, 0.7, 0.2)
    fixed = {**SMALL, "validation_fraction": 0.0, "epochs": 4}  # no early stopping
    ramped = DebiasedCnnClassifier(**fixed, adversary_weight=1.5).fit(x, y, nuisance=refined)
    expected = [1.5 * (2 / (1 + np.exp(-10 * epoch / 4)) - 1) for epoch in range(4)]
    assert ramped.reversal_weights_ == pytest.approx(expected)
    assert ramped.reversal_weights_[0] == 0.0
    assert ramped.baseline_history_ is not None
    constant = DebiasedCnnClassifier(**fixed, adversary_weight=1.5, ramp_gamma=0.0,
                                     compare=False).fit(x, y, nuisance=refined)
    assert constant.reversal_weights_ == [1.5] * 4
    network, _, schedule = constant._networks(as_images(x).shape[1:], 1.5)
    assert schedule is None
    assert float(network.get_layer("reverse_gradient").scale.numpy()) == pytest.approx(1.5)
    network, _, schedule = ramped._networks(as_images(x).shape[1:], 0.0)  # the twin stays at 0
    assert schedule is None
    assert float(network.get_layer("reverse_gradient").scale.numpy()) == 0.0


def test_nuisance_comes_from_metadata_and_must_vary() -> None:
    rows = [{"refined_fraction": 0.1}, {"refined_fraction": 0.4}]
    assert metadata_values(rows, "refined_fraction") == [0.1, 0.4]
    with pytest.raises(ValueError, match=r"no 'level'.*refined_fraction"):
        metadata_values(rows, "level")
    with pytest.raises(ValueError, match="stored metadata"):
        metadata_values(None, "level")
    x, y = _classes(n=16)
    with pytest.raises(ValueError, match="one value only"):
        DebiasedCnnClassifier(**SMALL, epochs=1).fit(x, y, nuisance=["ramses"] * 16)
    model = DebiasedCnnClassifier(**SMALL, epochs=1, compare=False)
    model.fit(x, y, nuisance=["ramses", "athena"] * 8)
    assert list(model.nuisance_classes_) == ["athena", "ramses"]
    assert model.baseline_model_ is None
    with pytest.raises(ValueError, match="not seen"):
        model.nuisance_codes(["enzo"])
