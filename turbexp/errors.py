"""Errors meant for the user: printed as one message, never as a traceback."""

from __future__ import annotations

import reprlib
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

T = TypeVar("T")
R = TypeVar("R")

MESSAGE_LIMIT = 2000
"""Characters of one error message at most; the rest is cut, and the message says so."""

_SHORT = reprlib.Repr()
_SHORT.maxlevel, _SHORT.maxstring, _SHORT.maxother, _SHORT.maxlong = 2, 60, 60, 40
_SHORT.maxdict = _SHORT.maxlist = _SHORT.maxtuple = _SHORT.maxset = 4


def shown(value: Any) -> str:
    """A value as an error message shows it: its repr, cut short at every level (a YAML of
    nested anchors expands without end)."""
    return _SHORT.repr(value)


class UserError(Exception):
    """A mistake in the user's input: which file, which field, what was expected."""

    def __init__(self, message: str, *, file: str | None = None, field: str | None = None,
                 line: int | None = None, column: int | None = None) -> None:
        if len(message) > MESSAGE_LIMIT:
            message = f"{message[:MESSAGE_LIMIT]}… (cut: {len(message)} characters in all)"
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
