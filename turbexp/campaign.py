"""Campaigns: from a campaign YAML to a list of simulations, and making the missing ones."""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from turbexp import overrides as changes
from turbexp.errors import UserError, gather
from turbexp.parallel import default_jobs, die_with_parent
from turbexp.params import plan_params
from turbexp.plugin_types import Physics, PluginParams, SimulationRequest
from turbexp.plugins import PluginInfo, registry
from turbexp.progress import progress_bar
from turbexp.spec import CampaignSpec, Spread, validate
from turbexp.store import SimulationStore, content_hash
from turbexp.yamlfile import load_yaml


@dataclass(frozen=True)
class PlannedSimulation:
    """One simulation of a campaign, with its cache key."""

    key: str
    request: SimulationRequest
    group: int
    label: str | None


@dataclass(frozen=True)
class CampaignPlan:
    """A validated campaign: its spec, simulator and the simulations it lists."""

    path: Path
    spec: CampaignSpec
    simulator: PluginInfo
    simulator_params: PluginParams
    simulations: list[PlannedSimulation]

    @property
    def content_hash(self) -> str:
        """Changes when, and only when, the data the campaign makes changes."""
        return content_hash(sorted(s.key for s in self.simulations))


@dataclass
class CampaignOutcome:
    done: int = 0
    reused: int = 0
    failed: dict[str, str] = field(default_factory=dict)
    submitted: list[str] = field(default_factory=list)


def plan_campaign(path: str | Path, *, overrides: dict[str, Any] | None = None,
                  scale: str | None = None, given_as: str = "--set campaign.",
                  every_scale: bool = False) -> CampaignPlan:
    """Read and validate a campaign file; nothing is simulated. ``scale`` applies the
    file's scale of that name, then ``overrides`` sets dotted keys (named in errors as
    ``given_as`` + key). With ``every_scale`` (and no ``scale``), the file is checked at
    each of its scales too: for the files a user names, not for every internal reading."""
    doc = load_yaml(path)
    doc = changes.apply(doc, changes.scale_of(doc, scale), CampaignSpec,
                        source=f"{doc.path}: scales.{scale}.")
    doc = changes.apply(doc, dict(overrides or {}), CampaignSpec, source=given_as)
    spec: CampaignSpec = validate(CampaignSpec, doc)
    try:
        simulator = registry().get("simulator", spec.simulator.plugin)
    except UserError as exc:
        raise doc.error(exc.message, ("simulator", "plugin")) from None
    param_plan = plan_params(simulator, spec.simulator.params, doc=doc, loc=("simulator",),
                             tune_defaults=False)
    if param_plan.space:
        raise doc.error("simulator parameters take values, not search spaces", ("simulator",))
    params = _resolve_paths(param_plan.sample(None), Path(path).parent)
    simulations = []
    for g, group in enumerate(spec.groups):
        for member, (index, physics) in enumerate(zip(_indices(spec, g), _physics(spec, g),
                                                      strict=True)):
            seed = int(np.random.SeedSequence([spec.seed, g, member]).generate_state(1)[0])
            request = SimulationRequest(physics=physics, index=index, grid=spec.grid, seed=seed)
            key = content_hash(simulation_identity(simulator, params, request))
            simulations.append(PlannedSimulation(key, request, g, group.label))
    if every_scale and scale is None:
        changes.check_scales(doc, lambda name: plan_campaign(
            path, overrides=overrides, scale=name, given_as=given_as))
    return CampaignPlan(Path(path), spec, simulator, params, simulations)


def _resolve_paths(params: PluginParams, base: Path) -> PluginParams:
    """Relative paths among a simulator's parameters are relative to the campaign file."""
    resolved = {name: (base / value).resolve() if isinstance(value, Path)
                and not value.is_absolute() else value
                for name, value in params}
    return params.model_copy(update=resolved)


def _indices(spec: CampaignSpec, g: int) -> list[float]:
    return _draws(spec.groups[g].index, spec.groups[g].count, [spec.seed, g])


PHYSICS_STREAM = 1
"""Keeps the Mach and time draws apart from the index draws of the same group."""


def _physics(spec: CampaignSpec, g: int) -> list[Physics]:
    """Each simulation's physics: its own Mach number and time where those are ranges."""
    count = spec.groups[g].count
    fixed = spec.physics.model_dump(exclude={"mach", "time_myr"})
    machs = _draws(spec.physics.mach, count, [spec.seed, g, PHYSICS_STREAM, 0])
    times = _draws(spec.physics.time_myr, count, [spec.seed, g, PHYSICS_STREAM, 1])
    return [Physics(**fixed, mach=m, time_myr=t) for m, t in zip(machs, times, strict=True)]


def _draws(value: float | Spread, count: int, entropy: list[int]) -> list[float]:
    """``count`` copies of a number, or uniform draws (6 decimals) from a range."""
    if not isinstance(value, Spread):
        return [float(value)] * count
    rng = np.random.default_rng(entropy)
    return [round(float(v), 6) for v in rng.uniform(value.low, value.high, count)]


