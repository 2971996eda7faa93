"""The reference CNN: convolution + max pooling blocks, then dense layers with dropout.

The default is the reference study's network: four 3×3 convolutional layers with
ReLU, each followed by 2×2 max pooling, then three dense layers (two hidden
ReLU layers with dropout, and the output), trained with RMSprop. Layers are
named so the parts can be found again: ``conv_i``, ``pool_i``, ``features``
(the flattened output of the convolutional trunk), ``dense_i``, ``dropout_i``,
``output``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from turbexp_deep.framework import keras

TRUNK_OUTPUT = "features"


@dataclass(frozen=True)
class Architecture:
    """The tunable shape of the network."""

    conv_layers: int = 4
    filters: int = 32
    kernel_size: int = 3
    dense_layers: int = 3
    dense_units: int = 128
    dropout: float = 0.25

    def widths(self) -> list[int]:
        """Filters of each convolutional layer: doubling from ``filters``, at most 4×."""
        return [self.filters * 2 ** min(i, 2) for i in range(self.conv_layers)]

    def hidden(self) -> list[int]:
        """Units of each hidden dense layer: halving from ``dense_units``, at least 8."""
        return [max(8, self.dense_units // 2**i) for i in range(self.dense_layers - 1)]


def trunk(inputs: Any, arch: Architecture) -> Any:
    """The convolutional trunk: conv (ReLU) + max pooling blocks, flattened."""
    h = inputs
    for i, width in enumerate(arch.widths(), start=1):
        h = keras.layers.Conv2D(width, arch.kernel_size, padding="same", activation="relu",
                                name=f"conv_{i}")(h)
        # "same" padding keeps at least one pixel however deep the network
        h = keras.layers.MaxPooling2D(2, padding="same", name=f"pool_{i}")(h)
    return keras.layers.Flatten(name=TRUNK_OUTPUT)(h)


def head(features: Any, arch: Architecture, outputs: int, activation: str | None,
         prefix: str = "", name: str = "output") -> Any:
    """Hidden dense layers with dropout, then the output layer."""
    h = features
    for i, units in enumerate(arch.hidden(), start=1):
        h = keras.layers.Dense(units, activation="relu", name=f"{prefix}dense_{i}")(h)
        h = keras.layers.Dropout(arch.dropout, name=f"{prefix}dropout_{i}")(h)
    return keras.layers.Dense(outputs, activation=activation, name=name)(h)


def output_units(task: str, n_classes: int) -> tuple[int, str | None]:
    """Units and activation of the output layer for a task."""
    if task == "regress":
        return 1, None
    return (1, "sigmoid") if n_classes == 2 else (n_classes, "softmax")


def loss_and_metrics(task: str, n_classes: int) -> tuple[str, list[Any]]:
    """The training loss and the metrics logged each epoch."""
    if task == "regress":
        return "mse", [keras.metrics.MeanAbsoluteError(name="mae")]
    if n_classes == 2:
        return "binary_crossentropy", [keras.metrics.BinaryAccuracy(name="accuracy"),
                                       keras.metrics.AUC(name="auc")]
    return "sparse_categorical_crossentropy", [
        keras.metrics.SparseCategoricalAccuracy(name="accuracy")]


def task_output(features: Any, arch: Architecture, task: str, n_classes: int = 2,
                target_mean: float = 0.0, target_scale: float = 1.0, prefix: str = "",
                name: str = "output") -> Any:
    """The head of ``task`` on ``features``; a regression output is rescaled to the target's
    units (``target_mean`` + ``target_scale`` × the raw output), so losses are in those units."""
    units, activation = output_units(task, n_classes)
    if task != "regress":
        return head(features, arch, units, activation, prefix, name)
    raw = head(features, arch, units, activation, prefix, f"{prefix}raw_{name}")
    return keras.layers.Rescaling(target_scale, offset=target_mean, name=name)(raw)


def build(input_shape: tuple[int, ...], arch: Architecture, task: str, n_classes: int = 2,
          target_mean: float = 0.0, target_scale: float = 1.0) -> keras.Model:
    """The reference CNN for ``task``."""
    inputs = keras.Input(input_shape, name="image")
    out = task_output(trunk(inputs, arch), arch, task, n_classes, target_mean, target_scale)
    return keras.Model(inputs, out, name="cnn")


def last_conv_layer(model: keras.Model) -> keras.layers.Layer:
    """The last convolutional layer of a model."""
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    if not convs:
        raise ValueError(f"model {model.name!r} has no convolutional layer")
    return convs[-1]


def submodel(model: keras.Model, layer: str | keras.layers.Layer) -> keras.Model:
    """The part of ``model`` from its input to the output of ``layer``."""
    target = model.get_layer(layer) if isinstance(layer, str) else layer
    return keras.Model(model.input, target.output, name=f"{model.name}_to_{target.name}")
