"""Deep-learning plugins for turbexp (the distribution ``turbexp-deep``).

- estimators ``cnn`` (the reference CNN) and ``debiased_cnn`` (adversarial debiasing);
- features ``pixels`` (the images themselves, for the image models) and ``transfer``
  (the frozen trunk of a logged CNN);
- reports ``saliency``, ``embeddings`` and ``debiasing``.

Loading this entry point imports no framework: TensorFlow is imported when a model is
built or a report drawn (once, by :mod:`turbexp_deep.framework`, which keeps its start-up
notes off the terminal), so listing and validating plugins stay quick.
"""

from __future__ import annotations

from turbexp.api import Register, hookimpl
from turbexp_deep.pixels import Pixels
from turbexp_deep.plugins import (
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
    register(Pixels)
    register(Transfer)


@hookimpl
def register_reports(register: Register) -> None:
    register(SaliencyReport)
    register(EmbeddingsReport)
    register(DebiasingReport)
