"""Predictions of a logged turbexp model on observed column-density maps, tile by tile.

Each map is cut into tiles that cover what the model's training images covered
(``turbexp.image_pc`` of its run), at the map's own pixel scale (its header's
``CDELT``/``CUNIT`` in a length, or an angle and ``--distance``, or
``--pixel-scale``), and each tile is resampled to the model's image size (see
:mod:`turbexp.maps`). A map whose scale is unknown is refused unless the user
gives it or opts out (``--ignore-scale``: tiles of the model's image size in
pixels, whatever they cover). A model trained through a beam
(``turbexp.beam_fwhm_pc``) sees each map through the same beam first: where the map's header
gives its own beam (BMAJ, BMIN), through the kernel that brings that beam to the model's
(FWHM² = model² − map²), with a warning when the map's beam is already the wider. A regression
model gives the spectral index n of every tile, a classifier the probability of
class 1 (or its decision score when the model has no probabilities). Per map, the
mean and standard deviation over its tiles are reported, and for n its conformal
interval (``turbexp.map_interval_90``, :mod:`turbexp.conformal`), for a class its
calibrated probability with its Venn-ABERS bounds (:mod:`turbexp.calibration`); the spread shows
how much the answer varies across the cloud, it is not a calibrated uncertainty.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from astropy import units as u

from turbexp.calibration import TAG as CALIBRATION
from turbexp.calibration import MapCalibration
from turbexp.conformal import LEVEL
from turbexp.conformal import TAG as INTERVAL
from turbexp.errors import UserError, gather
from turbexp.files import atomic_write, check_output_folder, make_output_folder
from turbexp.maps import ObservedMap, Tiles, read_map, tile_map
from turbexp.observation import observe
from turbexp.plugin_types import ImageInputs
from turbexp.progress import console
from turbexp.spec import ObservationSpec

FIELD = "MODEL_URI"
CSV_NAME = "predictions.csv"
CSV_COLUMNS = ("map", "tile_row", "tile_col", "x0", "y0", "masked_fraction", "prediction")
SUMMARY_NAME = "maps.csv"
SUMMARY_COLUMNS = ("map", "quantity", "mean", "spread", "tiles", "tiles_possible",
                   "masked_fraction", "tile_pixels", "pixel_pc", "tile_pc", "map_beam_fwhm_pc",
                   "beam_fwhm_pc",
                   "interval_low", "interval_high", "calibrated_p", "calibrated_p_low",
                   "calibrated_p_high")


@dataclass
class ModelDescription:
    """What predicting needs to know about a logged model, before loading it."""

    uri: str
    run_id: str
    size: int  # image side in pixels, from the signature
    classes: list[str]  # class names in label order; empty for a regression model
    image_pc: float | None = None  # physical side of a training image (None: not recorded)
    beam_fwhm_pc: float = 0.0  # the observation model's beam the model was trained through
    map_interval: float | None = None  # regress: conformal half-width of a map's n
    calibration: MapCalibration | None = None  # classify: of a map's mean probability
    inputs: ImageInputs = "standardised"  # what its images hold

    @property
    def classifies(self) -> bool:
        return bool(self.classes)


@dataclass
class MapPrediction:
    """The predictions for one map."""

    observed: ObservedMap
    tiles: Tiles
    values: np.ndarray  # (k,) one prediction per kept tile
    quantity: str  # "spectral index n", "P(<class 1>)" or "score(<class 1>)"
    output: Path  # the FITS map of per-tile predictions
    scale: MapScale | None = None  # how the tiles were sized (None: in pixels)
    beam_fwhm_pc: float = 0.0  # the kernel the map was smoothed by before tiling
    map_beam_pc: float | None = None  # the map's own beam, from its header, if known
    halfwidth: float | None = None  # conformal half-width of the map's mean (regress)
    calibration: MapCalibration | None = None  # of the map's mean probability (classify)

    @property
    def calibrated(self) -> tuple[float, float, float] | None:
        """The map's calibrated probability of class 1 and its bounds p0 ≤ p1, if the model
        has a calibration."""
        if self.calibration is None:
            return None
        point, low, high = self.calibration.calibrated(np.array([self.mean]))
        return float(point[0]), float(low[0]), float(high[0])

    @property
    def interval(self) -> tuple[float, float] | None:
        """The map's conformal interval (:data:`turbexp.conformal.LEVEL`), if the model
        has one."""
        if self.halfwidth is None:
            return None
        return self.mean - self.halfwidth, self.mean + self.halfwidth

    @property
    def mean(self) -> float:
        return float(np.mean(self.values))

    @property
    def spread(self) -> float:
        """Standard deviation over tiles (0 for a single tile)."""
        return float(np.std(self.values))

    @property
    def n_tiles(self) -> int:
        return len(self.values)

    @property
    def n_possible(self) -> int:
        return self.tiles.grid[0] * self.tiles.grid[1]

    def image(self) -> np.ndarray:
        """The per-tile predictions on the tile grid, NaN where a tile was skipped."""
        grid = np.full(self.tiles.grid, np.nan)
        grid[self.tiles.rows, self.tiles.cols] = self.values
        return grid


@dataclass(frozen=True)
class MapScale:
    """The physical scale a map was tiled at."""

    pixel_pc: float  # side of one map pixel
    source: str  # where it came from: the header's keys, or --pixel-scale
    side: int  # tile side in map pixels
    image_pc: float  # side of the model's training images

    @property
    def tile_pc(self) -> float:
        return self.side * self.pixel_pc

    def describe(self, size: int) -> str:
        """What was done, for the terminal."""
        return (f"pixel {self.pixel_pc:.4g} pc ({self.source}); tiles of {self.side} pixels "
                f"= {self.tile_pc:.4g} pc, resampled to {size} pixels as the model's "
                f"{self.image_pc:.4g} pc training images")


@dataclass(frozen=True)
class ScaleOptions:
    """What the user said about the maps' scale."""

    pixel_pc: float | None = None  # --pixel-scale: every map's pixel side in pc
    distance_pc: float | None = None  # --distance: turns an angular pixel scale into pc
    ignore: bool = False  # --ignore-scale: tiles of the model's image size in pixels


