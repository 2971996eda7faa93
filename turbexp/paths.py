"""Where turbexp keeps its own files: the simulation cache and the Optuna journal.

Everything lives under ``TURBEXP_HOME`` (default ``.turbexp`` in the current
folder); ``TURBEXP_CACHE`` moves the simulation cache elsewhere, for example to
a scratch disk shared by several projects.
"""

from __future__ import annotations

import os
from pathlib import Path

import optuna
from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock, JournalStorage


def home() -> Path:
    return Path(os.environ.get("TURBEXP_HOME", ".turbexp"))


def cache_dir() -> Path:
    return Path(os.environ.get("TURBEXP_CACHE", home() / "cache"))


def optuna_storage(url: str | None) -> optuna.storages.BaseStorage | str:
    """The storage named by ``url``, or a journal file under :func:`home` (safe for
    several processes on one machine or an NFS share)."""
    if url:
        return url
    path = home() / "optuna.journal"
    path.parent.mkdir(parents=True, exist_ok=True)
    return JournalStorage(JournalFileBackend(str(path), lock_obj=JournalFileOpenLock(str(path))))
