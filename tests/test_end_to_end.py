"""A whole experiment through the real CLI: simulations, trials, MLflow runs, figures, model."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import mlflow
import numpy as np
import pytest
from conftest import TINY_CAMPAIGN, TINY_EXPERIMENT, turbexp_cli, write
from mlflow.tracking import MlflowClient


def _runs(role: str) -> list:
    runs = mlflow.search_runs(experiment_names=["turbexp"], output_format="list",
                              filter_string=f"tags.`turbexp.role` = '{role}'")
    return sorted(runs, key=lambda r: r.info.start_time)


def test_quickstart_like_run_leaves_a_complete_mlflow_record(tiny: Path) -> None:
    root = tiny.parent.parent
    # two holdout simulations per class: enough to resample
    write(root / "sims" / "tiny.yaml", TINY_CAMPAIGN.replace("count: 3", "count: 6"))
    result = turbexp_cli("run", str(tiny), "--no-progress", cwd=root)
    assert result.returncode == 0, result.stderr
    assert (root / "mlflow.db").exists()

    [parent] = _runs("experiment")
    trials = _runs("trial")
    assert parent.info.status == "FINISHED"
    assert len(trials) == 3
    assert all(t.data.tags["mlflow.parentRunId"] == parent.info.run_id for t in trials)
    assert all("test_roc_auc" in t.data.metrics for t in trials)
    assert len({t.data.params["estimator.C"] for t in trials}) == 3

    metrics = parent.data.metrics
    for name in ("holdout_roc_auc", "holdout_accuracy", "holdout_f1", "best_test_roc_auc"):
        assert 0.0 <= metrics[name] <= 1.0
    assert metrics["best_test_roc_auc"] == max(t.data.metrics["test_roc_auc"] for t in trials)
    tags = parent.data.tags
    assert len(tags["turbexp.campaign_hash"]) == 64
    # the model's physical scale: quadrants of the default 10 pc box, 8 pixels a side
    assert float(tags["turbexp.image_pc"]) == pytest.approx(5.0)
    assert float(tags["turbexp.pixel_pc"]) == pytest.approx(5.0 / 8)
    assert "turbexp.git_commit" in tags and '"features/hog": "turbexp==' in tags["turbexp.plugins"]

    artifacts = {a.path for a in MlflowClient().list_artifacts(parent.info.run_id, "reports")}
    assert artifacts == {"reports/roc.png", "reports/confusion_matrix.png", "reports/tsne.png"}

    # the holdout predictions, for comparing runs scored on the same holdout
    predictions = mlflow.artifacts.load_dict(
        f"runs:/{parent.info.run_id}/holdout/predictions.json")
    assert predictions["campaign_hash"] == tags["turbexp.campaign_hash"]
    assert len(predictions["y_true"]) == len(predictions["score"]) == int(
        parent.data.params["n_images.holdout"])
    from sklearn.metrics import roc_auc_score

    assert roc_auc_score(predictions["y_true"], predictions["score"]) == \
        pytest.approx(metrics["holdout_roc_auc"], abs=1e-12)
    # every holdout metric comes with its interval from the bootstrap over simulations
    for name in ("holdout_roc_auc", "holdout_accuracy", "holdout_f1"):
        assert metrics[f"{name}_ci95_low"] <= metrics[name] <= metrics[f"{name}_ci95_high"]
    assert parent.data.params["n_simulations.holdout"] == "4"
    assert "holdout roc_auc = " in result.stderr and " [" in result.stderr

    # the model is logged with a signature, and predicts on new maps
    [model] = mlflow.search_logged_models(experiment_ids=[parent.info.experiment_id],
                                          output_format="list")
    assert model.source_run_id == parent.info.run_id
    loaded = mlflow.pyfunc.load_model(f"models:/{model.model_id}")
    assert loaded.metadata.signature is not None
    maps = np.random.default_rng(0).standard_normal((5, 8, 8)).astype(np.float32)
    assert set(np.asarray(loaded.predict(maps)).tolist()) <= {0, 1}


def test_rerun_resumes_the_study_without_repeating_trials(tiny: Path) -> None:
    root = tiny.parent.parent
    assert turbexp_cli("run", str(tiny), "--no-progress", cwd=root).returncode == 0
    again = turbexp_cli("run", str(tiny), "--no-progress", cwd=root)
    assert again.returncode == 0, again.stderr
    assert len(_runs("trial")) == 3  # the finished study ran no new trial
    write(tiny, TINY_EXPERIMENT.replace("trials: 3", "trials: 5"))
    more = turbexp_cli("run", str(tiny), "--no-progress", cwd=root)
    assert more.returncode == 0, more.stderr
    trials = _runs("trial")
    assert len(trials) == 5  # the same study went on with two more trials
    assert sorted(int(t.data.tags["turbexp.trial"]) for t in trials) == [0, 1, 2, 3, 4]
    assert len(_runs("experiment")) == 3


def test_regression_experiment(workdir: Path) -> None:
    write(workdir / "sims" / "spread.yaml", """
        name: spread
        grid: 16
        groups:
          - {index: {low: 3.0, high: 4.5}, count: 6}
        """)
    experiment = write(workdir / "experiments" / "svr.yaml", """
        name: tiny-svr
        data:
          campaign: ../sims/spread.yaml
          images: {size: 16, cuts: 1, flips: 1}
          split: {train: 0.5, test: 0.25, holdout: 0.25}
        task: {kind: regress}
        features: {plugin: power_spectrum, window: none}
        estimator: {plugin: svr}
        tune: {trials: 2, defaults: true}
        evaluate: {reports: [predicted_vs_true]}
        """)
    result = turbexp_cli("run", str(experiment), "--no-progress", cwd=workdir)
    assert result.returncode == 0, result.stderr
    [parent] = _runs("experiment")
    assert {"holdout_mse", "holdout_mae", "holdout_r2"} <= set(parent.data.metrics)
    assert parent.data.tags["turbexp.headline_metric"] == "holdout_mse"
    artifacts = {a.path for a in MlflowClient().list_artifacts(parent.info.run_id, "reports")}
    assert artifacts == {"reports/predicted_vs_true.png"}


def test_classic_pipeline_does_not_import_tensorflow(tiny: Path) -> None:
    code = (
        "import sys\n"
        "from turbexp.cli import main\n"
        f"try:\n    main(['run', {str(tiny)!r}, '--no-progress'])\n"
        "except SystemExit as e:\n    assert not e.code, e.code\n"
        "assert 'tensorflow' not in sys.modules, 'tensorflow was imported'\n"
        "print('ok')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=tiny.parent.parent,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    assert "ok" in result.stdout


def test_list_shows_the_last_run_and_its_headline_metric(tiny: Path) -> None:
    root = tiny.parent.parent
    before = turbexp_cli("list", str(tiny), cwd=root)
    assert before.returncode == 0, before.stderr
    assert "never" in before.stdout
    assert turbexp_cli("run", str(tiny), "--no-progress", cwd=root).returncode == 0
    [parent] = _runs("experiment")
    after = turbexp_cli("list", str(tiny), cwd=root)  # piped: tab-separated, complete
    header, row = after.stdout.splitlines()
    fields = dict(zip(header.split("\t"), row.split("\t"), strict=True))
    assert fields["experiment"] == "tiny-hog-svm" and fields["status"] == "FINISHED"
    assert fields["run_id"] == parent.info.run_id
    assert fields["model_uri"] == "models:/tiny-hog-svm/1"
    assert fields["metric"] == "holdout_roc_auc"
    assert float(fields["value"]) == parent.data.metrics["holdout_roc_auc"]

    as_json = turbexp_cli("list", str(tiny), "--json", cwd=root)
    [entry] = json.loads(as_json.stdout)
    metrics = parent.data.metrics  # no interval when a class has one holdout simulation
    assert entry == {**fields, "value": metrics["holdout_roc_auc"],
                     "ci95_low": metrics.get("holdout_roc_auc_ci95_low", ""),
                     "ci95_high": metrics.get("holdout_roc_auc_ci95_high", "")}


def test_list_fits_80_columns_without_cutting_names(tiny: Path) -> None:
    from rich.console import Console

    from turbexp.commands import catalogue

    long = "adversarial_debias_developed"
    rows = [dict.fromkeys(catalogue.COLUMNS, "") | {
        "experiment": name, "file": f"experiments/{name}.yaml", "metric": "holdout_roc_auc",
        "run_id": "87525b5c3b92474f9b6e0a1c2d3e4f50", "last_run": "2026-12-01 10:00",
        "status": "FINISHED", "model_uri": f"models:/{name}/12", "value": 0.84,
        "ci95_low": 0.77, "ci95_high": 0.93} for name in (long, "adversarial_debias")]
    console = Console(width=80, record=True, force_terminal=False)
    catalogue.render(rows, console)
    text = console.export_text()
    assert max(len(line) for line in text.splitlines()) <= 80
    assert "…" not in text
    columns: dict[int, str] = {}  # each column's cells read top to bottom, spaces dropped
    for line in text.splitlines():
        for i, cell in enumerate(line.split("│")[1:-1]):
            columns[i] = columns.get(i, "") + "".join(cell.split())
    for part in (long, "87525b5c3b92474f9b6e0a1c2d3e4f50", f"models:/{long}/12",
                 "0.84[0.77,0.93]"):
        assert any(part in column for column in columns.values()), part


def test_artifacts_go_beside_the_store_not_into_the_current_folder(tiny: Path) -> None:
    root = tiny.parent.parent
    elsewhere = root / "elsewhere"
    elsewhere.mkdir()
    store = root / "store" / "mlflow.db"
    result = turbexp_cli("run", str(tiny), "--no-progress", cwd=elsewhere,
                         env={"MLFLOW_TRACKING_URI": f"sqlite:///{store}",
                              "TURBEXP_HOME": str(root / ".turbexp")})
    assert result.returncode == 0, result.stderr
    assert not (elsewhere / "mlruns").exists()
    assert any((store.parent / "mlruns").rglob("MLmodel"))


@pytest.mark.parametrize("command", [["predict", "models:/m-0", "map.fits"],
                                     ["compare", "tiny-hog-svm", "other"]])
def test_reading_commands_do_not_create_a_store(workdir: Path, command: list[str]) -> None:
    result = turbexp_cli(*command, cwd=workdir,
                         env={"MLFLOW_TRACKING_URI": f"sqlite:///{workdir / 'none.db'}"})
    assert result.returncode == 2
    assert "MLFLOW_TRACKING_URI: no MLflow store at" in result.stderr
    assert not (workdir / "none.db").exists() and not (workdir / "mlruns").exists()


def test_ui_refuses_an_address_other_machines_reach_unless_asked(workdir: Path) -> None:
    refused = turbexp_cli("ui", "--host", "0.0.0.0", cwd=workdir)
    assert refused.returncode == 2
    assert "--host: 0.0.0.0 can be reached from other machines" in refused.stderr
    assert "--allow-remote" in refused.stderr
    assert not (workdir / "mlflow.db").exists()


def test_killed_tuning_resumes_without_counting_a_trial_twice(tiny: Path) -> None:
    import os
    import signal
    import time

    import optuna

    from turbexp.paths import optuna_storage

    root = tiny.parent.parent
    experiment = write(tiny, TINY_EXPERIMENT.replace("trials: 3", "trials: 30"))
    # make the data first, so the kill lands during tuning
    assert turbexp_cli("sims", "run", str(root / "sims" / "tiny.yaml"), "--no-progress",
                       cwd=root).returncode == 0
    process = subprocess.Popen([sys.executable, "-m", "turbexp.cli", "run", str(experiment),
                                "--no-progress"], cwd=root, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    storage = optuna_storage(None)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        summaries = optuna.get_all_study_summaries(storage)
        if summaries and summaries[0].n_trials >= 4:
            break
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    killed_trials = len(_runs("trial"))
    assert 3 <= killed_trials < 30

    result = turbexp_cli("run", str(experiment), "--no-progress", cwd=root)
    assert result.returncode == 0, result.stderr
    parents = _runs("experiment")
    assert [p.info.status for p in parents] == ["KILLED", "FINISHED"]
    assert all(t.info.status != "RUNNING" for t in _runs("trial"))
    resumed = parents[1].data.tags
    assert resumed["turbexp.resumes_run"] == parents[0].info.run_id
    assert 3 <= int(resumed["turbexp.resumed_from_trial"]) < 30

    [summary] = optuna.get_all_study_summaries(storage)
    study = optuna.load_study(study_name=summary.study_name, storage=storage)
    states = [t.state for t in study.trials]
    assert optuna.trial.TrialState.RUNNING not in states
    # the trial the kill interrupted (if any) is marked FAIL and made up for
    interrupted = [t for t in study.trials if t.user_attrs.get("interrupted")]
    assert len(interrupted) <= 1
    assert all(t.state == optuna.trial.TrialState.FAIL for t in interrupted)
    assert states.count(optuna.trial.TrialState.COMPLETE) == 30
    numbers = [int(t.data.tags["turbexp.trial"]) for t in _runs("trial")]
    assert len(numbers) == len(set(numbers))  # no trial logged twice


def test_two_processes_share_one_study_without_duplicates(tiny: Path) -> None:
    """30 trials on a space of 30 configurations: each tried once, by one of the workers."""
    import optuna

    from turbexp.paths import optuna_storage
    from turbexp.tuning import counts

    root = tiny.parent.parent
    c_values = [0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0]
    experiment = write(tiny, TINY_EXPERIMENT.replace("trials: 3", "trials: 30").replace(
        "orientations: 6", "orientations: {choices: [4, 6, 9]}").replace(
        "C: {low: 0.1, high: 10, log: true}", f"C: {{choices: {c_values}}}"))
    assert turbexp_cli("sims", "run", str(root / "sims" / "tiny.yaml"), "--no-progress",
                       cwd=root).returncode == 0
    assert turbexp_cli("validate", str(experiment), cwd=root).returncode == 0
    workers = [subprocess.Popen([sys.executable, "-m", "turbexp.cli", "run", str(experiment),
                                 "--no-progress"], cwd=root, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = [w.communicate(timeout=600) for w in workers]
    assert [w.returncode for w in workers] == [0, 0], outputs

    storage = optuna_storage(None)
    [summary] = optuna.get_all_study_summaries(storage)
    study = optuna.load_study(study_name=summary.study_name, storage=storage)
    counted = [t for t in study.trials if counts(t)]
    assert len(counted) == 30
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in counted)
    assert sorted((t.params["features.orientations"], t.params["estimator.C"])
                  for t in counted) == sorted((o, c) for o in (4, 6, 9) for c in c_values)
    trials = _runs("trial")
    numbers = [int(t.data.tags["turbexp.trial"]) for t in trials]
    assert sorted(numbers) == sorted(t.number for t in counted)  # each trial logged once


def test_same_seed_gives_identical_metrics(tiny: Path, tmp_path: Path) -> None:
    """The classic pipeline, run from scratch twice (cache, study and store each time)."""
    metrics = []
    for attempt in ("a", "b"):
        folder = tmp_path / attempt
        (folder / "sims").mkdir(parents=True)
        (folder / "experiments").mkdir()
        (folder / "sims" / "tiny.yaml").write_text(
            (tiny.parent.parent / "sims" / "tiny.yaml").read_text())
        (folder / "experiments" / "tiny.yaml").write_text(tiny.read_text())
        env = {"MLFLOW_TRACKING_URI": f"sqlite:///{folder / 'mlflow.db'}",
               "TURBEXP_HOME": str(folder / ".turbexp")}
        result = turbexp_cli("run", "experiments/tiny.yaml", "--no-progress", cwd=folder,
                             env=env)
        assert result.returncode == 0, result.stderr
        mlflow.set_tracking_uri(env["MLFLOW_TRACKING_URI"])
        [parent] = _runs("experiment")
        metrics.append(parent.data.metrics)
    assert metrics[0] == metrics[1]
