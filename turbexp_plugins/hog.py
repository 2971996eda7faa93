"""Histogram of oriented gradients (HOG) features of each image."""

from __future__ import annotations

from functools import partial
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import Field, model_validator
from skimage.feature import hog
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils import Tags

from turbexp.api import FeatureExtractor, PluginParams, Range, SearchSpace, hookimpl, map_images

BlockNorm = Literal["L1", "L1-sqrt", "L2", "L2-Hys"]


def _as_images(X: Any) -> np.ndarray:
    images = np.asarray(X)
    if images.ndim != 3:
        raise ValueError(f"expected images of shape (n, H, W), got shape {images.shape}")
    return images


def hog_geometry(shape: tuple[int, int], cells: int, cells_per_block: int) -> tuple[int, int]:
    """Pixels per cell (rows, columns) for an image of ``shape`` cut into ``cells`` per side.

    Raises ValueError when the image is too small for the requested cells and blocks.
    """
    height, width = shape
    if height < cells or width < cells:
        raise ValueError(
            f"HOG: an image of {height}×{width} pixels cannot be cut into {cells} cells per side; "
            f"use cells ≤ {min(height, width)}"
        )
    cell_rows, cell_cols = height // cells, width // cells
    if height // cell_rows < cells_per_block or width // cell_cols < cells_per_block:
        raise ValueError(
            f"HOG: blocks of {cells_per_block} cells do not fit in a {height}×{width} image "
            f"cut into {cells} cells per side"
        )
    return cell_rows, cell_cols


def hog_features(
    image: np.ndarray,
    orientations: int,
    cells: int,
    cells_per_block: int,
    block_norm: str = "L2-Hys",
) -> np.ndarray:
    """HOG feature vector of one (H, W) image."""
    pixels_per_cell = hog_geometry(image.shape, cells, cells_per_block)
    return hog(
        np.asarray(image, dtype=np.float64),
        orientations=orientations,
        pixels_per_cell=pixels_per_cell,
        cells_per_block=(cells_per_block, cells_per_block),
        block_norm=block_norm,
        channel_axis=None,
        feature_vector=True,
    )


class HogTransformer(TransformerMixin, BaseEstimator):
    """Scikit-learn transformer from images (n, H, W) to HOG features (n, d)."""

    def __init__(
        self,
        orientations: int = 8,
        cells: int = 4,
        cells_per_block: int = 2,
        block_norm: BlockNorm = "L2-Hys",
        n_jobs: int | None = None,
    ) -> None:
        self.orientations = orientations
        self.cells = cells
        self.cells_per_block = cells_per_block
        self.block_norm = block_norm
        self.n_jobs = n_jobs

    def fit(self, X: Any, y: Any = None) -> HogTransformer:
        images = _as_images(X)
        hog_geometry(images.shape[1:], self.cells, self.cells_per_block)
        self.image_shape_ = tuple(images.shape[1:])
        return self

    def transform(self, X: Any) -> np.ndarray:
        images = _as_images(X)
        fitted = getattr(self, "image_shape_", None)
        if fitted is not None and tuple(images.shape[1:]) != fitted:
            raise ValueError(
                f"HOG was fitted on {fitted[0]}×{fitted[1]} images, got "
                f"{images.shape[1]}×{images.shape[2]}"
            )
        hog_geometry(images.shape[1:], self.cells, self.cells_per_block)
        func = partial(
            hog_features,
            orientations=self.orientations,
            cells=self.cells,
            cells_per_block=self.cells_per_block,
            block_norm=self.block_norm,
        )
        return map_images(func, images, n_jobs=self.n_jobs)

    def __sklearn_tags__(self) -> Tags:
        tags = super().__sklearn_tags__()
        tags.requires_fit = False
        return tags


class Hog(FeatureExtractor):
    """HOG features (scikit-image) of each image, as in the reference HOG + SVM study."""

    name: ClassVar[str] = "hog"
    description: ClassVar[str] = "histogram of oriented gradients (scikit-image)"

    class Params(PluginParams):
        orientations: int = Field(8, ge=2, le=36, description="orientation bins")
        cells: int = Field(4, ge=1, description="cells per image side")
        cells_per_block: int = Field(2, ge=1, description="cells per block side")
        block_norm: BlockNorm = Field("L2-Hys", description="block normalisation")

        @model_validator(mode="after")
        def _blocks_fit(self) -> Hog.Params:
            if self.cells_per_block > self.cells:
                raise ValueError(
                    f"cells_per_block ({self.cells_per_block}) must not exceed cells ({self.cells})"
                )
            return self

    search_space: ClassVar[SearchSpace] = {
        "orientations": Range(4, 12, step=1),
        "cells": Range(2, 8, step=1),
    }

    def build(self, params: PluginParams) -> HogTransformer:
        p = self.validated(params)
        return HogTransformer(
            orientations=p.orientations,
            cells=p.cells,
            cells_per_block=p.cells_per_block,
            block_norm=p.block_norm,
        )


@hookimpl
def register_features(register: Any) -> None:
    register(Hog)
