"""The slurm executor. SLURM cannot run here: ``sbatch`` and ``srun`` are stand-ins on PATH
that accept the submission, and each array task's payload is then run the way a node
would run it (``python -m submitit.core._submit`` with the SLURM environment set)."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import turbexp_cli, write
from submitit.core.utils import DelayedSubmission
from submitit.helpers import Checkpointable

from turbexp.campaign import plan_campaign, run_campaign
from turbexp.store import SimulationStore

CAMPAIGN = """
name: cluster
grid: 16
seed: 2
groups:
  - {label: kolmogorov, index: 3.6666667, count: 1}
  - {label: burgers, index: 4.0, count: 1}
executor:
  kind: slurm
  slurm:
    partition: debug
    time_min: 30
    cpus_per_task: 4
    gpus_per_node: 1
    mem_gb: 4
    account: astro
    array_parallelism: 8
    sbatch: {qos: low}
"""


@pytest.fixture
def fake_slurm(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``sbatch`` records its arguments and answers like SLURM; ``srun`` is never called."""
    bin_dir = workdir / "bin"
    bin_dir.mkdir()
    for name, body in {"sbatch": 'echo "$@" >> "$(dirname "$0")/sbatch_calls.txt"\n'
                                 'echo "Submitted batch job 4242"\n',
                       "srun": "exit 1\n"}.items():
        path = bin_dir / name
        path.write_text(f"#!/bin/sh\n{body}")
        path.chmod(path.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return bin_dir


def test_slurm_submission_is_a_requeueable_job_array(fake_slurm: Path, workdir: Path) -> None:
    campaign = write(workdir / "sims" / "cluster.yaml", CAMPAIGN)
    plan = plan_campaign(campaign)
    store = SimulationStore(workdir / ".turbexp" / "cache")
    outcome = run_campaign(plan, store, wait=False, show_progress=False)
    assert outcome.submitted == ["4242_0", "4242_1"]
    assert (fake_slurm / "sbatch_calls.txt").read_text().count("\n") == 1  # one array

    folder = workdir / ".turbexp" / "slurm" / "cluster"
    script = (folder / "4242" / "4242_submission.sh").read_text()
    # the array runs at most array_parallelism tasks at once: here both of its two
    for line in ("--partition=debug", "--array=0-1%2", "--time=30", "--cpus-per-task=4",
                 "--gpus-per-node=1", "--mem=4GB", "--account=astro", "--qos=low",
                 "--job-name=turbexp-cluster", "--signal=USR2@90"):
        assert f"#SBATCH {line}\n" in script, line

    # each task pickles a Checkpointable call: on preemption submitit requeues the same call
    submitted = DelayedSubmission.load(folder / "4242_0" / "4242_0_submitted.pkl")
    assert isinstance(submitted.function, Checkpointable)
    requeued = submitted.function.checkpoint(*submitted.args)
    assert requeued.args == submitted.args
    keys = {submitted.args[2].key}

    # run both tasks' payloads as a node would; they fill the shared store
    for task in (0, 1):
        env = {**os.environ, "SLURM_JOB_ID": str(5000 + task), "SLURM_ARRAY_JOB_ID": "4242",
               "SLURM_ARRAY_TASK_ID": str(task), "SLURM_NTASKS": "1", "SLURM_PROCID": "0",
               "SLURM_LOCALID": "0", "SLURM_NODEID": "0", "SLURM_JOB_NUM_NODES": "1",
               "SLURM_JOB_NODELIST": "node1", "SUBMITIT_EXECUTOR": "slurm"}
        done = subprocess.run([sys.executable, "-m", "submitit.core._submit", str(folder / "%j")],
                              env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
    keys |= {s.key for s in plan.simulations}
    assert all(store.verify(key) for key in keys)
    assert run_campaign(plan, store, executor="local", show_progress=False).reused == 2


def test_a_refused_submission_is_a_clear_error(fake_slurm: Path, workdir: Path) -> None:
    (fake_slurm / "sbatch").write_text("#!/bin/sh\necho 'sbatch: error: invalid account' >&2\n"
                                       "exit 1\n")
    campaign = write(workdir / "sims" / "cluster.yaml", CAMPAIGN)
    from turbexp.errors import UserError

    with pytest.raises(UserError, match="SLURM submission failed") as error:
        run_campaign(plan_campaign(campaign), SimulationStore(workdir / "c"), wait=False,
                     show_progress=False)
    assert "cluster.yaml" in str(error.value)


def test_the_command_names_the_submitted_array(fake_slurm: Path, workdir: Path) -> None:
    write(workdir / "sims" / "cluster.yaml", CAMPAIGN)
    result = turbexp_cli("sims", "run", "sims/cluster.yaml", "--no-wait", "--no-progress",
                         cwd=workdir)
    assert result.returncode == 0, result.stderr
    assert "0 failed, 2 submitted to SLURM (array job 4242)" in " ".join(result.stdout.split())
