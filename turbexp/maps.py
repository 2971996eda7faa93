"""Observed column-density maps from FITS files, cut into tiles a model can score.

A map is the first HDU of the file holding a 2D image (axes of length 1 are
dropped, so a ``(1, ny, nx)`` cube counts). Its unit comes from ``BUNIT``:

- a mass surface density (``g/cm2``, ``g cm-2``, or anything astropy converts to
  it, such as ``kg m-2`` or ``solMass/pc2``) is expressed in g/cm²;
- a number column density (``cm-2``, ``1/cm2``) is converted to g/cm² with a
  mean particle mass of 2.37 amu;
- any other unit, or none, is kept as it is, recorded, and warned about.

For most models the unit never changes a prediction: each tile is standardised after
log10, ``(log10 N - mean) / std``, so a constant factor on N (a unit, a mean particle
mass, an X-factor) cancels. Only maps whose values are not proportional to
column density (for example a logarithm already taken) give wrong answers. A model whose
features read the column density itself (``inputs: log_column_density``) is given log10 N
in g/cm², and a map whose unit does not convert to it is refused.

Integer images are scaled by astropy (``BSCALE``, ``BZERO``; 8- and 16-bit ones to
float32, which holds their values exactly enough: a 16-bit map's own steps are 2⁻¹⁶ of its
range), and their ``BLANK`` pixels become NaN. NaN, ±inf and values ≤ 0 are masked. The
map's pixel scale, where its header gives one (``CDELT``/``CD`` with ``CUNIT``), is
a length or an angle (:attr:`ObservedMap.pixel_scale`).

The map is cut into non-overlapping square tiles of ``side`` pixels, starting at
pixel (0, 0); pixels beyond the last whole tile are not used. A tile with more
than ``max_masked`` of its pixels masked is skipped, and so is a uniform one (a single
value: nothing to read, and it cannot be standardised); in a kept tile the masked
pixels are filled with the mean of its valid log10 values, and the tile is
resampled to the model's image size (as training images were resized from their
maps) before it is standardised (or not, as the model asks).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from astropy import units as u
from astropy.io import fits
from astropy.wcs import WCS

from turbexp.errors import UserError
from turbexp.images import prepared, resize_to
from turbexp.plugin_types import ImageInputs

MEAN_PARTICLE_MASS_AMU = 2.37
"""Mean particle mass used to turn a number column density into g/cm²."""

SURFACE_DENSITY = u.g / u.cm**2
NUMBER_COLUMN = u.cm**-2
IMAGE_HDUS = (fits.PrimaryHDU, fits.ImageHDU, fits.CompImageHDU)
MAX_MAP_PIXELS = 2**28
"""Largest image read (16384² pixels, 2 GiB as float64): a header declaring more is refused
before anything is allocated."""


@dataclass
class ObservedMap:
    """One 2D map read from a FITS file; masked pixels are NaN in ``data``."""

    path: Path
    hdu: int  # index of the HDU in the file
    hdu_name: str
    data: np.ndarray  # (ny, nx) float64, in ``unit``
    mask: np.ndarray  # (ny, nx) bool, True where masked
    unit: str  # "g/cm2" when converted, else the BUNIT as found ("" if none)
    wcs: WCS | None  # celestial WCS of the two image axes, if the header has one
    warnings: list[str] = field(default_factory=list)
    pixel_scale: tuple[u.Quantity, u.Quantity] | None = None  # pixel sides (x, y): lengths
    # or angles, if the header gives them
    beam: u.Quantity | None = None  # the map's own beam FWHM (√(BMAJ·BMIN)), an angle, if
    # the header gives it

    @property
    def where(self) -> str:
        """The HDU, as a field name for messages."""
        return f"HDU {self.hdu} ({self.hdu_name or 'unnamed'})"

    @property
    def masked_fraction(self) -> float:
        """Fraction of the map's pixels that are masked."""
        return float(self.mask.mean())


@dataclass
class Tiles:
    """The kept tiles of a map, ready for a model, and where they lie."""

    size: int  # tile side in map pixels
    grid: tuple[int, int]  # tiles per column and per row of the map (n_rows, n_cols)
    images: np.ndarray  # (k, size, size) float32, log10 column density as the model asks
    rows: np.ndarray  # (k,) tile row of each kept tile
    cols: np.ndarray  # (k,) tile column of each kept tile
    masked: np.ndarray  # (k,) masked fraction of each kept tile

    @property
    def x0(self) -> np.ndarray:
        """First pixel column (0-based) of each kept tile."""
        return self.cols * self.size

    @property
    def y0(self) -> np.ndarray:
        """First pixel row (0-based) of each kept tile."""
        return self.rows * self.size


