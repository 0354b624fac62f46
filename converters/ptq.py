"""Post-training conversion: float16, full-integer int8, int16x8, dynamic range, or plain float32.

One function maps a profile's `[quantization]` table onto the TFLite converter's
flags, so every target converts the same way and the flags live in one place.
"""

from __future__ import annotations

from typing import Any, Iterator

import numpy as np

from edgebuild.errors import ConversionError
from edgebuild.profiles.schema import QuantizationSection

_IO_DTYPES = {"int8": "int8", "uint8": "uint8", "int16": "int16"}


def convert(concrete_function: Any, keep_alive: Any, quant: QuantizationSection,
            calibration: np.ndarray | None) -> bytes:
    """Convert one traced model according to the profile's quantization scheme."""
    from edgebuild._tf import tf

    tensorflow = tf()
    converter = tensorflow.lite.TFLiteConverter.from_concrete_functions([concrete_function], keep_alive)
    _configure(converter, tensorflow, quant, calibration)
    from edgebuild.native_output import capture_native

    try:
        with capture_native():  # the converter's C++ logs would bury the progress lines
            return bytes(converter.convert())
    except Exception as exc:  # the converter raises ConverterError, ValueError, RuntimeError...
        raise ConversionError(
            f"The TFLite converter failed for scheme '{quant.scheme}': {conversion_error_summary(exc)}. "
            "If an op is not supported with this scheme, try another target or scheme "
            "(e.g. --set quantization.scheme=dynamic), or replace the op in the model."
        ) from None


def trace_keras(keras_model: Any, input_shape: tuple[int, ...]) -> Any:
    """A concrete function of a tf_keras model with a fixed input shape (for models built by a training pass)."""
    from edgebuild._tf import tf

    tensorflow = tf()
    spec = tensorflow.TensorSpec(input_shape, tensorflow.float32)
    return tensorflow.function(lambda x: keras_model(x, training=False), input_signature=[spec],
                               autograph=False).get_concrete_function()


def _configure(converter: Any, tensorflow: Any, quant: QuantizationSection, calibration: np.ndarray | None) -> None:
    ops = tensorflow.lite.OpsSet
    if quant.scheme == "none":
        return
    converter.optimizations = [tensorflow.lite.Optimize.DEFAULT]
    if quant.scheme == "float16":
        converter.target_spec.supported_types = [tensorflow.float16]
    elif quant.scheme == "dynamic":
        pass
    elif quant.scheme in {"int8", "int16x8"}:
        if calibration is None or len(calibration) == 0:
            raise ConversionError(f"Scheme '{quant.scheme}' needs calibration data; none was given.")
        converter.representative_dataset = lambda: _representative(calibration)
        converter.target_spec.supported_ops = [
            ops.TFLITE_BUILTINS_INT8 if quant.scheme == "int8"
            else ops.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8
        ]
        if quant.io != "float32":
            io_type = getattr(tensorflow, _IO_DTYPES[quant.io])
            converter.inference_input_type = io_type
            converter.inference_output_type = io_type


def _representative(samples: np.ndarray) -> Iterator[list[np.ndarray]]:
    """Calibration samples one at a time, in a fixed order (keeps conversion deterministic)."""
    for sample in samples:
        yield [sample[None, ...].astype(np.float32)]


def conversion_error_summary(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    errors = [line for line in lines if "error" in line.lower()]
    return (errors or lines or [type(exc).__name__])[0][:400]
