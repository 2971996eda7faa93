"""Helpers of the plugin's tests (a module of its own name: the core's tests have a conftest
module of theirs)."""

from __future__ import annotations

import textwrap
from pathlib import Path

from turbexp.testing import turbexp_command

REPOSITORY = Path(__file__).resolve().parents[3]
RAMSES_FIXTURES = REPOSITORY.parent / "shared" / "fixtures" / "ramses"
"""Real RAMSES outputs (see that folder's README), beside the repository."""


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip())
    return path


turbexp_cli = turbexp_command  # the real ``turbexp`` command in a subprocess
