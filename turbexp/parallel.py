"""Applying a per-image function over a stack of images on all cores."""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import time
from collections.abc import Callable, Sequence

import numpy as np
from joblib import Parallel, delayed

from turbexp.errors import UserError

JOBS_ENV = "TURBEXP_JOBS"
"""Environment variable giving the default number of worker processes."""

MIN_PARALLEL = 64
"""Below this many images the work is done in the calling process."""

PROBE_IMAGES = 16
"""Images done first in the calling process, timed, to size the rest of the work."""

PARALLEL_SECONDS = 3.0
"""Serial work (estimated from the probe) below which the rest is done in the calling process
too: starting the workers and moving the images to them costs 1–2 s on a small machine, so
less work than this is done faster, or not much slower, without them."""

CHUNKS_PER_WORKER = 4


PR_SET_PDEATHSIG = 1
"""prctl(2) option: the signal a process gets when its parent dies (Linux)."""


def die_with_parent(parent: int) -> None:
    """Make this worker process die with ``parent``, the process that started it, even one
    killed with SIGKILL (Linux: PR_SET_PDEATHSIG; elsewhere nothing). Called as a worker
    initializer, with the parent's pid as its argument."""
    if not sys.platform.startswith("linux"):
        return
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the parent died before the request was made
        os._exit(1)


def default_jobs() -> int:
    """Workers to use: ``$TURBEXP_JOBS`` if set, else the number of CPUs."""
    value = os.environ.get(JOBS_ENV, "").strip()
    if value:
        try:
            jobs = int(value)
        except ValueError:
            raise UserError(f"{JOBS_ENV} must be an integer, got {value!r}") from None
        return _resolve(jobs)
    return os.cpu_count() or 1


def _resolve(n_jobs: int) -> int:
    """Turn ``n_jobs`` (≤ 0 meaning all CPUs) into a positive worker count."""
    if n_jobs <= 0:
        return os.cpu_count() or 1
    return n_jobs


def _as_row(value: object) -> np.ndarray:
    row = np.asarray(value)
    if row.ndim > 1:
        raise ValueError(f"a per-image function must return a scalar or 1-d array, got {row.shape}")
    return row.reshape(-1)


def _apply_chunk(func: Callable[[np.ndarray], object], chunk: np.ndarray,
                 batched: bool = False) -> np.ndarray:
    if batched:
        block = np.asarray(func(chunk))
        if block.ndim != 2 or len(block) != len(chunk):
            raise ValueError(f"a batched function must return ({len(chunk)}, d) for "
                             f"{len(chunk)} images, got {block.shape}")
        return block
    rows = [_as_row(func(image)) for image in chunk]
    return np.stack(rows) if rows else np.empty((0, 0))


def map_images(
    func: Callable[[np.ndarray], object],
    images: np.ndarray | Sequence[np.ndarray],
    n_jobs: int | None = None,
    *,
    batched: bool = False,
) -> np.ndarray:
    """Apply ``func`` to each image of ``images`` (n, H, W) and stack the results to (n, d).

    ``func`` maps one (H, W) image to a 1-d feature vector, or, ``batched``, a stack
    (k, H, W) to (k, d) at once; it must be picklable (a module-level function, or a
    :func:`functools.partial` of one). The work is spread over ``n_jobs`` processes
    (default :func:`default_jobs`) in a few chunks per worker when that pays: the first
    :data:`PROBE_IMAGES` are done here and timed, and the rest go to the workers only when
    they would take :data:`PARALLEL_SECONDS` or more here (never with fewer than
    ``MIN_PARALLEL`` images or a single job). The path taken does not change the result.
    Integer results are returned as float64.
    """
    stack = np.asarray(images)
    if stack.ndim != 3:
        raise ValueError(f"expected images of shape (n, H, W), got an array of shape {stack.shape}")
    n = len(stack)
    jobs = default_jobs() if n_jobs is None else _resolve(n_jobs)
    jobs = min(jobs, n) if n else 1
    if jobs == 1 or n < MIN_PARALLEL:
        result = _apply_chunk(func, stack, batched)
    else:
        started = time.perf_counter()
        head = _apply_chunk(func, stack[:PROBE_IMAGES], batched)
        per_image = (time.perf_counter() - started) / PROBE_IMAGES
        rest = stack[PROBE_IMAGES:]
        if per_image * len(rest) < PARALLEL_SECONDS:
            tail = _apply_chunk(func, rest, batched)
        else:
            chunks = np.array_split(rest, min(len(rest), jobs * CHUNKS_PER_WORKER))
            parts = Parallel(n_jobs=jobs, backend="loky", initializer=die_with_parent,
                             initargs=(os.getpid(),))(
                delayed(_apply_chunk)(func, chunk, batched) for chunk in chunks
            )
            tail = np.concatenate(parts, axis=0)
        result = np.concatenate([head, tail], axis=0)
    if not np.issubdtype(result.dtype, np.floating):
        result = result.astype(np.float64)
    return result
