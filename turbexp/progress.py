"""Progress bars on the terminal (stderr), shared by every long step."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

console = Console(stderr=True)


class Bar:
    """One task on a rich progress display; ``advance`` accepts extra fields to show."""

    def __init__(self, progress: Progress | None, task: Any) -> None:
        self._progress = progress
        self._task = task

    def advance(self, step: int = 1, **fields: Any) -> None:
        if self._progress is not None:
            self._progress.update(self._task, advance=step, **fields)

    def describe(self, description: str) -> None:
        if self._progress is not None:
            self._progress.update(self._task, description=description)


@contextmanager
def progress_bar(description: str, total: int, *, completed: int = 0,
                 enabled: bool = True) -> Iterator[Bar]:
    """A bar showing done/total, failures, what remains, a note (``advance(note=...)``: the
    best score so far, say), elapsed and remaining time."""
    if not enabled:
        yield Bar(None, None)
        return
    progress = Progress(
        SpinnerColumn(),
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[failed]} failed, {task.remaining:.0f} remaining"),
        TextColumn("{task.fields[note]}"),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        console=console,
    )
    with progress:
        task = progress.add_task(description, total=total, completed=completed, failed=0,
                                 note="")
        yield Bar(progress, task)


@contextmanager
def step(description: str, *, enabled: bool = True) -> Iterator[None]:
    """Name a step that has no count (a refit, a report) as it starts. A line, not a live
    display, so the step may show progress bars of its own."""
    if enabled:
        console.print(f"  [dim]{description}…[/]")
    yield
