"""Writing files so that a reader never sees half of one."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO

from turbexp.errors import UserError


def atomic_write(target: Path, write: Callable[[IO[bytes]], object]) -> None:
    """Call ``write(handle)`` on a temporary file beside ``target``, then rename it."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def check_output_folder(path: Path, field: str) -> None:
    """Refuse, before any work, an output folder that could not be made or written: the
    nearest part of ``path`` that exists must be a folder this process may write in."""
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise UserError(f"{existing} is not a folder, so {path} cannot be made in it",
                        file=str(path), field=field)
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UserError(f"cannot write in {existing}; choose a writable place",
                        file=str(path), field=field)


def make_output_folder(path: Path, field: str) -> None:
    """``path`` and its parents, or one clear error."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot make the output folder: {exc.strerror}", file=str(path),
                        field=field) from None
