"""Uncertainty of holdout results: a bootstrap over whole simulations.

The images of one simulation are views of the same box (projections, cuts,
flips), so they are not independent: a resample draws *simulations* with
replacement, within each stratum (class, or campaign group), and takes every
image of each drawn simulation. Scalar results get a bias-corrected and
accelerated (BCa) interval, the acceleration from a jackknife over
simulations; curves (ROC, response) get pointwise percentile bands.

One :class:`SimulationBootstrap` holds its draws, so every statistic computed
with it (every metric, each of two compared runs, their difference) sees the
same resamples. Metrics are logged as ``<name>`` with ``<name>_ci95_low`` and
``<name>_ci95_high`` beside it (:func:`with_interval`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
from scipy.stats import norm

LEVEL = 0.95
LOW, HIGH = "_ci95_low", "_ci95_high"
DEFAULT_RESAMPLES = 1000
MIN_PER_STRATUM = 2
"""Fewer simulations than this in a stratum leave the interval undefined (NaN)."""

Statistic = Callable[[np.ndarray], dict[str, float]]
"""Image indices (or, for :meth:`SimulationBootstrap.intervals_of_simulations`, simulation
positions) -> named values (every metric at once)."""


@dataclass(frozen=True)
class Interval:
    """A value with its 95 % interval (NaN bounds when the interval is undefined)."""

    value: float
    low: float
    high: float

    def text(self, digits: int = 3) -> str:
        """``0.873 [0.801, 0.93]``, or the value alone when there is no interval."""
        if not np.isfinite(self.value):
            return "n/a"
        if not (np.isfinite(self.low) and np.isfinite(self.high)):
            return f"{self.value:.{digits}g}"
        return f"{self.value:.{digits}g} [{self.low:.{digits}g}, {self.high:.{digits}g}]"


def with_interval(intervals: dict[str, Interval], prefix: str = "") -> dict[str, float]:
    """Intervals as flat metrics: ``<prefix><name>``, ``…_ci95_low``, ``…_ci95_high``."""
    out: dict[str, float] = {}
    for name, interval in intervals.items():
        out[f"{prefix}{name}"] = interval.value
        out[f"{prefix}{name}{LOW}"] = interval.low
        out[f"{prefix}{name}{HIGH}"] = interval.high
    return out


def from_metrics(values: dict[str, float], name: str) -> Interval:
    """The interval of ``name`` from flat metrics written by :func:`with_interval`."""
    nan = float("nan")
    return Interval(values.get(name, nan), values.get(name + LOW, nan),
                    values.get(name + HIGH, nan))


class SimulationBootstrap:
    """Resamples of the images of a holdout set, drawn by simulation within strata.

    ``simulation`` names each image's simulation and ``stratum`` its stratum (a
    simulation lies in one stratum). Each resample draws, in every stratum, as many
    simulations as it has, with replacement. The draws depend only on the images'
    simulations and strata, ``resamples`` and ``seed``, not on their images: two runs scored
    on the same holdout simulations get the same draws (:meth:`same_draws`), even when they
    cut other images from them. With a single simulation in some stratum nothing can vary
    and every interval is undefined (NaN).
    """

    def __init__(self, simulation: np.ndarray, stratum: np.ndarray | None = None, *,
                 resamples: int = DEFAULT_RESAMPLES, seed: int = 0) -> None:
        simulation = np.asarray(simulation).ravel()
        stratum = np.zeros(len(simulation), dtype=np.int64) if stratum is None \
            else np.asarray(stratum).ravel()
        if len(stratum) != len(simulation):
            raise ValueError("simulation and stratum must have one entry per image")
        if resamples < 1:
            raise ValueError(f"resamples must be at least 1, got {resamples}")
        self.n_images = len(simulation)
        self.resamples = resamples
        clusters, owner = np.unique(simulation, return_inverse=True)
        self.simulations = clusters
        self.n_simulations = len(clusters)
        order = np.argsort(owner, kind="stable")
        bounds = np.searchsorted(owner[order], np.arange(self.n_simulations + 1))
        self._members = [order[bounds[i]:bounds[i + 1]] for i in range(self.n_simulations)]
        cluster_stratum = np.empty(self.n_simulations, dtype=object)
        for i, members in enumerate(self._members):
            values = {_key(v) for v in stratum[members]}
            if len(values) != 1:
                raise ValueError(f"simulation {clusters[i]!r} lies in several strata")
            cluster_stratum[i] = values.pop()
        self.strata = cluster_stratum
        groups = [np.flatnonzero(cluster_stratum == s)
                  for s in sorted(set(cluster_stratum.tolist()), key=str)]
        # one simulation in a stratum is drawn every time: no spread to measure
        self.defined = min(len(g) for g in groups) >= MIN_PER_STRATUM
        rng = np.random.default_rng(seed)
        # (resamples, n_simulations): the clusters drawn by each resample, stratum by stratum
        self._picks = np.concatenate(
            [g[rng.integers(0, len(g), size=(resamples, len(g)))] for g in groups], axis=1)

    def images(self, clusters: np.ndarray) -> np.ndarray:
        """The image indices of the given clusters (positions 0 … n_simulations - 1)."""
        return np.concatenate([self._members[c] for c in clusters])

    def draws(self) -> Iterator[np.ndarray]:
        """The image indices of each resample, in a fixed order."""
        for picks in self._picks:
            yield self.images(picks)

    def same_draws(self, other: SimulationBootstrap) -> bool:
        """Whether ``other`` draws the same simulations on every resample (the same
        simulations in the same strata, resamples and seed), whatever their images."""
        return (np.array_equal(self.simulations, other.simulations)
                and list(self.strata) == list(other.strata)
                and np.array_equal(self._picks, other._picks))

    def intervals(self, statistic: Statistic) -> dict[str, Interval]:
        """BCa intervals of every value ``statistic`` of image indices returns."""
        return self.intervals_of_simulations(lambda chosen: statistic(self.images(chosen)),
                                             statistic(np.arange(self.n_images)))

    def intervals_of_simulations(self, statistic: Statistic,
                                 point: dict[str, float] | None = None) -> dict[str, Interval]:
        """BCa intervals of every value ``statistic`` returns, given the positions
        (0 … n_simulations - 1, with repeats) of the simulations a resample drew: for
        statistics over several image sets of the same simulations (a paired difference).
        ``point``: the values on the whole holdout, if already known."""
        everything = np.arange(self.n_simulations)
        point = statistic(everything) if point is None else point
        names = list(point)
        if not self.defined:
            nan = float("nan")
            return {name: Interval(float(point[name]), nan, nan) for name in names}
        boot = _table(names, (statistic(picks) for picks in self._picks))
        jack = _table(names, (statistic(np.delete(everything, k)) for k in everything)) \
            if self.n_simulations > 2 else np.full((0, len(names)), np.nan)
        return {name: _bca(point[name], boot[:, k], jack[:, k])
                for k, name in enumerate(names)}

    def band(self, curve: Callable[[np.ndarray], np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Pointwise 95 % percentile band of a curve evaluated on every resample (NaN when
        the resamples cannot vary)."""
        if not self.defined:
            size = len(np.atleast_1d(curve(np.arange(self.n_images))))
            return np.full(size, np.nan), np.full(size, np.nan)
        values = np.array([curve(i) for i in self.draws()], dtype=np.float64)
        alpha = (1 - LEVEL) / 2
        with np.errstate(all="ignore"):
            return (np.nanquantile(values, alpha, axis=0),
                    np.nanquantile(values, 1 - alpha, axis=0))

    def describe(self) -> str:
        """``"12 simulations, 576 images; 1000 bootstrap resamples"``, for figure captions."""
        return (f"{self.n_simulations} simulations, {self.n_images} images; "
                f"95 % intervals from {self.resamples} resamples of whole simulations")


