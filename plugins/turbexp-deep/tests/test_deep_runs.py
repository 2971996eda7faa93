"""The deep-learning plugins through the runner: tracked epochs, the logged model, reports,
transfer learning and adversarial debiasing, on tiny fake-AMR data."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import mlflow
import numpy as np
import optuna
import pytest
from deep_support import (
    CLASSES,
    SMALL_CNN,
    Store,
    experiment,
    make_store,
    restore_tracking,
)
from mlflow.tracking import MlflowClient

from turbexp.commands.predict import ScaleOptions, predict_maps
from turbexp.paths import optuna_storage
from turbexp.runner import RunSummary

CNN_EXPERIMENT = experiment(
    "amr-cnn", "amr", CLASSES, "pixels",
    "{plugin: cnn, " + SMALL_CNN + ", learning_rate: {low: 0.001, high: 0.01, log: true}}",
    trials=2, reports="[roc, saliency, embeddings]")
REGRESS_EXPERIMENT = experiment("amr-cnn-index", "amr-spread", "task: {kind: regress}",
                                "pixels", "{plugin: cnn, " + SMALL_CNN + "}")
DEBIASED_EXPERIMENT = experiment(
    "amr-debiased", "amr", CLASSES, "pixels",
    "{plugin: debiased_cnn, nuisance: refined_fraction, " + SMALL_CNN + "}",
    reports="[debiasing]")


@dataclass
class Runs:
    store: Store
    cnn: RunSummary
    cnn_again: RunSummary
    index: RunSummary
    debiased: RunSummary


@pytest.fixture(scope="module")
def _runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runs]:
    store = make_store(tmp_path_factory.mktemp("deep"))
    try:
        with pytest.MonkeyPatch.context() as mp:
            store.use(mp)
            cnn = store.run(CNN_EXPERIMENT)
            runs = Runs(store, cnn, store.run(CNN_EXPERIMENT), store.run(REGRESS_EXPERIMENT),
                        store.run(DEBIASED_EXPERIMENT))
        yield runs
    finally:
        restore_tracking()


@pytest.fixture
def runs(_runs: Runs, monkeypatch: pytest.MonkeyPatch) -> Iterator[Runs]:
    _runs.store.use(monkeypatch)
    yield _runs
    restore_tracking()


def _model_uri(run_id: str) -> str:
    run = mlflow.get_run(run_id)
    [model] = mlflow.search_logged_models(experiment_ids=[run.info.experiment_id],
                                          filter_string=f"source_run_id = '{run_id}'",
                                          output_format="list")
    return f"models:/{model.model_id}"


def _trials(client: MlflowClient, parent: str) -> list:
    experiment_id = client.get_run(parent).info.experiment_id
    return [t for t in client.search_runs([experiment_id],
                                          filter_string="tags.`turbexp.role` = 'trial'")
            if t.data.tags.get("mlflow.parentRunId") == parent]


def test_epochs_are_logged_as_metric_histories(runs: Runs) -> None:
    client = MlflowClient()
    trials = _trials(client, runs.cnn.run_id)
    assert len(trials) == 2
    for trial in trials:
        history = client.get_metric_history(trial.info.run_id, "val_loss")
        steps = [m.step for m in history]
        assert steps == list(range(1, len(steps) + 1)) and 1 <= len(steps) <= 3
        for name in ("train_loss", "train_auc", "val_auc", "val_roc_auc"):
            assert len(client.get_metric_history(trial.info.run_id, name)) == len(steps)
        assert "test_roc_auc" in trial.data.metrics
        assert {a.path for a in client.list_artifacts(trial.info.run_id, "training")} == \
            {"training/learning_curve.png"}
    parent = client.get_run(runs.cnn.run_id)
    steps = [m.step for m in client.get_metric_history(parent.info.run_id, "train_loss")]
    assert steps == list(range(1, len(steps) + 1)) and steps
    assert parent.data.params["estimator.conv_layers"] == "2"
    assert parent.data.metrics["trials_completed"] == 2
    assert parent.data.metrics["trials_pruned"] == 0


def test_the_trial_reports_epochs_to_optuna(runs: Runs) -> None:
    study_name = mlflow.get_run(runs.cnn.run_id).data.tags["turbexp.study"]
    study = optuna.load_study(study_name=study_name, storage=optuna_storage(None))
    for trial in study.trials:
        assert trial.state == optuna.trial.TrialState.COMPLETE
        assert trial.intermediate_values and min(trial.intermediate_values) == 1
        assert all(0 <= v <= 1 for v in trial.intermediate_values.values())


def test_the_logged_model_predicts_on_new_maps(runs: Runs, tmp_path: Path) -> None:
    uri = _model_uri(runs.cnn.run_id)
    loaded = mlflow.pyfunc.load_model(uri)
    signature = loaded.metadata.signature
    assert signature is not None and tuple(signature.inputs.inputs[0].shape) == (-1, 16, 16)
    maps = np.random.default_rng(0).standard_normal((5, 16, 16)).astype(np.float32)
    assert set(np.asarray(loaded.predict(maps)).tolist()) <= {0, 1}
    requirements = Path(mlflow.pyfunc.get_model_dependencies(uri)).read_text()
    assert "tensorflow==" in requirements and "keras==" in requirements

    # `turbexp predict` tiles a FITS map and scores every tile with the CNN
    from astropy.io import fits

    column = 1e-2 * np.exp(np.random.default_rng(1).normal(0, 0.5, (32, 32)))
    path = tmp_path / "cloud.fits"
    fits.PrimaryHDU(column, header=fits.Header({"BUNIT": "g/cm2"})).writeto(path)
    # pixels of the training images' scale: tiles of the model's 16 pixels
    image_pc = float(MlflowClient().get_run(runs.cnn.run_id).data.tags["turbexp.image_pc"])
    [result] = predict_maps(uri, [str(path)], tmp_path / "out",
                            scale=ScaleOptions(pixel_pc=image_pc / 16))
    assert result.n_tiles == 4 and result.quantity == "P(burgers)"
    assert np.all((result.values >= 0) & (result.values <= 1))


def test_same_seed_reproduces_the_run(runs: Runs) -> None:
    client = MlflowClient()
    first, second = (client.get_run(s.run_id) for s in (runs.cnn, runs.cnn_again))
    assert len(_trials(client, runs.cnn_again.run_id)) == 0  # the study was complete
    for name in ("holdout_roc_auc", "holdout_accuracy", "best_test_roc_auc"):
        assert first.data.metrics[name] == second.data.metrics[name]
    histories = [[m.value for m in client.get_metric_history(r.info.run_id, "train_loss")]
                 for r in (first, second)]
    assert histories[0] == histories[1]


def test_saliency_and_embeddings_reports(runs: Runs) -> None:
    client = MlflowClient()
    artifacts = {a.path for a in client.list_artifacts(runs.cnn.run_id, "reports")}
    assert {"reports/saliency.png", "reports/embeddings.png", "reports/roc.png"} <= artifacts
    metrics = client.get_run(runs.cnn.run_id).data.metrics
    assert metrics["saliency_edge_ratio"] > 0
    for key in ("cnn", "hog"):
        assert 0 <= metrics[f"embedding_{key}_5nn_accuracy"] <= 1
        assert np.isfinite(metrics[f"embedding_{key}_kl_divergence"])


def test_regression_head_through_the_runner(runs: Runs) -> None:
    run = mlflow.get_run(runs.index.run_id)
    assert run.data.params["task"] == "regress"
    assert np.isfinite(run.data.metrics["holdout_mse"])
    loaded = mlflow.pyfunc.load_model(_model_uri(runs.index.run_id))
    predicted = np.asarray(loaded.predict(np.zeros((3, 16, 16), dtype=np.float32)))
    assert predicted.shape == (3,) and np.all((predicted > 2) & (predicted < 6))


@pytest.mark.parametrize("fine_tune", [0, 1])
def test_transfer_freezes_the_trunk_and_records_its_source(runs: Runs, fine_tune: int) -> None:
    source_uri = _model_uri(runs.index.run_id)
    summary = runs.store.run(experiment(
        f"amr-transfer-{fine_tune}", "amr", CLASSES,
        f"{{plugin: transfer, model_uri: '{source_uri}', fine_tune_layers: {fine_tune}, "
        "epochs: 2}", "logistic"))
    run = mlflow.get_run(summary.run_id)
    assert run.data.params["features.model_uri"] == source_uri
    assert run.data.tags["turbexp.transfer.source"] == source_uri
    assert run.data.tags["turbexp.transfer.source_run"] == runs.index.run_id
    assert 0 <= run.data.metrics["holdout_roc_auc"] <= 1

    source = mlflow.sklearn.load_model(source_uri).steps[-1][1].model_
    pipeline = mlflow.sklearn.load_model(_model_uri(summary.run_id))
    trunk = pipeline.named_steps["features"].trunk_
    convs = [layer for layer in trunk.layers if type(layer).__name__ == "Conv2D"]
    assert len(convs) == 2 and not any(layer.trainable for layer in convs[:-1])
    assert convs[-1].trainable == bool(fine_tune)
    for layer in convs:
        same = all(np.array_equal(a, b) for a, b in
                   zip(layer.get_weights(), source.get_layer(layer.name).get_weights(),
                       strict=True))
        tuned = fine_tune and layer is convs[-1]
        assert same != tuned, layer.name
    features = pipeline.named_steps["features"].transform(np.zeros((2, 16, 16), np.float32))
    assert features.shape[0] == 2 and features.shape[1] == trunk.output_shape[-1]


def test_experiment_uri_names_the_latest_finished_model(runs: Runs) -> None:
    from turbexp.tracking import resolve_model_uri

    name = mlflow.get_run(runs.index.run_id).data.tags["turbexp.experiment"]
    assert resolve_model_uri(f"experiment:{name}") == f"runs:/{runs.index.run_id}/{name}"
    assert resolve_model_uri("models:/m-1") == "models:/m-1"
    with pytest.raises(ValueError, match="no finished run"):
        resolve_model_uri("experiment:never-run")


def test_debiased_run_logs_both_nuisance_scores(runs: Runs) -> None:
    run = mlflow.get_run(runs.debiased.run_id)
    metrics = run.data.metrics
    assert run.data.params["estimator.nuisance"] == "refined_fraction"
    for label in ("debiased", "baseline"):
        assert 0 <= metrics[f"holdout_nuisance_balanced_accuracy_{label}"] <= 1
        assert 0 <= metrics[f"holdout_nuisance_accuracy_{label}"] <= 1
        assert 0 <= metrics[f"holdout_task_roc_auc_{label}"] <= 1
    assert metrics["holdout_task_roc_auc_debiased"] == pytest.approx(metrics["holdout_roc_auc"])
    assert {"train_task_loss", "train_nuisance_loss", "val_task_loss"} <= set(metrics)
    artifacts = {a.path for a in MlflowClient().list_artifacts(run.info.run_id, "reports")}
    assert artifacts == {"reports/debiasing.png"}
    loaded = mlflow.pyfunc.load_model(_model_uri(runs.debiased.run_id))
    assert set(np.asarray(loaded.predict(np.zeros((2, 16, 16), np.float32))).tolist()) <= {0, 1}
