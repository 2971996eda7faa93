"""Helpers of the plugin's tests (a module of its own name: the core's tests have a conftest
module of theirs)."""

from __future__ import annotations

from pathlib import Path

from turbexp.testing import turbexp_command, write  # noqa: F401  (the tests import it here)

REPOSITORY = Path(__file__).resolve().parents[3]
RAMSES_FIXTURES = REPOSITORY.parent / "shared" / "fixtures" / "ramses"
"""Real RAMSES outputs (see that folder's README), beside the repository."""


turbexp_cli = turbexp_command  # the real ``turbexp`` command in a subprocess
