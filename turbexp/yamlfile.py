"""Reading YAML safely, keeping where each value was written for error messages."""

from __future__ import annotations

import stat
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from turbexp.errors import UserError

MAX_BYTES = 1_000_000
"""A campaign or experiment file is at most this long."""
MAX_DEPTH = 50
"""Collections nest at most this deep in a file."""


class _UniqueKeyLoader(yaml.SafeLoader):
    """A safe loader that keeps every mapping key as written (so ``on``, ``no``, ``null``
    and ``1.5`` are names, not YAML 1.1's booleans, null and numbers) and refuses a key
    written twice in one mapping or one that is a collection."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        mapping: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                kind = "list" if isinstance(key_node, yaml.SequenceNode) else "dict"
                raise yaml.constructor.ConstructorError(
                    None, None, f"a key must be a name or a number, not a {kind}",
                    key_node.start_mark)
            key = key_node.value
            if key in mapping:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            mapping[key] = self.construct_object(value_node, deep=deep)
        return mapping


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
    text = _read(path)
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        depth = _depth(root)
        if depth > MAX_DEPTH:
            raise UserError(f"collections nest {depth} deep; at most {MAX_DEPTH} are read",
                            file=str(path))
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # a SafeLoader subclass
    except RecursionError:
        raise UserError(f"collections nest too deep; at most {MAX_DEPTH} are read",
                        file=str(path)) from None
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


def resolved(path: Path) -> Path:
    """``path`` made absolute with its symbolic links followed; a loop of links is one
    clear error."""
    try:
        return path.resolve()
    except RuntimeError:
        raise UserError("a loop of symbolic links, not a file", file=str(path)) from None


def _read(path: Path) -> str:
    """The text of a regular file of at most :data:`MAX_BYTES`, or one clear error (a FIFO
    or a device is refused before it is opened, so it cannot hang or fill memory)."""
    try:
        status = path.stat()
    except FileNotFoundError:
        raise UserError("file not found", file=str(path)) from None
    except OSError as exc:  # a loop of symbolic links among them
        raise UserError(f"cannot read: {exc.strerror or exc}", file=str(path)) from None
    if stat.S_ISDIR(status.st_mode):
        raise UserError("is a folder, expected a YAML file", file=str(path))
    if not stat.S_ISREG(status.st_mode):
        raise UserError("not a regular file (a pipe or a device?), expected a YAML file",
                        file=str(path))
    if status.st_size > MAX_BYTES:
        raise UserError(f"{status.st_size} bytes; a YAML file here is at most {MAX_BYTES}",
                        file=str(path))
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"cannot read: {exc}", file=str(path)) from None


def _depth(node: yaml.Node | None) -> int:
    """How deep collections nest under ``node``, without recursion; a node an alias shares is
    walked again only when reached deeper, so nested anchors cost no more than their text."""
    deepest, stack = 0, [(node, 1)] if node is not None else []
    reached: dict[int, int] = {}
    while stack:
        current, level = stack.pop()
        if reached.get(id(current), 0) >= level:
            continue
        reached[id(current)] = level
        deepest = max(deepest, level)
        if isinstance(current, yaml.SequenceNode):
            stack += [(child, level + 1) for child in current.value]
        elif isinstance(current, yaml.MappingNode):
            stack += [(child, level + 1) for pair in current.value for child in pair]
    return deepest
