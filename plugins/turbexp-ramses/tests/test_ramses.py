"""The ramses simulator: namelist, initial field, yt ingestion of real RAMSES output,
and the local executor run for real with a stand-in program (tests/standin.py)."""

from __future__ import annotations

import os
import shutil
import stat
import sys
from pathlib import Path

import numpy as np
import pytest
from ramses_support import RAMSES_FIXTURES, turbexp_cli, write

from turbexp.campaign import CampaignOutcome, plan_campaign, run_campaign
from turbexp.errors import UserError
from turbexp.plugin_types import Physics
from turbexp.projection import column_density
from turbexp.spec import KOLMOGOROV
from turbexp.store import SimulationStore
from turbexp.turbulence import velocity_field
from turbexp_ramses import RamsesSimulator, initial_field, namelist
from turbexp_ramses.output import (
    column_density_maps,
    is_complete,
    outputs,
    read_info,
    refinement,
)

pytest.importorskip("yt")
FIXTURES = Path(os.environ.get("TURBEXP_RAMSES_FIXTURES", RAMSES_FIXTURES))
needs_fixtures = pytest.mark.skipif(not FIXTURES.is_dir(),
                                    reason=f"RAMSES fixtures not found at {FIXTURES}")
FIXTURE_OUTPUTS = sorted(FIXTURES.glob("*/output_*")) if FIXTURES.is_dir() else []
STANDIN = Path(__file__).parent / "standin.py"
REFERENCE = Physics(box_pc=10.0, density_g_cm3=6.77e-22, temperature_K=10.0, mach=1.41,
                    time_myr=0.5, mean_molecular_weight=2.37)


# --- namelist and initial field ------------------------------------------------------


@needs_fixtures
def test_namelist_matches_the_units_of_real_runs(tmp_path: Path) -> None:
    """The fixtures' namelist was written by hand for the same set-up: same code units."""
    values = namelist.NamelistValues(levelmin=5, levelmax=6, ngridmax=200000, riemann="hllc",
                                     slope_type=1, courant_factor=0.8, err_grad_d=0.2,
                                     checkpoints=1)
    rendered = tmp_path / "rendered.nml"
    rendered.write_text(namelist.render(REFERENCE, values))
    ours = namelist.read_namelist(rendered)
    theirs = namelist.read_namelist(FIXTURES / "kolmogorov_s1" / "output_00002" / "namelist.txt")
    for key in ("p_region", "units_density", "units_time", "units_length", "boxlen",
                "t_eos", "mu_gas", "d_region", "x_center", "gamma"):
        assert ours[key] == pytest.approx(theirs[key], rel=1e-4), key  # theirs: 5-6 digits
    for key in ("levelmin", "levelmax", "riemann", "slope_type", "barotropic_eos_form"):
        assert ours[key] == theirs[key], key
    times = ours["tout"]
    assert times[-1] == pytest.approx(0.51135, rel=2e-5)  # 0.5 Myr in code units
    assert times[0] == pytest.approx(times[-1] / 2)
    assert ours["noutput"] == 2 and ours["nrestart"] == 0


def test_namelist_code_units_follow_the_physics(turbexp_folder: Path) -> None:
    physics = Physics(box_pc=4.0, density_g_cm3=1e-21, temperature_K=40.0, mach=2.0,
                      time_myr=2.0, mean_molecular_weight=2.37)
    values = namelist.NamelistValues(levelmin=4, levelmax=7, ngridmax=5000, riemann="llf",
                                     slope_type=2, courant_factor=0.5, err_grad_d=0.1,
                                     checkpoints=3, nrestart=2)
    path = turbexp_folder / "n.nml"
    path.write_text(namelist.render(physics, values))
    nml = namelist.read_namelist(path)
    # c_s ∝ sqrt(T): 4 × the temperature of the reference set-up is twice its sound speed
    assert nml["p_region"] == pytest.approx(4 * 0.035081, rel=1e-4)
    assert nml["boxlen"] == 4.0
    assert nml["units_density"] == 1e-21
    tout = nml["tout"]
    assert len(tout) == nml["noutput"] == 4
    assert tout[-1] == pytest.approx(4 * 0.51135, rel=5e-5)  # 2 Myr = 4 × 0.5 Myr
    assert nml["nrestart"] == 2 and nml["levelmax"] == 7 and nml["nsubcycle"] == [1] * 7
    assert "$" not in path.read_text()


