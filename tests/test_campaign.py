"""Campaigns: deterministic plans, a cache keyed by parameters, resume, failures recorded."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import TINY_CAMPAIGN, fake_distribution, turbexp_cli, write

from turbexp.campaign import plan_campaign, run_campaign
from turbexp.errors import UserError
from turbexp.experiment import plan_experiment
from turbexp.image_set import build_image_set
from turbexp.store import SimulationStore


def _campaign(workdir: Path, text: str = TINY_CAMPAIGN) -> Path:
    return write(workdir / "sims" / "tiny.yaml", text)


def test_plan_is_deterministic_and_keys_follow_the_data(workdir: Path) -> None:
    path = _campaign(workdir)
    a, b = plan_campaign(path), plan_campaign(path)
    assert [s.key for s in a.simulations] == [s.key for s in b.simulations]
    assert len({s.key for s in a.simulations}) == 6
    assert len({s.request.seed for s in a.simulations}) == 6
    # a description does not change the data; the time, the grid or the solver do
    same = plan_campaign(_campaign(workdir, TINY_CAMPAIGN + "description: words\n"))
    assert same.content_hash == a.content_hash
    for change in ("preset: developed", "grid: 32", "seed: 4"):
        key = change.split(":")[0]
        text = "\n".join(line for line in TINY_CAMPAIGN.splitlines()
                         if not line.startswith(key + ":"))
        other = plan_campaign(_campaign(workdir, text + f"\n{change}\n"))
        assert other.content_hash != a.content_hash, change
    solver = plan_campaign(_campaign(workdir, TINY_CAMPAIGN + "simulator: {plugin: builtin, "
                                                              "riemann: hll}\n"))
    assert solver.content_hash != a.content_hash


def test_presets_set_the_evolution_time(workdir: Path) -> None:
    reference = plan_campaign(_campaign(workdir))
    assert reference.simulations[0].request.physics.time_myr == 0.5
    developed = plan_campaign(_campaign(workdir, TINY_CAMPAIGN.replace("reference",
                                                                       "developed")))
    assert developed.simulations[0].request.physics.time_myr == 5.0
    explicit = plan_campaign(_campaign(workdir, TINY_CAMPAIGN + "physics: {time_myr: 2}\n"))
    assert explicit.simulations[0].request.physics.time_myr == 2.0


def test_index_range_groups_spread_the_index(workdir: Path) -> None:
    plan = plan_campaign(_campaign(workdir, """
        name: spread
        grid: 16
        groups:
          - {index: {low: 3.0, high: 4.5}, count: 20}
        """))
    indices = np.array([s.request.index for s in plan.simulations])
    assert indices.min() >= 3.0 and indices.max() <= 4.5
    assert indices.std() > 0.25


SPREAD_PHYSICS = """
    name: ages
    grid: 16
    physics: {time_myr: {low: 0.5, high: 5.0}, mach: {low: 1.0, high: 3.0}}
    groups:
      - {label: kolmogorov, index: 3.6666667, count: 12}
      - {label: burgers, index: 4.0, count: 12}
    """


def test_physics_ranges_give_each_simulation_its_own_age_and_mach(workdir: Path) -> None:
    plan = plan_campaign(_campaign(workdir, SPREAD_PHYSICS))
    times = np.array([s.request.physics.time_myr for s in plan.simulations])
    machs = np.array([s.request.physics.mach for s in plan.simulations])
    assert times.min() >= 0.5 and times.max() <= 5.0 and times.std() > 0.5
    assert machs.min() >= 1.0 and machs.max() <= 3.0 and machs.std() > 0.2
    assert abs(np.corrcoef(times, machs)[0, 1]) < 0.7  # drawn apart, not one stream
    assert len({s.key for s in plan.simulations}) == len(plan.simulations)
    again = plan_campaign(_campaign(workdir, SPREAD_PHYSICS))
    assert [s.key for s in again.simulations] == [s.key for s in plan.simulations]
    fixed = plan_campaign(_campaign(workdir, SPREAD_PHYSICS.replace(
        "{low: 1.0, high: 3.0}", "2.0")))
    assert {s.request.physics.mach for s in fixed.simulations} == {2.0}
    assert [s.request.physics.time_myr for s in fixed.simulations] == list(times)


@pytest.mark.parametrize(("physics", "expected"), [
    ("{time_myr: {low: 5, high: 0.5}}", "physics.time_myr: low (5.0) must be below high (0.5)"),
    ("{mach: {low: 1, high: .inf}}", "physics.mach.high: Input should be a finite number"),
    ("{mach: {low: 0, high: 2}}", "physics.mach.low: Input should be greater than 0"),
])
def test_bad_physics_ranges_are_refused_by_name(workdir: Path, physics: str,
                                                expected: str) -> None:
    path = _campaign(workdir, SPREAD_PHYSICS.replace(
        "{time_myr: {low: 0.5, high: 5.0}, mach: {low: 1.0, high: 3.0}}", physics))
    with pytest.raises(UserError) as caught:
        plan_campaign(path)
    assert expected in str(caught.value)


def test_run_makes_only_what_is_missing(workdir: Path) -> None:
    plan = plan_campaign(_campaign(workdir))
    store = SimulationStore(workdir / "cache")
    first = run_campaign(plan, store, show_progress=False)
    assert (first.done, first.reused, first.failed) == (6, 0, {})
    second = run_campaign(plan, store, show_progress=False)
    assert (second.done, second.reused) == (0, 6)
    store.path(plan.simulations[2].key).unlink()
    third = run_campaign(plan, store, show_progress=False)
    assert (third.done, third.reused) == (1, 5)


def test_parallel_jobs_give_the_same_maps(workdir: Path) -> None:
    plan = plan_campaign(_campaign(workdir))
    serial, parallel = SimulationStore(workdir / "a"), SimulationStore(workdir / "b")
    run_campaign(plan, serial, jobs=1, show_progress=False)
    assert run_campaign(plan, parallel, jobs=2, show_progress=False).done == 6
    for sim in plan.simulations:
        np.testing.assert_array_equal(serial.get(sim.key).column_density,
                                      parallel.get(sim.key).column_density)


def test_no_simulation_contributes_to_two_splits(tiny: Path) -> None:
    plan = plan_experiment(tiny)
    store = SimulationStore(tiny.parent.parent / "cache")
    run_campaign(plan.campaign, store, show_progress=False)
    data = build_image_set(plan, store)
    for sim in np.unique(data.simulation):
        assert len(np.unique(data.split[data.simulation == sim])) == 1
    assert len(data.images) == 6 * 3 * 4 * 2
    for part in range(3):
        assert set(data.target[data.split == part].tolist()) == {0, 1}


FLAKY = '''
from turbexp import hookimpl
from turbexp.plugin_types import Simulator, SimulationResult
import numpy as np
import pytest

class Flaky(Simulator):
    """Fails for every other seed until the file named by FLAKY_FIXED exists."""
    name = "flaky"

    def simulate(self, request, params):
        import os
        if request.seed % 2 and not os.path.exists(os.environ["FLAKY_FIXED"]):
            raise RuntimeError(f"diverged for seed {request.seed}")
        n = request.grid
        return SimulationResult(np.full((3, n, n), 1e-3), {"code": "flaky"})

@hookimpl
def register_simulators(register):
    register(Flaky)
'''


def test_failed_simulations_are_recorded_and_retried(workdir: Path) -> None:
    site = fake_distribution(workdir / "site", "turbexp-flaky", "flaky", FLAKY)
    campaign = _campaign(workdir, TINY_CAMPAIGN.replace("preset: reference",
                                                        "simulator: flaky"))
    env = {"PYTHONPATH": str(site), "FLAKY_FIXED": str(workdir / "fixed")}
    first = turbexp_cli("sims", "run", str(campaign), "--no-progress", cwd=workdir, env=env)
    assert first.returncode == 1
    failed = first.stderr.count("diverged for seed")
    assert failed >= 1 and f"{6 - failed} made" in first.stdout
    (workdir / "fixed").touch()
    second = turbexp_cli("sims", "run", str(campaign), "--no-progress", cwd=workdir, env=env)
    assert second.returncode == 0, second.stdout + second.stderr
    assert f"{failed} made, {6 - failed} already" in second.stdout


def test_killed_campaign_resumes(workdir: Path) -> None:
    campaign = _campaign(workdir, TINY_CAMPAIGN.replace("grid: 16", "grid: 32")
                         .replace("count: 3", "count: 4"))
    plan = plan_campaign(campaign)
    store = SimulationStore(workdir / ".turbexp" / "cache")
    process = subprocess.Popen([sys.executable, "-m", "turbexp.cli", "sims", "run",
                                str(campaign), "--jobs", "1", "--no-progress"], cwd=workdir,
                               env={**os.environ}, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not any(store.has(s.key) for s in plan.simulations):
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    done_before = sum(store.has(s.key) for s in plan.simulations)
    assert 1 <= done_before < len(plan.simulations)
    result = turbexp_cli("sims", "run", str(campaign), "--no-progress", cwd=workdir)
    assert result.returncode == 0, result.stderr
    assert f"{len(plan.simulations) - done_before} made, {done_before} already" in result.stdout
    files = sorted(p.name for p in store.root.rglob("*.npz"))
    assert files == sorted(f"{s.key}.npz" for s in plan.simulations)
    assert all(store.verify(s.key) for s in plan.simulations)


def test_an_empty_cache_file_is_remade_and_does_not_stop_a_run(tiny: Path) -> None:
    workdir = tiny.parent.parent
    campaign = workdir / "sims" / "tiny.yaml"
    plan = plan_campaign(campaign)
    store = SimulationStore(workdir / ".turbexp" / "cache")
    run_campaign(plan, store, show_progress=False)
    store.path(plan.simulations[1].key).write_bytes(b"")  # a disk that filled up, say
    result = turbexp_cli("sims", "run", str(campaign), "--no-progress", cwd=workdir)
    assert result.returncode == 0, result.stderr
    assert "1 made, 5 already" in result.stdout
    assert store.verify(plan.simulations[1].key)
    store.path(plan.simulations[2].key).write_bytes(b"")
    result = turbexp_cli("run", str(tiny), "--no-progress", cwd=workdir)
    assert result.returncode == 0, result.stderr
    assert store.verify(plan.simulations[2].key)


def _children(pid: int) -> set[int]:
    """The live processes whose parent is ``pid`` (from /proc)."""
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            found.add(int(stat.parent.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _all_die_with(process: subprocess.Popen, workers: set[int]) -> bool:
    """Kill ``process`` with SIGKILL; whether every one of ``workers`` is gone 10 s later."""
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(_alive(w) for w in workers):
        time.sleep(0.1)
    return not any(_alive(w) for w in workers)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="parent-death signal: Linux")
def test_workers_die_with_a_killed_campaign(workdir: Path) -> None:
    campaign = _campaign(workdir, TINY_CAMPAIGN.replace("grid: 16", "grid: 48")
                         .replace("count: 3", "count: 6"))
    process = subprocess.Popen([sys.executable, "-m", "turbexp.cli", "sims", "run",
                                str(campaign), "--jobs", "2", "--no-progress"], cwd=workdir,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    workers: set[int] = set()
    while time.monotonic() < deadline and len(workers) < 2 and process.poll() is None:
        # the spawn context starts a resource tracker too; workers are the pool's processes
        workers = {c for c in _children(process.pid)
                   if b"spawn_main" in Path(f"/proc/{c}/cmdline").read_bytes()
                   and b"resource_tracker" not in Path(f"/proc/{c}/cmdline").read_bytes()}
        time.sleep(0.05)
    assert len(workers) == 2 and process.poll() is None
    assert _all_die_with(process, workers)


LOKY_PARENT = """
import sys, time
import numpy as np
from turbexp import parallel
parallel.PARALLEL_SECONDS = 0.0  # workers even for this little work
parallel.map_images(np.mean, np.ones((256, 8, 8)), n_jobs=2)  # leaves its loky workers waiting
print("ready", flush=True)
time.sleep(120)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="parent-death signal: Linux")
def test_per_image_workers_die_with_a_killed_run(workdir: Path) -> None:
    process = subprocess.Popen([sys.executable, "-c", LOKY_PARENT], cwd=workdir,
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert process.stdout is not None and process.stdout.readline().strip() == "ready"
    workers = {c for c in _children(process.pid)
               if b"loky" in Path(f"/proc/{c}/cmdline").read_bytes()
               and b"resource_tracker" not in Path(f"/proc/{c}/cmdline").read_bytes()}
    assert len(workers) == 2
    assert _all_die_with(process, workers)


def test_two_campaigns_on_one_cache_make_each_simulation_once(workdir: Path) -> None:
    import re

    campaign = _campaign(workdir, TINY_CAMPAIGN.replace("grid: 16", "grid: 32")
                         .replace("count: 3", "count: 4"))
    plan = plan_campaign(campaign)
    workers = [subprocess.Popen([sys.executable, "-m", "turbexp.cli", "sims", "run",
                                 str(campaign), "--jobs", "1", "--no-progress"], cwd=workdir,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for _ in range(2)]
    outputs = [w.communicate(timeout=600) for w in workers]
    assert [w.returncode for w in workers] == [0, 0], outputs
    made = [int(re.search(r"(\d+) made", out).group(1)) for out, _ in outputs]
    assert sum(made) == len(plan.simulations)
    store = SimulationStore(workdir / ".turbexp" / "cache")
    files = sorted(p.name for p in store.root.rglob("*.npz"))
    assert files == sorted(f"{s.key}.npz" for s in plan.simulations)
    assert all(store.verify(s.key) for s in plan.simulations)


def test_a_damaged_cache_file_is_redone_not_used(workdir: Path) -> None:
    plan = plan_campaign(_campaign(workdir))
    store = SimulationStore(workdir / "cache")
    run_campaign(plan, store, show_progress=False)
    key = plan.simulations[0].key
    original = store.get(key).column_density
    path = store.path(key)
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    path.write_bytes(bytes(raw))
    again = run_campaign(plan, store, show_progress=False)
    assert (again.done, again.reused) == (1, 5)
    np.testing.assert_array_equal(store.get(key).column_density, original)
