"""Multiply-accumulates and parameters counted from a Keras graph (no conversion needed).

Counted: the MACs of the layers that multiply by weights, for one sample
(batch 1), from each layer's input and output shapes:

- Conv1D/2D/3D: output positions x kernel size x input channels / groups x filters
- Conv2DTranspose: input positions x kernel size x input channels x filters
- DepthwiseConv1D/2D: output positions x kernel size x input channels x depth multiplier
- SeparableConv1D/2D: its depthwise part + output positions x (input channels x multiplier) x filters
- Dense: leading positions (1 after Flatten/pooling) x inputs x units

Not counted: bias adds, BatchNormalization (the TFLite converter folds it
into the preceding conv), activations, pooling and elementwise merges.
`artifact.op_macs` counts the same multiplying ops in a `.tflite` and also
one MAC per output element of ADD/SUB/MUL, pooling and MEAN, so its total is
slightly higher (e.g. 78,944 vs 76,864 on the pruned digits model).
"""

from __future__ import annotations

from typing import Any

import numpy as np


def _shape(tensor: Any) -> tuple[int, ...]:
    return tuple(int(d) if d is not None else 1 for d in tensor.shape)


def _positions(shape: tuple[int, ...]) -> int:
    """Number of positions besides the batch and channel axes."""
    return int(np.prod(shape[1:-1])) if len(shape) > 2 else 1


def layer_macs(layer: Any) -> int:
    """MACs of one called tf_keras layer for one sample; 0 for layers without multiplications by weights."""
    kind = type(layer).__name__
    if kind not in _COUNTED:
        return 0
    try:
        inputs, outputs = layer.input, layer.output
    except (AttributeError, ValueError):  # never called, or called more than once
        return 0
    if isinstance(inputs, (list, tuple)) or isinstance(outputs, (list, tuple)):
        return 0
    in_shape, out_shape = _shape(inputs), _shape(outputs)
    c_in, c_out = in_shape[-1], out_shape[-1]
    if kind == "Dense":
        return _positions(in_shape) * c_in * c_out
    kernel = int(np.prod(layer.kernel_size))
    if kind in ("Conv1D", "Conv2D", "Conv3D"):
        return _positions(out_shape) * kernel * (c_in // max(1, int(getattr(layer, "groups", 1)))) * c_out
    if kind in ("Conv2DTranspose", "Conv1DTranspose", "Conv3DTranspose"):
        return _positions(in_shape) * kernel * c_in * c_out
    if kind in ("DepthwiseConv1D", "DepthwiseConv2D"):
        return _positions(out_shape) * kernel * c_in * int(layer.depth_multiplier)
    if kind in ("SeparableConv1D", "SeparableConv2D"):
        mid = c_in * int(layer.depth_multiplier)
        return _positions(out_shape) * (kernel * mid + mid * c_out)
    return 0


_COUNTED = {
    "Dense",
    "Conv1D",
    "Conv2D",
    "Conv3D",
    "Conv1DTranspose",
    "Conv2DTranspose",
    "Conv3DTranspose",
    "DepthwiseConv1D",
    "DepthwiseConv2D",
    "SeparableConv1D",
    "SeparableConv2D",
}


def model_macs(model: Any) -> dict[str, int]:
    """{layer name: MACs} for every layer that does multiply-accumulates (see the module doc)."""
    return {layer.name: m for layer in model.layers if (m := layer_macs(layer))}


def summary(model: Any) -> dict[str, int]:
    """{"params", "trainable_params", "macs"} of a tf_keras model, for one sample."""
    trainable = int(sum(int(np.prod(w.shape)) for w in model.trainable_weights))
    return {
        "params": int(model.count_params()),
        "trainable_params": trainable,
        "macs": int(sum(model_macs(model).values())),
    }
