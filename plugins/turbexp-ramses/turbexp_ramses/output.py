"""Reading RAMSES outputs: which are complete, their times, and their column density maps.

A RAMSES output is a folder ``output_NNNNN`` holding ``info_NNNNN.txt`` and, per MPI
rank, ``amr_NNNNN.outRRRRR`` and ``hydro_NNNNN.outRRRRR``. yt reads it AMR-aware.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

OUTPUT_PATTERN = re.compile(r"^output_(\d{5})$")


@dataclass(frozen=True)
class OutputInfo:
    """The header values of an ``info_NNNNN.txt`` file (code units, cgs unit scales)."""

    path: Path
    number: int
    ncpu: int
    levelmin: int
    levelmax: int
    boxlen: float
    time: float
    unit_l: float
    unit_d: float
    unit_t: float


def read_info(output_dir: str | Path) -> OutputInfo:
    """Parse the info file of one output folder; ``ValueError`` if it is missing or damaged."""
    folder = Path(output_dir)
    match = OUTPUT_PATTERN.match(folder.name)
    if not match:
        raise ValueError(f"{folder}: not a RAMSES output folder (output_NNNNN)")
    number = int(match.group(1))
    path = folder / f"info_{number:05d}.txt"
    values: dict[str, str] = {}
    try:
        text = path.read_text()
    except OSError as exc:
        raise ValueError(f"{path}: cannot read the info file ({exc.strerror})") from None
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            values[key.strip()] = value.strip()
    try:
        return OutputInfo(
            path=path, number=number, ncpu=int(values["ncpu"]),
            levelmin=int(values["levelmin"]), levelmax=int(values["levelmax"]),
            boxlen=float(values["boxlen"]), time=float(values["time"]),
            unit_l=float(values["unit_l"]), unit_d=float(values["unit_d"]),
            unit_t=float(values["unit_t"]),
        )
    except (KeyError, ValueError) as exc:
        raise ValueError(f"{path}: damaged info file ({exc})") from None


def is_complete(output_dir: str | Path, *, written_here: bool = True) -> bool:
    """Whether an output is whole: its info file and every rank's non-empty amr and hydro
    files, and, for outputs RAMSES wrote here (``written_here``), a timer file whose last
    line is the ``TOTAL`` RAMSES writes after every rank has finished (copies of outputs
    made elsewhere often leave the timer file out)."""
    folder = Path(output_dir)
    try:
        info = read_info(folder)
    except ValueError:
        return False
    for kind in ("amr", "hydro"):
        for rank in range(1, info.ncpu + 1):
            part = folder / f"{kind}_{info.number:05d}.out{rank:05d}"
            if not part.is_file() or part.stat().st_size == 0:
                return False
    if not (folder / "hydro_file_descriptor.txt").is_file():
        return False
    return not written_here or _timer_total(folder / f"timer_{info.number:05d}.txt")


def _timer_total(path: Path) -> bool:
    try:
        lines = [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return False
    return bool(lines) and "TOTAL" in lines[-1]


def outputs(run_dir: str | Path) -> list[Path]:
    """The output folders of a run, oldest first."""
    found = [p for p in Path(run_dir).glob("output_*") if OUTPUT_PATTERN.match(p.name)]
    return sorted(found, key=lambda p: int(p.name.removeprefix("output_")))


def column_density_maps(output_dir: str | Path, grid: int) -> np.ndarray:
    """Column density in g/cm² along x, y and z on a ``grid``² image, shape (3, grid, grid).

    Map ``a`` follows the built-in solver's convention: its two array axes are the
    remaining box axes in increasing order (yt's fixed-resolution buffers are
    transposed for x and z to match).
    """
    ds = load(output_dir)
    maps = []
    for axis in range(3):
        projection = ds.proj(("gas", "density"), axis)
        frb = projection.to_frb(ds.domain_width[0], grid, center=ds.domain_center)
        image = np.asarray(frb[("gas", "density")].in_units("g/cm**2"), dtype=np.float64)
        maps.append(image.T if axis in (0, 2) else image)
    return np.stack(maps)


def refinement(output_dir: str | Path) -> dict[str, Any]:
    """Leaf cells per AMR level and the fraction of leaf cells above ``levelmin``."""
    ds = load(output_dir)
    levels = np.asarray(ds.all_data()[("index", "grid_level")], dtype=np.int64)
    counts = np.bincount(levels)
    base = read_info(output_dir).levelmin
    return {
        "cells_per_level": {str(base + level): int(c) for level, c in enumerate(counts) if c},
        "refined_fraction": float(counts[1:].sum() / counts.sum()) if counts.sum() else 0.0,
    }


def load(output_dir: str | Path) -> Any:
    """Open an output with yt (imported here: yt is only needed by the ramses plugin)."""
    import yt

    yt.set_log_level(40)
    info = read_info(output_dir)
    return yt.load(str(info.path))
