"""Resuming changes nothing: a study killed and rerun ends as one never interrupted."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import optuna
import pytest
from conftest import TINY_CAMPAIGN, TINY_EXPERIMENT, turbexp_cli, write

# 14 trials: the first 10 are TPE's random start-up, the last 4 its model-based proposals
EXPERIMENT = TINY_EXPERIMENT.replace("trials: 3", "trials: 14")
KILL_AFTER = 6  # finished trials before the kill: inside the random start-up
KILL_LATE = 11  # after it: the kill lands while TPE proposes from the history


def _folder(root: Path) -> dict[str, str]:
    """A fresh project folder with the tiny campaign and experiment; its environment."""
    write(root / "sims" / "tiny.yaml", TINY_CAMPAIGN)
    write(root / "experiments" / "tiny.yaml", EXPERIMENT)
    return {"MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}",
            "TURBEXP_HOME": str(root / ".turbexp"), "TURBEXP_JOBS": "1"}


def _study(env: dict[str, str]) -> optuna.Study:
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    storage = JournalStorage(JournalFileBackend(str(Path(env["TURBEXP_HOME"]) /
                                                    "optuna.journal")))
    [summary] = optuna.get_all_study_summaries(storage)
    return optuna.load_study(study_name=summary.study_name, storage=storage)


def _outcome(env: dict[str, str]) -> dict:
    """What must not depend on interruptions: the counted trials' parameters and values in
    budget order, the best configuration and every holdout metric of the finished run."""
    study = _study(env)
    counted = [t for t in study.trials if not t.user_attrs.get("interrupted")]
    mlflow.set_tracking_uri(env["MLFLOW_TRACKING_URI"])
    [finished] = mlflow.search_runs(
        experiment_names=["turbexp"], output_format="list",
        filter_string="tags.`turbexp.role` = 'experiment' and attributes.status = 'FINISHED'")
    return {
        "trials": [(t.state, t.params, t.value) for t in counted],
        "best": study.best_trial.params,
        "holdout": {k: v for k, v in finished.data.metrics.items() if k.startswith("holdout_")},
        "estimator": {k: v for k, v in finished.data.params.items() if k.startswith("estimator.")},
    }


def _run_until_killed(root: Path, env: dict[str, str], sig: signal.Signals,
                      after: int) -> subprocess.CompletedProcess:
    """Start ``turbexp run``, send ``sig`` once ``after`` trials have finished."""
    # the data first, so the signal lands during tuning
    made = turbexp_cli("sims", "run", "sims/tiny.yaml", "--no-progress", cwd=root, env=env)
    assert made.returncode == 0, made.stderr
    process = subprocess.Popen([sys.executable, "-m", "turbexp.cli", "run",
                                "experiments/tiny.yaml", "--no-progress"], cwd=root,
                               env={**os.environ, **env}, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True,
                               # a terminal's Ctrl-C, whatever this process inherited
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    journal = Path(env["TURBEXP_HOME"]) / "optuna.journal"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and process.poll() is None:
        if journal.exists():
            try:
                done = [t for t in _study(env).trials if t.state.is_finished()]
            except (ValueError, KeyError):
                done = []
            if len(done) >= after:
                break
        time.sleep(0.02)
    assert process.poll() is None, "the run ended before it could be interrupted"
    os.kill(process.pid, sig)
    stdout, stderr = process.communicate(timeout=120)
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("uninterrupted")
    env = _folder(root)
    result = turbexp_cli("run", "experiments/tiny.yaml", "--no-progress", cwd=root, env=env)
    assert result.returncode == 0, result.stderr
    return _outcome(env)


@pytest.mark.slow
@pytest.mark.parametrize(("sig", "after"), [(signal.SIGINT, KILL_AFTER),
                                            (signal.SIGKILL, KILL_AFTER),
                                            (signal.SIGTERM, KILL_LATE)],
                         ids=["sigint", "sigkill", "sigterm-late"])
def test_killed_and_resumed_study_ends_as_one_never_interrupted(
        tmp_path: Path, uninterrupted: dict, sig: signal.Signals, after: int) -> None:
    env = _folder(tmp_path)
    killed = _run_until_killed(tmp_path, env, sig, after)
    assert killed.returncode != 0
    mlflow.set_tracking_uri(env["MLFLOW_TRACKING_URI"])
    if sig != signal.SIGKILL:
        # the interrupted process says how to resume, and its run ends KILLED, not FAILED
        assert killed.returncode == 130
        assert "resumes it" in killed.stderr and "turbexp run experiments/tiny.yaml" in \
            killed.stderr.replace("\n", " ")
        [parent] = mlflow.search_runs(experiment_names=["turbexp"], output_format="list",
                                      filter_string="tags.`turbexp.role` = 'experiment'")
        assert parent.info.status == "KILLED"

    resumed = turbexp_cli("run", "experiments/tiny.yaml", "--no-progress", cwd=tmp_path,
                          env=env)
    assert resumed.returncode == 0, resumed.stderr
    runs = sorted(mlflow.search_runs(experiment_names=["turbexp"], output_format="list",
                                     filter_string="tags.`turbexp.role` = 'experiment'"),
                  key=lambda r: r.info.start_time)
    assert [r.info.status for r in runs] == ["KILLED", "FINISHED"]
    tags = runs[1].data.tags
    assert tags["turbexp.resumes_run"] == runs[0].info.run_id
    assert int(tags["turbexp.resumed_from_trial"]) >= after
    found = int(tags["turbexp.resumed_from_trial"])
    if found < 14:  # the killed process may have finished the study
        assert f"resuming study {tags['turbexp.study']} at trial {found + 1} of 14 " \
               f"({found} finished before)" in " ".join(resumed.stderr.split())
    assert _outcome(env) == uninterrupted


def test_a_process_id_taken_over_by_another_process_counts_as_gone() -> None:
    """A killed worker's id can be reused within seconds on a busy machine; the start time
    recorded with it tells the newcomer apart, so its runs and trials are still closed."""
    import socket

    from turbexp.tracking import process_gone, process_start

    host, pid = socket.gethostname(), os.getpid()
    started = process_start(pid)
    assert started is not None
    assert not process_gone(host, pid, started)  # this very process: alive
    assert process_gone(host, pid, str(int(started) + 1))  # same id, another start: gone
    assert not process_gone(host, pid)  # without a start time only an unused id is gone
    assert not process_gone("another-host", pid, "1")  # other hosts are never judged


def test_a_study_asked_for_more_trials_says_where_it_resumes(tiny: Path) -> None:
    root = tiny.parent.parent
    first = turbexp_cli("run", str(tiny), "--no-progress", "--set", "tune.trials=2", cwd=root)
    assert first.returncode == 0, first.stderr
    assert "resuming study" not in first.stderr
    more = turbexp_cli("run", str(tiny), "--no-progress", "--set", "tune.trials=4", cwd=root)
    assert more.returncode == 0, more.stderr
    assert "at trial 3 of 4 (2 finished before)" in " ".join(more.stderr.split())


def test_a_trial_killed_while_naming_its_process_is_failed(tmp_path: Path) -> None:
    """A trial writes host, pid and start time one by one; a kill between them leaves a
    RUNNING trial with some of them, which the dead worker's key still lets the next run
    fail."""
    import socket
    import subprocess

    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    from turbexp.tracking import process_start
    from turbexp.tuning import fail_orphaned_trials

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    started = process_start(dead.pid) or ""
    dead.wait()
    storage = JournalStorage(JournalFileBackend(str(tmp_path / "journal")))
    study = optuna.create_study(study_name="s", storage=storage)
    study.set_user_attr(f"worker:{socket.gethostname()}:{dead.pid}:{started}", True)
    for attrs in ({}, {"host": socket.gethostname()},
                  {"host": socket.gethostname(), "pid": dead.pid}):
        trial = study.ask()
        for key, value in attrs.items():
            trial.set_user_attr(key, value)
    fail_orphaned_trials(study, storage)
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.FAIL] * 3


@pytest.mark.parametrize("interrupted", [True, False])
def test_an_error_while_an_interrupt_unwinds_is_the_interruption(
        workdir: Path, monkeypatch: pytest.MonkeyPatch, interrupted: bool) -> None:
    from turbexp import interrupt, tracking

    monkeypatch.setattr(interrupt, "_requested", interrupted)
    mlflow.set_experiment("turbexp")
    expected = KeyboardInterrupt if interrupted else FileNotFoundError
    with pytest.raises(expected) as raised, tracking.tracked_run("r", {}) as run:
        # what Optuna's journal lock raised when Ctrl-C came as it released the lock
        raise FileNotFoundError("optuna.journal.lock….rename")
    if interrupted:
        assert isinstance(raised.value.__cause__, FileNotFoundError)
    status = mlflow.get_run(run.info.run_id).info.status
    assert status == ("KILLED" if interrupted else "FAILED")
