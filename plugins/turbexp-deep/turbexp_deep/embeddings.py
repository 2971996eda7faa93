"""What the CNN's last convolutional layer sees, next to HOG: two t-SNE maps of the holdout.

Each map embeds the holdout images with openTSNE, once from the activations of
the CNN's last convolutional layer and once from HOG features of the same
images, so it shows whether the network separates the classes (or orders the
index) where hand-made features do not. The leave-one-out accuracy of 5
nearest neighbours in each map (classification) or their mean absolute error
on the index (regression) puts a number on it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib.figure import Figure

from turbexp.api import build_features
from turbexp_deep import cnn
from turbexp_deep.estimator import KerasImageEstimator, predict_in_batches

NEIGHBOURS = 5


def conv_activations(estimator: KerasImageEstimator, inputs: np.ndarray) -> np.ndarray:
    """Activations (n, h·w·c) of the last convolutional layer."""
    model = estimator.model_
    part = cnn.submodel(model, cnn.last_conv_layer(model))
    out = predict_in_batches(part, inputs)
    return out.reshape(len(out), -1)


def hog_features(images: np.ndarray, orientations: int = 8, cells: int = 4) -> np.ndarray:
    """HOG features of images (n, H, W), with at most as many cells as fit the image."""
    side = min(images.shape[1:])
    cells = max(2, min(cells, side // 2))
    hog = build_features("hog", {"orientations": orientations, "cells": cells})
    return hog.fit_transform(images)


def neighbour_scores(points: np.ndarray, values: np.ndarray, classify: bool) -> np.ndarray:
    """Per point, the leave-one-out score of its ``NEIGHBOURS`` nearest points: whether their
    majority class is its own (classify) or the absolute error of their mean value (regress);
    their mean is the map's 5-NN accuracy or MAE."""
    k = min(NEIGHBOURS, len(points) - 1)
    distance = np.linalg.norm(points[:, None, :] - points[None, :, :], axis=-1)
    np.fill_diagonal(distance, np.inf)
    nearest = np.argsort(distance, axis=1)[:, :k]
    if classify:
        labels = values.astype(int)
        votes = np.array([np.bincount(labels[row], minlength=labels.max() + 1).argmax()
                          for row in nearest])
        return (votes == labels).astype(np.float64)
    return np.abs(values[nearest].mean(axis=1) - values)


def figure(maps: dict[str, np.ndarray], task: str, values: np.ndarray,
           class_names: list[str], scores: dict[str, str], caption: str) -> Figure:
    """The t-SNE maps side by side, coloured by class or by the index."""
    fig = Figure(figsize=(5.5 * len(maps) + 1, 5), layout="constrained")
    axes = fig.subplots(1, len(maps), squeeze=False)[0]
    score_name = "5-NN accuracy" if task == "classify" else "5-NN MAE of n"
    dots: Any = None
    for ax, (name, points) in zip(axes, maps.items(), strict=True):
        if task == "classify":
            labels = values.astype(int)
            for label in np.unique(labels):
                chosen = labels == label
                text = class_names[label] if label < len(class_names) else f"class {label}"
                ax.scatter(points[chosen, 0], points[chosen, 1], s=12, alpha=0.8,
                           color=f"C{label % 10}", label=text)
            ax.legend(title="true class", fontsize="small")
        else:
            dots = ax.scatter(points[:, 0], points[:, 1], s=12, c=values, cmap="viridis")
        ax.set_title(f"{name} ({score_name} {scores[name]})")
        ax.set_xticks([])
        ax.set_yticks([])
    if dots is not None:
        fig.colorbar(dots, ax=list(axes), label="spectral index n")
    fig.suptitle(caption, fontsize="medium")
    return fig
