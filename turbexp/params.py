"""A plugin's parameters from YAML: fixed values, search ranges, and sampling them with Optuna.

In a plugin section each parameter is either a value (fixed) or a search space:
``{low: 0.01, high: 100, log: true}`` or ``{choices: [a, b]}``. Parameters not
written take the plugin's default, or its default search space when the
experiment tunes defaults.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from pydantic import ValidationError

from turbexp.errors import UserError, UserErrors, shown
from turbexp.plugin_types import Choice, PluginParams, Range, SearchSpace
from turbexp.plugins import PluginInfo
from turbexp.spec import plain_errors
from turbexp.yamlfile import YamlDocument

_RANGE_KEYS = {"low", "high", "log", "step"}


@dataclass(frozen=True)
class ParamPlan:
    """What one plugin section resolves to: a plugin, fixed values and a search space."""

    plugin: PluginInfo
    section: str
    fixed: dict[str, Any]
    space: SearchSpace

    def sample(self, trial: optuna.Trial | optuna.trial.FrozenTrial | None) -> PluginParams:
        """Parameters for ``trial`` (the fixed ones only when ``trial`` is None)."""
        values = dict(self.fixed)
        if trial is not None:
            for key, dist in self.space.items():
                values[key] = _suggest(trial, f"{self.section}.{key}",
                                       _distribution(dist, self._is_int(key)))
        return self.plugin.cls.Params(**values)

    def distributions(self) -> dict[str, BaseDistribution]:
        """The search space as Optuna distributions, named ``section.key``."""
        return {f"{self.section}.{key}": _distribution(dist, self._is_int(key))
                for key, dist in self.space.items()}

    def _is_int(self, key: str) -> bool:
        return self.plugin.cls.Params.model_fields[key].annotation is int


def _distribution(dist: Range | Choice, is_int: bool) -> BaseDistribution:
    if isinstance(dist, Choice):
        return CategoricalDistribution(list(dist.choices))
    if is_int:
        return IntDistribution(int(dist.low), int(dist.high), log=dist.log,
                               step=int(dist.step or 1))
    return FloatDistribution(dist.low, dist.high, log=dist.log, step=dist.step)


def _suggest(trial: Any, name: str, dist: BaseDistribution) -> Any:
    if isinstance(dist, CategoricalDistribution):
        return trial.suggest_categorical(name, list(dist.choices))
    if isinstance(dist, IntDistribution):
        return trial.suggest_int(name, dist.low, dist.high, step=dist.step, log=dist.log)
    assert isinstance(dist, FloatDistribution)
    return trial.suggest_float(name, dist.low, dist.high, log=dist.log, step=dist.step)


def plan_params(plugin: PluginInfo, values: dict[str, Any], *, doc: YamlDocument,
                loc: tuple, tune_defaults: bool) -> ParamPlan:
    """Check a plugin section's parameters against the plugin's model."""
    model: type[PluginParams] = plugin.cls.Params
    fields = model.model_fields
    errors: list[UserError] = []
    fixed: dict[str, Any] = {}
    space: SearchSpace = {}
    for key, value in values.items():
        where = (*loc, key)
        if key not in fields:
            known = ", ".join(fields) or "none"
            errors.append(doc.error(
                f"unknown parameter of {plugin.kind} plugin {plugin.name!r}; expected one of: "
                f"{known}", where))
            continue
        try:
            dist = _as_space(value)
        except ValueError as exc:
            errors.append(doc.error(str(exc), where))
            continue
        if dist is None:
            fixed[key] = value
        else:
            space[key] = dist
            errors += _check_space(model, key, dist, doc, where)
    try:
        model(**fixed)
    except ValidationError as exc:
        for where, err in plain_errors(exc):
            msg = err["msg"].removeprefix("Value error, ")
            errors.append(doc.error(f"{msg}, got {shown(err.get('input'))}", (*loc, *where)))
    if errors:
        raise UserErrors(errors)
    if tune_defaults:
        for key, dist in plugin.cls.search_space.items():
            if key not in fixed and key not in space:
                space[key] = dist
    return ParamPlan(plugin=plugin, section=loc[0] if len(loc) == 1 else ".".join(map(str, loc)),
                     fixed=fixed, space=space)


def _as_space(value: Any) -> Range | Choice | None:
    """A search space written as a mapping, or None for a fixed value (a mapping without
    ``low``/``high``/``choices`` is a value, for parameters that take one)."""
    if not isinstance(value, dict):
        return None
    keys = set(value)
    if not keys & (_RANGE_KEYS | {"choices"}):
        return None
    if keys == {"choices"}:
        if not isinstance(value["choices"], list) or not value["choices"]:
            raise ValueError("choices must be a non-empty list")
        return Choice(tuple(value["choices"]))
    if {"low", "high"} <= keys <= _RANGE_KEYS:
        low, high = value["low"], value["high"]
        if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in (low, high)):
            raise ValueError("low and high must be numbers")
        if not all(math.isfinite(v) for v in (low, high)):
            raise ValueError(f"low and high must be finite, got {low} and {high}")
        if low >= high:
            raise ValueError(f"low ({low}) must be below high ({high})")
        if not isinstance(value.get("log", False), bool):
            raise ValueError(f"log must be true or false, got {shown(value['log'])}")
        if value.get("log") and low <= 0:
            raise ValueError("a log range needs low > 0")
        if value.get("log") and value.get("step") is not None:
            raise ValueError("a range takes log or step, not both")
        if value.get("step") is not None and (
            not isinstance(value["step"], int | float) or isinstance(value["step"], bool)
            or not math.isfinite(value["step"]) or value["step"] <= 0
        ):
            raise ValueError("step must be a positive number")
        return Range(float(low), float(high), bool(value.get("log", False)), value.get("step"))
    raise ValueError(
        "a search space is {low: L, high: H[, log: true][, step: S]} or {choices: [...]}"
    )


def _check_space(model: type[PluginParams], key: str, dist: Range | Choice,
                 doc: YamlDocument, where: tuple) -> list[UserError]:
    candidates = dist.choices if isinstance(dist, Choice) else (dist.low, dist.high)
    if isinstance(dist, Range) and model.model_fields[key].annotation is int:
        candidates = (int(dist.low), int(dist.high))
    errors = []
    for candidate in candidates:
        try:
            model(**{key: candidate})
        except ValidationError as exc:
            msg = exc.errors()[0]["msg"].removeprefix("Value error, ")
            errors.append(doc.error(f"{msg}, got {shown(candidate)} in the search space", where))
    return errors