def _key(value: object) -> object:
    return value.item() if isinstance(value, np.generic) else value


def _table(names: list[str], rows: Iterator[dict[str, float]]) -> np.ndarray:
    return np.array([[row.get(n, np.nan) for n in names] for row in rows], dtype=np.float64)


def _bca(value: float, boot: np.ndarray, jack: np.ndarray) -> Interval:
    """The BCa interval (Efron 1987) of ``value`` from its resampled and jackknifed values;
    it falls back to the percentile interval when the jackknife is undefined."""
    nan = float("nan")
    boot = boot[np.isfinite(boot)]
    if not np.isfinite(value) or len(boot) < 10:
        return Interval(float(value), nan, nan)
    if np.ptp(boot) == 0:
        return Interval(float(value), float(boot[0]), float(boot[0]))
    share = (np.sum(boot < value) + 0.5 * np.sum(boot == value)) / len(boot)
    share = np.clip(share, 0.5 / len(boot), 1 - 0.5 / len(boot))
    z0 = norm.ppf(share)
    jack = jack[np.isfinite(jack)]
    spread = jack.mean() - jack if len(jack) > 2 else np.zeros(1)
    denominator = 6.0 * np.sum(spread**2) ** 1.5
    acceleration = float(np.sum(spread**3) / denominator) if denominator > 0 else 0.0
    alpha = (1 - LEVEL) / 2
    z = norm.ppf([alpha, 1 - alpha])
    adjusted = norm.cdf(z0 + (z0 + z) / (1 - acceleration * (z0 + z)))
    low, high = np.quantile(boot, adjusted)
    return Interval(float(value), float(low), float(high))
