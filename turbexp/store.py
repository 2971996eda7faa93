"""The simulation cache: one file per simulation, named by the hash of its parameters.

Each file is an ``.npz`` holding the column density maps, the parameters and
metadata as JSON, and a SHA-256 checksum of the maps. Files are written to a
temporary name and renamed, so a reader never sees a half-written file; a file
whose checksum does not match is reported, removed and redone.
"""

from __future__ import annotations

import hashlib
import json
import time
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from filelock import FileLock

from turbexp.files import atomic_write


def content_hash(payload: Any) -> str:
    """SHA-256 of the canonical JSON form of ``payload``."""
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=_jsonable)
    return hashlib.sha256(text.encode()).hexdigest()


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot hash {type(value).__name__}")


def array_checksum(array: np.ndarray) -> str:
    array = np.ascontiguousarray(array)
    digest = hashlib.sha256()
    digest.update(f"{array.dtype.str}{array.shape}".encode())
    digest.update(array.tobytes())
    return digest.hexdigest()


def _header_checksum(header: dict[str, Any]) -> str:
    """SHA-256 of everything a cache file holds besides the maps (whose own checksum it
    includes): the key, the parameters and the metadata."""
    return content_hash({k: v for k, v in header.items() if k != "header_sha256"})


@dataclass
class StoredSimulation:
    key: str
    column_density: np.ndarray
    params: dict[str, Any]
    metadata: dict[str, Any]
    checksum: str = ""  # SHA-256 of the maps, as verified


class CorruptEntry(Exception):
    """A cache file that cannot be read or whose checksum does not match."""


class SimulationStore:
    """A folder of simulations keyed by content hash."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.npz"

    def failure_path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.failed.json"

    def has(self, key: str) -> bool:
        return self.path(key).exists()

    def put(self, key: str, column_density: np.ndarray, params: dict[str, Any],
            metadata: dict[str, Any]) -> None:
        """Write a simulation atomically and clear any earlier failure record."""
        data = np.ascontiguousarray(column_density)
        header = {"key": key, "params": params, "metadata": metadata,
                  "sha256": array_checksum(data)}
        header["header_sha256"] = _header_checksum(header)
        target = self.path(key)

        def write(handle: Any) -> None:
            np.savez(handle, column_density=data, header=np.array(json.dumps(header)))

        atomic_write(target, write)
        self.failure_path(key).unlink(missing_ok=True)

    def get(self, key: str) -> StoredSimulation:
        """Read and verify a simulation; raise :class:`CorruptEntry` if it is damaged."""
        path = self.path(key)
        try:
            with np.load(path, allow_pickle=False) as npz:
                data = npz["column_density"]
                header = json.loads(str(npz["header"]))
        except (OSError, EOFError, ValueError, KeyError, zipfile.BadZipFile,
                json.JSONDecodeError) as exc:
            raise CorruptEntry(f"{path}: unreadable ({exc or type(exc).__name__})") from None
        if not isinstance(header, dict) or header.get("key") != key \
                or header.get("sha256") != array_checksum(data):
            raise CorruptEntry(f"{path}: checksum mismatch")
        # entries written before the header had its own checksum carry the maps' only
        if "header_sha256" in header and header["header_sha256"] != _header_checksum(header):
            raise CorruptEntry(f"{path}: checksum mismatch (parameters or metadata)")
        if not isinstance(header.get("params"), dict) or \
                not isinstance(header.get("metadata"), dict):
            raise CorruptEntry(f"{path}: no parameters or metadata")
        return StoredSimulation(key, data, header["params"], header["metadata"], header["sha256"])

    def verify(self, key: str) -> bool:
        """True if the entry exists and is intact; a damaged entry is removed."""
        if not self.has(key):
            return False
        try:
            self.get(key)
        except CorruptEntry:
            self.path(key).unlink(missing_ok=True)
            return False
        return True

    @contextmanager
    def lock(self, key: str) -> Iterator[None]:
        """Hold the lock of one simulation (an advisory file lock, released if the process dies)."""
        path = self.root / key[:2] / f".{key}.lock"
        path.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(path):
            yield

    def sweep_temporaries(self, older_than_s: float = 3600.0) -> int:
        """Remove temporary files left by writers killed mid-write (old enough to be dead)."""
        removed = 0
        now = time.time()
        for path in self.root.glob("*/.*.tmp"):
            try:
                if now - path.stat().st_mtime > older_than_s:
                    path.unlink()
                    removed += 1
            except FileNotFoundError:
                continue
        return removed

    def record_failure(self, key: str, params: dict[str, Any], error: str) -> None:
        payload = json.dumps({"key": key, "params": params, "error": error}, indent=2)
        atomic_write(self.failure_path(key), lambda h: h.write(payload.encode()))

    def failure(self, key: str) -> str | None:
        path = self.failure_path(key)
        if not path.exists():
            return None
        try:
            return json.loads(path.read_text())["error"]
        except (OSError, ValueError, KeyError):
            return "unknown error"
