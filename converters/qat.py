"""Quantization-aware training: audit the layers, wrap with TFMOT, fine-tune, convert to full integer.

TFMOT 0.8.1 on tf_keras 2.21 refuses (checked by trying each): `Rescaling`,
`Multiply`, `Subtract`, `Average`, `Maximum`, `Minimum`, standalone
`BatchNormalization` (one not folded into a preceding Conv2D/DepthwiseConv2D),
`Activation` with activations it has no config for (e.g. hard_sigmoid),
`Lambda` and TF-op layers, `PReLU`, `LayerNormalization`, recurrent layers, and
nested models. It accepts `UpSampling2D`, `Concatenate`, `Add`, `ZeroPadding2D`,
`Cropping2D`, `SeparableConv2D`, `Conv2DTranspose`, `Reshape`, `Flatten`,
`Dropout`, pooling and `Softmax`.

The audit gives each layer one verdict:
- "supported": TFMOT's default 8-bit registry (or its Conv+BN folding) handles it;
- "auto": we attach a QuantizeConfig that is correct for that layer:
  * "output": quantize the output only (the layer makes new values from quantized
    inputs: Rescaling, Multiply/Subtract/Average/Maximum/Minimum, standalone
    BatchNormalization, an Activation TFMOT has no config for);
  * "passthrough": no quantizer (the layer only moves values: a `Lambda` or TF-op
    layer whose outputs are all values of its input, e.g. a slice, checked on
    sample data);
- "refused": anything else; `quantize_aware` raises UnsupportedError listing them.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from edgebuild.errors import ConversionError, UnsupportedError
from edgebuild.profiles.schema import QuantizationSection

OUTPUT_ONLY = ("Rescaling", "Multiply", "Subtract", "Average", "Maximum", "Minimum", "BatchNormalization", "Activation")
VALUE_MOVING = ("Lambda", "TFOpLambda", "SlicingOpLambda")
FOLDING_PREDECESSORS = ("Conv2D", "DepthwiseConv2D")
_IO_DTYPES = {"int8": "int8", "uint8": "uint8"}


@dataclass(frozen=True)
class LayerAudit:
    name: str
    type: str
    verdict: str  # "supported" | "auto" | "refused"
    config: str = ""  # for "auto": "output" or "passthrough"; for "refused": why

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


def _tfmot() -> Any:
    from edgebuild._tf import tfmot

    return tfmot()


def audit_layers(keras_model: Any) -> list[LayerAudit]:
    """One verdict per layer (see the module doc); the input layer is left out."""
    from edgebuild._tf import tf_keras

    keras2 = tf_keras()
    tfmot = _tfmot()
    registry = tfmot.quantization.keras.default_8bit.Default8BitQuantizeRegistry()
    if not isinstance(keras_model, keras2.Model) or not (
        isinstance(keras_model, keras2.Sequential) or getattr(keras_model, "_is_graph_network", False)
    ):
        return [
            LayerAudit(
                getattr(keras_model, "name", "model"),
                type(keras_model).__name__,
                "refused",
                "a subclassed model: QAT needs a Sequential or functional tf_keras model",
            )
        ]
    audits = []
    for layer in keras_model.layers:
        kind = type(layer).__name__
        if isinstance(layer, keras2.layers.InputLayer):
            continue
        if isinstance(layer, keras2.Model):
            audits.append(LayerAudit(layer.name, kind, "refused", "a nested model: flatten it into the outer model"))
        elif _registry_handles(registry, layer):
            audits.append(LayerAudit(layer.name, kind, "supported"))
        elif kind == "BatchNormalization" and _folds_into_conv(layer):
            audits.append(LayerAudit(layer.name, kind, "supported", "folded into the preceding convolution"))
        elif kind in OUTPUT_ONLY:
            audits.append(LayerAudit(layer.name, kind, "auto", "output"))
        elif kind in VALUE_MOVING:
            if _moves_values_only(layer):
                audits.append(LayerAudit(layer.name, kind, "auto", "passthrough"))
            else:
                audits.append(
                    LayerAudit(
                        layer.name,
                        kind,
                        "refused",
                        "computes new values; only slicing/reshaping Lambda layers pass through",
                    )
                )
        else:
            audits.append(LayerAudit(layer.name, kind, "refused", "no 8-bit quantization config in TFMOT"))
    return audits


def _registry_handles(registry: Any, layer: Any) -> bool:
    if not registry.supports(layer):
        return False
    try:
        registry.get_quantize_config(layer)  # Activation layers with unknown functions fail only here
    except (ValueError, KeyError):
        return False
    if type(layer).__name__ == "Activation":  # the config checks the activation lazily, when it wraps the layer
        try:
            registry.get_quantize_config(layer).get_output_quantizers(layer)
        except (ValueError, KeyError):
            return False
    return True


def _folds_into_conv(layer: Any) -> bool:
    """TFMOT folds BatchNormalization into a directly preceding Conv2D/DepthwiseConv2D."""
    try:
        inbound = layer.inbound_nodes[0].inbound_layers
    except (AttributeError, IndexError):
        return False
    if isinstance(inbound, list):
        if len(inbound) != 1:
            return False
        inbound = inbound[0]
    return type(inbound).__name__ in FOLDING_PREDECESSORS


def _moves_values_only(layer: Any) -> bool:
    """True when, on random input, every output value is one of the input values (slice, reshape, transpose...)."""
    try:
        shape = tuple(layer.input_shape)
        if len(layer.weights) or any(d is None for d in shape[1:]):
            return False
        sample = np.random.default_rng(0).standard_normal((2, *shape[1:])).astype(np.float32)
        out = np.asarray(layer(sample))
    except Exception:  # anything odd about the layer means we cannot prove it
        return False
    return out.size > 0 and bool(np.isin(out, sample).all())


def refusal_message(refused: list[LayerAudit]) -> str:
    lines = "\n".join(f"  - {a.name} ({a.type}): {a.config}" for a in refused)
    return (
        f"Quantization-aware training cannot handle {len(refused)} layer(s) of this model:\n{lines}\n"
        "Choices: remove or replace these layers (e.g. with a supported layer or a slicing Lambda), "
        "or fall back to post-training quantization with --set quantization.method=ptq."
    )


_CONFIG_CLASSES: list[Any] = []


def _config_classes() -> tuple[Any, Any]:
    """(output-only, pass-through) QuantizeConfig classes, made once (they subclass a TFMOT class)."""
    if not _CONFIG_CLASSES:
        qk = _tfmot().quantization.keras
        base: Any = qk.QuantizeConfig  # TFMOT is untyped

        class EdgebuildOutputQuantizeConfig(base):
            """Quantize only the layer's output: 8-bit, per-tensor, asymmetric, moving-average range."""

            def get_weights_and_quantizers(self, layer: Any) -> list:
                return []

            def get_activations_and_quantizers(self, layer: Any) -> list:
                return []

            def set_quantize_weights(self, layer: Any, quantize_weights: Any) -> None:
                pass

            def set_quantize_activations(self, layer: Any, quantize_activations: Any) -> None:
                pass

            def get_output_quantizers(self, layer: Any) -> list:
                return [
                    qk.quantizers.MovingAverageQuantizer(
                        num_bits=8, per_axis=False, symmetric=False, narrow_range=False
                    )
                ]

            def get_config(self) -> dict:
                return {}

        class EdgebuildPassThroughQuantizeConfig(EdgebuildOutputQuantizeConfig):
            """No quantizer: the layer only moves already-quantized values."""

            def get_output_quantizers(self, layer: Any) -> list:
                return []

        _CONFIG_CLASSES.extend([EdgebuildOutputQuantizeConfig, EdgebuildPassThroughQuantizeConfig])
    return _CONFIG_CLASSES[0], _CONFIG_CLASSES[1]


