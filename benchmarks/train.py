"""Training throughput of the reference CNN: the tf.data pipeline against a plain Keras fit.

For each image size, the reference CNN (``cnn`` defaults: four convolution +
max pooling blocks, three dense layers, RMSprop) is trained on random
standardised images in two ways, with the same weights, batch size and number
of epochs:

- ``tf.data``: turbexp's input pipeline (``turbexp_deep.data.make_dataset``:
  shuffle, batch, prefetch; augmentation as ``--augment`` says);
- ``numpy``: ``model.fit`` on the in-memory NumPy arrays.

Each is warmed up with one epoch (tracing), then timed over ``--epochs``
epochs; the two are run alternately ``--repeats`` times and the medians
compared, so other load hits both alike. The pipeline alone (iterating the
dataset, no training) is timed too: its rate is the most the pipeline could
feed. A GPU is used when TensorFlow sees one. TensorFlow's deterministic ops
are left off here, as a throughput run would have them.

    python benchmarks/train.py                       # 64×64 and 128×128
    python benchmarks/train.py --sizes 64 --images 2048 --epochs 3 --repeats 5
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
import tensorflow as tf

from turbexp_deep import cnn
from turbexp_deep.data import make_dataset


def model_for(size: int, seed: int) -> keras.Model:
    """A compiled reference CNN for binary classification of size × size images."""
    keras.utils.set_random_seed(seed)
    model = cnn.build((size, size, 1), cnn.Architecture(), "classify")
    loss, metrics = cnn.loss_and_metrics("classify", 2)
    model.compile(optimizer=keras.optimizers.RMSprop(1e-3), loss=loss, metrics=metrics)
    return model


def timed_fit(size: int, x: np.ndarray, y: np.ndarray, how: str, batch_size: int, epochs: int,
              augment: str, seed: int) -> float:
    """Images per second of ``epochs`` epochs after a warm-up epoch."""
    model = model_for(size, seed)
    if how == "tf.data":
        data = make_dataset(x, y, batch_size=batch_size, shuffle=True, augment=augment,
                            seed=seed)
        kwargs: dict = {"shuffle": False}
        seen = len(x) * (2 if augment == "once" else 1)
        model.fit(data, epochs=1, verbose=0, **kwargs)
        start = time.perf_counter()
        model.fit(data, epochs=epochs, verbose=0, **kwargs)
    else:
        seen = len(x)
        model.fit(x, y, batch_size=batch_size, epochs=1, shuffle=True, verbose=0)
        start = time.perf_counter()
        model.fit(x, y, batch_size=batch_size, epochs=epochs, shuffle=True, verbose=0)
    return seen * epochs / (time.perf_counter() - start)


def pipeline_rate(x: np.ndarray, y: np.ndarray, batch_size: int, augment: str,
                  seed: int) -> float:
    """Images per second the tf.data pipeline delivers on its own (second pass)."""
    data = make_dataset(x, y, batch_size=batch_size, shuffle=True, augment=augment, seed=seed)
    for _ in data:
        pass
    start = time.perf_counter()
    count = sum(int(batch.shape[0]) for batch, _ in data)
    return count / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 128])
    parser.add_argument("--images", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--augment", choices=["none", "once", "per_epoch"], default="none")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()

    gpus = tf.config.list_physical_devices("GPU")
    device = f"GPU ({', '.join(g.name for g in gpus)})" if gpus else \
        f"CPU ({os.cpu_count()} cores)"
    print(f"TensorFlow {tf.__version__}, Keras {keras.__version__}, Python "
          f"{platform.python_version()}; device: {device}")
    print(f"{args.images} images, batch {args.batch_size}, {args.epochs} timed epochs after one "
          f"warm-up, median of {args.repeats}; augment: {args.augment}")
    print("images per second, median (best) of the repeats:")
    print(f"{'size':>8} {'tf.data':>16} {'numpy':>16} {'ratio':>6} {'pipeline alone':>15}")
    results = []
    rng = np.random.default_rng(args.seed)
    for size in args.sizes:
        x = rng.standard_normal((args.images, size, size, 1)).astype(np.float32)
        y = (rng.random(args.images) < 0.5).astype(np.float32)
        rates: dict[str, list[float]] = {"tf.data": [], "numpy": []}
        for _ in range(args.repeats):
            for how in rates:
                rates[how].append(timed_fit(size, x, y, how, args.batch_size, args.epochs,
                                            args.augment, args.seed))
        fed = pipeline_rate(x, y, args.batch_size, args.augment, args.seed)
        row = {"size": size, "device": device, "augment": args.augment,
               "tf_data": statistics.median(rates["tf.data"]),
               "tf_data_best": max(rates["tf.data"]),
               "numpy": statistics.median(rates["numpy"]), "numpy_best": max(rates["numpy"]),
               "pipeline_alone": fed}
        results.append(row)
        cells = [f"{row[k]:.1f} ({row[k + '_best']:.1f})" for k in ("tf_data", "numpy")]
        print(f"{size:>4}×{size:<3} {cells[0]:>16} {cells[1]:>16} "
              f"{row['tf_data'] / row['numpy']:>6.2f} {fed:>15.0f}", flush=True)
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(results, handle, indent=2)


if __name__ == "__main__":
    main()
