"""Saliency maps of an image model with tf-keras-vis: vanilla gradients and SmoothGrad.

The score whose gradient is taken is the evidence for the image's true class
(the output logit, signed for binary classifiers) or the predicted index for a
regressor. Maps are normalised to [0, 1] per image.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from turbexp_deep.estimator import KerasImageEstimator
from turbexp_deep.framework import tf

BATCH = 64


def _score(task: str, labels: np.ndarray | None) -> Any:
    """The score function tf-keras-vis differentiates, for a batch of outputs."""
    if task == "regress" or labels is None:
        return lambda output: output[:, 0]
    labels = np.asarray(labels, dtype=np.int64)
    sign = np.where(labels == 1, 1.0, -1.0).astype(np.float32)

    def score(output: Any) -> Any:
        if output.shape[-1] == 1:
            return output[:, 0] * sign
        return tf.gather(output, labels, axis=1, batch_dims=1)

    return score


def saliency_maps(estimator: KerasImageEstimator, inputs: np.ndarray,
                  labels: np.ndarray | None = None, smooth_samples: int = 0,
                  smooth_noise: float = 0.2) -> np.ndarray:
    """Saliency (n, H, W) of the network's inputs (n, H, W, 1); ``labels`` are class positions
    (classifiers); ``smooth_samples`` > 0 gives SmoothGrad with noise ``smooth_noise`` × the
    input range."""
    # tf-keras-vis imports TensorFlow: after turbexp_deep.framework has (quietly)
    from tf_keras_vis.saliency import Saliency
    from tf_keras_vis.utils.model_modifiers import ReplaceToLinear

    model = estimator.model_
    task = estimator.task
    modifier = ReplaceToLinear() if task == "classify" else None
    maps = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Keras warns about the input structure tf-keras-vis uses
        saliency = Saliency(model, model_modifier=modifier, clone=True)
        for start in range(0, len(inputs), BATCH):
            chunk = slice(start, start + BATCH)
            score = _score(task, None if labels is None else labels[chunk])
            out = saliency(score, inputs[chunk], smooth_samples=smooth_samples,
                           smooth_noise=smooth_noise, normalize_map=True)
            maps.append(np.asarray(out, dtype=np.float64).reshape(inputs[chunk].shape[:3]))
    return np.concatenate(maps)


def edge_ratio(mean_map: np.ndarray, band: float = 0.125) -> float:
    """Mean saliency in the outer ``band`` of the image over the mean overall: 1 when
    attention is even, above 1 when the borders (cuts, resizing) draw it."""
    h, w = mean_map.shape
    bh, bw = max(1, round(band * h)), max(1, round(band * w))
    inner = np.zeros_like(mean_map, dtype=bool)
    inner[bh:h - bh, bw:w - bw] = True
    overall = float(mean_map.mean())
    return float(mean_map[~inner].mean() / overall) if overall > 0 else float("nan")


def figure(images: np.ndarray, vanilla: np.ndarray, smooth: np.ndarray, titles: list[str],
           means: dict[str, np.ndarray]) -> Figure:
    """Rows of image, saliency, SmoothGrad and overlay, then the mean saliency maps."""
    rows = len(images) + 1
    fig = Figure(figsize=(11, 2.6 * rows), layout="constrained")
    axes = fig.subplots(rows, 4, squeeze=False)
    headers = ["image (standardised log N)", "saliency", "SmoothGrad", "overlay"]
    for i in range(len(images)):
        panels = axes[i]
        panels[0].imshow(images[i], cmap="magma")
        panels[1].imshow(vanilla[i], cmap="viridis", vmin=0, vmax=1)
        panels[2].imshow(smooth[i], cmap="viridis", vmin=0, vmax=1)
        panels[3].imshow(images[i], cmap="gray")
        panels[3].imshow(smooth[i], cmap="jet", alpha=0.45, vmin=0, vmax=1)
        panels[0].set_ylabel(titles[i])
        for j, ax in enumerate(panels):
            if i == 0:
                ax.set_title(headers[j])
    last = axes[-1]
    for ax, (name, mean) in zip(last, means.items(), strict=False):
        ax.imshow(mean, cmap="viridis")
        ax.set_title(f"mean saliency: {name}")
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
        if not ax.images:
            ax.set_axis_off()
    return fig
