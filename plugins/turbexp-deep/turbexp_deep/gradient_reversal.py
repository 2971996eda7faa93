"""The gradient reversal layer of adversarial training (Ganin & Lempitsky, 2015).

Forward it is the identity; backward it multiplies the gradient by ``-scale``,
so the layers before it learn to defeat whatever head comes after it. ``scale``
is a non-trainable variable that starts at ``weight``; a training schedule
(:func:`dann_weight`, set each epoch by :class:`ReversalSchedule`) may assign it.
"""

from __future__ import annotations

import math
from typing import Any

from turbexp_deep.framework import keras

ops = keras.ops


def reverse_gradient(x: Any, weight: Any) -> Any:
    """``x`` unchanged, with its gradient multiplied by ``-weight`` on the way back."""
    frozen = ops.stop_gradient(x)
    return frozen + ops.multiply(-weight, ops.subtract(x, frozen))


def dann_weight(weight: float, gamma: float, progress: float) -> float:
    """The reversal weight at training ``progress`` p in [0, 1] under the schedule of Ganin et
    al. (JMLR 2016, "Domain-Adversarial Training of Neural Networks"):
    ``weight · (2 / (1 + exp(-gamma · p)) - 1)``, from 0 at p = 0 towards ``weight``;
    ``gamma`` 0 means no schedule (``weight`` throughout)."""
    if gamma == 0:
        return float(weight)
    p = min(max(float(progress), 0.0), 1.0)
    return float(weight) * (2.0 / (1.0 + math.exp(-gamma * p)) - 1.0)


@keras.saving.register_keras_serializable(package="turbexp")
class GradientReversal(keras.layers.Layer):
    """Identity forward, gradient × ``-scale`` backward; ``scale`` starts at ``weight``."""

    def __init__(self, weight: float = 1.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.weight = float(weight)
        self.scale = self.add_weight(shape=(), initializer=keras.initializers.Constant(weight),
                                     trainable=False, name="scale")

    def call(self, inputs: Any) -> Any:
        return reverse_gradient(inputs, ops.cast(self.scale, inputs.dtype))

    def compute_output_shape(self, input_shape: Any) -> Any:
        return input_shape

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "weight": self.weight}


class ReversalSchedule(keras.callbacks.Callback):
    """Sets a :class:`GradientReversal` layer's ``scale`` at the start of each epoch to
    :func:`dann_weight` at progress ``epoch / epochs``."""

    def __init__(self, layer: GradientReversal, weight: float, gamma: float,
                 epochs: int) -> None:
        super().__init__()
        self.layer = layer
        self.weight = float(weight)
        self.gamma = float(gamma)
        self.epochs = max(int(epochs), 1)
        self.applied: list[float] = []  # the scale of each epoch run

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        scale = dann_weight(self.weight, self.gamma, epoch / self.epochs)
        self.layer.scale.assign(scale)
        self.applied.append(scale)
