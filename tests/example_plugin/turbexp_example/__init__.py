"""An example third-party turbexp plugin package.

It needs nothing but its entry point in pyproject.toml::

    [project.entry-points.turbexp]
    example = "turbexp_example"
"""

from __future__ import annotations

import numpy as np
from pydantic import Field
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.neighbors import NearestCentroid

from turbexp.api import Choice, Estimator, FeatureExtractor, PluginParams, Range, hookimpl


class PixelStatsTransformer(TransformerMixin, BaseEstimator):
    """Moments of the pixel values and of the gradient magnitude of each image."""

    def __init__(self, moments: int = 4) -> None:
        self.moments = moments

    def fit(self, images, y=None):
        return self

    def transform(self, images):
        images = np.asarray(images, dtype=np.float64)
        gy, gx = np.gradient(images, axis=(1, 2))
        grad = np.hypot(gx, gy)
        features = []
        for field in (images, grad):
            flat = field.reshape(len(field), -1)
            centred = flat - flat.mean(axis=1, keepdims=True)
            scale = flat.std(axis=1, keepdims=True) + 1e-12
            features.append(flat.mean(axis=1, keepdims=True))
            features.append(scale)
            for order in range(3, self.moments + 1):
                features.append(((centred / scale) ** order).mean(axis=1, keepdims=True))
        return np.hstack(features)


class PixelStats(FeatureExtractor):
    name = "pixel_stats"
    description = "moments of pixel values and gradient magnitudes"

    class Params(PluginParams):
        moments: int = Field(4, ge=2, le=8)

    search_space = {"moments": Range(2, 6)}

    def build(self, params):
        return PixelStatsTransformer(moments=params.moments)


class Centroid(Estimator):
    name = "nearest_centroid"
    tasks = frozenset({"classify"})

    class Params(PluginParams):
        metric: str = Field("euclidean", pattern="^(euclidean|manhattan)$")

    search_space = {"metric": Choice(("euclidean", "manhattan"))}

    def build(self, params, task):
        return NearestCentroid(metric=params.metric)


@hookimpl
def register_features(register):
    register(PixelStats)


@hookimpl
def register_estimators(register):
    register(Centroid)
