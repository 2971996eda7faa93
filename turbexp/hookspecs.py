"""Hook specifications: how a plugin package hands its plugins to turbexp.

A plugin module (named by an entry point in the group ``turbexp``) implements
any of these hooks with ``@turbexp.hookimpl`` and calls ``register`` once per
plugin class it provides::

    import turbexp
    from turbexp.plugin_types import FeatureExtractor

    class PixelStats(FeatureExtractor):
        name = "pixel_stats"
        ...

    @turbexp.hookimpl
    def register_features(register):
        register(PixelStats)
"""

from __future__ import annotations

from collections.abc import Callable

import pluggy

hookspec = pluggy.HookspecMarker("turbexp")
hookimpl = pluggy.HookimplMarker("turbexp")

Register = Callable[[type], None]


@hookspec
def register_simulators(register: Register) -> None:
    """Register :class:`~turbexp.plugin_types.Simulator` subclasses."""


@hookspec
def register_features(register: Register) -> None:
    """Register :class:`~turbexp.plugin_types.FeatureExtractor` subclasses."""


@hookspec
def register_estimators(register: Register) -> None:
    """Register :class:`~turbexp.plugin_types.Estimator` subclasses."""


@hookspec
def register_reports(register: Register) -> None:
    """Register :class:`~turbexp.plugin_types.Report` subclasses."""


HOOK_KINDS = {
    "register_simulators": "simulator",
    "register_features": "features",
    "register_estimators": "estimator",
    "register_reports": "report",
}
