"""Figures drawn alike by the reports and by ``turbexp compare``: ROC curves (scikit-learn's
``RocCurveDisplay``) with their bands on the common false-positive grid, and the axes of a
predicted against a true spectral index."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from matplotlib.axes import Axes
from sklearn.metrics import RocCurveDisplay

from turbexp.metrics import FPR_GRID

REFERENCE_INDICES = {"Kolmogorov (11/3)": 11 / 3, "Burgers (4)": 4.0}
"""The two indices of the reference study, marked on index axes."""


def draw_roc(ax: Axes, fpr: np.ndarray, tpr: np.ndarray, *, label: str, colour: str,
             band: tuple[np.ndarray, np.ndarray] | None = None, dashed: bool = False,
             chance: bool = False) -> None:
    """One ROC curve (``fpr``, ``tpr``) labelled ``label``, over its 95 % band of
    true-positive rates on :data:`~turbexp.metrics.FPR_GRID` when given; ``chance`` draws
    the diagonal too (once per axes)."""
    if band is not None:
        ax.fill_between(FPR_GRID, band[0], band[1], color=colour, alpha=0.2)
    style = {"color": colour, "linewidth": 2.5 if dashed else 2,
             "linestyle": "--" if dashed else "-"}
    display = RocCurveDisplay(fpr=np.asarray(fpr), tpr=np.asarray(tpr)).plot(
        ax=ax, curve_kwargs=style, plot_chance_level=chance,
        chance_level_kw={"color": "grey", "linestyle": ":", "label": "chance"})
    display.line_.set_label(label)


def finish_roc(ax: Axes, title: str) -> None:
    """Axes of a ROC figure: unit square, rates as labels, ``title``, the legend."""
    ax.set(xlim=(0, 1), ylim=(0, 1.01), xlabel="False positive rate",
           ylabel="True positive rate")
    ax.set_title(title, fontsize=9)
    ax.set_aspect("equal")
    if ax.get_legend_handles_labels()[0]:  # none when the ROC is undefined
        ax.legend(loc="lower right", fontsize="small")


def index_range(values: Iterable[np.ndarray]) -> tuple[float, float]:
    """Axis limits holding every finite value and the reference indices, padded by 5 %."""
    finite = [np.asarray(v, dtype=np.float64).ravel() for v in values]
    joined = np.concatenate([*finite, list(REFERENCE_INDICES.values())])
    joined = joined[np.isfinite(joined)]
    low, high = float(joined.min()), float(joined.max())
    pad = 0.05 * (high - low) or 0.1
    return low - pad, high + pad


def index_axes(ax: Axes, limits: tuple[float, float]) -> None:
    """Axes of predicted against true spectral index: the reference indices dotted on
    both, the line predicted = true, square ``limits``."""
    low, high = limits
    for i, (label, index) in enumerate(REFERENCE_INDICES.items()):
        colour = f"C{i + 1}"
        ax.axvline(index, color=colour, alpha=0.35, linestyle=":", label=label)
        ax.axhline(index, color=colour, alpha=0.35, linestyle=":")
    ax.plot([low, high], [low, high], color="grey", linestyle="--", label="predicted = true")
    ax.set(xlim=(low, high), ylim=(low, high), xlabel="true spectral index n",
           ylabel="predicted spectral index n")
    ax.set_aspect("equal")