def read_map(path: str | Path) -> ObservedMap:
    """The first 2D image of a FITS file, in g/cm² where its unit allows, with its mask."""
    path = Path(path)
    if not path.is_file():
        raise UserError("no such file", file=str(path), field="MAPS")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with fits.open(path, memmap=False) as hdus:
                return _first_image(path, hdus)
    except UserError:
        raise
    except (OSError, ValueError, TypeError, IndexError, KeyError) as exc:
        reason = str(exc).split(". ")[0]  # astropy's first sentence; the rest is API advice
        raise UserError(f"not a readable FITS file ({reason})", file=str(path),
                        field="MAPS") from None


def _first_image(path: Path, hdus: fits.HDUList) -> ObservedMap:
    for index, hdu in enumerate(hdus):
        if not isinstance(hdu, IMAGE_HDUS) or not hdu.shape:
            continue
        _check_declared_size(path, index, hdu)
        if hdu.data is None:
            continue
        raw = np.asarray(hdu.data)
        if raw.size == 0 or np.squeeze(raw).ndim != 2:
            continue
        return _observed(path, index, hdu, raw)
    shapes = ", ".join(f"{i}: {_shape(h)}" for i, h in enumerate(hdus)) or "none"
    raise UserError(f"no HDU holds a 2D image (HDU shapes: {shapes})", file=str(path),
                    field="HDU")


def _check_declared_size(path: Path, index: int, hdu: Any) -> None:
    """Refuse, before reading it, an image larger than :data:`MAX_MAP_PIXELS` or one the
    file is too short to hold."""
    field = f"HDU {index} ({hdu.name or 'unnamed'})"
    pixels = math.prod(hdu.shape)
    shape = "×".join(str(n) for n in hdu.shape)
    if pixels > MAX_MAP_PIXELS:
        raise UserError(f"the header declares a {shape} image ({pixels:,} pixels); maps of at "
                        f"most {MAX_MAP_PIXELS:,} pixels (16384²) are read", file=str(path),
                        field=field)
    if isinstance(hdu, fits.CompImageHDU):
        return
    declared = pixels * abs(int(hdu.header["BITPIX"])) // 8
    held = path.stat().st_size - hdu.fileinfo()["datLoc"]
    if declared > held:
        raise UserError(f"the file is truncated: the header declares {declared:,} bytes of "
                        f"{shape} image data, {max(held, 0):,} follow it", file=str(path),
                        field=field)


def _shape(hdu: Any) -> str:
    data = hdu.data if isinstance(hdu, IMAGE_HDUS) else None
    if data is None:
        return type(hdu).__name__ + " without image"
    return "×".join(str(n) for n in np.shape(data))


def _observed(path: Path, index: int, hdu: Any, raw: np.ndarray) -> ObservedMap:
    header = hdu.header
    name = f"HDU {index} ({hdu.name or 'unnamed'})"
    data = raw.astype(np.float64)  # astropy applied BSCALE, BZERO and BLANK (as NaN)
    with np.errstate(invalid="ignore"):
        mask = ~np.isfinite(data) | (data <= 0)
    data, mask = np.squeeze(data), np.squeeze(mask)
    if mask.all():
        raise UserError("every pixel is blank (NaN, infinite, ≤ 0 or BLANK)", file=str(path),
                        field=name)
    notes: list[str] = []
    factor, unit = _unit_factor(str(header.get("BUNIT", "")).strip(), notes)
    data = np.where(mask, np.nan, data * factor)
    wcs = _image_wcs(header, raw.shape)
    celestial = wcs if wcs is not None and wcs.celestial.naxis == 2 else None
    return ObservedMap(path, index, hdu.name, data, mask, unit, celestial, notes,
                       _pixel_scale(wcs), _beam(header, notes))


def _beam(header: fits.Header, notes: list[str]) -> u.Quantity | None:
    """The beam's FWHM from BMAJ and BMIN (degrees, as FITS has them; BMIN defaults to
    BMAJ), as the geometric mean of the two axes; None, with a note, when unusable."""
    if "BMAJ" not in header:
        return None
    try:
        major = float(header["BMAJ"])
        minor = float(header.get("BMIN", major))
    except (TypeError, ValueError):
        notes.append(f"BMAJ/BMIN: {header.get('BMAJ')!r}, {header.get('BMIN')!r} are not "
                     "numbers; the map's own beam is ignored")
        return None
    if not (math.isfinite(major) and math.isfinite(minor) and major > 0 and minor > 0):
        notes.append(f"BMAJ/BMIN: {major:g}, {minor:g} are not positive beam widths; the "
                     "map's own beam is ignored")
        return None
    return math.sqrt(major * minor) * u.deg


