"""TensorFlow and Keras, imported once with their C++ start-up notes kept off the terminal.

TensorFlow's C++ core writes notes to the process's stderr as it loads (no CUDA drivers, the
CPU features it was built for, and, on a machine without an NVIDIA driver, a failed
``cuInit``), before any Python setting can stop them. The first import here runs with stderr
captured: the known notes go to the ``turbexp_deep`` logger at DEBUG, every other line is
written on stderr as it came, so real errors still show. ``TURBEXP_VERBOSE=1`` passes
everything through. Every module of this package takes ``keras`` and ``tf`` from here.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

NOTES = ("All log messages before absl::InitializeLog() is called",
         "cudart_stub.cc", "cpu_feature_guard.cc", "To enable the following instructions",
         "oneDNN custom operations", "Unable to register cu", "computation placer already",
         "This TensorFlow binary is optimized")
"""Start-up lines that say nothing about this run."""
NO_DRIVER_NOTES = ("failed call to cuInit",)
"""Lines that are notes only on a machine without an NVIDIA driver."""


def _is_note(line: str, driver: bool) -> bool:
    notes = NOTES if driver else NOTES + NO_DRIVER_NOTES
    return any(note in line for note in notes)


@contextmanager
def _start_up_notes_kept() -> Iterator[None]:
    """Capture what is written on file descriptor 2 in the block; afterwards log the notes
    and write the rest on stderr."""
    if os.environ.get("TURBEXP_VERBOSE", "") not in ("", "0"):
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            text = captured.read().decode(errors="replace")
    driver = Path("/proc/driver/nvidia/version").exists()
    log = logging.getLogger("turbexp_deep")
    for line in text.splitlines():
        if _is_note(line, driver):
            log.debug("tensorflow: %s", line)
        elif line.strip():
            print(line, file=sys.stderr)


os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
with _start_up_notes_kept():
    import keras
    import tensorflow as tf

    tf.config.list_physical_devices()  # CUDA is initialised (or not) here

__all__ = ["keras", "tf"]
