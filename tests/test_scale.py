"""Changing a study's size without editing its files: --set, scales and --dry-run."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import TINY_CAMPAIGN, TINY_EXPERIMENT, turbexp_cli, write

from turbexp.errors import UserError
from turbexp.experiment import plan_experiment, plan_experiments
from turbexp.overrides import parse_assignments

SCALES = """
scales:
  big:
    data.images: {size: 16, cuts: 1, flips: 1}
    estimator.C: 3.0
    tune.trials: 0
"""
CAMPAIGN_SCALES = """
scales:
  big: {grid: 24, groups.1.count: 5}
"""


@pytest.fixture
def scaled(tiny: Path) -> Path:
    root = tiny.parent.parent
    write(root / "sims" / "tiny.yaml", TINY_CAMPAIGN + CAMPAIGN_SCALES)
    return write(tiny, TINY_EXPERIMENT + SCALES)


def _snapshot(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_size for p in root.rglob("*")}


def test_set_changes_any_key_and_campaign_keys_reach_the_campaign(tiny: Path) -> None:
    plan = plan_experiment(tiny, overrides=parse_assignments(
        ["data.images.size=12", "estimator.C=2.5", "tune.trials=0", "campaign.grid=20",
         "campaign.groups.0.count=4", "evaluate.reports.0.plugin=zoom_invariance"]))
    assert plan.spec.data.images.size == 12
    assert plan.estimator.fixed == {"C": 2.5} and not plan.tuned
    assert plan.campaign.spec.grid == 20
    assert [g.count for g in plan.campaign.spec.groups] == [4, 3]
    assert plan.reports[0].plugin.name == "zoom_invariance"
    # the file itself is untouched, and a plan without overrides reads it as written
    assert plan_experiment(tiny).spec.data.images.size == 8


@pytest.mark.parametrize(("assignment", "expected"), [
    ("data.images.sise=12", "--set data.images.sise: unknown key 'sise' at data.images; "
                            "expected one of: size, projections, cuts, flips"),
    ("colour=red", "--set colour: unknown key 'colour' at the top level"),
    ("campaign.gird=32", "--set campaign.gird: unknown key 'gird'"),
    ("data.images.size.x=1", "--set data.images.size.x: data.images.size takes a value"),
    ("campaign.groups.9.count=1", "groups has 2 entries"),
    ("data.images.size", "expected KEY=VALUE"),
    ("estimator.C={low: 1", "is not valid YAML"),
])
def test_a_wrong_set_is_one_clear_error(tiny: Path, assignment: str, expected: str) -> None:
    root = tiny.parent.parent
    result = turbexp_cli("run", str(tiny), "--set", assignment, cwd=root)
    assert result.returncode == 2
    assert expected in result.stderr.replace("\n", " ")
    assert "Traceback" not in result.stderr
    assert not (root / "mlflow.db").exists() and not (root / ".turbexp").exists()


def test_an_unknown_plugin_parameter_is_named_by_the_plugin(tiny: Path) -> None:
    with pytest.raises(UserError, match="unknown parameter of estimator plugin 'svm'"):
        plan_experiment(tiny, overrides={"estimator.gamma_typo": 1})


def test_a_scale_changes_the_experiment_and_its_campaign(scaled: Path) -> None:
    plan = plan_experiment(scaled, scale="big")
    assert plan.spec.data.images.size == 16 and plan.spec.data.images.cuts == 1
    assert plan.campaign.spec.grid == 24
    assert [g.count for g in plan.campaign.spec.groups] == [3, 5]
    assert plan.scale == "big"
    # --set applies on top of the scale
    assert plan_experiment(scaled, scale="big", overrides={"data.images.size": 20}) \
        .spec.data.images.size == 20
    with pytest.raises(UserError, match=r"no scale 'huge' in this file \(its scales: big\)"):
        plan_experiment(scaled, scale="huge")


def test_the_shipped_catalogue_runs_at_paper_scale() -> None:
    """Every experiment and campaign has the reference study's size as its `paper` scale:
    1000 boxes, 500-pixel maps cut into 250×250 quarters, 38 400 training images."""
    root = Path(__file__).resolve().parents[1]
    plans = plan_experiments(sorted((root / "experiments").glob("*.yaml")), scale="paper")
    main = {p.spec.name: p for p in plans}["cnn_classify"]
    assert main.campaign.spec.grid == 500
    assert sum(g.count for g in main.campaign.spec.groups) == 1000
    images = main.spec.data.images
    assert (images.size, images.cuts, images.flips, len(images.projections)) == (250, 4, 4, 3)
    assert main.campaign.spec.grid // 2 == images.size  # a quarter of the map, not resized
    from turbexp.commands.cost import _split_sizes

    assert _split_sizes(main)["train"] == 38_400


def test_dry_run_prints_the_cost_and_writes_nothing(scaled: Path) -> None:
    root = scaled.parent.parent
    before = _snapshot(root)
    result = turbexp_cli("run", str(scaled), "--dry-run", "--scale", "big", cwd=root)
    assert result.returncode == 0, result.stderr
    assert _snapshot(root) == before  # no cache, no MLflow store, no Optuna journal
    row = next(line for line in result.stdout.splitlines() if "tiny-hog-svm" in line)
    assert "8 (8)" in row  # 3 + 5 simulations, none in the cache yet
    assert "M cell updates/s" in result.stdout
    # with the simulations made, nothing is left to simulate
    assert turbexp_cli("sims", "run", "sims/tiny.yaml", "--scale", "big", "--no-progress",
                       cwd=root).returncode == 0
    again = turbexp_cli("run", str(scaled), "--dry-run", "--scale", "big", cwd=root)
    row = next(line for line in again.stdout.splitlines() if "tiny-hog-svm" in line)
    assert "8 (0)" in row
    assert "median of 8 simulations in the cache" in again.stdout
