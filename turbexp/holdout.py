"""A run's predictions on its holdout images, as logged, with their uncertainty.

Every experiment run logs :data:`PREDICTIONS`: per holdout image its simulation
(position in the campaign), stratum, index, target, prediction and score, with
the campaign hash and split seed that identify the holdout set. A repeated
experiment's parent run logs one such part per repeat. Its scores are the mean
over parts of each part's metrics, and the bootstrap resamples simulations
within every part and stratum, so one code path serves one run and K repeats.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from turbexp import metrics
from turbexp.uncertainty import DEFAULT_RESAMPLES, Interval, SimulationBootstrap

PREDICTIONS = "holdout/predictions.json"


@dataclass(frozen=True)
class HoldoutPart:
    """The holdout images of one run (one repeat)."""

    campaign_hash: str
    split_seed: int
    simulation: np.ndarray
    stratum: np.ndarray
    index: np.ndarray
    y_true: np.ndarray
    y_pred: np.ndarray
    score: np.ndarray

    def to_dict(self) -> dict[str, Any]:
        return {"campaign_hash": self.campaign_hash, "split_seed": self.split_seed,
                **{name: np.asarray(getattr(self, name)).tolist()
                   for name in ("simulation", "stratum", "index", "y_true", "y_pred", "score")}}

    @classmethod
    def from_dict(cls, data: dict[str, Any], task: str) -> HoldoutPart:
        y_true = np.asarray(data["y_true"])
        # runs logged before strata were recorded: classes are the strata of a classify task
        stratum = data.get("stratum", y_true if task == "classify" else np.zeros(len(y_true)))
        return cls(
            campaign_hash=str(data["campaign_hash"]),
            split_seed=int(data["split_seed"]),
            simulation=np.asarray(data["simulation"], dtype=np.int64),
            stratum=np.asarray(stratum),
            index=np.asarray(data["index"], dtype=np.float64),
            y_true=y_true,
            y_pred=np.asarray(data["y_pred"]),
            score=np.asarray(data["score"], dtype=np.float64),
        )


@dataclass(frozen=True)
class Holdout:
    """A run's holdout predictions: one part, or one part per repeat."""

    task: str
    class_names: list[str]
    parts: tuple[HoldoutPart, ...]

    @property
    def n_images(self) -> int:
        return sum(len(p.y_true) for p in self.parts)

    @property
    def n_simulations(self) -> int:
        return sum(len(np.unique(p.simulation)) for p in self.parts)

    def to_dict(self) -> dict[str, Any]:
        common = {"task": self.task, "class_names": list(self.class_names)}
        if len(self.parts) == 1:
            return {**common, **self.parts[0].to_dict()}
        return {**common, "repeats": [p.to_dict() for p in self.parts]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Holdout:
        task = str(data["task"])
        parts = data["repeats"] if "repeats" in data else [data]
        if not parts:
            raise ValueError("no holdout part")
        return cls(task, [str(c) for c in data.get("class_names") or []],
                   tuple(HoldoutPart.from_dict(p, task) for p in parts))

    def concatenated(self, name: str) -> np.ndarray:
        """A per-image field of every part, one after another."""
        return np.concatenate([np.asarray(getattr(p, name)) for p in self.parts])

    def bootstrap(self, resamples: int = DEFAULT_RESAMPLES, seed: int = 0) -> SimulationBootstrap:
        """Resamples of whole simulations within each part and stratum."""
        simulations = [np.char.add(f"{k}:", p.simulation.astype(str))
                       for k, p in enumerate(self.parts)]
        strata = [np.char.add(f"{k}:", p.stratum.astype(str)) for k, p in enumerate(self.parts)]
        return SimulationBootstrap(np.concatenate(simulations), np.concatenate(strata),
                                   resamples=resamples, seed=seed)

    def _per_part(self, indices: np.ndarray | None,
                  function: Callable[[HoldoutPart, Any], Any]) -> list[Any]:
        """``function(part, chosen)`` for every part, ``chosen`` selecting that part's images
        among ``indices`` (positions in :meth:`concatenated` order; None: all)."""
        bounds = np.cumsum([0, *(len(p.y_true) for p in self.parts)])
        out = []
        for k, part in enumerate(self.parts):
            chosen = slice(None) if indices is None else \
                indices[(indices >= bounds[k]) & (indices < bounds[k + 1])] - bounds[k]
            out.append(function(part, chosen))
        return out

    def scores(self, indices: np.ndarray | None = None) -> dict[str, float]:
        """Every metric of the task on the images ``indices`` (default: all), averaged over
        the parts."""
        per_part = self._per_part(indices, lambda p, c: metrics.score(
            self.task, p.y_true[c], p.y_pred[c], p.score[c]))
        return {name: float(np.mean([s[name] for s in per_part])) for name in per_part[0]}

    def roc_tpr(self, indices: np.ndarray | None = None) -> np.ndarray:
        """The ROC curve (true-positive rates at :data:`turbexp.metrics.FPR_GRID`), averaged
        over the parts at each false-positive rate."""
        return np.mean(self._per_part(indices, lambda p, c: metrics.roc_tpr(p.y_true[c],
                                                                            p.score[c])), axis=0)

    def intervals(self, resamples: int = DEFAULT_RESAMPLES,
                  seed: int = 0) -> dict[str, Interval]:
        """Every metric with its 95 % interval."""
        return self.bootstrap(resamples, seed).intervals(self.scores)


def paired_differences(a: Holdout, b: Holdout, resamples: int = DEFAULT_RESAMPLES,
                       seed: int = 0) -> dict[str, Interval]:
    """Every metric of ``a`` minus that of ``b`` on the same resamples of their shared
    holdout simulations, with its 95 % interval. Each run is scored on its own images of
    the simulations drawn, so runs that cut other images from the same simulations (a CNN's
    and HOG's, say) are paired too. ``ValueError`` unless both have the same simulations
    in the same strata."""
    boot_a, boot_b = a.bootstrap(resamples, seed), b.bootstrap(resamples, seed)
    if not boot_a.same_draws(boot_b):
        raise ValueError("the two holdouts do not have the same simulations in the same strata")

    def difference(chosen: np.ndarray) -> dict[str, float]:
        first, second = a.scores(boot_a.images(chosen)), b.scores(boot_b.images(chosen))
        return {name: first[name] - second[name] for name in first}

    first, second = a.scores(), b.scores()
    return boot_a.intervals_of_simulations(
        difference, {name: first[name] - second[name] for name in first})


def verdict(difference: Interval, direction: str) -> str:
    """``better``, ``worse`` or ``not distinguishable``: whether the 95 % interval of a
    difference (first minus second) excludes zero, for a metric improving in ``direction``."""
    if not (np.isfinite(difference.low) and np.isfinite(difference.high)):
        return "not distinguishable"
    sign = 1 if direction == "maximize" else -1
    if sign * difference.low > 0 and sign * difference.high > 0:
        return "better"
    if sign * difference.low < 0 and sign * difference.high < 0:
        return "worse"
    return "not distinguishable"

