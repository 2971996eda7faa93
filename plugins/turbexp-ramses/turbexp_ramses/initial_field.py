"""The initial velocity file read by the plugin's RAMSES patch (data/patch/).

Format (little-endian stream, no record markers): one int32 ``n``, then float64
``vx(n,n,n)``, ``vy``, ``vz`` in code velocity units, in Fortran order (first index
along x). Cell ``(i, j, k)`` covers ``[i-1, i] · boxlen/n`` along x, and so on.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from turbexp.api import atomic_write

FILE_NAME = "turbexp_ic.dat"


def write_velocity(path: str | Path, velocity: np.ndarray) -> None:
    """Write a (3, n, n, n) velocity field, atomically."""
    v = np.asarray(velocity, dtype="<f8")
    if v.ndim != 4 or v.shape[0] != 3 or len(set(v.shape[1:])) != 1:
        raise ValueError(f"velocity must have shape (3, n, n, n), got {v.shape}")
    n = v.shape[1]

    def write(handle) -> None:
        handle.write(np.array([n], dtype="<i4").tobytes())
        for component in v:
            handle.write(component.tobytes(order="F"))

    atomic_write(Path(path), write)


def read_velocity(path: str | Path) -> np.ndarray:
    """Read a file written by :func:`write_velocity`; ``ValueError`` if its size is wrong."""
    raw = Path(path).read_bytes()
    if len(raw) < 4:
        raise ValueError(f"{path}: too short for a velocity file")
    n = int(np.frombuffer(raw[:4], dtype="<i4")[0])
    expected = 4 + 3 * 8 * n**3
    if n < 1 or len(raw) != expected:
        raise ValueError(f"{path}: {len(raw)} bytes, expected {expected} for n = {n}")
    flat = np.frombuffer(raw[4:], dtype="<f8").reshape(3, n**3)
    return np.stack([component.reshape((n, n, n), order="F") for component in flat])
