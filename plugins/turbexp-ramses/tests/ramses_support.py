"""Helpers of the plugin's tests (a module of its own name: the core's tests have a conftest
module of theirs)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[3]
RAMSES_FIXTURES = REPOSITORY.parent / "shared" / "fixtures" / "ramses"
"""Real RAMSES outputs (see that folder's README), beside the repository."""


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip())
    return path


def turbexp_cli(*args: str, cwd: Path, env: dict[str, str] | None = None,
                timeout: int = 600) -> subprocess.CompletedProcess:
    """Run the real ``turbexp`` command in a subprocess."""
    return subprocess.run([sys.executable, "-m", "turbexp.cli", *args], cwd=cwd,
                          env={**os.environ, **(env or {})}, capture_output=True, text=True,
                          timeout=timeout)