def map_scale(observed: ObservedMap, description: ModelDescription,
              options: ScaleOptions) -> MapScale | None:
    """The scale to tile ``observed`` at, or None to tile in the model's pixels (the user
    opted out, or the model records no scale); a map of unknown scale is one clear error."""
    if options.ignore or description.image_pc is None:
        return None
    where = {"file": str(observed.path), "field": observed.where}
    if options.pixel_pc is not None:
        pixel, source = options.pixel_pc, "--pixel-scale"
    elif observed.pixel_scale is None:
        raise UserError("the map's pixel scale is unknown (no CDELT/CD with CUNIT in its "
                        f"header); give it with --pixel-scale PC, or --ignore-scale to cut "
                        f"tiles of the model's {description.size} pixels whatever they cover",
                        **where)
    else:
        x, y = observed.pixel_scale
        if not x > 0 or abs(x - y) > 0.01 * x:
            raise UserError(f"the pixels are not square ({x:.4g} × {y:.4g}); resample the map "
                            "to square pixels, or give --pixel-scale PC", **where)
        if x.unit.is_equivalent(u.pc):
            pixel, source = float(x.to_value(u.pc)), "CDELT/CUNIT"
        elif options.distance_pc is None:
            raise UserError(f"the map's pixels are angles ({x:.4g}); give the cloud's distance "
                            "with --distance PC to turn them into pc", **where)
        else:
            pixel = options.distance_pc * float(x.to_value(u.rad))
            source = f"CDELT/CUNIT at {options.distance_pc:g} pc"
    side = round(description.image_pc / pixel)
    if side < 2:
        raise UserError(f"a pixel of {pixel:.4g} pc is coarser than half the model's "
                        f"{description.image_pc:.4g} pc images: the map cannot be tiled at "
                        "their scale", **where)
    return MapScale(pixel, source, side, description.image_pc)


