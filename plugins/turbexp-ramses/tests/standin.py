"""A stand-in for a RAMSES executable, for tests of the local executor.

It reads ``namelist.nml`` and ``turbexp_ic.dat`` from the current folder like the
patched RAMSES does, then writes outputs the way RAMSES numbers them (a fresh run
writes output 1 at t = 0, then output k + 1 at ``tout(k)``; a restart from output r
continues with r + 1), each a copy of a real RAMSES output from the shared fixtures
with its time set, its timer file written last. ``TURBEXP_STANDIN_MODE`` picks a
behaviour: ``ok``; ``fail`` (exit 3); ``partial`` (the final output lacks its hydro
files and timer, exit 0); ``silent`` (an error RAMSES reports with exit 0); or
``crash:K`` (exit 1 after output K). Every call appends its ``nrestart`` to
``standin_calls.txt``.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
from pathlib import Path

FIXTURE = Path(os.environ["TURBEXP_STANDIN_FIXTURE"])


def main() -> int:
    values = {}
    for line in Path(sys.argv[1]).read_text().splitlines():
        key, sep, value = line.split("!", 1)[0].partition("=")
        if sep:
            values[key.strip()] = value.strip()
    levelmin, noutput = int(values["levelmin"]), int(values["noutput"])
    restart = int(values["nrestart"])
    tout = [float(t.replace("d", "e")) for t in values["tout"].split(",")]
    with open("standin_calls.txt", "a") as calls:
        calls.write(f"{restart}\n")
    print(" last commit  = 0123456789abcdef0123456789abcdef01234567")
    ic = Path("turbexp_ic.dat")
    n = 2**levelmin
    if not ic.is_file() or ic.stat().st_size != 4 + 24 * n**3:
        print(f"turbexp_ic.dat missing or not {n}^3")
        return 2
    mode = os.environ.get("TURBEXP_STANDIN_MODE", "ok")
    if mode == "fail":
        print("standin: the solver blew up at step 12")
        return 3
    if mode == "silent":
        print(" Error: Could not find restart file")
        return 0
    crash_after = int(mode.split(":")[1]) if mode.startswith("crash:") else None
    times = [0.0, *tout]
    for number in range(restart + 1, noutput + 2):
        if crash_after is not None and number > crash_after:
            print("standin: killed")
            return 1
        write_output(number, times[number - 1],
                     partial=mode == "partial" and number == noutput + 1)
    print(" Run completed")
    return 0


def write_output(number: int, time: float, *, partial: bool) -> None:
    source_number = int(FIXTURE.name.removeprefix("output_"))
    target = Path(f"output_{number:05d}")
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir()
    for path in sorted(FIXTURE.iterdir()):
        if path.suffix == ".npy" or (partial and path.name.startswith("hydro_0")):
            continue
        name = path.name.replace(f"_{source_number:05d}", f"_{number:05d}")
        if name.startswith("info_"):
            text = re.sub(r"(time\s*=\s*)\S+", lambda m: f"{m.group(1)}{time:.15E}",
                          path.read_text())
            (target / name).write_text(text)
        else:
            shutil.copyfile(path, target / name)
    if not partial:
        (target / f"timer_{number:05d}.txt").write_text(" TOTAL    0.1  100.0\n")


if __name__ == "__main__":
    sys.exit(main())
