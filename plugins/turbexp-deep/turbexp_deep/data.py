"""The tf.data input pipeline: images in memory, shuffled, augmented, batched, prefetched.

Augmentation draws one of the eight symmetries of the square (a rotation by a
multiple of 90°, mirrored or not), which leave isotropic turbulence
statistically unchanged. ``once`` adds one transformed copy of every image,
made in memory before the first epoch; ``per_epoch`` transforms every image
afresh each epoch, batch by batch. Both are seeded: the same seed gives the
same images.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from turbexp_deep.framework import tf

Augment = Literal["none", "once", "per_epoch"]


def as_images(X: Any) -> np.ndarray:
    """Images (n, H, W, 1) float32 from (n, H, W) or (n, H, W, 1)."""
    x = np.asarray(X, dtype=np.float32)
    if x.ndim == 3:
        x = x[..., np.newaxis]
    if x.ndim != 4 or x.shape[-1] != 1:
        raise ValueError(f"expected images (n, H, W) or (n, H, W, 1), got shape {np.shape(X)}")
    return x


def symmetries(images: Any, seed: Any) -> tf.Tensor:
    """Each square image of a batch (n, H, H, c) under one of the eight symmetries of the
    square, drawn from ``seed`` (two integers): transposed, mirrored left-right, mirrored
    up-down, each or not."""
    images = tf.convert_to_tensor(images)
    draws = tf.random.stateless_uniform([tf.shape(images)[0], 3], tf.cast(seed, tf.int32))
    flags = tf.reshape(draws < 0.5, [-1, 3, 1, 1, 1])
    images = tf.where(flags[:, 0], tf.transpose(images, [0, 2, 1, 3]), images)
    images = tf.where(flags[:, 1], tf.reverse(images, [2]), images)
    return tf.where(flags[:, 2], tf.reverse(images, [1]), images)


def make_dataset(x: np.ndarray, y: Any, *, batch_size: int, shuffle: bool = False,
                 augment: Augment = "none", seed: int = 0) -> tf.data.Dataset:
    """Batches of ``(images, targets)``; ``y`` may be an array or a dict of arrays (one per
    output). Shuffling is reseeded every epoch, reproducibly."""
    if augment == "once":
        copies = symmetries(x, [seed, 0]).numpy()
        x = np.concatenate([x, copies])
        y = {k: np.concatenate([v, v]) for k, v in y.items()} if isinstance(y, dict) else \
            np.concatenate([y, y])
    ds = tf.data.Dataset.from_tensor_slices((x, y))
    if shuffle:
        ds = ds.shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size)
    if augment == "per_epoch":
        seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)
        ds = tf.data.Dataset.zip((ds, seeds)).map(
            lambda batch, s: (symmetries(batch[0], s), batch[1]),
            num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.prefetch(tf.data.AUTOTUNE)
