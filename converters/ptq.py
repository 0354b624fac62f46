"""Post-training conversion: float16, full-integer int8, int16x8, dynamic range, or plain float32.

One function maps a profile's `[quantization]` table onto the TFLite converter's
flags, so every target converts the same way and the flags live in one place.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from edgebuild.errors import ConversionError
from edgebuild.profiles.schema import QuantizationSection

Calibration = np.ndarray | dict[str, np.ndarray]  # one array, or one per input keyed by input name
_IO_DTYPES = {"int8": "int8", "uint8": "uint8", "int16": "int16"}


_CONSTRUCTION = threading.Lock()

_VARIABLE_FLAG = "_experimental_variable_quantization"  # private in TF 2.21 (lite.py, TFLiteConverterBase)


def new_converter(source: Any, keep_alive: Any) -> Any:
    """A TFLiteConverter for an exported SavedModel folder (a Path) or a concrete function owned by `keep_alive`.

    Constructing one is not thread-safe in TensorFlow: `from_saved_model` / `from_concrete_functions` leave the
    model type in a class attribute that the constructor reads and resets, so two targets constructing at once
    could record the wrong type in the artifact's conversion metadata (and break byte-identical builds).
    Construction is cheap; it is serialized here, the conversions themselves still run in parallel.
    """
    from edgebuild._tf import tf

    lite = tf().lite
    with _CONSTRUCTION:
        if isinstance(source, Path):
            return lite.TFLiteConverter.from_saved_model(str(source))
        return lite.TFLiteConverter.from_concrete_functions([source], keep_alive)


def convert(source: Any, keep_alive: Any, quant: QuantizationSection, calibration: Calibration | None) -> bytes:
    """Convert one model according to the profile's quantization scheme.

    `source` is an exported SavedModel folder (a Path: how the build's shared model is converted, see
    LoadedModel.export) or a concrete function owned by `keep_alive` (a model private to one target).
    """
    from edgebuild._tf import tf

    tensorflow = tf()
    converter = new_converter(source, keep_alive)
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
    return tensorflow.function(
        lambda x: keras_model(x, training=False), input_signature=[spec], autograph=False
    ).get_concrete_function()


def _configure(converter: Any, tensorflow: Any, quant: QuantizationSection, calibration: Calibration | None) -> None:
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
        set_dense_granularity(converter, quant)
        if quant.scheme == "int8" and hasattr(converter, _VARIABLE_FLAG):
            # A streaming model's state (resource variables) in int8 too: without this the converter keeps it
            # float32 behind QUANTIZE/DEQUANTIZE, which int8-only targets refuse. No-op without variables
            # (the digits CNN converts to identical bytes either way).
            setattr(converter, _VARIABLE_FLAG, True)
        converter.target_spec.supported_ops = [
            ops.TFLITE_BUILTINS_INT8
            if quant.scheme == "int8"
            else ops.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8
        ]
        if quant.io != "float32":
            io_type = getattr(tensorflow, _IO_DTYPES[quant.io])
            converter.inference_input_type = io_type
            converter.inference_output_type = io_type


def set_dense_granularity(converter: Any, quant: QuantizationSection) -> None:
    """One weight scale per FULLY_CONNECTED (not one per output channel) when `dense_per_channel` is false.

    The flag is private in TF 2.21 (`TFLiteConverterBase.__init__` in tensorflow/lite/python/lite.py);
    it reaches both the MLIR quantizer (PTQ) and the converter's own flags (QAT models). Setting an
    attribute a future TensorFlow no longer reads would silently keep per-channel scales, so a missing
    flag is an error, never ignored.
    """
    if quant.dense_per_channel:
        return
    if not hasattr(converter, _DENSE_FLAG):
        raise ConversionError(
            "quantization.dense_per_channel = false needs the TFLite converter's "
            f"{_DENSE_FLAG} flag, which this TensorFlow does not have. "
            "Use --set quantization.dense_per_channel=true, or TensorFlow 2.16 to 2.21."
        )
    setattr(converter, _DENSE_FLAG, True)


_DENSE_FLAG = "_experimental_disable_per_channel_quantization_for_dense_layers"


def dense_quantization_note(quant: QuantizationSection) -> str | None:
    """The report's sentence on FULLY_CONNECTED weight granularity, or None when there is nothing to say.

    Measured on the reference architectures (PTQ int8, mcu profile; LiteRT output SNR vs the float
    model; arena = smallest that allocates and invokes in TFLite Micro, found by bisection):
    fc_autoencoder 640-128x4-8-128x4-640: arena 22,040 -> 4,632 B, size 317 -> 277 KB, SNR 42.9 -> 41.7 dB;
    hello_world: arena 2,192 -> 1,936 B, size 3,328 -> 2,592 B, SNR 32.5 -> 29.4 dB (RMSE vs sin 0.030 -> 0.035);
    ds_cnn and resnet8 (one Dense head): arena -96 B, size -216 B, SNR within 0.3 dB, top-1 unchanged
    (ds_cnn 94.0%, resnet8 87.0 -> 87.3%).
    """
    if quant.scheme not in {"int8", "int16x8"}:
        return None
    if quant.method == "qat":
        return (
            "Dense (FULLY_CONNECTED) weights are quantized per tensor, one scale per layer: quantization-aware "
            "training fake-quantizes Dense kernels per tensor (TFMOT's default), so "
            "quantization.dense_per_channel does not apply to QAT builds."
        )
    if quant.dense_per_channel:
        return None
    return (
        "Dense (FULLY_CONNECTED) weights are quantized per tensor, one scale per layer: with per-channel "
        "scales TFLite Micro keeps a 32-bit multiplier and shift per output channel in the tensor arena "
        "(a 640-output autoencoder needs about 22 KB instead of under 5 KB), for a small accuracy cost "
        "(about 1 dB of output SNR there). Set quantization.dense_per_channel=true to keep per-channel scales."
    )


def _representative(samples: Calibration) -> Iterator[list[np.ndarray] | dict[str, np.ndarray]]:
    """Calibration samples one at a time, in a fixed order (keeps conversion deterministic).

    A multi-input model's samples are a dict keyed by input name: the converter matches each entry to the
    signature input of that name, whatever order it lists the inputs in.
    """
    if isinstance(samples, dict):
        for i in range(len(next(iter(samples.values())))):
            yield {name: array[i : i + 1].astype(np.float32) for name, array in samples.items()}
        return
    for sample in samples:
        yield [sample[None, ...].astype(np.float32)]


def conversion_error_summary(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    errors = [line for line in lines if "error" in line.lower()]
    return (errors or lines or [type(exc).__name__])[0][:400]
