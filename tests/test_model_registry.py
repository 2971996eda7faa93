"""A run's model is named after its experiment, registered with the alias ``newest``, and
found again from any name a user gives it."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import turbexp_cli
from mlflow.tracking import MlflowClient

from turbexp import tracking
from turbexp.experiment import plan_experiment
from turbexp.paths import cache_dir
from turbexp.runner import RunSummary, run_experiment
from turbexp.store import SimulationStore


def _run(path: Path) -> RunSummary:
    return run_experiment(plan_experiment(path), SimulationStore(cache_dir()),
                          show_progress=False)


def test_models_are_registered_and_every_name_finds_them(tiny: Path,
                                                         capsys: pytest.CaptureFixture) -> None:
    first = _run(tiny)
    assert first.model_uri == "models:/tiny-hog-svm/1"
    assert "model models:/tiny-hog-svm/1 (turbexp predict tiny-hog-svm MAPS)" in \
        " ".join(capsys.readouterr().err.split())  # the console is stderr
    second = _run(tiny)
    assert second.model_uri == "models:/tiny-hog-svm/2"
    client = MlflowClient()
    latest = client.get_model_version_by_alias("tiny-hog-svm", tracking.NEWEST)
    assert (str(latest.version), latest.run_id) == ("2", second.run_id)
    run = client.get_run(second.run_id)
    assert run.data.tags[tracking.MODEL_NAME] == "tiny-hog-svm"

    by_run = f"runs:/{second.run_id}/tiny-hog-svm"
    for given, expected in [("tiny-hog-svm", "models:/tiny-hog-svm@newest"),
                            (second.run_id, by_run), (f"runs:/{second.run_id}", by_run),
                            ("experiment:tiny-hog-svm", by_run),
                            ("models:/tiny-hog-svm@newest", "models:/tiny-hog-svm@newest"),
                            (f"runs:/{first.run_id}/tiny-hog-svm",
                             f"runs:/{first.run_id}/tiny-hog-svm")]:
        assert tracking.resolve_model_uri(given) == expected, given
    assert hasattr(tracking.load_pipeline(tracking.resolve_model_uri("tiny-hog-svm")),
                   "predict")
    with pytest.raises(ValueError, match=r"no registered model 'tiny'.*registered: "
                                         r"tiny-hog-svm.*run id"):
        tracking.resolve_model_uri("tiny")
    with pytest.raises(ValueError, match=r"no run 0{32}"):
        tracking.resolve_model_uri("0" * 32)
    result = turbexp_cli("predict", "nowhere", "map.fits", cwd=tiny.parent.parent)
    assert result.returncode == 2
    assert "no registered model 'nowhere'" in " ".join(result.stderr.split())


def test_the_source_commit_is_mlflows_own_tag(tiny: Path) -> None:
    import subprocess

    folder = tiny.parent.parent
    for args in (["init", "-q"], ["add", "."],
                 ["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "x"]):
        subprocess.run(["git", *args], cwd=folder, check=True, capture_output=True)
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=folder, check=True,
                            capture_output=True, text=True).stdout.strip()
    run = MlflowClient().get_run(_run(tiny).run_id)
    assert run.data.tags["mlflow.source.git.commit"] == commit



def test_a_first_run_prints_no_mlflow_notes(tiny: Path) -> None:
    result = turbexp_cli("run", str(tiny), "--no-progress", cwd=tiny.parent.parent)
    assert result.returncode == 0, result.stderr
    for note in ("Creating initial MLflow database tables", "Updating database tables",
                 "Successfully registered model", "Created version"):
        assert note not in result.stdout + result.stderr, note
    assert "model models:/tiny-hog-svm/1" in result.stderr
