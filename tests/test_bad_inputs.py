"""A table of bad inputs, each through the real CLI entry point: one message naming file and
field, exit status 2, no traceback, nothing written to the cache, Optuna or MLflow."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from conftest import TINY_CAMPAIGN, TINY_EXPERIMENT, turbexp_cli, write

from turbexp.cli import main

# the deep extra's plugins are listed too when it is installed
DEEP = importlib.util.find_spec("tensorflow") is not None
def _laughs(levels: int = 9) -> str:
    """A flow list whose anchors nest ``levels`` deep: a few hundred bytes that expand to
    9 ** levels elements."""
    text = "&l0 [1, 1, 1, 1, 1, 1, 1, 1, 1]"
    for i in range(1, levels):
        text = f"&l{i} [{text}, " + ", ".join([f"*l{i - 1}"] * 8) + "]"
    return text


# (which file, text to replace, replacement, field named in the message, words expected)
CASES = [
    ("experiment", "name: tiny-hog-svm", "name: [oops", None, "invalid YAML"),
    ("experiment", "name: tiny-hog-svm", "name: a\nname: b", None, "duplicate key 'name'"),
    ("experiment", "tune: {", "tunes: {trials: 1}\ntune: {", "tunes", "unknown key"),
    ("experiment", "size: 8", "size: eight", "data.images.size", "integer"),
    ("experiment", "size: 8", "size: -8", "data.images.size", "greater than or equal to 8"),
    ("experiment", "cuts: 4", "cuts: 3", "data.images.cuts", "1 or 4"),
    ("experiment", "flips: 2", "flips: 3", "data.images.flips", "1, 2 or 4"),
    ("experiment", "size: 8,", "size: 8, projections: [x, x],", "data.images.projections",
     "once"),
    ("experiment", "holdout: 0.3", "holdout: 0.5", "data.split", "must be 1"),
    ("experiment", "seed: 0, defaults", "seed: -1, defaults", "tune.seed", "greater than"),
    ("experiment", "trials: 3", "trials: many", "tune.trials", "integer"),
    ("experiment", "kind: classify", "kind: cluster", "task.kind", "'classify' or 'regress'"),
    ("experiment", "burgers: 4.0", "burgers: 1.5", "task.classes.burgers", "greater than"),
    ("experiment", "burgers: 4.0", "burgers: 4.3", "task.classes.burgers", "no simulation"),
    ("experiment", "plugin: hog", "plugin: hoog", "features.plugin",
     "unknown features plugin 'hoog'; installed: hog, pixels, power_spectrum"
     + (", transfer" if DEEP else "")),
    ("experiment", "plugin: svm,", "plugin: forest,", "estimator.plugin",
     "unknown estimator plugin 'forest'; installed: "
     + ("cnn, debiased_cnn, " if DEEP else "") + "logistic, svm, svr"),
    ("experiment", "reports: [roc", "reports: [rocc", "evaluate.reports.0.plugin",
     "unknown report plugin 'rocc'"),
    ("experiment", "orientations: 6", "orientations: 100", "features.orientations",
     "less than or equal to 36"),
    ("experiment", "low: 0.1", "low: -0.1", "estimator.C", "log range needs low > 0"),
    ("experiment", "log: true", "log: yes please", "estimator.C", "log must be true or false"),
    ("experiment", "../sims/tiny.yaml", "../sims/gone.yaml", "data.campaign", "not found"),
    ("experiment", "metric: roc_auc", "metric: r2", "tune.metric", "not a classify metric"),
    ("campaign", "grid: 16", "grid: -16", "grid", "greater than 7"),
    ("campaign", "index: 4.0", "index: 7.5", "groups.1.index", "less than or equal to 6"),
    ("campaign", "index: 4.0", "index: {low: 4.5, high: 3}", "groups.1.index", "below high"),
    ("campaign", "count: 3}", "count: 0}", "groups.0.count", "greater than 0"),
    ("campaign", "count: 3}", "count: true}", "groups.0.count", "valid integer"),
    ("campaign", "grid: 16", "grid: 4096", "grid", "less than or equal to 2048"),
    ("campaign", "grid: 16", "grid: 16.5", "grid", "valid integer"),
    ("campaign", "seed: 3", "seed: 3\nphysics: {mach: -1}", "physics.mach", "greater than 0"),
    ("campaign", "seed: 3", "seed: 3\nphysics: {temperature: 10}", "physics.temperature",
     "unknown key"),
    ("campaign", "preset: reference", "preset: relaxed", "preset",
     "'reference' or 'developed'"),
    ("campaign", "seed: 3", "seed: 3\nsimulator: {plugin: builtin, cfl: 2}", "simulator.cfl",
     "less than or equal to 1"),
    ("campaign", "seed: 3", "seed: 3\nsimulator: {plugin: ramses9}", "simulator.plugin",
     "unknown simulator plugin"),
    ("experiment", "name: tiny-hog-svm", "name: tiny-hog-svm\nlist: " + "[" * 100_000
     + "]" * 100_000, None, "collections nest too deep; at most 50"),
    ("experiment", "name: tiny-hog-svm", "name: tiny-hog-svm\n? [a, b]\n: 1", None,
     "a key must be a name or a number, not a list"),
    ("experiment", "high: 10", "high: .inf", "estimator.C", "low and high must be finite"),
    ("experiment", "seed: 0, defaults", "seed: 4294967296, defaults", "tune.seed",
     "less than or equal to 2147483647"),
    ("experiment", "defaults: false}", "defaults: false, storage: 'nope://x'}", "tune.storage",
     "not a database URL that SQLAlchemy can use"),
    ("experiment", "defaults: false}", "defaults: false, storage: 'mysql://a@b/c'}",
     "tune.storage", "its database driver is not installed"),
    ("experiment", "orientations: 6", f"orientations: {_laughs()}", "features.orientations",
     "valid integer, got [[[...]"),
    ("campaign", "seed: 3", "seed: 3\nphysics: {time_myr: {low: 5, high: 0.5}}",
     "physics.time_myr", "low (5.0) must be below high (0.5)"),
    ("campaign", "seed: 3", "seed: 3\nphysics: {mach: .nan}", "physics.mach", "finite number"),
    ("campaign", "seed: 3", "seed: 3\nphysics: {time_myr: .inf}", "physics.time_myr",
     "finite number"),
    ("experiment", "  split:", "  observation: {noise: -0.1}\n  split:", "data.observation.noise",
     "greater than or equal to 0"),
    ("experiment", "  split:", "  observation: {augment_pixel_factors: [1]}\n  split:",
     "data.observation.augment_pixel_factors.0", "greater than or equal to 2"),
    ("experiment", "  split:", "  observation: {augment_beams_pc: [0]}\n  split:",
     "data.observation.augment_beams_pc.0", "greater than 0"),
]


@pytest.mark.parametrize(("which", "old", "new", "field", "expected"), CASES,
                         ids=[f"{c[0]}-{c[3] or c[4]}" for c in CASES])
def test_bad_input(tiny: Path, capsys: pytest.CaptureFixture[str], which: str, old: str,
                   new: str, field: str | None, expected: str) -> None:
    root = tiny.parent.parent
    target = tiny if which == "experiment" else root / "sims" / "tiny.yaml"
    original = TINY_EXPERIMENT if which == "experiment" else TINY_CAMPAIGN
    assert old in original
    write(target, original.replace(old, new, 1))
    with pytest.raises(SystemExit) as info:
        main(["run", str(tiny), "--no-progress"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert str(target) in err
    if field:
        assert f": {field}: " in err
    assert expected in err.replace("\n", " ")
    assert not (root / ".turbexp").exists()
    assert not (root / "mlflow.db").exists()


def test_an_error_message_stays_short_whatever_the_value(
        tiny: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write(tiny, TINY_EXPERIMENT.replace("orientations: 6", f"orientations: {_laughs(12)}"))
    with pytest.raises(SystemExit) as info:
        main(["run", str(tiny), "--no-progress"])
    assert info.value.code == 2
    assert len(capsys.readouterr().err) < 1000


@pytest.mark.parametrize(("variable", "value", "expected"), [
    ("TURBEXP_HOME", "FILE", "is not a folder; point TURBEXP_HOME at a folder"),
    ("TURBEXP_CACHE", "FILE", "is not a folder; point TURBEXP_CACHE at a folder"),
    ("MLFLOW_TRACKING_URI", "weird://x", "cannot open the MLflow tracking store 'weird://x'"),
    ("MLFLOW_TRACKING_URI", "sqlite:////proc/none/m.db", "cannot open the MLflow tracking"),
])
def test_a_bad_environment_is_one_message_naming_the_variable(
        tiny: Path, variable: str, value: str, expected: str) -> None:
    root = tiny.parent.parent
    (root / "a-file").write_text("")
    env = {variable: str(root / "a-file") if value == "FILE" else value}
    result = turbexp_cli("run", str(tiny), "--no-progress", cwd=root, env=env)
    assert result.returncode == 2
    err = result.stderr
    assert "Traceback" not in err and f"{variable}: " in err
    assert expected in err.replace("\n", " ")
    assert not (root / ".turbexp" / "cache").exists()


def test_an_optuna_storage_that_cannot_be_opened_fails_before_any_run(
        tiny: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import mlflow

    root = tiny.parent.parent
    url = f"sqlite:///{root / 'missing' / 'optuna.db'}"
    with pytest.raises(SystemExit) as info:
        main(["run", str(tiny), "--no-progress", "--set", f"tune.storage={url}"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert f"tune.storage: cannot open the Optuna storage '{url}'" in err.replace("\n", " ")
    assert "Traceback" not in err
    assert not (root / ".turbexp" / "cache").exists()
    if (root / "mlflow.db").exists():
        assert mlflow.search_runs(search_all_experiments=True, output_format="list") == []


@pytest.mark.parametrize("kind", ["fifo", "device", "symlink loop"])
def test_an_experiment_file_that_is_no_file_is_refused_without_reading(
        workdir: Path, capsys: pytest.CaptureFixture[str], kind: str) -> None:
    import os

    if kind == "fifo":  # reading one would wait for a writer for ever
        path = workdir / "fifo.yaml"
        os.mkfifo(path)
        expected = "not a regular file"
    elif kind == "device":
        path, expected = Path("/dev/zero"), "not a regular file"
    else:
        path = workdir / "loop.yaml"
        path.symlink_to(workdir / "other.yaml")
        (workdir / "other.yaml").symlink_to(path)
        expected = "symbolic links"
    with pytest.raises(SystemExit) as info:
        main(["run", str(path), "--no-progress"])
    assert info.value.code == 2
    assert expected in capsys.readouterr().err


def test_a_campaign_path_that_loops_is_one_message(
        tiny: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sims = tiny.parent.parent / "sims"
    (sims / "a.yaml").symlink_to(sims / "b.yaml")
    (sims / "b.yaml").symlink_to(sims / "a.yaml")
    write(tiny, TINY_EXPERIMENT.replace("../sims/tiny.yaml", "../sims/a.yaml"))
    with pytest.raises(SystemExit) as info:
        main(["run", str(tiny), "--no-progress"])
    assert info.value.code == 2
    assert "a.yaml: a loop of symbolic links" in capsys.readouterr().err


def test_missing_experiment_file(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["run", "experiments/none.yaml"])
    assert info.value.code == 2
    assert "experiments/none.yaml: file not found" in capsys.readouterr().err
    assert not (workdir / "mlflow.db").exists()


def test_bad_jobs_variable(tiny: Path, capsys: pytest.CaptureFixture[str],
                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TURBEXP_JOBS", "lots")
    with pytest.raises(SystemExit) as info:
        main(["sims", "run", str(tiny.parent.parent / "sims" / "tiny.yaml")])
    assert info.value.code == 2
    assert "TURBEXP_JOBS must be an integer" in capsys.readouterr().err
