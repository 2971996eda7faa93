"""The bootstrap over holdout simulations: what it resamples, and that its intervals cover."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import norm
from sklearn import metrics as skm

from turbexp import metrics
from turbexp.holdout import Holdout, HoldoutPart, paired_differences, verdict
from turbexp.uncertainty import Interval, SimulationBootstrap, from_metrics, with_interval


def _synthetic(rng: np.random.Generator, per_class: int, images: int, separation: float,
               noise: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Scores of ``images`` images of each of ``per_class`` simulations per class: a latent
    value per simulation (unit normal, shifted by ``separation`` for class 1) plus image
    noise. Images of one simulation share its latent value, as views of one box do."""
    simulation = np.repeat(np.arange(2 * per_class), images)
    label = (simulation >= per_class).astype(int)
    latent = rng.standard_normal(2 * per_class) + separation * (np.arange(2 * per_class)
                                                               >= per_class)
    score = latent[simulation] + noise * rng.standard_normal(len(simulation))
    return simulation, label, score


def _true_auc(separation: float, noise: float) -> float:
    """P(score of a class-1 image > score of a class-0 image) for independent simulations:
    the difference is normal with mean ``separation`` and variance 2 (1 + noise²). The
    expected AUC of any holdout equals it, since no pair shares a simulation."""
    return float(norm.cdf(separation / np.sqrt(2 * (1 + noise**2))))


@pytest.mark.slow
def test_interval_covers_the_true_auc_at_the_nominal_rate() -> None:
    """300 holdouts of 20 simulations per class and 12 correlated images each. The BCa
    interval must hold the true AUC in 95 % of them; with 300 draws the binomial standard
    error of the rate is 0.013, so the tolerance is ±0.04 (3 standard errors)."""
    rng = np.random.default_rng(2026)
    separation, noise = 1.5, 1.0
    truth = _true_auc(separation, noise)
    draws, covered, widths = 300, 0, []
    for _ in range(draws):
        simulation, label, score = _synthetic(rng, 20, 12, separation, noise)
        boot = SimulationBootstrap(simulation, label, resamples=500,
                                   seed=int(rng.integers(2**31)))
        auc = boot.intervals(lambda i, y=label, s=score: {"auc": metrics.roc_auc(y[i], s[i])})[
            "auc"]
        covered += auc.low <= truth <= auc.high
        widths.append(auc.high - auc.low)
    assert abs(covered / draws - 0.95) <= 0.04, covered / draws
    # resampling images instead of simulations would be far narrower: the correlation is real
    assert 0.1 < np.mean(widths) < 0.4


def test_images_of_a_simulation_are_resampled_together_within_strata() -> None:
    simulation = np.repeat([10, 11, 12, 20, 21, 22, 23], 4)
    stratum = np.repeat([0, 0, 0, 1, 1, 1, 1], 4)
    boot = SimulationBootstrap(simulation, stratum, resamples=50, seed=1)
    for indices in boot.draws():
        drawn = simulation[indices]
        _, counts = np.unique(drawn, return_counts=True)
        assert np.all(counts % 4 == 0)  # whole simulations, each as often as it was drawn
        assert np.sum(stratum[indices] == 0) == 3 * 4 and np.sum(stratum[indices] == 1) == 4 * 4
    # the same simulations, strata, resamples and seed give the same draws
    again = SimulationBootstrap(simulation, stratum, resamples=50, seed=1)
    assert all(np.array_equal(a, b) for a, b in zip(boot.draws(), again.draws(), strict=True))
    with pytest.raises(ValueError, match="several strata"):
        SimulationBootstrap(np.array([1, 1]), np.array([0, 1]))