@contextmanager
def _unsafe_lambda_cloning(keras2: Any) -> Iterator[None]:
    """Cloning a model re-creates Lambda layers from their serialized Python code; tf_keras refuses it in safe mode."""
    scope = getattr(getattr(getattr(keras2, "src", None), "saving", None), "serialization_lib", None)
    scope = getattr(scope, "SafeModeScope", None)
    if scope is None:
        yield
        return
    with scope(False):
        yield


def quantize_aware(keras_model: Any, audits: list[LayerAudit] | None = None) -> Any:
    """The model wrapped for QAT (weights kept): default TFMOT configs plus our 'auto' configs.

    Raises UnsupportedError listing every refused layer.
    """
    from edgebuild._tf import tf_keras

    keras2 = tf_keras()
    tfmot = _tfmot()
    qk = tfmot.quantization.keras
    output_config, noop_config = _config_classes()
    audits = audit_layers(keras_model) if audits is None else audits
    refused = [a for a in audits if a.verdict == "refused"]
    if refused:
        raise UnsupportedError(refusal_message(refused))
    auto = {a.name: a.config for a in audits if a.verdict == "auto"}

    def annotate(layer: Any) -> Any:
        if layer.name in auto:
            config = output_config() if auto[layer.name] == "output" else noop_config()
            return qk.quantize_annotate_layer(layer.__class__.from_config(layer.get_config()), quantize_config=config)
        return layer.__class__.from_config(layer.get_config())

    scope = {output_config.__name__: output_config, noop_config.__name__: noop_config}
    try:
        with _unsafe_lambda_cloning(keras2), qk.quantize_scope(scope):
            if not auto:
                return qk.quantize_model(keras_model)
            annotated = keras2.models.clone_model(keras_model, clone_function=annotate)
            annotated.set_weights(keras_model.get_weights())
            annotated = qk.quantize_annotate_model(annotated)
            return qk.quantize_apply(annotated)
    except (RuntimeError, ValueError) as exc:  # TFMOT found something our audit did not
        text = str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__
        raise UnsupportedError(
            f"Quantization-aware training could not wrap the model: {text}. Remove or replace that layer, "
            "or fall back to post-training quantization with --set quantization.method=ptq."
        ) from None


