"""Scoring images with a fitted classifier: one evaluation per image against two.

turbexp scores holdout and trial images with ``turbexp.metrics.predict_scored``: the
features are transformed once and, for scikit-learn's SVC (no probabilities) and its
calibrated classifier, the prediction is taken from the score. Before, the estimator was
asked for ``predict`` and then for its score (``decision_function`` or ``predict_proba``),
each evaluating every kernel. Both are timed here on the same fitted ``svm`` estimator
pipeline (standardise, SVC) and the same HOG-sized features, alternately, ``--repeats``
times; the medians are compared, so other load hits both alike.

    python benchmarks/scoring.py
    python benchmarks/scoring.py --train 1000 --score 4000 --features 1764 --repeats 7
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import numpy as np

from turbexp.metrics import class_scores, predict_scored
from turbexp_plugins.sklearn_estimators import Svm


def both(model, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The former way: ``predict``, then the class-1 score."""
    return model.predict(x), class_scores(model[-1], model[:-1].transform(x))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=int, default=800, help="training images")
    parser.add_argument("--score", type=int, default=3000, help="images scored")
    parser.add_argument("--features", type=int, default=1764,
                        help="features per image (1764: HOG of 64² images, 9 orientations)")
    parser.add_argument("--probability", action="store_true",
                        help="the calibrated SVC (svm with probability: true)")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    y = np.arange(args.train) % 2
    x = rng.standard_normal((args.train, args.features)) + 0.2 * y[:, None]
    model = Svm().build(Svm.Params(probability=args.probability), "classify").fit(x, y)
    scored = rng.standard_normal((args.score, args.features))
    expected = both(model, scored)
    got = predict_scored("classify", model, scored)
    assert all(np.array_equal(a, b) for a, b in zip(expected, got, strict=True))

    times: dict[str, list[float]] = {"predict + score": [], "predict_scored": []}
    for _ in range(args.repeats):
        for name, how in (("predict + score", lambda: both(model, scored)),
                          ("predict_scored", lambda: predict_scored("classify", model,
                                                                    scored))):
            start = time.perf_counter()
            how()
            times[name].append(time.perf_counter() - start)
    before, after = (statistics.median(times[k]) for k in times)
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.2f}")
    print(f"SVC{' (calibrated)' if args.probability else ''}: {args.train} training images, "
          f"{args.score} scored, {args.features} features, median of {args.repeats}")
    print(f"  predict + score   {before:8.3f} s  {args.score / before:9.0f} images/s")
    print(f"  predict_scored    {after:8.3f} s  {args.score / after:9.0f} images/s")
    print(f"  speed-up          {before / after:8.2f}×  (same predictions and scores)")


if __name__ == "__main__":
    main()
