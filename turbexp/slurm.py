"""The ``slurm`` executor: one SLURM array task per simulation, submitted with submitit.

Each task runs the same function as a local job and writes into the same
simulation store, which must therefore sit on a file system the nodes share.
Tasks are requeued when preempted or out of time; the RAMSES plugin then restarts
from the run's newest whole output.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from submitit.helpers import Checkpointable

from turbexp.errors import UserError
from turbexp.progress import console, progress_bar

if TYPE_CHECKING:
    from turbexp.campaign import CampaignOutcome, CampaignPlan

POLL_S = 30.0


class SimulationTask(Checkpointable):
    """One simulation as a requeueable SLURM task (``checkpoint`` resubmits the same call):
    ``simulate(*args)``, a module-level function, so that the task pickles."""

    def __init__(self, simulate: Callable[..., tuple[str, str | None, bool]]) -> None:
        self.simulate = simulate

    def __call__(self, *args: Any) -> tuple[str, str | None, bool]:
        return self.simulate(*args)


def executor_for(plan: CampaignPlan) -> Any:
    """A submitit SLURM executor configured from the campaign's ``executor.slurm``."""
    import submitit

    spec = plan.spec.executor.slurm
    folder = Path(spec.folder).resolve() / plan.spec.name / "%j"
    executor = submitit.SlurmExecutor(folder=folder, max_num_timeout=10)
    parameters: dict[str, Any] = {
        "job_name": f"turbexp-{plan.spec.name}",
        "time": spec.time_min,
        "cpus_per_task": spec.cpus_per_task,
        "array_parallelism": spec.array_parallelism,
        "additional_parameters": {k: str(v) for k, v in spec.sbatch.items()},
    }
    optional = {"partition": spec.partition, "account": spec.account,
                "gpus_per_node": spec.gpus_per_node or None,
                "mem": f"{spec.mem_gb:g}GB" if spec.mem_gb else None}
    parameters |= {k: v for k, v in optional.items() if v is not None}
    executor.update_parameters(**parameters)
    return executor


def run_on_slurm(plan: CampaignPlan, simulate: Callable[..., tuple[str, str | None, bool]],
                 args: list[tuple], outcome: CampaignOutcome, *, wait: bool,
                 show_progress: bool) -> CampaignOutcome:
    """Submit one array task per simulation, each calling ``simulate`` with its arguments;
    with ``wait``, follow them to the end."""
    executor = executor_for(plan)
    store_args = [(*a[:3], str(Path(a[3]).resolve())) for a in args]
    try:
        jobs = executor.map_array(SimulationTask(simulate), *zip(*store_args, strict=True))
    except Exception as exc:  # sbatch missing or refusing the submission
        raise UserError(f"SLURM submission failed: {exc}", file=str(plan.path),
                        field="executor") from None
    outcome.submitted = [job.job_id for job in jobs]
    console.print(f"{plan.spec.name}: submitted {len(jobs)} SLURM tasks "
                  f"(array {jobs[0].job_id.split('_')[0]}), logs in "
                  f"{Path(plan.spec.executor.slurm.folder).resolve() / plan.spec.name}")
    if not wait:
        return outcome
    pending = dict(zip([a[2].key for a in store_args], jobs, strict=True))
    with progress_bar(f"simulating {plan.spec.name} on SLURM", total=len(plan.simulations),
                      completed=outcome.reused, enabled=show_progress) as bar:
        while pending:
            for key, job in list(pending.items()):
                if not job.done():
                    continue
                del pending[key]
                try:
                    _, error, made = job.result()
                except Exception as exc:  # the task itself died (node failure, limits)
                    error, made = f"SLURM task {job.job_id} failed: {exc}", False
                if error is not None:
                    outcome.failed[key] = error
                elif made:
                    outcome.done += 1
                else:
                    outcome.reused += 1
                bar.advance(failed=len(outcome.failed))
            if pending:
                time.sleep(POLL_S)
    return outcome