def convert_qat(qat_model: Any, quant: QuantizationSection, batch: int, calibration: np.ndarray | None = None) -> bytes:
    """Full-integer TFLite from a QAT model, traced with a fixed batch; I/O types from the profile.

    The fake-quant ranges learnt in training fix the scale of every tensor a
    quantizer covers, so a plain QAT model needs no representative dataset. Layers
    with a pass-through config, or a Rescaling right at the input, leave some
    tensors without a range: `calibration` fills those (the converter keeps the
    learnt ranges for the rest). An artifact that still computes in float32 is a
    ConversionError, never a silently half-quantized model.

    Dense layers: TFMOT's default 8-bit registry fake-quantizes a Dense kernel per
    tensor (`LastValueQuantizer(per_axis=False)`), so a QAT artifact has one weight
    scale per FULLY_CONNECTED whatever `quantization.dense_per_channel` says (checked
    on the FC autoencoder: 1 scale on every layer either way). With the switch off the
    converter is told so too (`set_dense_granularity`), so a tensor no fake-quant covers
    cannot come out per channel; with it on, QAT still gives per-tensor dense weights
    (`dense_quantization_note` says so in the report).
    """
    from edgebuild._tf import tf

    tensorflow = tf()
    if quant.scheme != "int8":
        raise UnsupportedError(
            f"quantization.method = 'qat' produces full-integer int8 models, but scheme = '{quant.scheme}'. "
            "Use --set quantization.scheme=int8, or --set quantization.method=ptq for other schemes."
        )
    from edgebuild.converters.ptq import conversion_error_summary, new_converter, set_dense_granularity, trace_keras

    shape = (batch, *tuple(qat_model.inputs[0].shape)[1:])
    converter = new_converter(trace_keras(qat_model, shape), qat_model)
    converter.optimizations = [tensorflow.lite.Optimize.DEFAULT]
    set_dense_granularity(converter, quant)
    if calibration is not None and len(calibration):
        converter.target_spec.supported_ops = [tensorflow.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.representative_dataset = lambda: ([s[None, ...].astype(np.float32)] for s in calibration)
    if quant.io != "float32":
        io_type = getattr(tensorflow, _IO_DTYPES[quant.io])
        converter.inference_input_type = io_type
        converter.inference_output_type = io_type
    try:
        blob = bytes(converter.convert())
    except Exception as exc:  # the converter raises many types
        raise ConversionError(
            f"The TFLite converter failed on the QAT model: {conversion_error_summary(exc)}. "
            "Fall back to post-training quantization with --set quantization.method=ptq."
        ) from None
    float_ops = _float_ops(blob)
    if float_ops:
        hint = (
            "pass calibration samples so the converter can range them"
            if calibration is None
            else "those ops have no int8 kernel"
        )
        raise ConversionError(
            f"The QAT model converted, but {len(float_ops)} op(s) still compute in float32 "
            f"({', '.join(sorted(set(float_ops)))}): {hint}. Fall back to post-training quantization with "
            "--set quantization.method=ptq, or replace the layers behind those ops."
        )
    return blob


def _float_ops(blob: bytes) -> list[str]:
    """Ops (other than the I/O QUANTIZE/DEQUANTIZE) that read or write float32 activations."""
    from edgebuild.artifact import parse_artifact

    artifact = parse_artifact(blob)
    bad = []
    for op in artifact.ops:
        if op.name in {"QUANTIZE", "DEQUANTIZE"}:
            continue
        tensors = [artifact.tensors[i] for i in (*op.inputs, *op.outputs) if i >= 0]
        if any(t.dtype.lower() == "float32" and not t.is_constant for t in tensors):
            bad.append(op.name)
    return bad


@dataclass
class QatOutcome:
    model: Any  # the trained QAT tf_keras model
    blob: bytes  # the full-integer .tflite
    training: Any  # TrainingResult
    audit: list[LayerAudit]

    def report(self) -> dict[str, Any]:
        """The report's `training` block plus the layer audit."""
        return {
            **self.training.to_dict(),
            "pass": "qat",
            "layers": {
                "supported": sum(a.verdict == "supported" for a in self.audit),
                "auto": [a.to_dict() for a in self.audit if a.verdict == "auto"],
            },
        }


def run_qat(
    keras_model: Any,
    train: tuple[np.ndarray, np.ndarray | None],
    val: tuple[np.ndarray, np.ndarray | None] | None,
    training: Any,
    quant: QuantizationSection,
    batch: int = 1,
    seed: int = 0,
    progress: Any = None,
    calibration: np.ndarray | None = None,
    cancel: Any = None,
) -> QatOutcome:
    """The whole QAT pass: check data, audit, wrap, fine-tune (early stopping), convert to full int8.

    Everything that can fail on user input (labels, layers, scheme) fails before training starts.
    Mixed precision is not used here: TFMOT's fake-quant wrappers train in float32.
    """
    from edgebuild.converters import precision
    from edgebuild.converters.train import check_training_data, fit, num_classes_of

    if quant.scheme != "int8":
        raise UnsupportedError(
            f"quantization.method = 'qat' produces full-integer int8 models, but scheme = '{quant.scheme}'. "
            "Use --set quantization.scheme=int8, or --set quantization.method=ptq for other schemes."
        )
    y, val_y = check_training_data(train, val, num_classes_of(keras_model))  # before wrapping; `fit` trusts it
    checked_val = None if val is None else (val[0], val_y)
    audit = audit_layers(keras_model)
    qat_model = quantize_aware(precision.to_float32(keras_model), audit)
    section = training.model_copy(update={"mixed_precision": "off"}) if training.mixed_precision != "off" else training
    result = fit(
        qat_model, (train[0], y), checked_val, section, progress=progress, seed=seed, cancel=cancel, labels_checked=True
    )
    if result.cancelled:  # Ctrl-C: no conversion; the stage raises BuildCancelled
        return QatOutcome(model=qat_model, blob=b"", training=result, audit=audit)
    if calibration is None:  # ranges for tensors no quantizer covers; training inputs are fair for that
        calibration = np.asarray(train[0][: quant.calibration_samples], dtype=np.float32)
    blob = convert_qat(qat_model, quant, batch, calibration)
    return QatOutcome(model=qat_model, blob=blob, training=result, audit=audit)


def model_for_training(loaded: Any, sample: np.ndarray | None = None) -> tuple[Any, dict | None]:
    """(tf_keras model, bridge report or None) for a `LoadedModel`, or an UnsupportedError saying what to do.

    tf_keras `.keras`/`.h5` models are used as loaded; Keras 3 `.keras` files go through
    the bridge (checked on `sample`); a SavedModel is tried with tf_keras's loader
    (works when tf_keras wrote it), since a plain SavedModel has no layers to train.
    """
    if getattr(loaded, "keras_model", None) is not None:
        return loaded.keras_model, None
    if loaded.format == "keras3":
        from edgebuild.converters.keras_bridge import bridge_keras3

        report: dict = {}
        return bridge_keras3(loaded.source, sample=sample, report=report), report
    if loaded.format == "savedmodel":
        from edgebuild._tf import tf_keras

        try:
            return tf_keras().models.load_model(loaded.source, compile=False), None
        except Exception:  # any failure means it is not a Keras SavedModel
            pass
    raise UnsupportedError(
        f"Quantization-aware training needs a Keras model with its layers, but {loaded.source} is a "
        f"{loaded.format} without Keras metadata. Pass the .keras or .h5 file the model was saved as, "
        "or use --set quantization.method=ptq."
    )
