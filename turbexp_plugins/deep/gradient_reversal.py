"""The gradient reversal layer of adversarial training (Ganin & Lempitsky, 2015).

Forward it is the identity; backward it multiplies the gradient by ``-weight``,
so the layers before it learn to defeat whatever head comes after it.
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops


def reverse_gradient(x: Any, weight: float) -> Any:
    """``x`` unchanged, with its gradient multiplied by ``-weight`` on the way back."""
    frozen = ops.stop_gradient(x)
    return frozen + ops.multiply(-weight, ops.subtract(x, frozen))


@keras.saving.register_keras_serializable(package="turbexp")
class GradientReversal(keras.layers.Layer):
    """Identity forward, gradient × ``-weight`` backward."""

    def __init__(self, weight: float = 1.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.weight = float(weight)

    def call(self, inputs: Any) -> Any:
        return reverse_gradient(inputs, self.weight)

    def compute_output_shape(self, input_shape: Any) -> Any:
        return input_shape

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "weight": self.weight}
