"""Finding and loading plugins: every plugin, built-in or not, comes from an entry point.

Each entry point in the group ``turbexp`` is loaded on its own: one that fails
to import is recorded with its error and the others keep working. Set
``TURBEXP_STRICT_PLUGINS=1`` to make any failure fatal (useful in CI).
"""

from __future__ import annotations

import importlib.metadata as md
import os
import sys
import traceback
from dataclasses import dataclass
from functools import cache
from typing import get_args

import click
import pluggy
from pydantic import ValidationError

from turbexp import hookspecs
from turbexp.errors import UserError
from turbexp.plugin_types import KINDS, Choice, ImageInputs, Plugin, Range

ENTRY_POINT_GROUP = "turbexp"


@dataclass(frozen=True)
class PluginInfo:
    """A registered plugin with where it came from."""

    kind: str
    name: str
    cls: type[Plugin]
    package: str
    version: str
    entry_point: str

    def create(self) -> Plugin:
        return self.cls()


@dataclass(frozen=True)
class CommandInfo:
    """A command a plugin package adds to ``turbexp``, with where it came from."""

    name: str
    command: click.Command
    package: str
    version: str
    entry_point: str


@dataclass(frozen=True)
class PluginFailure:
    """An entry point that could not be loaded or registered."""

    entry_point: str
    package: str
    version: str
    error: str


class Registry:
    """All plugins found in the environment, by kind and name."""

    def __init__(self) -> None:
        self.plugins: dict[str, dict[str, PluginInfo]] = {kind: {} for kind in KINDS}
        self.commands: dict[str, CommandInfo] = {}
        self.failures: list[PluginFailure] = []

    def get(self, kind: str, name: str) -> PluginInfo:
        """The plugin ``name`` of ``kind``, or a :class:`UserError` listing what exists."""
        found = self.plugins[kind].get(name)
        if found is not None:
            return found
        broken = [f for f in self.failures if f.entry_point == name]
        if broken:
            raise UserError(
                f"{kind} plugin {name!r} is installed (package {broken[0].package}) "
                f"but failed to load: {broken[0].error}"
            )
        known = ", ".join(sorted(self.plugins[kind])) or "none"
        hint = "".join(f"; package {f.package} failed to load ({f.error})" for f in self.failures)
        raise UserError(f"unknown {kind} plugin {name!r}; installed: {known}{hint}")

    def names(self, kind: str) -> list[str]:
        return sorted(self.plugins[kind])

    def all(self) -> list[PluginInfo]:
        return [info for kind in KINDS for info in self.plugins[kind].values()]


def strict_plugins() -> bool:
    """Whether TURBEXP_STRICT_PLUGINS asks for a failing plugin to fail the command."""
    return os.environ.get("TURBEXP_STRICT_PLUGINS", "") not in ("", "0", "false", "no")


def _short_error(exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" ({frames[-1].filename}:{frames[-1].lineno})" if frames else ""
    return f"{type(exc).__name__}: {exc}{where}"


def load_registry(entry_points: list[md.EntryPoint] | None = None) -> Registry:
    """Load every entry point of the ``turbexp`` group and collect its plugins."""
    if entry_points is None:
        entry_points = sorted(md.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name)
    registry = Registry()
    pm = pluggy.PluginManager("turbexp")
    pm.add_hookspecs(hookspecs)
    for ep in entry_points:
        package = ep.dist.name if ep.dist else "?"
        version = ep.dist.version if ep.dist else "?"
        module = None
        found: list[PluginInfo] = []
        commands: list[CommandInfo] = []
        try:
            module = ep.load()
            pm.register(module, name=ep.name)  # validates the hooks against their specs
            pm.check_pending()  # a misspelt hook fails here instead of never being called
            # each module's hooks are called on their own, so every plugin is known by package
            others = [p for p in pm.get_plugins() if p is not module]
            for hook_name, kind in hookspecs.HOOK_KINDS.items():
                register = _registrar(registry, found, kind, ep.name, package, version)
                pm.subset_hook_caller(hook_name, remove_plugins=others)(register=register)
            pm.subset_hook_caller("register_commands", remove_plugins=others)(
                register=_command_registrar(registry, commands, ep.name, package, version))
        except Exception as exc:  # a broken plugin must not take the tool down
            if module is not None and pm.is_registered(module):
                pm.unregister(module)
            if strict_plugins():
                raise UserError(f"plugin {ep.name!r} from {package} {version} failed to load: "
                                f"{_short_error(exc)} (TURBEXP_STRICT_PLUGINS is set)") from exc
            registry.failures.append(PluginFailure(ep.name, package, version, _short_error(exc)))
            continue
        for info in found:
            registry.plugins[info.kind][info.name] = info
        registry.commands |= {c.name: c for c in commands}
    return registry


def _command_registrar(registry: Registry, found: list[CommandInfo], ep_name: str,
                       package: str, version: str):
    def register(command: click.Command) -> None:
        if not isinstance(command, click.Command) or not command.name:
            raise TypeError(f"{command!r} registered as a command is not a named click.Command")
        existing = registry.commands.get(command.name) or next(
            (c for c in found if c.name == command.name), None)
        if existing is not None:
            raise TypeError(f"command {command.name!r} is already registered by "
                            f"{existing.package}")
        found.append(CommandInfo(command.name, command, package, version, ep_name))

    return register


def _registrar(registry: Registry, found: list[PluginInfo], kind: str, ep_name: str,
               package: str, version: str):
    base = KINDS[kind]

    def register(cls: type[Plugin]) -> None:
        if not (isinstance(cls, type) and issubclass(cls, base)):
            raise TypeError(f"{cls!r} registered as a {kind} plugin is not a {base.__name__}")
        if not getattr(cls, "name", None):
            raise TypeError(f"{cls.__name__} has no name")
        check_search_space(cls)
        if kind == "features" and cls.inputs not in get_args(ImageInputs):
            raise TypeError(f"{cls.__name__}.inputs is {cls.inputs!r}; one of "
                            f"{', '.join(get_args(ImageInputs))} was expected")
        existing = registry.plugins[kind].get(cls.name) or next(
            (i for i in found if (i.kind, i.name) == (kind, cls.name)), None
        )
        if existing is not None:
            raise TypeError(
                f"{kind} plugin {cls.name!r} is already registered by {existing.package}"
            )
        found.append(PluginInfo(kind, cls.name, cls, package, version, ep_name))

    return register


def check_search_space(cls: type[Plugin]) -> None:
    """A plugin's default search space must name its parameters and admit its bounds."""
    fields = cls.Params.model_fields
    for key, space in cls.search_space.items():
        if key not in fields:
            raise TypeError(f"{cls.__name__}.search_space names {key!r}, not a parameter")
        if not isinstance(space, Range | Choice):
            raise TypeError(f"{cls.__name__}.search_space[{key!r}] is not a Range or Choice")
        values = space.choices if isinstance(space, Choice) else (space.low, space.high)
        for value in values:
            if fields[key].annotation is int and isinstance(value, float):
                value = int(value)
            try:
                cls.Params(**{key: value})
            except ValidationError as exc:
                raise TypeError(f"{cls.__name__}.search_space[{key!r}]: {value!r} is not a valid "
                                f"value ({exc.errors()[0]['msg']})") from None


@cache
def registry() -> Registry:
    """The process-wide registry, loaded once; failures are warned about on stderr."""
    found = load_registry()
    for failure in found.failures:
        print(
            f"warning: plugin {failure.entry_point!r} from {failure.package} {failure.version} "
            f"failed to load: {failure.error}",
            file=sys.stderr,
        )
    return found
