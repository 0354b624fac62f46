"""Preflight: what a target cannot build, known from the Keras layers alone, said before any long work.

Runs after the model loads and before tracing, calibration, training or conversion. Each rule is a small
function over one layer whose docstring is the rule text; it returns the TFLite ops the layer becomes (as
measured with TensorFlow 2.21's converter), or a reason no target can take it. Whether a target runs
those ops comes from the same op tables the post-conversion checks read (`mcu_ops.toml` measured from the
pinned TFLite Micro, `edgetpu_ops.toml` from Coral's list), so the two never disagree. Only certain
outcomes are errors here: an op with no TFLite Micro kernel (mcu, ethos-u55: Vela leaves it to TFLite
Micro on the CPU), an Edge TPU op the compiler cannot map while the profile demands every op on the Edge
TPU, a loop an int8 conversion cannot calibrate, a stateful layer. Anything less certain is left to the
checks on the converted artifact.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from edgebuild.errors import UnsupportedError
from edgebuild.profiles.schema import Profile

from .tables import load_table

MAX_LISTED = 3  # layers named per target: the first ones are what to fix first
RECURRENT = {"LSTM", "GRU", "SimpleRNN", "RNN", "ConvLSTM1D", "ConvLSTM2D", "ConvLSTM3D"}


@dataclass(frozen=True)
class LayerOps:
    """What one layer turns into: TFLite ops (for the per-target tables), or a problem for some targets."""

    layer: str
    kind: str
    ops: tuple[str, ...] = ()
    why: str = ""  # a problem that is not a missing kernel (stateful, an uncalibratable loop)
    edgetpu_limit: str = ""  # an Edge TPU op limit the ops break (they are on Coral's list, but not like this)
    fix: str = ""
    targets: Callable[[Profile], bool] | None = None  # which targets `why` applies to (None: all)


LayerRule = Callable[[Any], Iterator[LayerOps]]
RULES: list[LayerRule] = []


def layer_rule(func: LayerRule) -> LayerRule:
    if not (func.__doc__ or "").strip():
        raise TypeError(f"preflight rule {func.__name__} needs a docstring: it is the rule text")
    RULES.append(func)
    return func


def _kind(layer: Any) -> str:
    return type(layer).__name__


def _activation(layer: Any) -> str:
    act = getattr(layer, "activation", None)
    return str(getattr(act, "__name__", act or "")).lower()


def _quantizes(profile: Profile) -> bool:
    return profile.quantization.needs_calibration


@layer_rule
def stateful_recurrent(layer: Any) -> Iterator[LayerOps]:
    """A stateful recurrent layer keeps its state between calls; a built model computes each input alone.

    The converted artifact either drops that state or keeps it in variables that every target's validation
    (and a firmware's independent inferences) would have to thread through by hand.
    """
    if getattr(layer, "stateful", False):
        yield LayerOps(
            _name(layer),
            _kind(layer),
            why="it is stateful (stateful=True): its state is carried from one call to the next, which a "
            "converted model cannot reproduce sample by sample",
            fix="rebuild the model with stateful=False (same layers, then new_model.set_weights(model.get_weights())) "
            "and feed the whole window per inference; for streaming, convert the step function with the state "
            "as explicit inputs and outputs",
        )


@layer_rule
def recurrent_loop(layer: Any) -> Iterator[LayerOps]:
    """GRU, SimpleRNN and non-standard LSTM layers convert to a WHILE loop unless unrolled.

    TensorFlow 2.21's int8 calibrator crashes the process (a segmentation fault) on that loop, so int8
    targets refuse it before converting; the Edge TPU has no WHILE either. A standard LSTM (tanh/sigmoid,
    bias, no recurrent dropout) fuses into UNIDIRECTIONAL_SEQUENCE_LSTM instead, and an unrolled layer
    becomes plain FULLY_CONNECTED/LOGISTIC/TANH/MUL steps after an UNPACK of the time axis.
    """
    kind = _kind(layer)
    if kind not in RECURRENT:
        return
    if getattr(layer, "unroll", False):
        yield LayerOps(_name(layer), kind, ops=("UNPACK", "FULLY_CONNECTED", "LOGISTIC", "TANH", "MUL", "ADD"))
        return
    if kind == "LSTM" and _fusable_lstm(layer):
        yield LayerOps(_name(layer), kind, ops=("UNIDIRECTIONAL_SEQUENCE_LSTM",))
        return
    steps = _time_steps(layer)
    yield LayerOps(
        _name(layer),
        kind,
        ops=("WHILE",),
        why="it converts to a WHILE loop over the time steps, and TensorFlow 2.21's int8 calibration crashes "
        "(segmentation fault) on such a loop",
        fix=f"set unroll=True on the layer ({steps} time steps: the loop becomes plain ops every target runs)"
        + (" or use a standard LSTM, which fuses into UNIDIRECTIONAL_SEQUENCE_LSTM" if kind != "LSTM" else ""),
        targets=_quantizes,
    )


@layer_rule
def gelu(layer: Any) -> Iterator[LayerOps]:
    """A GELU activation converts to the GELU op (int8 and float)."""
    if _activation(layer) == "gelu" or _kind(layer) == "GELU":
        yield LayerOps(_name(layer), _kind(layer), ops=("GELU",))


@layer_rule
def attention(layer: Any) -> Iterator[LayerOps]:
    """MultiHeadAttention converts to BATCH_MATMUL (query x key, scores x value), SOFTMAX and TRANSPOSE."""
    if _kind(layer) == "MultiHeadAttention":
        yield LayerOps(_name(layer), _kind(layer), ops=("BATCH_MATMUL", "SOFTMAX"))


@layer_rule
def unequal_dilation(layer: Any) -> Iterator[LayerOps]:
    """A dilated Conv1D becomes a CONV_2D dilated along width only (dilation 1 x d)."""
    rate = tuple(getattr(layer, "dilation_rate", ()) or ())
    if _kind(layer) in {"Conv1D", "SeparableConv1D"} and rate and max(rate) > 1:
        yield LayerOps(
            _name(layer),
            _kind(layer),
            ops=("CONV_2D",),
            edgetpu_limit=f"its dilation is 1 x {max(rate)} and Edge TPU convolutions need equal x and y dilation",
        )


@layer_rule
def dense_over_steps(layer: Any) -> Iterator[LayerOps]:
    """A Dense layer applied to a sequence (rank 3 or more) becomes a FULLY_CONNECTED with one row per step."""
    try:
        rank = len(layer.input_shape)
    except (AttributeError, TypeError):
        return
    if _kind(layer) == "Dense" and rank > 2:
        yield LayerOps(
            _name(layer),
            _kind(layer),
            ops=("FULLY_CONNECTED",),
            edgetpu_limit="its output has one row per step and Edge TPU FullyConnected outputs must be one-dimensional",
        )


def _name(layer: Any) -> str:
    return str(getattr(layer, "name", "?"))


def _fusable_lstm(layer: Any) -> bool:
    """tf_keras's cuDNN-compatible LSTM: the form the converter fuses into UNIDIRECTIONAL_SEQUENCE_LSTM."""
    return (
        _activation(layer) == "tanh"
        and str(getattr(getattr(layer, "recurrent_activation", None), "__name__", "")) == "sigmoid"
        and getattr(layer, "recurrent_dropout", 0) == 0
        and getattr(layer, "use_bias", True)
    )


def _time_steps(layer: Any) -> str:
    try:
        steps = layer.input_shape[1]
    except (AttributeError, IndexError, TypeError):
        return "a fixed number of"
    return str(steps) if steps is not None else "a fixed number of"


def layers_of(model: Any) -> Iterator[Any]:
    """Every layer, nested models and wrappers (Bidirectional, TimeDistributed) included."""
    for layer in getattr(model, "layers", ()):
        yield layer
        inner = [getattr(layer, attr, None) for attr in ("forward_layer", "backward_layer", "layer")]
        for sub in inner:
            if sub is not None and sub is not layer:
                yield from layers_of(_Wrapper(sub))
        if getattr(layer, "layers", None):
            yield from layers_of(layer)


@dataclass
class _Wrapper:
    sub: Any

    @property
    def layers(self) -> list[Any]:
        return [self.sub]


def analyse(keras_model: Any) -> list[LayerOps]:
    """Every layer's known TFLite ops and problems, in model order."""
    return [found for layer in layers_of(keras_model) for rule in RULES for found in rule(layer)]


def problems(found: list[LayerOps], profile: Profile) -> list[str]:
    """Sentences naming each layer this target cannot build, why, and the usual fix."""
    out: list[str] = []
    rules = profile.validation.rules
    for item in found:
        where = f"layer '{item.layer}' ({item.kind})"
        if item.why and (item.targets is None or item.targets(profile)):
            out.append(f"{where}: {item.why}. Fix: {item.fix}.")
            continue
        if rules == "mcu" and profile.vela.accelerator is None:  # Vela may map it to the NPU: checked after
            table = load_table("mcu")
            missing = [op for op in item.ops if op not in table]
            if missing:
                out.append(
                    f"{where} becomes {', '.join(missing)}, which {table.runtime} has no kernel for. Fix: "
                    f"{_MCU_FIX.get(missing[0], 'replace the layer with one built from ops TFLite Micro runs')}."
                )
        elif rules == "edgetpu" and profile.edgetpu.min_mapped_fraction >= 1.0:
            edgetpu_ops = load_table("edgetpu").ops
            missing = [op for op in item.ops if op not in edgetpu_ops]
            reason = (
                f"becomes {', '.join(missing)}, which Coral's supported-operations table does not list"
                if missing
                else f"becomes {', '.join(item.ops)}, and {item.edgetpu_limit}"
                if item.edgetpu_limit
                else ""
            )
            if reason:
                out.append(
                    f"{where} {reason}, so it and every later op would run on the CPU while "
                    f"edgetpu.min_mapped_fraction = {profile.edgetpu.min_mapped_fraction:g} requires every op on "
                    f"the Edge TPU. Fix: {_EDGETPU_FIX.get(_kind_key(item, missing), _EDGETPU_DEFAULT_FIX)}."
                )
    return out


_EDGETPU_DEFAULT_FIX = "accept a CPU tail with --set edgetpu.min_mapped_fraction=0.5 (or lower), or replace the layer"
_EDGETPU_FIX = {
    "Conv1D": "reshape to (1, steps, channels) and use Conv2D with kernel (1, k) and dilation_rate=(d, d) "
    "(the same result, since the height is 1), or accept a CPU tail with --set edgetpu.min_mapped_fraction=0.5",
    "Dense": "flatten (or pool) the sequence before the Dense layer, or use a Conv1D with kernel size 1 (the same "
    "per-step product, as a CONV_2D), or accept a CPU tail with --set edgetpu.min_mapped_fraction=0.5",
    "GELU": "use activation='relu' or 'swish' (RELU, or LOGISTIC and MUL, all on the Edge TPU), or accept a CPU "
    "tail with --set edgetpu.min_mapped_fraction=0.5",
    "BATCH_MATMUL": "keep attention off the Edge TPU part of the model (accept a CPU tail with "
    "--set edgetpu.min_mapped_fraction=0.5), or replace attention with convolutions",
    "UNPACK": "use a standard LSTM layer (unroll=False), which fuses into UNIDIRECTIONAL_SEQUENCE_LSTM "
    "(Edge TPU runtime 14), or accept a CPU tail with --set edgetpu.min_mapped_fraction=0.5",
}
_MCU_FIX = {
    "GELU": "use activation='swish' (LOGISTIC and MUL) or 'relu'; both have int8 TFLite Micro kernels",
}


def _kind_key(item: LayerOps, missing: list[str]) -> str:
    return missing[0] if missing else item.kind


def rule_texts() -> list[str]:
    """The rules as users read them (for docs)."""
    return [inspect.cleandoc(r.__doc__ or "").split("\n\n")[0].replace("\n", " ") for r in RULES]


def check(keras_model: Any, profiles: list[Profile], source: str) -> dict[str, UnsupportedError]:
    """Per target, the error that stops its build before any conversion; targets that can build are absent."""
    if keras_model is None:
        return {}
    found = analyse(keras_model)
    errors: dict[str, UnsupportedError] = {}
    for profile in profiles:
        lines = problems(found, profile)
        if lines:
            more = f" (and {len(lines) - MAX_LISTED} more layer(s))" if len(lines) > MAX_LISTED else ""
            errors[profile.name] = UnsupportedError(
                f"Target '{profile.name}' cannot build {source}, found from its layers before converting: "
                + " ".join(lines[:MAX_LISTED])
                + more
            )
    return errors
