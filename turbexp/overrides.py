"""Values of a YAML file changed before it is validated: ``--set KEY=VALUE`` and scales.

A key is a dotted path into the file (``data.images.size``, ``groups.0.count``).
It must name a field of the file's model, or a parameter inside a plugin section
(``estimator.epochs``: the plugin checks it like a value written in the file).
A file's ``scales`` section holds named sets of such keys; ``--scale NAME``
applies the set named NAME of every file. Validating a file without a scale checks
it at each of its scales too.
"""

from __future__ import annotations

import copy
import types
import typing
from collections.abc import Callable
from typing import Any

import yaml
from pydantic import BaseModel

from turbexp.errors import UserError, UserErrors
from turbexp.yamlfile import YamlDocument

CAMPAIGN_PREFIX = "campaign."
"""Keys of an experiment override that apply to its campaign file instead."""


def parse_assignments(items: tuple[str, ...] | list[str]) -> dict[str, Any]:
    """``KEY=VALUE`` strings as a mapping; each value is read as YAML (``64``, ``true``,
    ``[x, y]``, ``{low: 1, high: 2}``)."""
    found: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key or any(not part for part in key.split(".")):
            raise UserError(f"--set {item!r}: expected KEY=VALUE with a dotted KEY, "
                            "e.g. --set data.images.size=64")
        try:
            found[key] = yaml.safe_load(text) if text.strip() else ""
        except yaml.YAMLError as exc:
            raise UserError(f"--set {key}: the value {text!r} is not valid YAML: "
                            f"{getattr(exc, 'problem', exc)}") from None
    return found


def split_campaign(overrides: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the experiment's own keys, the keys of its campaign with the prefix removed)."""
    own = {k: v for k, v in overrides.items() if not k.startswith(CAMPAIGN_PREFIX)}
    campaign = {k.removeprefix(CAMPAIGN_PREFIX): v for k, v in overrides.items()
                if k.startswith(CAMPAIGN_PREFIX)}
    return own, campaign


def scale_of(doc: YamlDocument, scale: str | None) -> dict[str, Any]:
    """The keys the file's scale ``scale`` sets (none for ``None``)."""
    if scale is None:
        return {}
    scales = doc.data.get("scales") or {}
    if not isinstance(scales, dict) or scale not in scales:
        known = ", ".join(sorted(scales)) if isinstance(scales, dict) and scales else "none"
        raise doc.error(f"no scale {scale!r} in this file (its scales: {known})", ("scales",))
    chosen = scales[scale] or {}
    if not isinstance(chosen, dict) or not all(isinstance(k, str) for k in chosen):
        raise doc.error("a scale is a mapping of dotted keys to values", ("scales", scale))
    return chosen


def check_scales(doc: YamlDocument, plan_at: Callable[[str], object]) -> None:
    """Plan the file at each of its scales (``plan_at(name)``), so that a mistake in a scale
    is found before anyone asks for it; its errors say which scale."""
    scales = doc.data.get("scales")
    errors: list[UserError] = []
    for name in scales if isinstance(scales, dict) else ():
        try:
            plan_at(name)
        except UserErrors as exc:
            errors += [_under_scale(name, e) for e in exc.errors]
        except UserError as exc:
            errors.append(_under_scale(name, exc))
    if errors:
        raise UserErrors(errors)


def _under_scale(name: str, error: UserError) -> UserError:
    if error.file is None:  # a key the scale sets: the message names the scale already
        return error
    return UserError(f"with --scale {name}: {error.message}", file=error.file,
                     field=error.field, line=error.line, column=error.column)


def apply(doc: YamlDocument, overrides: dict[str, Any], model: type[BaseModel], *,
          source: str) -> YamlDocument:
    """A copy of ``doc`` with ``overrides`` set; a key the model does not know is one clear
    error naming ``source`` (``--set`` or the scale) and what was expected there."""
    if not overrides:
        return doc
    data = copy.deepcopy(doc.data)
    for key, value in overrides.items():
        parts = key.split(".")
        _check_key(model, parts, source, key)
        _assign(data, parts, value, source, key)
    return YamlDocument(doc.path, data, doc.root)


def _check_key(model: type[BaseModel], parts: list[str], source: str, key: str) -> None:
    current: Any = model
    for depth, part in enumerate(parts):
        current = _unwrap(current)
        if isinstance(current, type) and issubclass(current, BaseModel):
            if current.model_config.get("extra") == "allow" and part not in current.model_fields:
                return  # a plugin section: the plugin checks its own parameters
            if part not in current.model_fields:
                where = ".".join(parts[:depth]) or "the top level"
                raise UserError(f"{source}{key}: unknown key {part!r} at {where}; expected "
                                f"one of: {', '.join(current.model_fields)}")
            current = current.model_fields[part].annotation
        elif typing.get_origin(current) is list:
            if not part.isdigit():
                raise UserError(f"{source}{key}: {'.'.join(parts[:depth])} is a list; "
                                f"expected a position (0, 1, …), got {part!r}")
            current = typing.get_args(current)[0]
        elif typing.get_origin(current) is dict:
            current = typing.get_args(current)[1]
        else:
            raise UserError(f"{source}{key}: {'.'.join(parts[:depth])} takes a value, "
                            "not keys below it")


def _unwrap(annotation: Any) -> Any:
    """The model, list or dict inside ``X | None`` and ``Annotated[X, ...]``."""
    for _ in range(4):
        origin = typing.get_origin(annotation)
        if origin is typing.Annotated:
            annotation = typing.get_args(annotation)[0]
            continue
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if origin in (typing.Union, types.UnionType):
            structured = [a for a in args if _structured(a)]
            annotation = structured[0] if structured else args[0]
            continue
        break
    return annotation


def _structured(annotation: Any) -> bool:
    annotation = typing.get_args(annotation)[0] if typing.get_origin(annotation) \
        is typing.Annotated else annotation
    return (isinstance(annotation, type) and issubclass(annotation, BaseModel)) or \
        typing.get_origin(annotation) in (list, dict)


def _assign(data: Any, parts: list[str], value: Any, source: str, key: str) -> None:
    current = data
    for depth, part in enumerate(parts[:-1]):
        if isinstance(current, list):
            current = _item(current, part, parts[:depth + 1], source, key)
            continue
        child = current.get(part)
        if isinstance(child, str):  # a plugin given by name alone: `features: hog`
            child = current[part] = {"plugin": child}
        elif child is None:
            child = current[part] = {}
        elif not isinstance(child, dict | list):
            raise UserError(f"{source}{key}: {'.'.join(parts[:depth + 1])} holds a value "
                            f"({child!r}), not keys below it")
        current = child
    last = parts[-1]
    if isinstance(current, list):
        index = int(last)
        if index >= len(current):
            raise UserError(f"{source}{key}: the list has {len(current)} entries")
        current[index] = value
    else:
        current[last] = value


def _item(items: list, part: str, where: list[str], source: str, key: str) -> Any:
    index = int(part)
    if index >= len(items):
        raise UserError(f"{source}{key}: {'.'.join(where[:-1])} has {len(items)} entries")
    if isinstance(items[index], str):  # a plugin given by name alone: `reports: [roc]`
        items[index] = {"plugin": items[index]}
    if not isinstance(items[index], dict):
        raise UserError(f"{source}{key}: {'.'.join(where)} holds a value, not keys below it")
    return items[index]
