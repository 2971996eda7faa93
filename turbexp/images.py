"""From column density maps to standardised images, split by simulation.

Each projection (x, y, z) of log10 column density is cut into quadrants and
flipped (as in the reference study: 3 projections × 4 cuts × 4 flips = 48
images per simulation), resized to the configured size and standardised per
image: ``(log10 N - mean) / std``, kept in float32. The standardisation
removes each map's mean column density and contrast, so models see the
structure of the map, not its normalisation; maps at the reference set-up vary
by only ~0.003 dex, which an 8-bit image would erase. A feature plugin that
measures the column density itself asks for ``log_column_density`` instead
(:attr:`turbexp.plugin_types.FeatureExtractor.inputs`): log10 N, N in g cm⁻².
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from skimage.transform import resize

from turbexp.plugin_types import ImageInputs
from turbexp.spec import ImagesSpec, SplitSpec

AXES = {"x": 0, "y": 1, "z": 2}
SPLITS = ("train", "test", "holdout")


def standardise(image: np.ndarray) -> np.ndarray:
    """Zero mean and unit standard deviation (a uniform image becomes all zeros)."""
    image = np.asarray(image, dtype=np.float64)
    std = image.std()
    centred = image - image.mean()
    return (centred / std if std > 0 else centred).astype(np.float32)


def prepared(log_image: np.ndarray, inputs: ImageInputs) -> np.ndarray:
    """An image of log10 column density as a feature plugin asked for it, in float32."""
    if inputs == "standardised":
        return standardise(log_image)
    return np.asarray(log_image, dtype=np.float32)


def cuts(image: np.ndarray, count: int) -> list[np.ndarray]:
    """The whole image (count 1) or its four quadrants (count 4)."""
    if count == 1:
        return [image]
    h, w = image.shape[0] // 2, image.shape[1] // 2
    return [image[:h, :w], image[:h, w:], image[h:, :w], image[h:, w:]]


def flips(image: np.ndarray, count: int) -> list[np.ndarray]:
    """The image as is, mirrored left-right, and (count 4) up-down and both."""
    variants = [image, image[:, ::-1], image[::-1, :], image[::-1, ::-1]]
    return variants[:count]


def resize_to(image: np.ndarray, size: int) -> np.ndarray:
    if image.shape == (size, size):
        return image
    downsampling = image.shape[0] > size
    return resize(image, (size, size), order=1, mode="reflect", anti_aliasing=downsampling,
                  preserve_range=True)


def images_from_maps(log_maps: np.ndarray, spec: ImagesSpec,
                     inputs: ImageInputs = "standardised") -> np.ndarray:
    """Images (k, size, size) from one simulation's log10 column density maps (3, N, N), as
    ``inputs`` asks (:func:`prepared`)."""
    out = []
    for axis in spec.projections:
        for piece in cuts(log_maps[AXES[axis]], spec.cuts):
            # resize once, then flip: flipping commutes with a symmetric resize
            base = resize_to(piece, spec.size)
            out += [prepared(v, inputs) for v in flips(base, spec.flips)]
    return np.stack(out)


def image_side_pc(box_pc: float, spec: ImagesSpec) -> float:
    """The physical side of one image: the whole box, or half of it for its quadrants."""
    return box_pc / 2 if spec.cuts == 4 else box_pc


def images_per_simulation(spec: ImagesSpec) -> int:
    return len(spec.projections) * spec.cuts * spec.flips


def split_simulations(strata: Sequence[object], split: SplitSpec) -> np.ndarray:
    """Assign each simulation to train (0), test (1) or holdout (2), per stratum.

    Deterministic from ``split.seed``; every stratum (class) is represented in
    every split, so it needs at least three simulations.
    """
    strata = np.asarray(strata, dtype=object)
    out = np.full(len(strata), -1, dtype=np.int8)
    rng = np.random.default_rng(split.seed)
    for stratum in sorted(set(strata.tolist()), key=str):
        members = np.flatnonzero(strata == stratum)
        n = len(members)
        if n < 3:
            raise ValueError(
                f"stratum {stratum!r} has {n} simulation(s); at least 3 are needed to give "
                "train, test and holdout one each"
            )
        n_test = max(1, round(n * split.test))
        n_holdout = max(1, round(n * split.holdout))
        n_train = n - n_test - n_holdout
        if n_train < 1:
            n_train, n_test, n_holdout = 1, 1, n - 2
        order = members[rng.permutation(n)]
        out[order[:n_train]] = 0
        out[order[n_train:n_train + n_test]] = 1
        out[order[n_train + n_test:]] = 2
    return out


@dataclass
class ImageSet:
    """All images of an experiment with, per image, its simulation, target and split."""

    images: np.ndarray  # (n, size, size) float32
    simulation: np.ndarray  # (n,) position of the simulation in the campaign
    index: np.ndarray  # (n,) spectral index of the simulation
    target: np.ndarray  # (n,) class label (int) or index (float)
    split: np.ndarray  # (n,) 0 train, 1 test, 2 holdout
    metadata: dict[int, dict[str, Any]] = field(default_factory=dict)  # simulation -> stored
    stratum: np.ndarray | None = None  # (n,) the split's stratum: class, or campaign group
    checksums: dict[int, str] = field(default_factory=dict)  # simulation -> its maps' SHA-256
    inputs: ImageInputs = "standardised"  # what the images hold (:func:`prepared`)

    def part(self, *names: str) -> np.ndarray:
        """Boolean mask of the images in the named splits."""
        return np.isin(self.split, [SPLITS.index(n) for n in names])

    def metadata_of(self, mask: np.ndarray) -> list[dict[str, Any]]:
        """The stored metadata of each selected image's simulation."""
        return [self.metadata.get(int(s), {}) for s in self.simulation[mask]]