def describe_model(uri: str) -> ModelDescription:
    """Check that ``uri`` names a turbexp model (an experiment's name, a run id or an MLflow
    model URI: :func:`turbexp.tracking.resolve_model_uri`); its image size and classes."""
    import mlflow
    from mlflow.exceptions import MlflowException

    from turbexp import tracking

    try:
        uri = tracking.resolve_model_uri(uri)
    except ValueError as exc:
        raise UserError(str(exc), field=FIELD) from None
    try:
        with tracking.quiet_reading():
            info = mlflow.models.get_model_info(uri)
    except (MlflowException, OSError) as exc:
        raise UserError(f"no MLflow model at {uri!r} ({exc})", field=FIELD) from None
    not_ours = f"{uri!r} is not a turbexp model: "
    if "sklearn" not in (info.flavors or {}):
        raise UserError(not_ours + "it has no scikit-learn flavour", field=FIELD)
    size = _image_size(info.signature)
    if size is None:
        raise UserError(not_ours + "its signature is not a float32 tensor (-1, size, size)",
                        field=FIELD)
    if not info.run_id:
        raise UserError(not_ours + "it names no MLflow run", field=FIELD)
    try:
        run = mlflow.get_run(info.run_id)
    except MlflowException as exc:
        raise UserError(f"the run {info.run_id} of {uri!r} is not in the tracking store "
                        f"{mlflow.get_tracking_uri()} ({exc})", field=FIELD) from None
    tag = run.data.tags.get("turbexp.classes")
    if tag is None:
        raise UserError(not_ours + f"its run {info.run_id} has no tag turbexp.classes",
                        field=FIELD)
    try:
        classes = [str(c) for c in json.loads(tag)]
    except (ValueError, TypeError):
        raise UserError(not_ours + f"the tag turbexp.classes of run {info.run_id} is not a "
                        f"JSON list: {tag!r}", field=FIELD) from None
    if len(classes) == 1:
        raise UserError(not_ours + f"its run {info.run_id} names one class only", field=FIELD)
    recorded = run.data.tags.get("turbexp.image_pc")
    try:
        image_pc = float(recorded) if recorded is not None else None
    except ValueError:
        raise UserError(not_ours + f"the tag turbexp.image_pc of run {info.run_id} is not a "
                        f"number: {recorded!r}", field=FIELD) from None
    beam = run.data.tags.get("turbexp.beam_fwhm_pc", "0")
    try:
        beam_fwhm_pc = float(beam)
    except ValueError:
        raise UserError(not_ours + f"the tag turbexp.beam_fwhm_pc of run {info.run_id} is not "
                        f"a number: {beam!r}", field=FIELD) from None
    interval = run.data.tags.get(INTERVAL)
    try:
        map_interval = float(interval) if interval is not None else None
    except ValueError:
        raise UserError(not_ours + f"the tag {INTERVAL} of run {info.run_id} is not a "
                        f"number: {interval!r}", field=FIELD) from None
    recorded = run.data.tags.get(CALIBRATION)
    try:
        calibration = MapCalibration.from_tag(recorded) if recorded is not None else None
    except ValueError as exc:
        raise UserError(not_ours + f"the tag {CALIBRATION} of run {info.run_id}: {exc}",
                        field=FIELD) from None
    try:
        inputs = tracking.model_inputs(run)
    except ValueError as exc:
        raise UserError(not_ours + str(exc), field=FIELD) from None
    return ModelDescription(uri, info.run_id, size, classes, image_pc, beam_fwhm_pc,
                            map_interval, calibration, inputs)


def _image_size(signature: Any) -> int | None:
    """The side of the square float32 images a signature asks for, else None."""
    try:
        [spec] = signature.inputs.inputs
        shape = tuple(spec.shape)
        dtype = np.dtype(spec.type)
    except (AttributeError, TypeError, ValueError):
        return None
    if dtype != np.float32 or len(shape) != 3 or shape[1] != shape[2] or shape[1] < 1:
        return None
    return int(shape[1])


