"""Speed and memory of the builtin solver against the plain numpy reference.

Times ``turbexp_plugins.builtin.solver.advance`` (the numba kernels) and
``benchmarks/numpy_reference.py`` side by side: both take the same number of
steps of the same fixed time step from the reference set-up (a k^-11/3 velocity
field at Mach 1.41, seed 0, uniform density; dt from CFL 0.4 on the initial
state). The two are called alternately, a few times each, and the medians are
compared, so that other load on the machine hits both alike. Compilation is
timed separately: the first call in this process (a load from numba's on-disk
cache once compiled), and a compilation from scratch in a subprocess with an
empty cache. Last, the peak resident memory of a full builtin-simulator run
(initial field, a few steps, projections) is measured in a subprocess.

    python benchmarks/solver.py                      # 64³ and 128³, then 256³ memory
    python benchmarks/solver.py --grids 32 64 --steps 4 --repeats 5 --memory-grid 0
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
CFL = 0.4
INDEX = 11 / 3
MACH = 1.41


def numpy_reference():
    """``benchmarks/numpy_reference.py`` as a module (the folder is not a package)."""
    spec = importlib.util.spec_from_file_location("numpy_reference", HERE / "numpy_reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def reference_setup(grid: int, seed: int) -> tuple[np.ndarray, float]:
    """Initial state of the reference set-up and its CFL time step."""
    from turbexp.turbulence import velocity_field
    from turbexp_plugins.builtin import solver

    state = solver.initial_state(velocity_field(grid, INDEX, MACH, seed))
    return state, CFL * (1.0 / grid) / solver.max_signal_speed(state, 1e-6)


def first_call_seconds() -> tuple[float, str]:
    """Time of the first solver call in this process, and whether the kernels were compiled."""
    from turbexp_plugins.builtin import kernels, solver

    start = time.perf_counter()
    solver.evolve(reference_setup(8, 0)[0], 0.01)
    seconds = time.perf_counter() - start
    misses = sum(sum(d.stats.cache_misses.values()) for d in kernels.KERNELS
                 if hasattr(d, "stats"))
    return seconds, "compiled" if misses else "loaded from numba's cache"


def compile_from_scratch_seconds() -> float:
    """Seconds for a fresh process to compile the kernels with an empty numba cache."""
    code = ("import time; t = time.perf_counter(); "
            "from turbexp_plugins.builtin import solver; import numpy as np; "
            "solver.evolve(solver.initial_state(np.zeros((3, 8, 8, 8)) + 0.1), 0.01); "
            "print(time.perf_counter() - t)")
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "NUMBA_CACHE_DIR": cache}
        out = subprocess.run([sys.executable, "-c", code], env=env, check=True,
                             capture_output=True, text=True)
    return float(out.stdout.split()[-1])


def implementations(devices: list[str], riemann: str, limiter: str) -> dict:
    """The timed implementations: ``advance(state, dt, steps)`` for each name."""
    from turbexp_plugins.builtin import solver

    reference = numpy_reference()
    options = {"riemann": riemann, "limiter": limiter}
    runs = {"numpy": lambda s, dt, n: reference.advance(s, dt, n, **options)}
    for device in devices:
        runs[f"project {device}"] = (
            lambda s, dt, n, device=device: solver.advance(s, dt, n, device=device, **options))
    return runs


def time_grid(grid: int, steps: int, repeats: int, seed: int, runs: dict) -> dict:
    """Median wall times of the implementations on one grid, called alternately."""
    state, dt = reference_setup(grid, seed)
    outputs = {name: run(state, dt, steps) for name, run in runs.items()}  # warm-up
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            start = time.perf_counter()
            run(state, dt, steps)
            times[name].append(time.perf_counter() - start)
    scale = np.abs(outputs["numpy"]).max()
    difference = {name: float(np.abs(out - outputs["numpy"]).max() / scale)
                  for name, out in outputs.items()}
    median = {name: statistics.median(t) for name, t in times.items()}
    updates = grid**3 * steps
    return {"grid": grid, "steps": steps, "repeats": repeats, "dt": dt, "times": times,
            "median_s": median, "mcells_per_s": {k: updates / v / 1e6 for k, v in median.items()},
            "speedup": {k: median["numpy"] / v for k, v in median.items()},
            "max_rel_difference": difference}


def memory_child(grid: int, steps: int, device: str) -> None:
    """A builtin-simulator run of about ``steps`` steps; prints its peak RSS as JSON.

    Does what ``BuiltinSimulator.simulate`` does (the velocity field and the
    initial state stay alive during the run), with the end time set from the
    initial CFL step.
    """
    from turbexp.plugin_types import Physics
    from turbexp.projection import column_density
    from turbexp.spec import PhysicsSpec
    from turbexp.turbulence import velocity_field
    from turbexp_plugins.builtin import solver

    start = time.perf_counter()
    velocity = velocity_field(grid, INDEX, MACH, 0)
    state0 = solver.initial_state(velocity)
    t_end = steps * CFL / grid / solver.max_signal_speed(state0, 1e-6)
    state, done = solver.evolve(state0, t_end, device=device)
    column_density(state[0], Physics(**PhysicsSpec().model_dump()))
    print(json.dumps({"grid": grid, "steps": done, "seconds": time.perf_counter() - start,
                      "peak_rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                      "state_mib": state.nbytes / 2**20}))


def memory_run(grid: int, steps: int, device: str) -> dict:
    """Peak RSS of a builtin-simulator run in a fresh subprocess.

    On the GPU, also the peak GPU memory in use while it ran (the whole device,
    CUDA context included), sampled by ``nvidia-smi`` every 20 ms where it exists.
    """
    command = [sys.executable, __file__, "--memory-child", str(grid), str(steps), device]
    sampler = None
    if device == "gpu" and shutil.which("nvidia-smi"):
        sampler = subprocess.Popen(
            ["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits",
             "-lms", "20"], stdout=subprocess.PIPE, text=True)
    try:
        out = subprocess.run(command, check=True, capture_output=True, text=True)
    finally:
        if sampler is not None:
            sampler.terminate()
            samples = [int(line) for line in sampler.communicate()[0].split() if line.isdigit()]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    if sampler is not None and samples:
        result["gpu_peak_mib"] = max(samples)
        result["gpu_idle_mib"] = min(samples)
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grids", type=int, nargs="+", default=[64, 128],
                        help="cells per side of the timed grids (default: 64 128)")
    parser.add_argument("--steps", type=int, default=4, help="steps per timed run (default: 4)")
    parser.add_argument("--repeats", type=int, default=3,
                        help="timed runs of each implementation per grid (default: 3)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--riemann", default="llf")
    parser.add_argument("--limiter", default="minmod")
    parser.add_argument("--devices", nargs="+", choices=["cpu", "gpu"],
                        help="where the project's solver runs (default: cpu, and gpu when "
                             "numba finds one)")
    parser.add_argument("--memory-grid", type=int, default=256,
                        help="grid of the peak-memory run, 0 to skip (default: 256)")
    parser.add_argument("--memory-steps", type=int, default=3,
                        help="approximate steps of the peak-memory run (default: 3)")
    parser.add_argument("--no-compile", action="store_true",
                        help="skip the compilation from scratch (about 20 s)")
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    parser.add_argument("--memory-child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.memory_child:
        grid, steps, device = args.memory_child
        memory_child(int(grid), int(steps), device)
        return

    import numba

    from turbexp_plugins.builtin import gpu

    devices = args.devices or (["cpu", "gpu"] if gpu.available() else ["cpu"])
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"numba {numba.__version__} with {numba.get_num_threads()} threads, numpy "
          f"{np.__version__}; load average before: {os.getloadavg()[0]:.2f}")
    if "gpu" in devices:
        print(f"GPU: {gpu.name()}")
    results: dict = {"cores": os.cpu_count(), "threads": numba.get_num_threads(),
                     "riemann": args.riemann, "limiter": args.limiter, "devices": devices}
    seconds, how = first_call_seconds()
    results["first_call_s"] = seconds
    print(f"first solver call in this process: {seconds:.2f} s ({how})")
    if not args.no_compile:
        results["compile_s"] = compile_from_scratch_seconds()
        print(f"compilation from scratch (empty cache, fresh process): "
              f"{results['compile_s']:.1f} s")

    runs = implementations(devices, args.riemann, args.limiter)
    print(f"\n{args.riemann} / {args.limiter}, {args.steps} steps of the same dt, "
          f"median of {args.repeats} alternating runs each")
    print("| grid | steps | implementation | median s | Mcell-updates/s | × numpy "
          "| max rel. difference to numpy |")
    print("|" + "---|" * 7)
    results["grids"] = []
    for grid in args.grids:
        row = time_grid(grid, args.steps, args.repeats, args.seed, runs)
        results["grids"].append(row)
        for name in runs:
            print(f"| {grid}³ | {row['steps']} | {name} | {row['median_s'][name]:.4f} | "
                  f"{row['mcells_per_s'][name]:.2f} | {row['speedup'][name]:.1f}× | "
                  f"{row['max_rel_difference'][name]:.1e} |", flush=True)

    if args.memory_grid:
        results["memory"] = {}
        for device in devices:
            memory = memory_run(args.memory_grid, args.memory_steps, device)
            results["memory"][device] = memory
            gib = memory["peak_rss_kib"] / 2**20
            gpu_use = (f"; GPU memory in use at most {memory['gpu_peak_mib'] / 1024:.2f} GiB "
                       f"(idle {memory['gpu_idle_mib'] / 1024:.2f} GiB)"
                       if "gpu_peak_mib" in memory else "")
            print(f"\npeak memory of a {memory['grid']}³ builtin-simulator run on the {device} "
                  f"({memory['steps']} steps, {memory['seconds']:.0f} s): {gib:.2f} GiB max RSS "
                  f"(one state is {memory['state_mib']:.0f} MiB){gpu_use}")
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
