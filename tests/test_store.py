"""The simulation cache: atomic writes, checksums, damaged files detected and redone."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from turbexp.store import CorruptEntry, SimulationStore, array_checksum, content_hash


def test_round_trip(tmp_path: Path) -> None:
    store = SimulationStore(tmp_path)
    maps = np.random.default_rng(0).random((3, 8, 8)) + 1
    store.put("ab" * 32, maps, {"seed": 1}, {"code": "x"})
    got = store.get("ab" * 32)
    np.testing.assert_array_equal(got.column_density, maps)
    assert got.params == {"seed": 1} and got.metadata == {"code": "x"}
    assert not list(tmp_path.rglob("*.tmp"))  # no temporary file left behind


def test_damaged_file_is_detected_and_removed(tmp_path: Path) -> None:
    store = SimulationStore(tmp_path)
    key = "cd" * 32
    store.put(key, np.ones((3, 4, 4)), {}, {})
    path = store.path(key)
    raw = bytearray(path.read_bytes())
    # flip bytes inside the stored array (after the npz headers)
    raw[len(raw) // 3] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(CorruptEntry):
        store.get(key)
    assert not store.verify(key)
    assert not path.exists()


def test_truncated_file_is_detected(tmp_path: Path) -> None:
    store = SimulationStore(tmp_path)
    key = "ef" * 32
    store.put(key, np.ones((3, 4, 4)), {}, {})
    store.path(key).write_bytes(store.path(key).read_bytes()[:50])
    assert not store.verify(key)


def test_an_empty_file_is_detected_and_removed(tmp_path: Path) -> None:
    store = SimulationStore(tmp_path)
    key = "aa" * 32
    store.path(key).parent.mkdir(parents=True)
    store.path(key).write_bytes(b"")
    with pytest.raises(CorruptEntry, match="unreadable"):
        store.get(key)
    assert not store.verify(key) and not store.path(key).exists()


def test_the_checksum_covers_parameters_and_metadata(tmp_path: Path) -> None:
    store = SimulationStore(tmp_path)
    key = "bb" * 32
    maps = np.ones((3, 4, 4))
    store.put(key, maps, {"seed": 1}, {"time_myr": 0.5})
    with np.load(store.path(key)) as npz:
        header = json.loads(str(npz["header"]))
    header["metadata"]["time_myr"] = 5.0  # edited, maps untouched
    np.savez(store.path(key), column_density=maps, header=np.array(json.dumps(header)))
    with pytest.raises(CorruptEntry, match="parameters or metadata"):
        store.get(key)
    assert not store.verify(key)


def test_entries_from_before_the_header_checksum_still_load(tmp_path: Path) -> None:
    store = SimulationStore(tmp_path)
    key = "cc" * 32
    maps = np.ones((3, 4, 4))
    header = {"key": key, "params": {}, "metadata": {}, "sha256": array_checksum(maps)}
    store.path(key).parent.mkdir(parents=True)
    np.savez(store.path(key), column_density=maps, header=np.array(json.dumps(header)))
    assert store.verify(key)


def test_failure_record_is_cleared_by_success(tmp_path: Path) -> None:
    store = SimulationStore(tmp_path)
    key = "01" * 32
    store.record_failure(key, {"seed": 1}, "SimulationError: unstable")
    assert store.failure(key) == "SimulationError: unstable"
    store.put(key, np.ones((3, 4, 4)), {}, {})
    assert store.failure(key) is None


def test_content_hash_is_canonical() -> None:
    assert content_hash({"a": 1, "b": [1, 2]}) == content_hash({"b": [1, 2], "a": 1})
    assert content_hash({"a": 1}) != content_hash({"a": 2})


def test_stale_temporary_files_are_swept(tmp_path: Path) -> None:
    import os
    import time

    store = SimulationStore(tmp_path)
    folder = tmp_path / "ab"
    folder.mkdir()
    old, fresh = folder / ".abc.npz.x1.tmp", folder / ".abd.npz.x2.tmp"
    old.write_bytes(b"partial")
    fresh.write_bytes(b"partial")
    two_hours_ago = time.time() - 7200
    os.utime(old, (two_hours_ago, two_hours_ago))
    assert store.sweep_temporaries() == 1
    assert not old.exists() and fresh.exists()  # a live writer's file is left alone
