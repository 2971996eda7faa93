"""`turbexp predict`: logged models on observed FITS maps, tile by tile."""

from __future__ import annotations

import csv
import dataclasses
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import mlflow
import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS
from conftest import TINY_CAMPAIGN, TINY_EXPERIMENT, turbexp_cli, write
from mlflow.tracking import MlflowClient

from turbexp.calibration import MapCalibration
from turbexp.cli import main
from turbexp.images import resize_to, standardise
from turbexp.maps import MEAN_PARTICLE_MASS_AMU, read_map, tile_map
from turbexp.observation import observe
from turbexp.spec import ObservationSpec

REGRESS_CAMPAIGN = """
name: spread
preset: reference
grid: 16
seed: 3
groups:
  - {index: {low: 3.0, high: 4.5}, count: 3}
"""

REGRESS_EXPERIMENT = """
name: tiny-svr
data:
  campaign: ../sims/spread.yaml
  images: {size: 8, cuts: 4, flips: 1}
  split: {train: 0.4, test: 0.3, holdout: 0.3, seed: 0}
task: {kind: regress}
features: {plugin: hog, orientations: 6, cells: 2}
estimator: {plugin: svr}
tune: {trials: 1, defaults: false}
evaluate: {reports: []}
"""

LOGISTIC_EXPERIMENT = (TINY_EXPERIMENT.replace("name: tiny-hog-svm", "name: tiny-logistic")
                       .replace("{plugin: svm, C: {low: 0.1, high: 10, log: true}}",
                                "{plugin: logistic}")
                       .replace("trials: 3", "trials: 1")
                       .replace("[roc, confusion_matrix, tsne]", "[]"))

SIZE = 8  # the image size of both tiny experiments
PIXEL_PC = 5.0 / SIZE  # their pixels: quadrants of the default 10 pc box, 8 pixels a side
DISTANCE_PC = "3581"  # at which _wcs()'s 0.01° pixels are PIXEL_PC: tiles of SIZE pixels


@dataclass
class Models:
    env: dict[str, str]
    classify: str  # models:/<model id> of an SVM: decision scores
    probability: str  # runs:/<run id>/model of a logistic regression: probabilities
    regress: str  # runs:/<run id>/model


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Models:
    """A tiny classifier and a tiny regressor, logged by one `turbexp run` in a private store."""
    root = tmp_path_factory.mktemp("models")
    write(root / "sims" / "tiny.yaml", TINY_CAMPAIGN)
    write(root / "sims" / "spread.yaml", REGRESS_CAMPAIGN)
    write(root / "experiments" / "tiny.yaml",
          TINY_EXPERIMENT.replace("[roc, confusion_matrix, tsne]", "[]"))
    write(root / "experiments" / "logistic.yaml", LOGISTIC_EXPERIMENT)
    write(root / "experiments" / "svr.yaml", REGRESS_EXPERIMENT)
    env = {"MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}",
           "TURBEXP_HOME": str(root / ".turbexp"), "TURBEXP_JOBS": "1"}
    result = turbexp_cli("run", "experiments/tiny.yaml", "experiments/logistic.yaml",
                         "experiments/svr.yaml", "--no-progress", cwd=root, env=env)
    assert result.returncode == 0, result.stderr
    client = MlflowClient(env["MLFLOW_TRACKING_URI"])
    experiment = client.get_experiment_by_name("turbexp").experiment_id
    runs = {r.data.tags["turbexp.experiment"]: r.info.run_id for r in client.search_runs(
        [experiment], filter_string="tags.`turbexp.role` = 'experiment'")}
    [model] = [m for m in client.search_logged_models([experiment])
               if m.source_run_id == runs["tiny-hog-svm"]]
    return Models(env, f"models:/{model.model_id}", f"runs:/{runs['tiny-logistic']}/tiny-logistic",
                  f"runs:/{runs['tiny-svr']}/tiny-svr")


