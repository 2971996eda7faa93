"""Plugin discovery: built-ins and third-party packages alike, and broken ones reported."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest
from conftest import ROOT, TINY_EXPERIMENT, fake_distribution, turbexp_cli, write

from turbexp.plugins import load_registry

BUILTINS = {
    "simulator": {"builtin"},
    "features": {"hog", "power_spectrum"},
    "estimator": {"svm", "svr", "logistic"},
    "report": {"roc", "confusion_matrix", "tsne", "predicted_vs_true"},
}


def test_builtin_plugins_come_from_entry_points() -> None:
    registry = load_registry()
    assert not registry.failures
    for kind, names in BUILTINS.items():
        assert names <= set(registry.names(kind))
        for name in names:
            info = registry.get(kind, name)
            assert info.package == "turbexp"
            assert info.version
            fields = info.cls.Params.model_fields
            assert set(info.cls.search_space) <= set(fields)


def _broken_distribution(folder: Path) -> None:
    """A real installed distribution whose entry point fails to import."""
    fake_distribution(folder, "turbexp-broken", "broken", "import a_module_that_does_not_exist\n",
                      version="1.2")


def test_a_broken_plugin_is_reported_and_the_rest_work(tiny: Path, tmp_path: Path) -> None:
    site = tmp_path / "site"
    _broken_distribution(site)
    env = {"PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}
    listing = turbexp_cli("plugins", cwd=tiny.parent.parent, env=env)
    assert listing.returncode == 0, listing.stderr
    out = listing.stdout + listing.stderr
    assert "broken" in out and "turbexp-broken" in out
    assert "No module named 'a_module_that_does_not_exist'" in out
    assert "hog" in listing.stdout and "svm" in listing.stdout

    checked = turbexp_cli("validate", str(tiny), cwd=tiny.parent.parent, env=env)
    assert checked.returncode == 0, checked.stderr
    assert "plugin 'broken'" in checked.stderr  # warned once, then carried on

    strict = turbexp_cli("validate", str(tiny), cwd=tiny.parent.parent,
                         env={**env, "TURBEXP_STRICT_PLUGINS": "1"})
    assert strict.returncode != 0
    assert "a_module_that_does_not_exist" in strict.stderr


def test_plugin_naming_a_broken_package_says_it_failed_to_load(tiny: Path,
                                                               tmp_path: Path) -> None:
    site = tmp_path / "site"
    _broken_distribution(site)
    env = {"PYTHONPATH": str(site)}
    bad = write(tiny, TINY_EXPERIMENT.replace("plugin: hog", "plugin: broken"))
    result = turbexp_cli("validate", str(bad), cwd=tiny.parent.parent, env=env)
    assert result.returncode == 2
    assert "failed to load" in result.stderr and "turbexp-broken" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.fixture(scope="module")
def example_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example third-party package, installed for real (pip) into its own folder."""
    target = tmp_path_factory.mktemp("example-site")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
         "--target", str(target), str(ROOT / "tests" / "example_plugin")],
        check=True, capture_output=True, text=True, timeout=300,
    )
    return target


def test_third_party_plugin_is_listed_with_its_package(example_site: Path, workdir: Path) -> None:
    result = turbexp_cli("plugins", cwd=workdir, env={"PYTHONPATH": str(example_site)})
    assert result.returncode == 0, result.stderr
    rows = [line for line in result.stdout.splitlines() if "pixel_stats" in line]
    assert rows and "turbexp-example-plugin" in rows[0] and "0.3.1" in rows[0]
    assert "features" in rows[0]
    assert any("nearest_centroid" in line for line in result.stdout.splitlines())