def test_initial_field_round_trips_in_fortran_order(turbexp_folder: Path) -> None:
    v = velocity_field(8, KOLMOGOROV, 1.41, seed=5) * namelist.sound_speed_code(REFERENCE)
    path = turbexp_folder / initial_field.FILE_NAME
    initial_field.write_velocity(path, v)
    assert np.array_equal(initial_field.read_velocity(path), v)
    raw = path.read_bytes()
    assert len(raw) == 4 + 3 * 8 * 8**3
    first = np.frombuffer(raw[4:4 + 16], dtype="<f8")
    assert first[0] == v[0, 0, 0, 0] and first[1] == v[0, 1, 0, 0]  # x varies fastest
    rms = np.sqrt(np.mean(np.sum(v**2, axis=0)))
    assert rms == pytest.approx(1.41 * 0.18730, rel=1e-3)  # Mach 1.41 at c_s = 0.1873 km/s
    path.write_bytes(raw[:-8])
    with pytest.raises(ValueError, match="expected"):
        initial_field.read_velocity(path)


# --- reading real RAMSES output with yt ----------------------------------------------


@needs_fixtures
@pytest.mark.parametrize("output", FIXTURE_OUTPUTS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_fixture_projects_to_column_density(output: Path) -> None:
    assert is_complete(output, written_here=False)  # the copies keep no timer files
    assert not is_complete(output)
    maps = column_density_maps(output, 128)
    info = read_info(output)
    assert maps.shape == (3, 128, 128)
    assert np.all(np.isfinite(maps)) and np.all(maps > 0)
    # mass: the mean column density times the box's face is the box's mass
    box_cm = info.boxlen * info.unit_l
    d_region = namelist.read_namelist(output / "namelist.txt")["d_region"]
    for image in maps:
        assert image.mean() * box_cm**2 == pytest.approx(d_region * info.unit_d * box_cm**3,
                                                         rel=1e-6)
    # the independently made yt projections, reoriented to the builtin convention
    for axis, name in enumerate("xyz"):
        if not (output / f"reference_coldens_{name}_128.npy").exists():
            continue  # the initial output has none: it is uniform
        reference = np.load(output / f"reference_coldens_{name}_128.npy")
        np.testing.assert_allclose(maps[axis], reference.T if axis in (0, 2) else reference,
                                   rtol=1e-10)


@needs_fixtures
def test_refined_fraction_counts_leaf_cells_per_level() -> None:
    kolmogorov = refinement(FIXTURES / "kolmogorov_s1" / "output_00002")
    burgers = refinement(FIXTURES / "burgers_s1" / "output_00002")
    assert kolmogorov["cells_per_level"]["6"] == 31528
    assert kolmogorov["refined_fraction"] == pytest.approx(31528 / 60355)
    assert burgers["refined_fraction"] == pytest.approx(864 / 33524)


def test_projection_orientation_matches_the_builtin_solver(tmp_path: Path) -> None:
    """yt's image buffers are transposed for x and z; maps must index like the builtin's."""
    import yt

    rho = np.random.default_rng(1).uniform(1, 2, (8, 8, 8))
    ds = yt.load_uniform_grid({"density": (rho, "g/cm**3")}, rho.shape,
                              length_unit=(1, "cm"), bbox=np.array([[0, 1]] * 3),
                              periodicity=(True, True, True))
    from turbexp_ramses import output

    original = output.load
    output.load = lambda _: ds
    try:
        maps = output.column_density_maps("output_00001", 8)
    finally:
        output.load = original
    physics = Physics(box_pc=1 / 3.0856775814913673e18, density_g_cm3=1.0, temperature_K=10,
                      mach=1, time_myr=0, mean_molecular_weight=2.37)
    np.testing.assert_allclose(maps, column_density(rho, physics), rtol=1e-12)


@needs_fixtures
def test_incomplete_outputs_are_recognised(tmp_path: Path) -> None:
    folder = tmp_path / "output_00003"
    folder.mkdir()
    assert not is_complete(folder)
    (folder / "info_00003.txt").write_text("ncpu = 1\n")
    assert not is_complete(folder)  # damaged info file
    assert outputs(tmp_path) == [folder]
    whole = tmp_path / "output_00002"
    shutil.copytree(FIXTURES / "burgers_s1" / "output_00002", whole)
    assert not is_complete(whole)  # no timer file: RAMSES may still be writing
    (whole / "timer_00002.txt").write_text(" minimum  average\n")
    assert not is_complete(whole)  # timer file begun, TOTAL line not yet written
    (whole / "timer_00002.txt").write_text(" minimum  average\n TOTAL   1.0  100.0\n")
    assert is_complete(whole)
    (whole / "hydro_00002.out00002").write_bytes(b"")
    assert not is_complete(whole)


# --- the local executor, run for real with a stand-in for RAMSES ---------------------


def standin_executable(folder: Path) -> Path:
    """A shell wrapper running tests/ramses/standin.py with this Python."""
    path = folder / "ramses3d"
    path.write_text(f"#!/bin/sh\nexec {sys.executable} {STANDIN} \"$@\"\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


CAMPAIGN = """
name: amr
grid: 32
seed: 1
simulator: {{plugin: ramses, executable: {exe}, checkpoints: 1, riemann: hllc, keep: all}}
groups:
  - {{label: kolmogorov, index: 3.6666667, count: 1}}
  - {{label: burgers, index: 4.0, count: 1}}
"""


@pytest.fixture
def amr_campaign(turbexp_folder: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    if not FIXTURES.is_dir():
        pytest.skip(f"RAMSES fixtures not found at {FIXTURES}")
    monkeypatch.setenv("TURBEXP_STANDIN_FIXTURE",
                       str(FIXTURES / "kolmogorov_s1" / "output_00002"))
    exe = standin_executable(turbexp_folder)
    return write(turbexp_folder / "sims" / "amr.yaml", CAMPAIGN.format(exe=f"../{exe.name}"))


def _calls(turbexp_folder: Path) -> list[list[int]]:
    runs = sorted((turbexp_folder / ".turbexp" / "ramses").iterdir())
    return [[int(x) for x in (r / "standin_calls.txt").read_text().split()] for r in runs]


def test_local_executor_runs_and_ingests(amr_campaign: Path, turbexp_folder: Path) -> None:
    result = turbexp_cli("sims", "run", str(amr_campaign), "--no-progress", cwd=turbexp_folder)
    assert result.returncode == 0, result.stderr
    assert "2 made" in result.stdout
    plan = plan_campaign(amr_campaign)
    store = SimulationStore(turbexp_folder / ".turbexp" / "cache")
    expected = column_density_maps(FIXTURES / "kolmogorov_s1" / "output_00002", 32)
    for sim in plan.simulations:
        stored = store.get(sim.key)
        np.testing.assert_allclose(stored.column_density, expected, rtol=1e-12)
        meta = stored.metadata
        assert meta["code"] == "ramses" and meta["levelmin"] == 5 and meta["levelmax"] == 6
        assert meta["version"] == "0123456789abcdef0123456789abcdef01234567"
        assert meta["refined_fraction"] == pytest.approx(31528 / 60355)
        assert meta["time_myr"] == pytest.approx(0.5, rel=1e-4)
        run_dir = Path(meta["run_dir"])
        ic = initial_field.read_velocity(run_dir / initial_field.FILE_NAME)
        np.testing.assert_array_equal(ic, velocity_field(32, sim.request.index, 1.41,
                                                         sim.request.seed)
                                      * namelist.sound_speed_code(sim.request.physics))
    assert _calls(turbexp_folder) == [[0], [0]]
    again = turbexp_cli("sims", "run", str(amr_campaign), "--no-progress", cwd=turbexp_folder)
    assert again.returncode == 0 and "2 already in" in again.stdout
    assert _calls(turbexp_folder) == [[0], [0]]


def test_failure_is_recorded_with_the_log_and_a_rerun_retries_it(
        amr_campaign: Path, turbexp_folder: Path) -> None:
    failed = turbexp_cli("sims", "run", str(amr_campaign), "--no-progress", cwd=turbexp_folder,
                         env={"TURBEXP_STANDIN_MODE": "fail"})
    assert failed.returncode == 1
    assert "2 failed" in failed.stdout
    assert "exited with code 3" in failed.stderr and "solver blew up" in failed.stderr
    store = SimulationStore(turbexp_folder / ".turbexp" / "cache")
    plan = plan_campaign(amr_campaign)
    assert all(not store.has(s.key) and "blew up" in store.failure(s.key)
               for s in plan.simulations)
    retried = turbexp_cli("sims", "run", str(amr_campaign), "--no-progress", cwd=turbexp_folder)
    assert retried.returncode == 0 and "2 made" in retried.stdout


@pytest.mark.parametrize(("mode", "message"), [("partial", "missing or incomplete"),
                                               ("silent", "stopped without 'Run completed'")])
def test_partial_output_is_never_ingested(amr_campaign: Path, turbexp_folder: Path, mode: str,
                                          message: str) -> None:
    result = turbexp_cli("sims", "run", str(amr_campaign), "--no-progress", cwd=turbexp_folder,
                         env={"TURBEXP_STANDIN_MODE": mode})
    assert result.returncode == 1
    assert message in result.stderr
    store = SimulationStore(turbexp_folder / ".turbexp" / "cache")
    assert not any(store.has(s.key) for s in plan_campaign(amr_campaign).simulations)


def test_a_stopped_run_restarts_from_its_last_whole_output(
        amr_campaign: Path, turbexp_folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The fixture outputs were written by 2 ranks; RAMSES restarts only on as many."""
    base = amr_campaign.read_text().replace("checkpoints: 1", "checkpoints: 3")
    store = SimulationStore(turbexp_folder / ".turbexp" / "cache")

    def attempt(ranks: int, mode: str) -> CampaignOutcome:
        launcher = ", launcher: 'env TURBEXP_RANKS={ranks}'"
        amr_campaign.write_text(base.replace("keep: all", f"keep: all, mpi_ranks: {ranks}"
                                             + launcher * (ranks > 1)))
        monkeypatch.setenv("TURBEXP_STANDIN_MODE", mode)
        return run_campaign(plan_campaign(amr_campaign), store, jobs=1, show_progress=False)

    assert len(attempt(2, "crash:3").failed) == 2  # outputs 1 (t = 0) to 3 of 5, then dies
    assert len(attempt(1, "crash:3").failed) == 2  # 1 rank: cannot restart, starts afresh
    assert attempt(2, "ok").done == 2  # restarts from output 3
    assert _calls(turbexp_folder) == [[0, 0, 3], [0, 0, 3]]


def test_without_an_executable_the_campaign_stops_before_any_run(
        turbexp_folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TURBEXP_RAMSES_EXECUTABLE", raising=False)
    path = write(turbexp_folder / "sims" / "r.yaml", """
        name: r
        grid: 24
        simulator: {plugin: ramses, levelmin: 4}
        groups: [{index: 4.0, count: 1}]
        """)
    result = turbexp_cli("sims", "run", str(path), cwd=turbexp_folder)
    assert result.returncode == 2
    assert "TURBEXP_RAMSES_EXECUTABLE" in result.stderr and "r.yaml" in result.stderr
    assert not (turbexp_folder / ".turbexp" / "ramses").exists()
    (turbexp_folder / "ramses3d").write_text("not executable")
    monkeypatch.setenv("TURBEXP_RAMSES_EXECUTABLE", str(turbexp_folder / "ramses3d"))
    with pytest.raises(UserError, match="not an executable file"):
        run_campaign(plan_campaign(path), SimulationStore(turbexp_folder / "c"),
                     show_progress=False)


def test_grid_must_be_a_power_of_two_unless_levelmin_is_set(amr_campaign: Path) -> None:
    text = amr_campaign.read_text().replace("grid: 32", "grid: 24")
    amr_campaign.write_text(text)
    with pytest.raises(UserError, match="not a power of 2"):
        run_campaign(plan_campaign(amr_campaign), SimulationStore("c"), show_progress=False)


def test_how_a_run_is_carried_out_stays_out_of_the_cache_key(amr_campaign: Path) -> None:
    first = plan_campaign(amr_campaign).simulations
    text = amr_campaign.read_text().replace("keep: all", "keep: none, mpi_ranks: 4")
    amr_campaign.write_text(text)
    assert [s.key for s in plan_campaign(amr_campaign).simulations] == [s.key for s in first]
    amr_campaign.write_text(text.replace("riemann: hllc", "riemann: llf"))
    assert plan_campaign(amr_campaign).simulations[0].key != first[0].key


def test_relative_paths_are_relative_to_the_campaign_file(amr_campaign: Path,
                                                          turbexp_folder: Path) -> None:
    params = plan_campaign(amr_campaign).simulator_params
    assert isinstance(params, RamsesSimulator.Params)
    assert params.executable == (turbexp_folder / "ramses3d").resolve()


# --- end to end with the user's RAMSES ---------------------------------------------------

REAL_RAMSES = os.environ.get("TURBEXP_RAMSES_EXECUTABLE")


@pytest.mark.skipif(not REAL_RAMSES, reason="no RAMSES executable configured "
                                            "(set TURBEXP_RAMSES_EXECUTABLE)")
def test_real_ramses_campaign_end_to_end(turbexp_folder: Path) -> None:
    """Two 16³ runs (levelmin 4, levelmax 5) of the reference set-up with real RAMSES."""
    campaign = write(turbexp_folder / "sims" / "real.yaml", """
        name: real-ramses
        grid: 16
        seed: 4
        simulator: {plugin: ramses, checkpoints: 1, riemann: hllc}
        groups:
          - {label: kolmogorov, index: 3.6666667, count: 1}
          - {label: burgers, index: 4.0, count: 1}
        """)
    result = turbexp_cli("sims", "run", str(campaign), "--no-progress", "--jobs", "1",
                         cwd=turbexp_folder, timeout=1800)
    assert result.returncode == 0, result.stdout + result.stderr
    plan = plan_campaign(campaign)
    store = SimulationStore(turbexp_folder / ".turbexp" / "cache")
    physics = plan.simulations[0].request.physics
    box_cm = physics.box_pc * 3.0856775814913673e18
    for sim in plan.simulations:
        stored = store.get(sim.key)
        maps = stored.column_density
        assert maps.shape == (3, 16, 16) and np.all(np.isfinite(maps))
        for image in maps:  # RAMSES conserves mass: the box's mass is unchanged
            assert image.mean() * box_cm**2 == pytest.approx(
                physics.density_g_cm3 * box_cm**3, rel=1e-6)
        assert np.std(np.log10(maps)) > 0  # the turbulence has made structure
        meta = stored.metadata
        assert meta["code"] == "ramses" and meta["levelmin"] == 4 and meta["levelmax"] == 5
        assert meta["time_myr"] >= 0.5
        assert 0 <= meta["refined_fraction"] <= 1
