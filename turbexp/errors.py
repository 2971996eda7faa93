"""Errors meant for the user: printed as one message, never as a traceback."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


class UserError(Exception):
    """A mistake in the user's input: which file, which field, what was expected."""

    def __init__(self, message: str, *, file: str | None = None, field: str | None = None,
                 line: int | None = None, column: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.file = file
        self.field = field
        self.line = line
        self.column = column

    def __str__(self) -> str:
        where = ""
        if self.file:
            where = str(self.file)
            if self.line is not None:
                where += f":{self.line}"
                if self.column is not None:
                    where += f":{self.column}"
            where += ": "
        field = f"{self.field}: " if self.field else ""
        return f"{where}{field}{self.message}"


class UserErrors(UserError):
    """Several user errors found together (for example while validating many files)."""

    def __init__(self, errors: list[UserError]) -> None:
        super().__init__("\n".join(str(e) for e in errors))
        self.errors = errors

    def __str__(self) -> str:
        return "\n".join(str(e) for e in self.errors)


def gather(function: Callable[[T], R], items: Iterable[T]) -> list[R]:
    """Apply ``function`` to every item, then raise every user error found at once."""
    results: list[R] = []
    errors: list[UserError] = []
    for item in items:
        try:
            results.append(function(item))
        except UserErrors as exc:
            errors += exc.errors
        except UserError as exc:
            errors.append(exc)
    if errors:
        raise UserErrors(errors)
    return results


class SimulationError(RuntimeError):
    """A simulation failed (for example it went numerically unstable)."""
