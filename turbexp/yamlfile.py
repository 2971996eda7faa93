"""Reading YAML safely, keeping where each value was written for error messages."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from turbexp.errors import UserError


class _UniqueKeyLoader(yaml.SafeLoader):
    """A safe loader that refuses a key written twice in one mapping."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: dict[Any, yaml.Node] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            seen[key] = key_node
        return super().construct_mapping(node, deep=deep)


@dataclass
class YamlDocument:
    """A parsed YAML file: its data and its node tree (for line numbers)."""

    path: Path
    data: Any
    root: yaml.Node | None

    def position(self, loc: Sequence[str | int]) -> tuple[int | None, int | None]:
        """1-based (line, column) of the value at ``loc``, or of its nearest parent."""
        node = self.root
        best: yaml.Node | None = node
        for part in loc:
            child = _child(node, part)
            if child is None:
                break
            node = best = child
        if best is None:
            return None, None
        return best.start_mark.line + 1, best.start_mark.column + 1

    def error(self, message: str, loc: Sequence[str | int] = ()) -> UserError:
        """A :class:`UserError` pointing at ``loc`` in this file."""
        line, column = self.position(loc)
        field = ".".join(str(p) for p in loc) or None
        return UserError(message, file=str(self.path), field=field, line=line, column=column)


def _child(node: yaml.Node | None, part: str | int) -> yaml.Node | None:
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            if key_node.value == str(part):
                return value_node
    if isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
        return node.value[part]
    return None


def load_yaml(path: str | Path) -> YamlDocument:
    """Read ``path`` with a safe loader; any problem becomes one :class:`UserError`."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError("file not found", file=str(path)) from None
    except IsADirectoryError:
        raise UserError("is a folder, expected a YAML file", file=str(path)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"cannot read: {exc}", file=str(path)) from None
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        raise UserError(
            f"invalid YAML: {problem}",
            file=str(path),
            line=mark.line + 1 if mark else None,
            column=mark.column + 1 if mark else None,
        ) from None
    if data is None:
        raise UserError("the file is empty, expected a YAML mapping", file=str(path))
    if not isinstance(data, dict):
        raise UserError(
            f"expected a YAML mapping at the top, got {type(data).__name__}", file=str(path)
        )
    return YamlDocument(path=path, data=data, root=root)
