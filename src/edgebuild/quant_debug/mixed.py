"""Mixed-precision artifacts with ai-edge-quantizer: int8 everywhere except the layers kept at higher precision.

ai-edge-quantizer (Google's successor to the converter's quantizer for LiteRT) quantizes a float
`.tflite` from a recipe of regular expressions over op output names, each with its own precision:
int8 weights and activations by default; for a kept layer either float compute with float16 weights
(FLOAT_CASTING, mobile), float32 (NO_QUANTIZE: ops without weights, and TFLite Micro, whose DEQUANTIZE
has no float16 input), or int16 activations with int8 weights (16x8). It inserts the QUANTIZE and
DEQUANTIZE ops at precision boundaries itself. The TFLite converter's own quantizer can keep a node in
float (`denylisted_nodes`) but only with float32 weights, and has no per-op 16x8; so it measures, and
this builds.

The calibration (min/max of every tensor over the calibration samples) runs once per build; each
recipe then quantizes in milliseconds, so the search tries many.
"""

from __future__ import annotations

import os
import re
import sys
from typing import Any, Literal

import numpy as np

from edgebuild.errors import UnsupportedError

Precision = Literal["float16", "float32", "int16"]
PRECISION_TEXT = {
    "float16": "float (float16 weights)",
    "float32": "float32",
    "int16": "int16 activations, int8 weights",
}


def scope_regex(tensor_name: str) -> str:
    """A recipe regex for exactly one op: ai-edge-quantizer matches `<output names>;` (re.search)."""
    return "^" + re.escape(tensor_name) + ";$"


def _quantizer() -> Any:
    # ai-edge-quantizer shows tqdm bars while calibrating; tqdm reads TQDM_DISABLE once, when imported
    if "tqdm" not in sys.modules:
        os.environ.setdefault("TQDM_DISABLE", "1")
    try:
        from ai_edge_quantizer import algorithm_manager, qtyping, quantizer, recipe
    except ImportError as exc:
        raise UnsupportedError(
            f"Selective precision needs ai-edge-quantizer ({exc}). Install it with "
            "`pip install ai-edge-quantizer==0.10.0` (a dependency of edgebuild)."
        ) from None
    return algorithm_manager, qtyping, quantizer, recipe


class MixedQuantizer:
    """One float model calibrated once; `build(keep)` returns the int8 model with `keep` at higher precision."""

    def __init__(self, float_blob: bytes, calibration: np.ndarray, io: str = "int8", dense_per_channel: bool = True):
        from edgebuild.native_output import capture_native

        if io not in {"float32", "int8"}:
            raise UnsupportedError(
                f"Selective precision builds int8 models with float32 or int8 I/O, not {io} "
                "(ai-edge-quantizer has no uint8 I/O): use --set quantization.io=int8."
            )
        self.algorithms, self.qtyping, self.quantizer_module, self.recipes = _quantizer()
        self.float_blob, self.io, self.dense_per_channel = float_blob, io, dense_per_channel
        from ai_edge_litert.interpreter import Interpreter

        signatures = Interpreter(model_content=float_blob).get_signature_list()
        if not signatures:
            raise UnsupportedError(
                "Selective precision needs a model with a serving signature "
                "(ai-edge-quantizer calibrates through it); this conversion has none."
            )
        key = next(iter(signatures))
        names = signatures[key]["inputs"]
        if len(names) != 1:
            raise UnsupportedError("Selective precision supports single-input models for now.")
        data = {key: [{names[0]: np.asarray(sample[None, ...], np.float32)} for sample in calibration]}
        qt = self._new()
        with capture_native():
            self.qsv = qt.calibrate(data)

    def _new(self) -> Any:
        qt = self.quantizer_module.Quantizer(self.float_blob)
        qt.load_quantization_recipe(self.recipes.static_wi8_ai8())
        op = self.qtyping.TFLOperationName
        if not self.dense_per_channel:
            qt.add_static_config(
                ".*",
                op.FULLY_CONNECTED,
                activation_num_bits=8,
                weight_num_bits=8,
                weight_granularity=self.qtyping.QuantGranularity.TENSORWISE,
            )
        if self.io == "float32":
            no_quantize = self.algorithms.AlgorithmName.NO_QUANTIZE
            qt.update_quantization_recipe(".*", op.INPUT, algorithm_key=no_quantize)
            qt.update_quantization_recipe(".*", op.OUTPUT, algorithm_key=no_quantize)
        return qt

    def build(self, keep: dict[str, Precision], weighted: set[str] | frozenset[str] = frozenset()) -> bytes:
        """`keep`: recipe regex -> precision; `weighted` names the regexes of ops with weights (float16 casts them)."""
        from edgebuild.native_output import capture_native

        qt = self._new()
        op = self.qtyping.TFLOperationName
        names = self.algorithms.AlgorithmName
        for regex, precision in keep.items():
            if precision == "int16":
                qt.add_static_config(regex, op.ALL_SUPPORTED, activation_num_bits=16, weight_num_bits=8)
                if not self.dense_per_channel:
                    qt.add_static_config(
                        regex,
                        op.FULLY_CONNECTED,
                        activation_num_bits=16,
                        weight_num_bits=8,
                        weight_granularity=self.qtyping.QuantGranularity.TENSORWISE,
                    )
            elif precision == "float16" and regex in weighted:
                qt.add_weight_only_config(regex, op.ALL_SUPPORTED, num_bits=16, algorithm_key=names.FLOAT_CASTING)
            else:
                qt.update_quantization_recipe(regex, op.ALL_SUPPORTED, algorithm_key=names.NO_QUANTIZE)
        try:
            with capture_native():
                return bytes(qt.quantize(self.qsv, enable_progress_report=False).quantized_model)
        except (ValueError, RuntimeError, KeyError, NotImplementedError) as exc:
            raise UnsupportedError(f"ai-edge-quantizer could not quantize this recipe: {exc}") from None


def version() -> str:
    from importlib import metadata

    try:
        return metadata.version("ai-edge-quantizer")
    except metadata.PackageNotFoundError:
        return "unknown"
