"""What this machine has, for the checks that refuse work it cannot hold."""

from __future__ import annotations

import os


def memory_here() -> int | None:
    """This machine's physical memory in bytes, where the system says."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None
