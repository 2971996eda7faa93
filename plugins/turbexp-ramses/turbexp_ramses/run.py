"""One RAMSES run: its directory, launching the executable, restarts and failure reports.

A run directory holds ``namelist.nml``, the initial velocity file, ``run.log`` and
the outputs. The last output is the final one; earlier ones are restart points, so a
run killed or preempted continues from its newest output that is certainly whole.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from turbexp.api import Physics, atomic_write
from turbexp_ramses import initial_field, namelist
from turbexp_ramses.output import is_complete, outputs, read_info

EXECUTABLE_VARIABLE = "TURBEXP_RAMSES_EXECUTABLE"
LOG = "run.log"
COMPLETED = " Run completed"
NAMELIST = "namelist.nml"


class RamsesFailed(RuntimeError):
    """A RAMSES run ended without a whole final output."""


@dataclass(frozen=True)
class Launch:
    """How to start RAMSES: the executable, MPI ranks and the MPI launcher."""

    executable: Path
    ranks: int = 1
    launcher: str = "mpirun -np {ranks}"

    def command(self) -> list[str]:
        head = shlex.split(self.launcher.format(ranks=self.ranks)) if self.ranks > 1 else []
        return [*head, str(self.executable), NAMELIST]


def find_executable(configured: Path | None) -> Path:
    """The RAMSES executable from the campaign or ``TURBEXP_RAMSES_EXECUTABLE``.

    Raises ``ValueError`` with a message for the user when there is none or it cannot run.
    """
    value = str(configured) if configured else os.environ.get(EXECUTABLE_VARIABLE, "")
    if not value:
        raise ValueError(
            f"no RAMSES executable: set simulator.executable in the campaign or the "
            f"{EXECUTABLE_VARIABLE} environment variable (see docs/ramses.md to build one)")
    found = shutil.which(value) if os.sep not in value else value
    path = Path(found) if found else Path(value)
    if not path.is_file() or not os.access(path, os.X_OK):
        raise ValueError(f"RAMSES executable {value!r} is not an executable file")
    return path.resolve()


def prepare(run_dir: Path, physics: Physics, values: namelist.NamelistValues,
            velocity: np.ndarray, template: Path, ranks: int) -> int:
    """Write the initial field and the namelist; returns the output RAMSES restarts from,
    or 0 for a fresh start (which first clears any outputs of earlier attempts)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    initial_field.write_velocity(run_dir / initial_field.FILE_NAME, velocity)
    restart = restart_point(run_dir, ranks)
    if restart == 0:
        for folder in outputs(run_dir):
            shutil.rmtree(folder)
    text = namelist.render(physics, replace(values, nrestart=restart), template)
    atomic_write(run_dir / NAMELIST, lambda handle: handle.write(text.encode()))
    return restart


def restart_point(run_dir: Path, ranks: int) -> int:
    """The newest whole output written by as many ranks as this attempt has (RAMSES
    restarts only on the same number of ranks), or 0."""
    for folder in reversed(outputs(run_dir)):
        if is_complete(folder) and read_info(folder).ncpu == ranks:
            return read_info(folder).number
    return 0


def launch(run_dir: Path, how: Launch) -> None:
    """Run RAMSES in ``run_dir`` to the end; ``RamsesFailed`` with the log's tail otherwise."""
    with open(run_dir / LOG, "ab") as log:
        log.write(f"\n# turbexp: {shlex.join(how.command())}\n".encode())
        log.flush()
        try:
            code = subprocess.run(how.command(), cwd=run_dir, stdout=log,
                                  stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL).returncode
        except OSError as exc:
            raise RamsesFailed(f"cannot start RAMSES ({exc})") from None
    if code != 0:
        raise RamsesFailed(f"RAMSES exited with code {code} in {run_dir}\n{log_tail(run_dir)}")
    attempt = (run_dir / LOG).read_text(errors="replace").rpartition("# turbexp: ")[2]
    if COMPLETED not in attempt:  # some RAMSES errors exit with status 0
        raise RamsesFailed(f"RAMSES stopped without {COMPLETED.strip()!r} in {run_dir}\n"
                           f"{log_tail(run_dir)}")


def final_output(run_dir: Path, end_time: float) -> Path:
    """The final output of a run: the newest, whole and at the end time; ``RamsesFailed``
    otherwise."""
    found = outputs(run_dir)
    if not found or not is_complete(found[-1]):
        raise RamsesFailed(f"the last output in {run_dir} is missing or incomplete\n"
                           f"{log_tail(run_dir)}")
    info = read_info(found[-1])
    if info.time < end_time * (1 - 1e-6):
        raise RamsesFailed(f"the last output in {run_dir} is at t = {info.time:g}, before the "
                           f"end time {end_time:g} (code units)\n{log_tail(run_dir)}")
    return found[-1]


def finished_output(run_dir: Path, end_time: float) -> Path | None:
    """The final output if an earlier attempt already reached it, else None."""
    try:
        return final_output(run_dir, end_time)
    except RamsesFailed:
        return None


def log_tail(run_dir: Path, lines: int = 15) -> str:
    """The last lines of the run's log, for failure reports."""
    try:
        text = (run_dir / LOG).read_text(errors="replace")
    except OSError:
        return "(no run.log)"
    tail = [line for line in text.splitlines() if line.strip()][-lines:]
    return "last lines of run.log:\n" + "\n".join(f"  {line}" for line in tail)


def code_version(run_dir: Path) -> str | None:
    """The git commit RAMSES prints at start-up (``last commit = …``), if the log has it."""
    try:
        text = (run_dir / LOG).read_text(errors="replace")
    except OSError:
        return None
    match = re.search(r"^\s*last commit\s*=\s*([0-9a-f]{7,40})", text, re.MULTILINE)
    return match.group(1) if match else None


def tidy(run_dir: Path, keep: str) -> None:
    """After ingestion keep ``all`` outputs, only the ``final`` one, or ``none`` of the run."""
    if keep == "all":
        return
    if keep == "none":
        shutil.rmtree(run_dir, ignore_errors=True)
        return
    for folder in outputs(run_dir)[:-1]:
        shutil.rmtree(folder, ignore_errors=True)
