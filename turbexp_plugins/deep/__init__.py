"""Deep-learning plugins (the ``deep`` extra: ``pip install "turbexp[deep]"``).

- estimators ``cnn`` (the reference CNN) and ``debiased_cnn`` (adversarial debiasing);
- features ``transfer`` (the frozen trunk of a logged CNN);
- reports ``saliency``, ``embeddings`` and ``debiasing``.

Loading this entry point only checks that the extra is installed; TensorFlow
itself is imported when a model is built or a report drawn. Without the extra
the entry point fails to load and ``turbexp plugins`` names the missing module.
"""

from __future__ import annotations

import importlib.util
import os

from turbexp.api import MissingExtra, Register, hookimpl

REQUIRED = {"tensorflow": "tensorflow", "keras": "keras", "tf_keras_vis": "tf-keras-vis"}

for _module, _package in REQUIRED.items():
    if importlib.util.find_spec(_module) is None:
        raise MissingExtra(
            f"No module named {_module!r}: install the deep extra, pip install "
            f"'turbexp[deep]' (package {_package})", name=_module)

# TensorFlow's C++ start-up notes (CPU features, no CUDA driver) only when asked for
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from turbexp_plugins.deep.plugins import (  # noqa: E402  (after the check above)
    Cnn,
    DebiasedCnn,
    DebiasingReport,
    EmbeddingsReport,
    SaliencyReport,
    Transfer,
)


@hookimpl
def register_estimators(register: Register) -> None:
    register(Cnn)
    register(DebiasedCnn)


@hookimpl
def register_features(register: Register) -> None:
    register(Transfer)


@hookimpl
def register_reports(register: Register) -> None:
    register(SaliencyReport)
    register(EmbeddingsReport)
    register(DebiasingReport)