def load_pipeline(description: ModelDescription) -> Any:
    """The fitted scikit-learn pipeline (skops format, with only the types turbexp allows)."""
    from turbexp import tracking

    try:
        return tracking.load_pipeline(description.uri)
    except ValueError as exc:
        raise UserError(str(exc), field=FIELD) from None


def score(pipeline: Any, description: ModelDescription,
          images: np.ndarray) -> tuple[np.ndarray, str]:
    """The prediction for each image, and the quantity it is."""
    if not description.classifies:
        return np.asarray(pipeline.predict(images), dtype=np.float64), "spectral index n"
    name = description.classes[1]
    if hasattr(pipeline, "predict_proba"):
        return np.asarray(pipeline.predict_proba(images))[:, 1], f"P({name})"
    if hasattr(pipeline, "decision_function"):
        return np.asarray(pipeline.decision_function(images), dtype=np.float64), f"score({name})"
    return np.asarray(pipeline.predict(images), dtype=np.float64), f"label (1 = {name})"


@dataclass(frozen=True)
class Smoothing:
    """How a map was brought to the beam the model was trained through."""

    kernel_pc: float  # FWHM of the Gaussian applied (0: none)
    map_beam_pc: float | None  # the map's own beam, if its header gives one
    note: str  # what was done, for the terminal
    warning: str | None = None  # the map is smoother than the model's training maps


def map_beam_pc(observed: ObservedMap, scale: MapScale | None,
                options: ScaleOptions) -> float | None:
    """The map's own beam (header BMAJ/BMIN) in pc: by --distance, else in map pixels (its
    CDELT in angle) times the pixel's pc; None when the header has no beam or nothing
    relates its angle to pc."""
    if observed.beam is None:
        return None
    if options.distance_pc is not None:
        return options.distance_pc * float(observed.beam.to_value(u.rad))
    if scale is not None and observed.pixel_scale is not None \
            and observed.pixel_scale[0].unit.is_equivalent(u.deg):
        pixels = float((observed.beam / observed.pixel_scale[0]).decompose())
        return pixels * scale.pixel_pc
    return None


def smoothing(observed: ObservedMap, description: ModelDescription,
              scale: MapScale | None, map_beam: float | None) -> Smoothing:
    """The kernel that brings the map to the model's beam: the model's beam where the map's
    own is unknown, √(model² − map²) where it is known; none where the map's is wider, with
    a warning (a wider beam cannot be undone)."""
    model = description.beam_fwhm_pc
    if model > 0 and scale is None:
        raise UserError(f"the model was trained through a {model:g} pc beam, which needs the "
                        "map's pixel scale: --ignore-scale cannot be used with it",
                        file=str(observed.path), field=observed.where)
    if map_beam is None:
        note = "" if model == 0 else f"smoothed by the model's {model:g} pc beam (FWHM) first"
        unused = None if observed.beam is None else (
            f"the header's beam (BMAJ/BMIN, {observed.beam:.3g}) is an angle and nothing "
            "relates it to pc (give --distance): it is not taken into account")
        return Smoothing(model, None, note, unused)
    training_pixel = description.image_pc / description.size if description.image_pc else 0.0
    finest = max(model, training_pixel)
    warning = None
    if map_beam > finest:
        trained = f"a {model:g} pc beam" if model else "maps without a beam"
        warning = (f"the map's own beam ({map_beam:.3g} pc, BMAJ/BMIN) is wider than what the "
                   f"model was trained on ({trained}, pixels of {finest:.3g} pc): its small "
                   "scales are smoother than any training map's, which may bias the answer")
    kernel = math.sqrt(model**2 - map_beam**2) if model > map_beam else 0.0
    note = f"the map's own beam {map_beam:.3g} pc"
    if model:
        note += (f"; smoothed by {kernel:.3g} pc to the model's {model:g} pc beam (FWHM) "
                 "first" if kernel else f", already at least the model's {model:g} pc beam")
    return Smoothing(kernel, map_beam, note, warning)


