"""Hook specifications: how a plugin package hands its plugins to turbexp.

A plugin module (named by an entry point in the group ``turbexp``) implements
any of these hooks with ``@turbexp.api.hookimpl`` and calls ``register`` once per
plugin class it provides::

    from turbexp.api import FeatureExtractor, hookimpl

    class PixelStats(FeatureExtractor):
        name = "pixel_stats"
        ...

    @hookimpl
    def register_features(register):
        register(PixelStats)
"""

from __future__ import annotations

from collections.abc import Callable

import pluggy

hookspec = pluggy.HookspecMarker("turbexp")
hookimpl = pluggy.HookimplMarker("turbexp")

Register = Callable[[type], None]


# Every hook receives ``register``, to be called once per class the module provides, and
# returns nothing. ``register`` raises TypeError for a class that does not derive from the
# hook's base, has no ``name``, has a default search space its ``Params`` refuse, or takes a
# name another plugin of the same kind has. Any exception a hook raises (TypeError from
# ``register``, an ImportError) marks the whole module as failed: none of its plugins is
# registered, ``turbexp plugins`` shows the error, and the other plugins load as usual
# (``TURBEXP_STRICT_PLUGINS=1`` makes it fatal instead).


@hookspec
def register_simulators(register: Register) -> None:
    """Register :class:`~turbexp.plugin_types.Simulator` subclasses: campaign files name
    them in ``simulator.plugin``."""


@hookspec
def register_features(register: Register) -> None:
    """Register :class:`~turbexp.plugin_types.FeatureExtractor` subclasses: experiment
    files name them in ``features.plugin``."""


@hookspec
def register_estimators(register: Register) -> None:
    """Register :class:`~turbexp.plugin_types.Estimator` subclasses: experiment files name
    them in ``estimator.plugin``."""


@hookspec
def register_reports(register: Register) -> None:
    """Register :class:`~turbexp.plugin_types.Report` subclasses: experiment files list
    them in ``evaluate.reports``."""


@hookspec
def register_commands(register: Register) -> None:
    """Register :class:`click.Command` objects: each becomes ``turbexp NAME`` (its
    ``name``), for views and tools that are not machinery. A built-in command of the same
    name wins; ``turbexp plugins`` lists plugin commands with their package. The command
    runs under turbexp's error handling: a :class:`~turbexp.errors.UserError` it raises is
    one message and exit status 2."""


HOOK_KINDS = {
    "register_simulators": "simulator",
    "register_features": "features",
    "register_estimators": "estimator",
    "register_reports": "report",
}
