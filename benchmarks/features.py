"""Feature throughput: turbexp's HOG and power-spectrum transformers against plain loops.

For each image size, the same random float32 images go through:

- ``loop``: the library call in a Python loop, one image after another (HOG: scikit-image's
  ``hog``; power spectrum: the one-image ``radial_power_spectrum`` and fit);
- ``serial``: turbexp's transformer in this process (``n_jobs=1``; the power spectrum in
  batches of numpy);
- ``parallel``: the transformer on ``--jobs`` worker processes (joblib's loky; the workers
  are started before timing, as a run that extracts features more than once finds them).

Each is run ``--repeats`` times, alternately, and the medians are compared, so other load
hits all alike; the outputs are checked identical. The load average is printed beside.

    python benchmarks/features.py
    python benchmarks/features.py --sizes 64 250 --images 1000 --repeats 5
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from collections.abc import Callable

import numpy as np
from skimage.feature import hog

from turbexp_plugins.hog import HogTransformer
from turbexp_plugins.power_spectrum import (
    PowerSpectrumTransformer,
    fit_power_law,
    fit_range,
    radial_power_spectrum,
)


def hog_loop(images: np.ndarray) -> np.ndarray:
    cell = images.shape[1] // 4
    return np.stack([hog(np.asarray(im, dtype=np.float64), orientations=8,
                         pixels_per_cell=(cell, cell), cells_per_block=(2, 2),
                         block_norm="L2-Hys", channel_axis=None, feature_vector=True)
                     for im in images])


def spectrum_loop(images: np.ndarray) -> np.ndarray:
    low, high = fit_range(images.shape[1:], 2.0, 0.5)
    return np.stack([fit_power_law(*radial_power_spectrum(im, "hann"), low, high)
                     for im in images])


def rates(loop: Callable[[np.ndarray], np.ndarray], make: Callable[[int], object],
          images: np.ndarray, jobs: int, repeats: int) -> dict[str, float]:
    """Images per second of the loop, the serial and the parallel transformer (medians)."""
    ways: dict[str, Callable[[], np.ndarray]] = {
        "loop": lambda: loop(images),
        "serial": lambda: make(1).transform(images),
        "parallel": lambda: make(jobs).transform(images),
    }
    make(jobs).transform(images[:200])  # start the workers
    times: dict[str, list[float]] = {way: [] for way in ways}
    outputs = {}
    for _ in range(repeats):
        for way, func in ways.items():
            start = time.perf_counter()
            outputs[way] = func()
            times[way].append(time.perf_counter() - start)
    assert all(np.array_equal(outputs["loop"], o) for o in outputs.values())
    return {way: len(images) / statistics.median(t) for way, t in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 250])
    parser.add_argument("--images", type=int, default=800)
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.2f} before")
    print(f"{args.images} images per size, median of {args.repeats}; images/s "
          "(ratio to the loop)")
    print(f"{'feature':16} {'size':>5} {'loop':>9} {'serial':>16} {'parallel':>16}")
    rng = np.random.default_rng(0)
    for size in args.sizes:
        images = rng.standard_normal((args.images, size, size)).astype(np.float32)
        for name, loop, make in (
                ("HOG", hog_loop, lambda jobs: HogTransformer(n_jobs=jobs)),
                ("power spectrum", spectrum_loop,
                 lambda jobs: PowerSpectrumTransformer(n_jobs=jobs))):
            rate = rates(loop, make, images, args.jobs, args.repeats)
            cells = [f"{rate[w]:9.0f} ({rate[w] / rate['loop']:.2f}×)" for w in
                     ("serial", "parallel")]
            print(f"{name:16} {size:5d} {rate['loop']:9.0f} {cells[0]:>16} {cells[1]:>16}")
    print(f"load average {os.getloadavg()[0]:.2f} after")


if __name__ == "__main__":
    main()
