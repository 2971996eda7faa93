"""Each run logs its campaign and splits as MLflow datasets whose digests follow the data."""

from __future__ import annotations

from pathlib import Path

from mlflow.tracking import MlflowClient

from turbexp.experiment import plan_experiment
from turbexp.paths import cache_dir
from turbexp.runner import run_experiment
from turbexp.store import SimulationStore


def _datasets(run_id: str) -> dict[str, tuple[str, str, str]]:
    """context -> (name, digest, source) of a run's logged datasets."""
    inputs = MlflowClient().get_run(run_id).inputs.dataset_inputs
    found = {}
    for item in inputs:
        context = {t.key: t.value for t in item.tags}["mlflow.data.context"]
        found[context] = (item.dataset.name, item.dataset.digest, item.dataset.source)
    return found


def _run(path: Path) -> str:
    plan = plan_experiment(path)
    return run_experiment(plan, SimulationStore(cache_dir()), show_progress=False).run_id


def test_runs_on_the_same_data_share_digests_and_a_new_split_changes_them(tiny: Path) -> None:
    first = _datasets(_run(tiny))
    assert set(first) == {"campaign", "train", "test", "holdout"}
    assert first["campaign"][0] == "tiny" and first["holdout"][0] == "tiny holdout"
    assert all("sims/tiny.yaml" in source for *_, source in first.values())
    assert len({digest for _, digest, _ in first.values()}) == 4  # each split its own

    other = tiny.with_name("other.yaml")  # another estimator on the same data
    other.write_text(tiny.read_text().replace("name: tiny-hog-svm", "name: other")
                     .replace("{plugin: svm, C: {low: 0.1, high: 10, log: true}}",
                              "{plugin: logistic}"))
    assert _datasets(_run(other)) == first

    resplit = tiny.with_name("resplit.yaml")
    resplit.write_text(tiny.read_text().replace("name: tiny-hog-svm", "name: resplit")
                       .replace("seed: 0}", "seed: 1}", 1))
    again = _datasets(_run(resplit))
    assert again["campaign"] == first["campaign"]  # the same maps
    assert any(again[s][1] != first[s][1] for s in ("train", "test", "holdout"))