def _unit_factor(bunit: str, notes: list[str]) -> tuple[float, str]:
    """Factor to g/cm² and the unit of the values once multiplied by it."""
    if not bunit:
        notes.append("BUNIT: no unit given; the values are taken as proportional to "
                     "column density")
        return 1.0, ""
    unit = None
    for form in ("fits", "generic"):
        try:
            unit = u.Unit(bunit, format=form)
            break
        except ValueError:
            continue
    if unit is not None and unit.is_equivalent(SURFACE_DENSITY):
        return float(unit.to(SURFACE_DENSITY)), "g/cm2"
    if unit is not None and unit.is_equivalent(NUMBER_COLUMN):
        particle = (MEAN_PARTICLE_MASS_AMU * u.u).to(u.g).value
        return float(unit.to(NUMBER_COLUMN)) * particle, "g/cm2"
    notes.append(f"BUNIT: {bunit!r} is neither a mass nor a number column density; the "
                 "values are kept as they are, taken as proportional to column density")
    return 1.0, bunit


def _image_wcs(header: fits.Header, shape: tuple[int, ...]) -> WCS | None:
    """The WCS of the two non-degenerate image axes, else None."""
    axes = [len(shape) - i for i, n in enumerate(shape) if n > 1][::-1]  # FITS axis numbers
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            wcs = WCS(header)
            if wcs.naxis != 2 or axes != [1, 2]:
                wcs = wcs.sub(axes)
    except Exception:  # a malformed WCS is no reason to refuse the map
        return None
    return wcs if wcs.naxis == 2 else None


def _pixel_scale(wcs: WCS | None) -> tuple[u.Quantity, u.Quantity] | None:
    """The sides of one pixel along x and y, both lengths or both angles (None when the
    header gives neither)."""
    if wcs is None:
        return None
    try:
        x, y = wcs.proj_plane_pixel_scales()
    except Exception:
        return None
    if not any(x.unit.is_equivalent(kind) for kind in (u.pc, u.deg)) \
            or not y.unit.is_equivalent(x.unit):
        return None
    return abs(x), abs(y).to(x.unit)


def tile_map(observed: ObservedMap, size: int, max_masked: float,
             side: int | None = None, inputs: ImageInputs = "standardised") -> Tiles:
    """Cut a map into tiles of ``side`` pixels (default ``size``), prepare those with few
    enough masked pixels and resample them to ``size``, the model's image size, holding
    what the model's images hold (``inputs``)."""
    side = size if side is None else side
    if inputs != "standardised" and observed.unit != "g/cm2":
        unit = repr(observed.unit) if observed.unit else "none"
        raise UserError(f"the model reads log10 column density in g/cm2, and the map's unit "
                        f"({unit}) does not convert to it; give BUNIT a column density "
                        "(g/cm2, cm-2 or another astropy converts)", file=str(observed.path),
                        field="BUNIT")
    ny, nx = observed.data.shape
    n_rows, n_cols = ny // side, nx // side
    if n_rows == 0 or n_cols == 0:
        raise UserError(f"the map ({ny}×{nx} pixels) is smaller than one tile of {side}×{side} "
                        "pixels", file=str(observed.path), field=observed.where)

    def blocks(a: np.ndarray) -> np.ndarray:
        a = a[:n_rows * side, :n_cols * side].reshape(n_rows, side, n_cols, side)
        return a.transpose(0, 2, 1, 3)  # (n_rows, n_cols, side, side)

    mask = blocks(observed.mask)
    fraction = mask.mean(axis=(2, 3))
    keep = (fraction <= max_masked) & (fraction < 1)
    if not keep.any():
        raise UserError(
            f"no {side}×{side} tile has at most {max_masked:.0%} of its pixels masked (the least "
            f"masked has {fraction.min():.0%}); raise --max-masked to use them",
            file=str(observed.path), field=observed.where)
    rows, cols = np.nonzero(keep)
    with np.errstate(invalid="ignore", divide="ignore"):
        logs = np.log10(blocks(observed.data)[rows, cols])
    # a uniform tile has no structure to read (and standardises to zeros): not used
    varies = np.nanmax(logs, axis=(1, 2)) > np.nanmin(logs, axis=(1, 2))
    if not varies.any():
        raise UserError(
            f"every {side}×{side} tile with few enough masked pixels holds a single value "
            f"(10^{np.nanmin(logs):.4g}); a column-density map varies: is this the right "
            "file or HDU?", file=str(observed.path), field=observed.where)
    rows, cols, logs = rows[varies], cols[varies], logs[varies]
    images = []
    for tile, tile_mask in zip(logs, mask[rows, cols], strict=True):
        if tile_mask.any():
            tile = np.where(tile_mask, tile[~tile_mask].mean(), tile)
        images.append(prepared(resize_to(tile, size), inputs))
    return Tiles(side, (n_rows, n_cols), np.stack(images), rows, cols, fraction[rows, cols])
