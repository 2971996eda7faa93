"""Ctrl-C and SIGTERM that are never lost.

Python raises ``KeyboardInterrupt`` wherever the main thread happens to be when the
signal arrives; inside a finalizer (a garbage-collected database connection, say) it is
printed and dropped, and the run goes on as if nothing happened. The handler here raises
it too, and also records the request, so that :func:`check` at the runner's safe points
(between trials, epochs, steps) raises it again if it was swallowed.
"""

from __future__ import annotations

import signal
from types import FrameType

_requested = False


def _handle(signum: int, frame: FrameType | None) -> None:
    global _requested
    _requested = True
    raise KeyboardInterrupt


def install() -> None:
    """Handle SIGINT and SIGTERM (a cluster's scheduler, `kill`) alike: stop the command.
    Only the main thread can install handlers; elsewhere Python's own stay."""
    try:
        signal.signal(signal.SIGINT, _handle)
        signal.signal(signal.SIGTERM, _handle)
    except ValueError:
        pass


def requested() -> bool:
    """Whether Ctrl-C or SIGTERM came in this process."""
    return _requested


def check() -> None:
    """Raise ``KeyboardInterrupt`` if a stop was asked for (and perhaps swallowed)."""
    if _requested:
        raise KeyboardInterrupt