def simulation_identity(simulator: PluginInfo, params: PluginParams,
                        request: SimulationRequest) -> dict:
    """Everything that determines a simulation's output: hashed into its cache key."""
    return {
        "simulator": simulator.name,
        "simulator_version": simulator.cls.version,
        "simulator_params": simulator.create().identity(params),
        "physics": asdict(request.physics),
        "index": request.index,
        "grid": request.grid,
        "seed": request.seed,
    }


def run_campaign(plan: CampaignPlan, store: SimulationStore, *, jobs: int | None = None,
                 executor: str | None = None, wait: bool = True,
                 show_progress: bool = True) -> CampaignOutcome:
    """Make every simulation of ``plan`` missing from ``store``; failures are recorded.

    ``executor`` (default: the campaign's ``executor.kind``) is ``local``, ``jobs``
    simulations at a time in this machine's processes, or ``slurm``, one SLURM array
    task per simulation; ``wait=False`` returns once a SLURM array is submitted.
    """
    outcome = CampaignOutcome()
    store.sweep_temporaries()
    missing = [s for s in plan.simulations if not store.verify(s.key)]
    outcome.reused = len(plan.simulations) - len(missing)
    if not missing:
        return outcome
    try:
        plan.simulator.create().check(plan.simulator_params, plan.spec.grid)
    except ValueError as exc:
        raise UserError(f"simulator {plan.simulator.name!r}: {exc}", file=str(plan.path),
                        field="simulator") from None
    args = [(plan.simulator.name, plan.simulator_params.model_dump(), s, str(store.root))
            for s in missing]
    if (executor or plan.spec.executor.kind) == "slurm":
        from turbexp.slurm import run_on_slurm

        return run_on_slurm(plan, simulate_one, args, outcome, wait=wait,
                            show_progress=show_progress)
    jobs = max(1, min(jobs or plan.spec.executor.jobs or default_jobs(), len(missing)))
    with progress_bar(f"simulating {plan.spec.name}", total=len(plan.simulations),
                      completed=outcome.reused, enabled=show_progress) as bar:
        def finished(key: str, error: str | None, made: bool) -> None:
            if error is not None:
                outcome.failed[key] = error
            elif made:
                outcome.done += 1
            else:
                outcome.reused += 1  # another process made it meanwhile
            bar.advance(failed=len(outcome.failed))

        if jobs == 1:
            for arg in args:
                finished(*simulate_one(*arg))
        else:
            context = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(jobs, mp_context=context, initializer=_one_thread_per_job,
                                     initargs=(os.getpid(),)) as pool:
                for future in as_completed([pool.submit(simulate_one, *a) for a in args]):
                    finished(*future.result())
    return outcome


def _one_thread_per_job(parent: int) -> None:
    """Parallel jobs share the cores: each simulates with one thread (numba, BLAS, OpenMP);
    a job dies with ``parent``, the campaign's process."""
    die_with_parent(parent)
    for variable in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                     "MKL_NUM_THREADS"):
        os.environ[variable] = "1"


def simulate_one(simulator_name: str, params: dict, sim: PlannedSimulation,
                  store_root: str) -> tuple[str, str | None, bool]:
    """Run one simulation and store it; returns (key, error or None, whether it was made here).

    A lock per simulation lets several campaigns share a cache: whoever holds it
    simulates, the others wait and then find the simulation made.
    """
    store = SimulationStore(store_root)
    with store.lock(sim.key):
        if store.verify(sim.key):
            return sim.key, None, False
        return (*_simulate_locked(store, simulator_name, params, sim), True)


def _simulate_locked(store: SimulationStore, simulator_name: str, params: dict,
                     sim: PlannedSimulation) -> tuple[str, str | None]:
    info = registry().get("simulator", simulator_name)
    plugin_params = info.cls.Params(**params)
    identity = simulation_identity(info, plugin_params, sim.request)
    try:
        result = info.create().simulate(sim.request, plugin_params)
        maps = np.asarray(result.column_density, dtype=np.float64)
        expected = (3, sim.request.grid, sim.request.grid)
        if maps.shape != expected or not np.all(np.isfinite(maps)) or np.any(maps <= 0):
            raise ValueError(f"simulator returned maps of shape {maps.shape}, expected finite "
                             f"positive maps of shape {expected}")
        store.put(sim.key, maps, identity, dict(result.metadata))
        return sim.key, None
    except Exception as exc:  # one failed simulation must not stop the campaign
        error = f"{type(exc).__name__}: {exc}"
        store.record_failure(sim.key, identity, error)
        return sim.key, error


def plan_campaigns(paths: list[str | Path], *, overrides: dict[str, Any] | None = None,
                   scale: str | None = None) -> list[CampaignPlan]:
    """Validate several campaign files, reporting every file's errors together."""
    return gather(lambda p: plan_campaign(p, overrides=overrides, scale=scale,
                                          given_as="--set ", every_scale=True), paths)