def through_beam(observed: ObservedMap, pixel_pc: float | None,
                 kernel_pc: float) -> ObservedMap:
    """The map smoothed by a Gaussian of FWHM ``kernel_pc`` at its pixel scale."""
    if kernel_pc == 0 or pixel_pc is None:
        return observed
    seen = observe(observed.data, pixel_pc, ObservationSpec(beam_fwhm_pc=kernel_pc),
                   periodic=False)
    return dataclasses.replace(observed, data=seen)


def predict_maps(uri: str, paths: list[str], out_dir: Path, max_masked: float = 0.1,
                 scale: ScaleOptions | None = None) -> list[MapPrediction]:
    """Predict every map and write the CSV and FITS outputs to ``out_dir``.

    Everything is checked (the model, then every map) before anything is written.
    """
    check_output_folder(out_dir, "--out")
    description = describe_model(uri)
    options = scale or ScaleOptions()

    def prepare(path: str) -> tuple[ObservedMap, Tiles, MapScale | None, Smoothing]:
        observed = read_map(path)
        chosen = map_scale(observed, description, options)
        side = description.size if chosen is None else chosen.side
        smoothed = smoothing(observed, description, chosen,
                             map_beam_pc(observed, chosen, options))
        seen = through_beam(observed, None if chosen is None else chosen.pixel_pc,
                            smoothed.kernel_pc)
        tiles = tile_map(seen, description.size, max_masked, side, description.inputs)
        return observed, tiles, chosen, smoothed

    prepared = gather(prepare, paths)
    maps = [observed for observed, *_ in prepared]
    _check_unique_stems(maps)
    if description.image_pc is None and not options.ignore:
        console.print(f"[yellow]warning:[/] the model records no physical scale: tiles of "
                      f"{description.size} pixels, whatever they cover", soft_wrap=True)
    for observed, _, chosen, smoothed in prepared:
        for note in observed.warnings + ([smoothed.warning] if smoothed.warning else []):
            console.print(f"[yellow]warning:[/] {observed.path}: {note}", soft_wrap=True,
                          highlight=False)
        if chosen is not None:
            beam = f"; {smoothed.note}" if smoothed.note else ""
            console.print(f"{observed.path}: {chosen.describe(description.size)}{beam}",
                          soft_wrap=True, highlight=False)
        elif options.ignore:
            console.print(f"{observed.path}: --ignore-scale: tiles of {description.size} "
                          "pixels, whatever they cover", soft_wrap=True, highlight=False)
    pipeline = load_pipeline(description)

    def predicted(item: tuple[ObservedMap, Tiles, MapScale | None, Smoothing]) -> MapPrediction:
        observed, tiled, chosen, smoothed = item
        try:
            values, quantity = score(pipeline, description, tiled.images)
        except (ValueError, ArithmeticError, np.linalg.LinAlgError) as exc:
            raise UserError(f"the model could not score this map's tiles: {exc}",
                            file=str(observed.path), field=observed.where) from None
        return MapPrediction(observed, tiled, values, quantity,
                             out_dir / f"{observed.path.stem}_predictions.fits",
                             chosen, smoothed.kernel_pc, smoothed.map_beam_pc,
                             description.map_interval, description.calibration)

    results = gather(predicted, prepared)
    make_output_folder(out_dir, "--out")
    for result in results:
        _write_fits(result, uri, max_masked)
    _write_csv(out_dir / CSV_NAME, CSV_COLUMNS, _tile_rows(results))
    _write_csv(out_dir / SUMMARY_NAME, SUMMARY_COLUMNS, _map_rows(results))
    return results


def _check_unique_stems(maps: list[ObservedMap]) -> None:
    seen: dict[str, Path] = {}
    for observed in maps:
        stem = observed.path.stem
        if stem in seen:
            raise UserError(f"{seen[stem]} and {observed.path} would both write "
                            f"{stem}_predictions.fits; rename one", file=str(observed.path),
                            field="MAPS")
        seen[stem] = observed.path


def _write_csv(target: Path, columns: tuple[str, ...], rows: Iterable[list[Any]]) -> None:
    """A CSV file of ``columns`` and ``rows``, written atomically."""
    text = io.StringIO()
    writer = csv.writer(text)
    writer.writerow(columns)
    writer.writerows(rows)
    atomic_write(target, lambda handle: handle.write(text.getvalue().encode()))


