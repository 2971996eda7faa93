"""No two counted trials of a study share a configuration until the space is exhausted:
across resumes (a new process, a new sampler) and across concurrent worker processes,
on a real Optuna journal."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import optuna
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.storages.journal import JournalFileBackend, JournalStorage
from optuna.trial import TrialState

from turbexp.tuning import TrialSeededSampler, ask, configuration, counts, grid, next_trial

# 12 configurations: TPE's random start-up alone repeats some within 12 trials
SPACE = {"c": CategoricalDistribution(["a", "b", "c"]), "g": IntDistribution(1, 4)}


def _study(journal: Path, seed: int = 0) -> optuna.Study:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.create_study(
        study_name="s", storage=JournalStorage(JournalFileBackend(str(journal))),
        load_if_exists=True, sampler=TrialSeededSampler(seed, SPACE))


def work(journal: Path, wanted: int, stop_after: int | None = None) -> None:
    """A worker as ``turbexp run`` is one: the next trial of the budget, evaluated, told."""
    study = _study(journal)
    done = 0
    while (trial := next_trial(study, SPACE, wanted)) is not None:
        study.tell(trial, ord(trial.params["c"]) + 0.1 * trial.params["g"])
        done += 1
        if stop_after is not None and done >= stop_after:
            return


def _counted(journal: Path) -> list[str]:
    return [configuration(t.params) for t in _study(journal).trials if counts(t)]


def test_a_study_never_repeats_a_configuration_until_the_space_is_exhausted(
        tmp_path: Path) -> None:
    work(tmp_path / "j", wanted=14)
    counted = _counted(tmp_path / "j")
    everything = {configuration(c) for c in grid(SPACE)}
    assert len(counted) == 14
    assert set(counted[:12]) == everything  # all 12 before any repeats
    assert set(counted[12:]) <= everything


def test_a_resumed_study_draws_what_an_uninterrupted_one_does(tmp_path: Path) -> None:
    work(tmp_path / "once", wanted=12)
    for _ in range(3):  # three processes in turn, each stopped after four trials
        work(tmp_path / "resumed", wanted=12, stop_after=4)
    assert _counted(tmp_path / "resumed") == _counted(tmp_path / "once")
    assert len(set(_counted(tmp_path / "once"))) == 12


def test_concurrent_workers_share_the_space_without_a_duplicate(tmp_path: Path) -> None:
    journal = tmp_path / "j"
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=work, args=(journal, 12)) for _ in range(3)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=300)
    assert [w.exitcode for w in workers] == [0, 0, 0]
    counted = _counted(journal)
    assert len(counted) == 12
    assert set(counted) == {configuration(c) for c in grid(SPACE)}


def test_a_configuration_drawn_twice_at_the_same_moment_is_discarded(tmp_path: Path) -> None:
    """Two workers that drew the same configuration before either was stored: the second
    one asked sees the first and gives its trial up, marked and not counted."""
    study = _study(tmp_path / "j")
    first = ask(study, SPACE)
    assert first is not None
    study.enqueue_trial(first.params)  # the other worker's draw, the same configuration
    assert ask(study, SPACE) is None
    [discarded] = [t for t in study.trials if t.user_attrs.get("duplicate")]
    assert discarded.state == TrialState.FAIL and not counts(discarded)
    assert sum(counts(t) for t in study.trials) == 1


def test_a_repeat_is_kept_once_every_configuration_is_tried(tmp_path: Path) -> None:
    study = _study(tmp_path / "j")
    for config in grid(SPACE):
        study.enqueue_trial(config)
        trial = ask(study, SPACE)
        assert trial is not None
        study.tell(trial, 0.0)
    trial = ask(study, SPACE)
    assert trial is not None and configuration(trial.params) in set(_counted(tmp_path / "j"))


def test_grid_enumerates_finite_spaces_only() -> None:
    assert grid({"x": FloatDistribution(0.0, 1.0)}) is None
    assert grid({"x": IntDistribution(0, 10**6)}) is None
    assert grid({"x": FloatDistribution(0.0, 0.3, step=0.1)}) == [
        {"x": 0.0}, {"x": 0.1}, {"x": 0.2}, {"x": 0.3}]  # clipped to high, as Optuna does
