"""t-SNE maps of features (openTSNE), for the reports that draw them."""

from __future__ import annotations

import numpy as np
from sklearn.preprocessing import StandardScaler


def tsne_perplexity(requested: float, n_samples: int) -> float:
    """``requested`` perplexity clipped below (n - 1) / 3, the most ``n_samples`` allow."""
    if n_samples < 4:
        raise ValueError(f"t-SNE needs at least 4 samples, got {n_samples}")
    return float(min(requested, 0.99 * (n_samples - 1) / 3))


def embed(features: np.ndarray, perplexity: float, seed: int, n_jobs: int = 1
          ) -> tuple[np.ndarray, float, float]:
    """A 2-D openTSNE map of the standardised features (n, ...), its KL divergence and the
    perplexity used (:func:`tsne_perplexity`)."""
    from openTSNE import TSNE

    features = np.asarray(features, dtype=np.float64)
    scaled = np.nan_to_num(StandardScaler().fit_transform(features.reshape(len(features), -1)))
    used = tsne_perplexity(perplexity, len(scaled))
    embedding = TSNE(n_components=2, perplexity=used, random_state=seed, n_jobs=n_jobs,
                     verbose=False).fit(scaled)
    return np.asarray(embedding), float(getattr(embedding, "kl_divergence", float("nan"))), used