def _tile_rows(results: list[MapPrediction]) -> Iterator[list[Any]]:
    """One row per kept tile of every map (:data:`CSV_COLUMNS`)."""
    for r in results:
        t = r.tiles
        for row, col, x0, y0, masked, value in zip(t.rows, t.cols, t.x0, t.y0, t.masked,
                                                   r.values, strict=True):
            yield [str(r.observed.path), int(row), int(col), int(x0), int(y0),
                   f"{masked:.6g}", f"{value:.8g}"]


def _map_rows(results: list[MapPrediction]) -> Iterator[list[Any]]:
    """One row per map: the mean and spread over its tiles, and how it was tiled
    (:data:`SUMMARY_COLUMNS`)."""
    for r in results:
        scale = r.scale
        yield [str(r.observed.path), r.quantity, f"{r.mean:.8g}", f"{r.spread:.8g}",
               r.n_tiles, r.n_possible, f"{r.observed.masked_fraction:.6g}", r.tiles.size,
               "" if scale is None else f"{scale.pixel_pc:.8g}",
               "" if scale is None else f"{scale.tile_pc:.8g}",
               "" if r.map_beam_pc is None else f"{r.map_beam_pc:.8g}", f"{r.beam_fwhm_pc:.8g}",
               *(("", "") if r.interval is None else (f"{v:.8g}" for v in r.interval)),
               *(("", "", "") if r.calibrated is None else (f"{v:.8g}" for v in r.calibrated))]


def _write_fits(result: MapPrediction, uri: str, max_masked: float) -> None:
    from astropy.io import fits

    observed, size = result.observed, result.tiles.size
    header = fits.Header()
    if observed.wcs is not None:
        header.update(observed.wcs[::size, ::size].to_header())
    # the comment only where it fits on the card beside the URI (else astropy cuts it, warning)
    header["MODEL"] = (uri, "MLflow model URI") if len(uri) <= 48 else uri
    header["QUANTITY"] = (result.quantity, "predicted per tile")
    header["TILESIZE"] = (size, "tile side in pixels of the input map")
    if result.scale is not None:
        header["PIXPC"] = (result.scale.pixel_pc, "pixel side of the input map, pc")
        header["TILEPC"] = (result.scale.tile_pc, "tile side, pc")
        header["MODELPC"] = (result.scale.image_pc, "side of the model's training images, pc")
    header["BEAMPC"] = (result.beam_fwhm_pc, "FWHM of the beam applied before tiling, pc")
    if result.map_beam_pc is not None:
        header["MAPBEAM"] = (result.map_beam_pc, "FWHM of the map's own beam, pc")
    header["MAXMASK"] = (max_masked, "tiles with a larger masked fraction are NaN")
    header["MAPFILE"] = (observed.path.name, "input map")
    header["MAPHDU"] = (observed.hdu, "HDU of the input map")
    header["MAPUNIT"] = (observed.unit, "unit of the input map as read")
    header["MASKFRAC"] = (observed.masked_fraction, "masked fraction of the input map")
    header["NTILES"] = (result.n_tiles, "tiles predicted")
    header["PREDMEAN"] = (result.mean, "mean over tiles")
    header["PREDSTD"] = (result.spread, "standard deviation over tiles")
    if result.calibrated is not None:
        point, low, high = result.calibrated
        header["PREDCAL"] = (point, "calibrated probability of the map's class 1")
        header["PREDCALL"] = (low, "its Venn-ABERS lower bound p0")
        header["PREDCALH"] = (high, "its Venn-ABERS upper bound p1")
    if result.interval is not None and np.isfinite(result.interval).all():
        level = f"{LEVEL * 100:g} %"
        header["PREDLO"] = (result.interval[0], f"{level} conformal interval of the mean, low")
        header["PREDHI"] = (result.interval[1], f"{level} conformal interval of the mean, high")
    hdu = fits.PrimaryHDU(result.image(), header=header)
    atomic_write(result.output, hdu.writeto)
