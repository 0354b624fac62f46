"""The TFLite converter's own quantizer, driven step by step: calibrate, quantize, and the debug model.

`TFLiteConverter.convert()` for full-integer int8 runs, in order: the float conversion, the calibrator
(`tensorflow.lite.python.optimize.calibrator.Calibrator`, which records every tensor's min/max over the
representative dataset) and the MLIR quantizer (`tensorflow.lite.python.convert.mlir_quantize`). The
quantization debugger (`tf.lite.experimental.QuantizationDebugger`) uses the same two functions, with
`enable_numeric_verify=True`, to build its debug model.

Calling them here on the build's float32 conversion with the build's calibration samples reproduces
the artifact's quantization (same scales, zero points and weights; `same_quantization` checks it on
every run) in a fraction of a second, without tracing the model again. The debug model is layer-wise:
next to every quantized op it runs the float op on that op's own dequantized inputs and feeds both to a
NumericVerify op, so the error each op adds can be read apart from the error it inherits.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from edgebuild.errors import UnsupportedError

_IO = {"float32": "float32", "int8": "int8", "uint8": "uint8", "int16": "int16"}


def _internals() -> tuple[Any, Any, Any]:
    from edgebuild._tf import tf

    tensorflow = tf()
    try:
        from tensorflow.lite.python import convert as tf_convert
        from tensorflow.lite.python.optimize import calibrator
    except ImportError as exc:  # these modules moved once TensorFlow stops shipping TFLite's converter
        raise UnsupportedError(
            f"This TensorFlow ({tensorflow.__version__}) does not have the TFLite quantizer modules the "
            f"per-layer analysis drives ({exc}). Use TensorFlow 2.16 to 2.21, or --set layers.enabled=false."
        ) from None
    return tensorflow, tf_convert, calibrator


def calibrate(float_blob: bytes, samples: np.ndarray) -> bytes:
    """The float model with every tensor's min/max over `samples` (one at a time, in order, like the build)."""
    from edgebuild.native_output import capture_native

    _, _, calibrator = _internals()

    def dataset() -> Iterator[list[np.ndarray]]:
        for sample in samples:
            yield [np.asarray(sample[None, ...], np.float32)]

    with capture_native():
        model = calibrator.add_intermediate_tensors(float_blob)
        return bytes(calibrator.Calibrator(model).calibrate(dataset))


def quantize(
    calibrated: bytes,
    io: str = "float32",
    dense_per_channel: bool = True,
    debug: bool = False,
    denylisted_nodes: list[str] | None = None,
) -> bytes:
    """Full-integer int8 from a calibrated model, with the flags `TFLiteConverter` passes for PTQ int8.

    `debug=True` builds the layer-wise debug model (NumericVerify after every quantized op);
    `denylisted_nodes` (op output tensor names) stay in float.
    """
    from edgebuild.native_output import capture_native

    tensorflow, tf_convert, _ = _internals()
    dtype = getattr(tensorflow, _IO[io])
    with capture_native():  # the quantizer prints its flags on fd 1
        return bytes(
            tf_convert.mlir_quantize(
                calibrated,
                disable_per_channel=False,
                fully_quantize=False,
                input_data_type=dtype,
                output_data_type=dtype,
                enable_numeric_verify=debug,
                enable_whole_model_verify=False,
                denylisted_nodes=denylisted_nodes,
                disable_per_channel_for_dense_layers=not dense_per_channel,
            )
        )


def same_quantization(a: bytes, b: bytes) -> bool:
    """True when two models have the same tensors (name, dtype, shape, scales, zero points) and constants."""
    from edgebuild.quant_debug.capture import KeptModel

    ma, mb = KeptModel(a, keep_all=False), KeptModel(b, keep_all=False)

    def signature(model: KeptModel) -> list[tuple[object, ...]]:
        return sorted((t.name, t.dtype.name, t.shape, t.scales, t.zero_points) for t in model.tensors.values())

    if signature(ma) != signature(mb):
        return False
    for index in ma.constant_indices:
        tensor = ma.tensors[index]
        other = mb.by_name.get(tensor.name)
        if other is None:
            return False
        try:
            if not np.array_equal(ma.value(index), mb.value(other.index)):
                return False
        except ValueError:  # a tensor without data
            continue
    return True