def test_third_party_plugin_runs_from_yaml(example_site: Path, tiny: Path) -> None:
    experiment = write(tiny, TINY_EXPERIMENT
                       .replace("name: tiny-hog-svm", "name: tiny-example")
                       .replace("features: {plugin: hog, orientations: 6, cells: 2}",
                                "features: {plugin: pixel_stats, moments: 4}")
                       .replace("estimator: {plugin: svm, C: {low: 0.1, high: 10, log: true}}",
                                "estimator: {plugin: nearest_centroid, "
                                "metric: {choices: [euclidean, manhattan]}}")
                       .replace("tsne]", "tsne]\n"))
    result = turbexp_cli("run", str(experiment), "--no-progress", cwd=tiny.parent.parent,
                         env={"PYTHONPATH": str(example_site)})
    assert result.returncode == 0, result.stderr
    [parent] = mlflow.search_runs(experiment_names=["turbexp"], output_format="list",
                                  filter_string="tags.`turbexp.role` = 'experiment'")
    assert parent.data.params["features"] == "pixel_stats"
    assert parent.data.params["estimator"] == "nearest_centroid"
    assert parent.data.params["features.moments"] == "4"
    assert "turbexp-example-plugin==0.3.1" in parent.data.tags["turbexp.plugins"]
    assert "holdout_roc_auc" in parent.data.metrics


def test_a_misspelt_hook_is_reported_not_ignored(tmp_path: Path) -> None:
    site = fake_distribution(
        tmp_path / "site", "turbexp-typo", "typo",
        "import turbexp\n\n@turbexp.hookimpl\ndef register_feature(register):\n    pass\n",
    )
    result = turbexp_cli("plugins", cwd=tmp_path, env={"PYTHONPATH": str(site)})
    assert result.returncode == 0
    assert "typo" in result.stderr and "register_feature" in result.stderr
    assert "hog" in result.stdout


COMMANDS = """
import click

from turbexp.api import UserError, hookimpl


@click.command()
@click.argument("who")
def hello(who):
    \"\"\"Say hello.\"\"\"
    if who == "nobody":
        raise UserError("nobody is there", field="WHO")
    click.echo(f"hello {who}")


@click.command("run")
def shadow():
    click.echo("the plugin's run")


@hookimpl
def register_commands(register):
    register(hello)
    register(shadow)
"""


def test_a_plugin_package_adds_a_command(tmp_path: Path, tiny: Path) -> None:
    site = fake_distribution(tmp_path / "site", "turbexp-hello", "hello", COMMANDS)
    env = {"PYTHONPATH": str(site)}
    root = tiny.parent.parent
    listed = turbexp_cli("plugins", cwd=root, env=env)
    assert listed.returncode == 0, listed.stderr
    rows = [" ".join(line.split()) for line in listed.stdout.splitlines()]
    assert any("command │ hello │ turbexp-hello │ 0.1 │ hello" in row for row in rows)
    assert any("run (a built-in of that name wins)" in row for row in rows)
    said = turbexp_cli("hello", "world", cwd=root, env=env)
    assert said.returncode == 0 and said.stdout == "hello world\n", said.stderr
    refused = turbexp_cli("hello", "nobody", cwd=root, env=env)
    assert refused.returncode == 2 and "WHO: nobody is there" in refused.stderr
    assert "Traceback" not in refused.stderr
    # a built-in keeps its name
    shadowed = turbexp_cli("run", "--dry-run", str(tiny), cwd=root, env=env)
    assert "the plugin's run" not in shadowed.stdout
    unknown = turbexp_cli("nosuch", cwd=root, env=env)
    assert unknown.returncode == 2 and "No such command 'nosuch'" in unknown.stderr


def test_a_plugin_package_tests_itself_with_turbexps_pytest_plugin(example_site: Path,
                                                                    tmp_path: Path) -> None:
    """The example package's tests use the fixtures of turbexp.testing, found through its
    pytest11 entry point, as any plugin package's tests would."""
    tests = tmp_path / "tests"  # away from this repository's configuration and conftest
    shutil.copytree(ROOT / "tests" / "example_plugin" / "tests", tests)
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tests)],
        cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(example_site)},
        capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 passed" in result.stdout