@pytest.fixture
def store(models: Models, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The models' store for in-process calls, from an empty working folder."""
    monkeypatch.chdir(tmp_path)
    for key, value in models.env.items():
        monkeypatch.setenv(key, value)
    mlflow.set_tracking_uri(models.env["MLFLOW_TRACKING_URI"])
    yield tmp_path
    mlflow.set_tracking_uri(None)


def _wcs() -> WCS:
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.crpix = [20.5, 20.5]
    wcs.wcs.cdelt = [-0.01, 0.01]
    wcs.wcs.crval = [83.8, -5.4]
    return wcs


def _column_density(shape: tuple[int, int] = (40, 40), seed: int = 0) -> np.ndarray:
    """Log-normal column density in g/cm², like a turbulent cloud's."""
    return 1e-2 * np.exp(np.random.default_rng(seed).normal(0.0, 0.5, shape))


def _write_map(path: Path, data: np.ndarray, unit: str | None = "g/cm2",
               wcs: WCS | None = None, beam_deg: float | None = None) -> Path:
    header = wcs.to_header() if wcs is not None else fits.Header()
    if unit is not None:
        header["BUNIT"] = unit
    if beam_deg is not None:
        header["BMAJ"], header["BMIN"] = beam_deg, beam_deg
    path.parent.mkdir(parents=True, exist_ok=True)
    fits.PrimaryHDU(data, header=header).writeto(path)
    return path


def _nan_border(data: np.ndarray, width: int = 4) -> np.ndarray:
    out = data.copy()
    out[:width], out[-width:], out[:, :width], out[:, -width:] = np.nan, np.nan, np.nan, np.nan
    return out


def _read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_classifier_predicts_every_tile_of_real_looking_maps(models: Models,
                                                             store: Path) -> None:
    tmp_path = store
    clean = _column_density()
    _write_map(tmp_path / "maps" / "clean.fits", clean, wcs=_wcs())
    _write_map(tmp_path / "maps" / "border.fits", _nan_border(clean), wcs=_wcs())
    maps = sorted(str(p.relative_to(tmp_path)) for p in (tmp_path / "maps").glob("*.fits"))
    result = turbexp_cli("predict", models.classify, *maps, "--distance", DISTANCE_PC,
                         cwd=tmp_path, env=models.env)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert "tiles of 8 pixels = 5 pc" in result.stderr.replace("\n", " ")

    rows = {line.split("│")[1].strip(): line for line in result.stdout.splitlines()
            if line.count("│") > 2 and ".fits" in line}
    assert set(rows) == {"maps/border.fits", "maps/clean.fits"}
    assert "score(burgers)" in rows["maps/clean.fits"]  # the SVM has no probabilities
    assert "25 / 25" in rows["maps/clean.fits"] and "0.000" in rows["maps/clean.fits"]
    # a 4-pixel NaN border masks 1 - 32²/40² of the map and every edge tile of 8×8
    assert "9 / 25" in rows["maps/border.fits"] and "0.360" in rows["maps/border.fits"]

    out = tmp_path / "predictions"
    table = _read_csv(out / "predictions.csv")
    assert len(table) == 25 + 9
    assert sorted(p.name for p in out.iterdir()) == [
        "border_predictions.fits", "clean_predictions.fits", "maps.csv", "predictions.csv"]
    # one row per map: the mean and spread of its tiles' predictions, and how it was tiled
    summary = {r["map"]: r for r in _read_csv(out / "maps.csv")}
    assert set(summary) == {"maps/border.fits", "maps/clean.fits"}
    for name, row in summary.items():
        values = [float(r["prediction"]) for r in table if r["map"] == name]
        assert float(row["mean"]) == pytest.approx(np.mean(values), rel=1e-6)
        assert float(row["spread"]) == pytest.approx(np.std(values), rel=1e-6, abs=1e-9)
        assert int(row["tiles"]) == len(values) and row["tiles_possible"] == "25"
        assert row["tile_pixels"] == "8" and float(row["tile_pc"]) == pytest.approx(5.0, 1e-3)

    # each prediction is the model's on the tile's standardised log10 column density
    pipeline = mlflow.sklearn.load_model(models.classify)
    clean_rows = [r for r in table if r["map"] == "maps/clean.fits"]
    tiles = np.stack([standardise(np.log10(clean[int(r["y0"]):int(r["y0"]) + SIZE,
                                                 int(r["x0"]):int(r["x0"]) + SIZE]))
                      for r in clean_rows])
    np.testing.assert_allclose([float(r["prediction"]) for r in clean_rows],
                               pipeline.decision_function(tiles), rtol=1e-6, atol=1e-6)

    with fits.open(out / "border_predictions.fits") as hdus:
        image, header = hdus[0].data, hdus[0].header
    assert image.shape == (5, 5)
    interior = np.zeros((5, 5), dtype=bool)
    interior[1:4, 1:4] = True
    assert np.isnan(image[~interior]).all() and np.isfinite(image[interior]).all()
    assert header["MODEL"] == models.classify
    assert header["QUANTITY"] == "score(burgers)" and header["TILESIZE"] == SIZE
    assert header["MASKFRAC"] == pytest.approx(0.36)
    assert header["PIXPC"] == pytest.approx(PIXEL_PC, rel=1e-3) and header["MODELPC"] == 5.0
    # the output's WCS puts each tile at the sky position of its centre in the input map
    tile_wcs, map_wcs = WCS(header), _wcs()
    np.testing.assert_allclose(tile_wcs.pixel_to_world_values(2, 1),
                               map_wcs.pixel_to_world_values(2 * SIZE + 3.5, SIZE + 3.5))
    border_rows = {(int(r["tile_row"]), int(r["tile_col"])): float(r["prediction"])
                   for r in table if r["map"] == "maps/border.fits"}
    assert set(border_rows) == {(i, j) for i in range(1, 4) for j in range(1, 4)}
    assert all(image[k] == pytest.approx(v, rel=1e-6) for k, v in border_rows.items())



def _wcs_pc(pixel_pc: float, other_pc: float | None = None) -> WCS:
    """A map's WCS in pc, as simulation maps and many processed maps carry it."""
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["LINEAR", "LINEAR"]
    wcs.wcs.cunit = ["pc", "pc"]
    wcs.wcs.cdelt = [pixel_pc, other_pc or pixel_pc]
    return wcs


def test_tiles_cover_what_the_training_images_covered(models: Models, store: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    """Pixels of half the training pixel's side: tiles of twice the model's size in pixels,
    the same 5 pc, resampled to its 8 pixels as training images were resized."""
    cloud = _column_density((48, 48), seed=4)
    _write_map(store / "fine.fits", cloud, wcs=_wcs_pc(PIXEL_PC / 2))
    main(["predict", models.probability, "fine.fits", "--out", "out"])
    captured = capsys.readouterr()
    said = captured.err.replace("\n", " ")  # what was done goes to stderr, beside warnings
    assert "pixel 0.3125 pc (CDELT/CUNIT)" in said and "tiles of 16 pixels = 5 pc" in said
    assert "9 / 9" in captured.out
    rows = _read_csv(store / "out" / "predictions.csv")
    assert {(int(r["x0"]), int(r["y0"])) for r in rows} == {(x, y) for x in (0, 16, 32)
                                                          for y in (0, 16, 32)}
    pipeline = mlflow.sklearn.load_model(models.probability)
    tiles = np.stack([standardise(resize_to(np.log10(cloud[int(r["y0"]):int(r["y0"]) + 16,
                                                           int(r["x0"]):int(r["x0"]) + 16]),
                                            SIZE)) for r in rows])
    np.testing.assert_allclose([float(r["prediction"]) for r in rows],
                               pipeline.predict_proba(tiles)[:, 1], rtol=1e-6, atol=1e-6)
    with fits.open(store / "out" / "fine_predictions.fits") as hdus:
        assert hdus[0].header["TILESIZE"] == 16 and hdus[0].header["TILEPC"] == 5.0


def test_a_map_of_unknown_scale_is_refused_unless_the_user_says(
        models: Models, store: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _write_map(store / "bare.fits", _column_density())
    _write_map(store / "sky.fits", _column_density(), wcs=_wcs())
    _write_map(store / "oblong.fits", _column_density(), wcs=_wcs_pc(0.5, 0.7))
    for name, expected in (("bare.fits", "--pixel-scale PC, or --ignore-scale"),
                           ("sky.fits", "--distance PC"),
                           ("oblong.fits", "not square")):
        with pytest.raises(SystemExit) as exit_:
            main(["predict", models.classify, name, "--out", "out"])
        assert exit_.value.code == 2
        err = capsys.readouterr().err
        assert f"{name}: HDU 0" in err and expected in err, err
        assert not (store / "out").exists()
    main(["predict", models.classify, "bare.fits", "--out", "out", "--ignore-scale"])
    captured = capsys.readouterr()
    assert "--ignore-scale: tiles of 8 pixels" in captured.err and "25 / 25" in captured.out


def test_a_model_that_records_no_scale_tiles_in_pixels_and_says_so(
        models: Models, store: Path, capsys: pytest.CaptureFixture[str]) -> None:
    client = MlflowClient()
    run_id = mlflow.models.get_model_info(models.regress).run_id
    recorded = client.get_run(run_id).data.tags["turbexp.image_pc"]
    client.delete_tag(run_id, "turbexp.image_pc")  # as models logged before the tag existed
    try:
        _write_map(store / "cloud.fits", _column_density())
        main(["predict", models.regress, "cloud.fits", "--out", "out"])
    finally:
        client.set_tag(run_id, "turbexp.image_pc", recorded)
    captured = capsys.readouterr()
    assert "records no physical scale" in captured.err.replace("\n", " ")
    assert "25 / 25" in captured.out


def test_regressor_gives_the_spectral_index(models: Models, store: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    _write_map(store / "cloud.fits", _column_density(seed=1), unit="cm-2")
    main(["predict", models.regress, "cloud.fits", "--out", "out", "--max-masked", "0",
          "--pixel-scale", str(PIXEL_PC)])
    stdout = capsys.readouterr().out
    assert "spectral index n" in stdout and "25 / 25" in stdout
    with fits.open(store / "out" / "cloud_predictions.fits") as hdus:
        image, header = hdus[0].data, hdus[0].header
    assert header["QUANTITY"] == "spectral index n" and header["MAPUNIT"] == "g/cm2"
    assert image.shape == (5, 5) and np.isfinite(image).all()
    assert "CTYPE1" not in header  # the input had no WCS
    values = [float(r["prediction"]) for r in _read_csv(store / "out" / "predictions.csv")]
    assert header["PREDMEAN"] == pytest.approx(np.mean(values), rel=1e-6)
    assert 2.0 < np.mean(values) < 6.0
    # one test simulation's 3 maps are too few for a 90 % interval: it is unbounded
    assert "unbounded: too few test maps" in " ".join(stdout.split())
    assert "PREDHI" not in header  # FITS has no infinity


def test_a_regressor_gives_each_map_its_conformal_interval(
        models: Models, store: Path, capsys: pytest.CaptureFixture[str]) -> None:
    client = MlflowClient()
    run_id = mlflow.models.get_model_info(models.regress).run_id
    recorded = client.get_run(run_id).data.tags["turbexp.map_interval_90"]
    client.set_tag(run_id, "turbexp.map_interval_90", "0.125")  # as if set on more maps
    try:
        _write_map(store / "cloud.fits", _column_density(seed=2), wcs=_wcs_pc(PIXEL_PC))
        main(["predict", models.regress, "cloud.fits", "--out", "out"])
    finally:
        client.set_tag(run_id, "turbexp.map_interval_90", recorded)
    [summary] = _read_csv(store / "out" / "maps.csv")
    mean = float(summary["mean"])
    assert float(summary["interval_low"]) == pytest.approx(mean - 0.125)
    assert float(summary["interval_high"]) == pytest.approx(mean + 0.125)
    assert f"{mean:.3f} ± 0.125" in capsys.readouterr().out


def _striped(data: np.ndarray) -> np.ndarray:
    """Every third row masked: at least a quarter of every 8×8 tile."""
    out = data.copy()
    out[::3] = np.nan
    return out


def test_a_classifier_with_probabilities_gives_the_probability_of_class_1(
        models: Models, store: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _write_map(store / "cloud.fits", _nan_border(_column_density(seed=2)), wcs=_wcs())
    main(["predict", models.probability, "cloud.fits", "--max-masked", "0.5",
          "--distance", DISTANCE_PC])
    stdout = capsys.readouterr().out
    # edge tiles are half masked and kept; corner tiles, three quarters, are skipped
    assert "P(burgers)" in stdout and "21 / 25" in stdout and "0.360" in stdout
    with fits.open(store / "predictions" / "cloud_predictions.fits") as hdus:
        image, header = hdus[0].data, hdus[0].header
    assert header["QUANTITY"] == "P(burgers)" and header["MAXMASK"] == 0.5
    corners = np.zeros((5, 5), dtype=bool)
    corners[::4, ::4] = True
    assert np.isnan(image[corners]).all()
    assert ((image[~corners] >= 0) & (image[~corners] <= 1)).all()
    # the map's mean P, calibrated as the run recorded on its test split's maps
    tag = MlflowClient().get_run(mlflow.models.get_model_info(models.probability).run_id) \
        .data.tags["turbexp.map_calibration"]
    [summary] = _read_csv(store / "predictions" / "maps.csv")
    expected, low, high = (float(v[0]) for v in MapCalibration.from_tag(tag).calibrated(
        np.array([float(summary["mean"])])))
    assert low <= expected <= high
    assert float(summary["calibrated_p"]) == pytest.approx(expected, rel=1e-6)
    assert float(summary["calibrated_p_low"]) == pytest.approx(low, rel=1e-6)
    assert float(summary["calibrated_p_high"]) == pytest.approx(high, rel=1e-6)
    assert header["PREDCAL"] == pytest.approx(expected, rel=1e-6)
    assert (header["PREDCALL"], header["PREDCALH"]) == pytest.approx((low, high), rel=1e-6)
    assert f"P = {expected:.3f} [{low:.3f}, {high:.3f}]" in stdout


def _not_fits(folder: Path) -> Path:
    path = folder / "notes.fits"
    path.write_text("this is a text file\n")
    return path


def _empty(folder: Path) -> Path:
    path = folder / "empty.fits"
    fits.PrimaryHDU().writeto(path)
    return path


def _declaring(folder: Path, name: str, shape: tuple[int, int]) -> Path:
    """A 4×4 map whose header declares ``shape``."""
    path = _write_map(folder / name, _column_density((4, 4)))
    raw = path.read_bytes().decode("latin1")
    for axis, n in (("NAXIS1", shape[1]), ("NAXIS2", shape[0])):
        raw = raw.replace(f"{axis}  = {4:>20}", f"{axis}  = {n:>20}")
    path.write_bytes(raw.encode("latin1"))
    return path


BAD_MAPS = {
    "uniform": (lambda d: _write_map(d / "flat.fits", np.full((40, 40), 3e21)),
                "flat.fits: HDU 0", "holds a single value"),
    "uniform and tiny": (lambda d: _write_map(d / "tiny.fits", np.full((40, 40), 1e-300)),
                         "tiny.fits: HDU 0", "holds a single value (10^-300)"),
    "huge header": (lambda d: _declaring(d, "huge.fits", (200_000, 200_000)),
                    "huge.fits: HDU 0", "declares a 200000×200000 image"),
    "truncated": (lambda d: _declaring(d, "cut.fits", (400, 400)),
                  "cut.fits: HDU 0", "the file is truncated"),
    "not FITS": (_not_fits, "notes.fits", "not a readable FITS file"),
    "no image": (_empty, "empty.fits", "no HDU holds a 2D image"),
    "all NaN": (lambda d: _write_map(d / "blank.fits", np.full((40, 40), np.nan)),
                "blank.fits: HDU 0", "every pixel is blank"),
    "too small": (lambda d: _write_map(d / "small.fits", _column_density((5, 7))),
                  "small.fits: HDU 0", "smaller than one tile of 8×8"),
    "missing": (lambda d: d / "nowhere.fits", "nowhere.fits: MAPS", "no such file"),
    "too masked": (lambda d: _write_map(d / "holes.fits", _striped(_column_density())),
                   "holes.fits: HDU 0", "raise --max-masked"),
}


@pytest.mark.parametrize("case", BAD_MAPS)
def test_a_bad_map_is_one_clear_error_and_writes_nothing(
        case: str, models: Models, store: Path, capsys: pytest.CaptureFixture[str]) -> None:
    make, where, what = BAD_MAPS[case]
    good = _write_map(store / "good.fits", _column_density())
    bad = make(store)
    with pytest.raises(SystemExit) as exit_:
        main(["predict", models.classify, good.name, bad.name, "--out", "out",
              "--pixel-scale", str(PIXEL_PC)])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert where in err and what in err, err
    assert not (store / "out").exists()


@pytest.mark.parametrize(("out", "expected"), [
    ("afile/out", "afile/out: --out: afile is not a folder"),
    ("afile", "Invalid value for '--out': Directory 'afile' is a file")])
def test_an_output_folder_that_cannot_be_made_is_refused_before_any_work(
        out: str, expected: str, models: Models, store: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    good = _write_map(store / "good.fits", _column_density())
    (store / "afile").write_text("a file where the folder would go\n")
    with pytest.raises(SystemExit) as exit_:
        main(["predict", models.classify, good.name, "--out", out,
              "--pixel-scale", str(PIXEL_PC)])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert expected in err, err
    assert (store / "afile").read_text() == "a file where the folder would go\n"


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write in any folder")
def test_an_output_folder_in_a_read_only_place_is_refused(
        models: Models, store: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = _write_map(store / "good.fits", _column_density())
    (store / "locked").mkdir(mode=0o555)
    with pytest.raises(SystemExit) as exit_:
        main(["predict", models.classify, good.name, "--out", "locked/out",
              "--pixel-scale", str(PIXEL_PC)])
    assert exit_.value.code == 2
    assert "cannot write in locked" in capsys.readouterr().err
    assert not (store / "locked" / "out").exists()


def test_a_model_uri_that_does_not_exist_is_a_user_error(models: Models, tmp_path: Path) -> None:
    _write_map(tmp_path / "good.fits", _column_density())
    result = turbexp_cli("predict", "models:/m-0123456789abcdef", "good.fits", cwd=tmp_path,
                         env=models.env)
    assert result.returncode == 2, result.stderr
    assert "MODEL_URI" in result.stderr and "m-0123456789abcdef" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "predictions").exists()


def test_a_model_that_is_not_from_turbexp_is_refused(store: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    from sklearn.linear_model import LinearRegression

    x = np.random.default_rng(0).standard_normal((10, 3))
    with mlflow.start_run(experiment_id=mlflow.create_experiment("other")):
        info = mlflow.sklearn.log_model(LinearRegression().fit(x, x[:, 0]), name="model",
                                        signature=mlflow.models.infer_signature(x, x[:, 0]),
                                        pip_requirements=["scikit-learn"])
    _write_map(store / "good.fits", _column_density())
    with pytest.raises(SystemExit) as exit_:
        main(["predict", info.model_uri, "good.fits"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "MODEL_URI" in err and "is not a turbexp model" in err
    assert not (store / "predictions").exists()


def test_units_blank_values_and_degenerate_axes(tmp_path: Path) -> None:
    # a number column density becomes g/cm² with 2.37 amu per particle
    _write_map(tmp_path / "n.fits", np.full((16, 16), 1e22), unit="cm-2")
    observed = read_map(tmp_path / "n.fits")
    assert observed.unit == "g/cm2" and not observed.warnings
    np.testing.assert_allclose(observed.data, 1e22 * MEAN_PARTICLE_MASS_AMU * 1.66053907e-24,
                               rtol=1e-6)

    # scaled integers with BLANK, in a (1, ny, nx) cube with a spectral third axis
    raw = np.arange(1, 401, dtype=np.int16).reshape(1, 20, 20)
    raw[0, 0, :5] = -32768
    wcs = WCS(naxis=3)
    wcs.wcs.ctype = ["GLON-CAR", "GLAT-CAR", "FREQ"]
    header = wcs.to_header()
    header.update({"BUNIT": "K km/s", "BLANK": -32768})
    fits.PrimaryHDU(raw, header=header).writeto(tmp_path / "cube.fits")
    fits.setval(tmp_path / "cube.fits", "BSCALE", value=0.5)  # astropy drops them from the
    fits.setval(tmp_path / "cube.fits", "BZERO", value=10.0)  # header of unscaled data
    observed = read_map(tmp_path / "cube.fits")
    assert observed.data.shape == (20, 20)
    assert observed.mask.sum() == 5 and observed.masked_fraction == pytest.approx(5 / 400)
    assert observed.data[0, 5] == pytest.approx(6 * 0.5 + 10.0)
    assert observed.unit == "K km/s" and "K km/s" in observed.warnings[0]
    assert observed.wcs is not None and observed.wcs.naxis == 2

    # masked pixels of a kept tile get the mean of its valid log10 values
    tiles = tile_map(observed, 8, max_masked=0.1)
    assert tiles.grid == (2, 2) and len(tiles.images) == 4  # 5/64 of tile (0, 0) is masked
    first = np.log10(observed.data[:8, :8])
    filled = np.where(np.isnan(first), np.nanmean(first), first)
    np.testing.assert_allclose(tiles.images[0], standardise(filled), atol=1e-6)
    assert tiles.masked[0] == pytest.approx(5 / 64)
    assert len(tile_map(observed, 8, max_masked=0.05).images) == 3


def test_the_unit_does_not_change_the_prediction(tmp_path: Path) -> None:
    data = _column_density((16, 16))
    _write_map(tmp_path / "g.fits", data)
    _write_map(tmp_path / "n.fits", data / (MEAN_PARTICLE_MASS_AMU * 1.66053907e-24), "cm-2")
    _write_map(tmp_path / "other.fits", 3.0 * data, "MJy/sr")
    images = [tile_map(read_map(tmp_path / name), 8, 0.1).images
              for name in ("g.fits", "n.fits", "other.fits")]
    np.testing.assert_allclose(images[0], images[1], atol=1e-5)
    np.testing.assert_allclose(images[0], images[2], atol=1e-5)


def test_a_model_trained_through_a_beam_sees_maps_through_it(
        models: Models, store: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The beam recorded with the model smooths each map at the map's own pixel scale
    (masked pixels left out) before it is tiled; without a known scale it cannot."""
    client = MlflowClient()
    run_id = mlflow.models.get_model_info(models.probability).run_id
    client.set_tag(run_id, "turbexp.beam_fwhm_pc", "1.25")  # as data.observation logs it
    try:
        cloud = _nan_border(_column_density((40, 40), seed=6), width=2)
        _write_map(store / "cloud.fits", cloud, wcs=_wcs_pc(PIXEL_PC))
        main(["predict", models.probability, "cloud.fits", "--out", "out"])
        said = capsys.readouterr().err.replace("\n", " ")
        assert "smoothed by the model's 1.25 pc beam (FWHM) first" in said
        with pytest.raises(SystemExit) as exit_:
            main(["predict", models.probability, "cloud.fits", "--out", "other",
                  "--ignore-scale"])
        assert exit_.value.code == 2
        assert "--ignore-scale cannot be used with it" in capsys.readouterr().err
        assert not (store / "other").exists()
    finally:
        client.set_tag(run_id, "turbexp.beam_fwhm_pc", "0")
    seen = observe(cloud, PIXEL_PC, ObservationSpec(beam_fwhm_pc=1.25), periodic=False)
    observed = read_map(str(store / "cloud.fits"))
    expected = tile_map(dataclasses.replace(observed, data=seen), SIZE, 0.1)
    pipeline = mlflow.sklearn.load_model(models.probability)
    rows = _read_csv(store / "out" / "predictions.csv")
    np.testing.assert_allclose([float(r["prediction"]) for r in rows],
                               pipeline.predict_proba(expected.images)[:, 1], rtol=1e-6)
    # and the smoothing made a difference: the unsmoothed tiles predict otherwise
    raw = pipeline.predict_proba(tile_map(observed, SIZE, 0.1).images)[:, 1]
    assert not np.allclose(raw, [float(r["prediction"]) for r in rows], rtol=1e-3)
    [summary] = _read_csv(store / "out" / "maps.csv")
    assert float(summary["beam_fwhm_pc"]) == 1.25 and summary["map_beam_fwhm_pc"] == ""
    with fits.open(store / "out" / "cloud_predictions.fits") as hdus:
        assert hdus[0].header["BEAMPC"] == 1.25


def test_a_map_with_its_own_beam_is_brought_to_the_models(
        models: Models, store: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A header beam (BMAJ/BMIN) narrower than the model's is widened to it, by the kernel
    of FWHM √(model² − map²); one already wider is left alone, with a warning."""
    client = MlflowClient()
    run_id = mlflow.models.get_model_info(models.probability).run_id
    client.set_tag(run_id, "turbexp.beam_fwhm_pc", "1.25")
    degrees_per_pc = 0.01 / PIXEL_PC  # _wcs()'s pixels at DISTANCE_PC
    cloud = _column_density((40, 40), seed=7)
    _write_map(store / "sharp.fits", cloud, wcs=_wcs(), beam_deg=0.75 * degrees_per_pc)
    _write_map(store / "blurred.fits", cloud, wcs=_wcs(), beam_deg=2.0 * degrees_per_pc)
    _write_map(store / "linear.fits", cloud, wcs=_wcs_pc(PIXEL_PC), beam_deg=0.01)
    try:
        main(["predict", models.probability, "sharp.fits", "blurred.fits", "--out", "out",
              "--distance", DISTANCE_PC])
        main(["predict", models.probability, "linear.fits", "--out", "linear"])
    finally:
        client.set_tag(run_id, "turbexp.beam_fwhm_pc", "0")
    said = capsys.readouterr().err.replace("\n", " ")
    assert "linear.fits: the header's beam (BMAJ/BMIN, 0.01 deg) is an angle" in said
    assert "smoothed by 1 pc to the model's 1.25 pc beam" in said
    assert "blurred.fits: the map's own beam (2 pc, BMAJ/BMIN) is wider" in said
    summary = {Path(r["map"]).name: r for r in _read_csv(store / "out" / "maps.csv")}
    assert float(summary["sharp.fits"]["map_beam_fwhm_pc"]) == pytest.approx(0.75, rel=1e-3)
    assert float(summary["sharp.fits"]["beam_fwhm_pc"]) == pytest.approx(1.0, rel=1e-3)
    assert float(summary["blurred.fits"]["beam_fwhm_pc"]) == 0
    with fits.open(store / "out" / "blurred_predictions.fits") as hdus:
        assert hdus[0].header["MAPBEAM"] == pytest.approx(2.0, rel=1e-3)
    # the sharp map was smoothed by the 1 pc kernel, the blurred one not at all
    pipeline = mlflow.sklearn.load_model(models.probability)
    observed = read_map(str(store / "sharp.fits"))
    applied = float(summary["sharp.fits"]["beam_fwhm_pc"])
    pixel_pc = float(summary["sharp.fits"]["pixel_pc"])  # at DISTANCE_PC, about PIXEL_PC
    kernel = observe(observed.data, pixel_pc, ObservationSpec(beam_fwhm_pc=applied),
                     periodic=False)
    expected = [*pipeline.predict_proba(tile_map(dataclasses.replace(
        observed, data=kernel), SIZE, 0.1).images)[:, 1],
        *pipeline.predict_proba(tile_map(read_map(str(store / "blurred.fits")), SIZE,
                                         0.1).images)[:, 1]]
    rows = _read_csv(store / "out" / "predictions.csv")
    np.testing.assert_allclose([float(r["prediction"]) for r in rows], expected, rtol=1e-5)


@pytest.mark.parametrize(("bmaj", "bmin", "note"), [
    ("'wide'", "0.01", "are not numbers"),
    ("-0.01", "0.01", "are not positive beam widths"),
])
def test_an_unusable_header_beam_is_ignored_with_a_note(tmp_path: Path, bmaj: str, bmin: str,
                                                       note: str) -> None:
    path = _write_map(tmp_path / "cloud.fits", _column_density(), wcs=_wcs())
    with fits.open(path, mode="update") as hdus:
        hdus[0].header["BMAJ"] = eval(bmaj)  # a string or a number, as headers hold them
        hdus[0].header["BMIN"] = float(bmin)
    observed = read_map(path)
    assert observed.beam is None
    assert any(note in w for w in observed.warnings)
