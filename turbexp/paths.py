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

from turbexp.errors import UserError


def home() -> Path:
    return _folder("TURBEXP_HOME", Path(".turbexp"))


def cache_dir() -> Path:
    return _folder("TURBEXP_CACHE", home() / "cache")


def _folder(variable: str, default: Path) -> Path:
    """The folder ``variable`` names (else ``default``); one that exists as something other
    than a folder is one clear error."""
    path = Path(os.environ.get(variable) or default)
    if path.exists() and not path.is_dir():
        raise UserError(f"{path} is not a folder; point {variable} at a folder (or at none)",
                        field=variable)
    return path


def optuna_storage(url: str | None) -> optuna.storages.BaseStorage:
    """The storage named by ``url``, or a journal file under :func:`home` (safe for
    several processes on one machine or an NFS share)."""
    if url:
        try:
            return optuna.storages.RDBStorage(url)
        except Exception as exc:  # sqlalchemy's and the drivers' errors have no common base
            raise UserError(f"cannot open the Optuna storage {url!r}: "
                            f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}",
                            field="tune.storage") from None
    path = home() / "optuna.journal"
    path.parent.mkdir(parents=True, exist_ok=True)
    return JournalStorage(JournalFileBackend(str(path), lock_obj=JournalFileOpenLock(str(path))))


def check_storage_url(url: str) -> str | None:
    """Why ``url`` cannot be an Optuna storage (not a URL, or no driver for it), without
    connecting; None when it may be."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    try:
        dialect = make_url(url).get_dialect()
    except (ArgumentError, NoSuchModuleError, ValueError) as exc:
        return f"not a database URL that SQLAlchemy can use ({exc})"
    try:
        dialect.import_dbapi()
    except ImportError as exc:
        return f"its database driver is not installed ({exc}); install it into this environment"
    return None
