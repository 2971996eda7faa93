"""The ``pixels`` feature plugin: the standardised images themselves, for image models.

The images (n, H, W) pass as they are, as float32; the ``cnn`` family takes them
with their shape, and a model fitted on one image size refuses another.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils import Tags

from turbexp.api import FeatureExtractor, PluginParams


class PixelsTransformer(TransformerMixin, BaseEstimator):
    """Images (n, H, W) as float32, unchanged otherwise."""

    def fit(self, X: Any, y: Any = None) -> PixelsTransformer:
        images = np.asarray(X)
        if images.ndim != 3:
            raise ValueError(f"expected images of shape (n, H, W), got shape {images.shape}")
        self.image_shape_ = tuple(int(d) for d in images.shape[1:])
        return self

    def transform(self, X: Any) -> np.ndarray:
        images = np.asarray(X, dtype=np.float32)
        if images.ndim != 3:
            raise ValueError(f"expected images of shape (n, H, W), got shape {images.shape}")
        fitted = getattr(self, "image_shape_", None)
        if fitted is not None and tuple(images.shape[1:]) != fitted:
            raise ValueError(f"pixels was fitted on {fitted[0]}×{fitted[1]} images, got "
                             f"{images.shape[1]}×{images.shape[2]}")
        return images

    def __sklearn_tags__(self) -> Tags:
        tags = super().__sklearn_tags__()
        tags.requires_fit = False
        return tags


class Pixels(FeatureExtractor):
    """The image's pixels as features (for image models such as ``cnn``)."""

    name: ClassVar[str] = "pixels"
    description: ClassVar[str] = "the standardised images as they are (for image models)"

    def build(self, params: PluginParams) -> PixelsTransformer:
        return PixelsTransformer()