def test_metrics_equal_scikit_learn_to_round_off() -> None:
    rng = np.random.default_rng(0)
    for _ in range(20):
        y = rng.integers(0, 2, 60)
        score = np.round(rng.random(60), 1)  # ties
        pred = (score > 0.5).astype(int)
        got = metrics.score("classify", y, pred, score)
        assert got["roc_auc"] == pytest.approx(skm.roc_auc_score(y, score), abs=1e-12)
        assert got["accuracy"] == pytest.approx(skm.accuracy_score(y, pred), abs=1e-12)
        assert got["f1"] == pytest.approx(skm.f1_score(y, pred, zero_division=0), abs=1e-12)
        fpr, tpr, _ = skm.roc_curve(y, score)
        assert metrics.roc_tpr(y, score) == pytest.approx(np.interp(metrics.FPR_GRID, fpr, tpr))
        truth, guess = 3 + 1.5 * rng.random(30), 3 + 1.5 * rng.random(30)
        got = metrics.score("regress", truth, guess, guess)
        assert got["mse"] == pytest.approx(skm.mean_squared_error(truth, guess), abs=1e-12)
        assert got["mae"] == pytest.approx(skm.mean_absolute_error(truth, guess), abs=1e-12)
        assert got["r2"] == pytest.approx(skm.r2_score(truth, guess), abs=1e-12)
    assert np.isnan(metrics.roc_auc(np.ones(4), np.arange(4)))
    assert metrics.f1(np.zeros(3), np.zeros(3)) == 0.0


def _part(score: np.ndarray, simulation: np.ndarray, label: np.ndarray) -> HoldoutPart:
    return HoldoutPart("h" * 64, 0, simulation, label, np.zeros(len(label)), label,
                       (score > np.median(score)).astype(int), score)


def test_paired_difference_uses_the_same_draws_for_both_runs() -> None:
    rng = np.random.default_rng(3)
    simulation, label, score = _synthetic(rng, 10, 6, 1.0, 0.5)
    a = Holdout("classify", ["k", "b"], (_part(score, simulation, label),))
    same = paired_differences(a, a, resamples=200)
    assert same["roc_auc"] == Interval(0.0, 0.0, 0.0)  # identical runs: no spread at all
    # a better run (less image noise on the same latent values) is found better
    better = a.parts[0].score + 5.0 * label
    b = Holdout("classify", ["k", "b"], (_part(better, simulation, label),))
    difference = paired_differences(b, a, resamples=200)["roc_auc"]
    assert difference.low > 0
    assert verdict(difference, "maximize") == "better"
    assert verdict(paired_differences(a, b, resamples=200)["roc_auc"], "maximize") == "worse"
    assert verdict(Interval(0.01, -0.02, 0.05), "maximize") == "not distinguishable"
    assert verdict(Interval(-0.1, -0.2, -0.05), "minimize") == "better"  # lower MSE


def test_repeats_average_their_metrics_and_resample_within_each() -> None:
    rng = np.random.default_rng(4)
    parts = tuple(_part(s, sim, y) for sim, y, s in
                  (_synthetic(rng, 8, 4, 1.0, 0.5) for _ in range(3)))
    combined = Holdout("classify", ["k", "b"], parts)
    singles = [Holdout("classify", ["k", "b"], (p,)).scores() for p in parts]
    assert combined.scores()["roc_auc"] == pytest.approx(
        np.mean([s["roc_auc"] for s in singles]))
    assert combined.n_simulations == 48 and combined.n_images == 192
    interval = combined.intervals(resamples=200)["roc_auc"]
    assert interval.low < interval.value < interval.high
    # round trip through the logged form
    assert Holdout.from_dict(combined.to_dict()).scores() == combined.scores()


def test_intervals_are_logged_beside_their_metric() -> None:
    flat = with_interval({"roc_auc": Interval(0.8, 0.7, 0.9)}, "holdout_")
    assert flat == {"holdout_roc_auc": 0.8, "holdout_roc_auc_ci95_low": 0.7,
                    "holdout_roc_auc_ci95_high": 0.9}
    assert from_metrics(flat, "holdout_roc_auc") == Interval(0.8, 0.7, 0.9)
    assert Interval(0.8731, 0.8012, 0.9304).text() == "0.873 [0.801, 0.93]"
    assert Interval(float("nan"), 0.0, 1.0).text() == "n/a"
