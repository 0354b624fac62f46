"""Keras 3 model -> the same model in tf_keras, so TFMOT's training-time passes can use it.

tf_keras cannot read a Keras 3 `.keras` file (InputLayer's `batch_shape`,
DTypePolicy dicts, new config keys) nor its functional config format. The
bridge rebuilds the graph itself:

1. each Keras 3 layer config is translated: `batch_shape` -> `batch_input_shape`,
   a DTypePolicy dict -> its policy name, initializers dropped (weights are
   copied anyway), keys the tf_keras layer does not take dropped;
2. the layers are called on tf_keras tensors following the Keras 3 nodes
   (Sequential chains and functional graphs, incl. residual Add/Concatenate);
3. weights are copied layer by layer (shapes must match);
4. the two models run on the same sample; any output differing by more than
   `TOLERANCE` (max absolute difference, after scaling by the output's
   magnitude when it exceeds 1) is an UnsupportedError naming the first layer
   whose output differs.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import numpy as np

from edgebuild.errors import ModelError, UnsupportedError

TOLERANCE = 1e-4
_DROPPED_KEYS = {
    "kernel_initializer",
    "bias_initializer",
    "depthwise_initializer",
    "pointwise_initializer",
    "beta_initializer",
    "gamma_initializer",
    "moving_mean_initializer",
    "moving_variance_initializer",
    "embeddings_initializer",
    "alpha_initializer",
    "recurrent_initializer",
}
_BASE_LAYER_KEYS = {
    "name",
    "trainable",
    "dtype",
    "dynamic",
    "input_shape",
    "batch_input_shape",
    "batch_size",
    "input_dim",
    "activity_regularizer",
    "autocast",
}
_RENAMED_KEYS = {("LeakyReLU", "negative_slope"): "alpha"}  # (layer class, Keras 3 key) -> tf_keras key
_RENAMED_CLASSES = {"Functional": None, "Sequential": None}  # nested models: refused (see _make_layer)


def bridge_keras3(
    source: Any, sample: np.ndarray | None = None, tolerance: float = TOLERANCE, report: dict | None = None
) -> Any:
    """A tf_keras model equivalent to `source` (a Keras 3 model or `.keras` path), checked on `sample`.

    Without `sample`, 8 seeded uniform [0, 1) inputs are used. `report`, when
    given, receives {"max_abs_diff", "tolerance", "layers", "dropped_keys"}.
    """
    from edgebuild._tf import keras3, tf_keras

    keras = keras3()
    keras2 = tf_keras()
    model3 = _load(keras, source)
    if len(model3.inputs) != 1:
        raise UnsupportedError(f"The Keras 3 bridge takes single-input models; {model3.name} has {len(model3.inputs)}.")
    dropped: dict[str, list[str]] = {}
    outputs_of: dict[str, Any] = {}
    model2 = _rebuild(keras2, model3, dropped, outputs_of)
    _copy_weights(model3, model2)
    if sample is None:
        shape = tuple(model3.inputs[0].shape)[1:]
        sample = np.random.default_rng(0).random((8, *shape), dtype=np.float32)
    diff = _max_scaled_diff(_predict(model3, sample), _predict(model2, sample))
    if not diff <= tolerance:
        culprit = _first_differing_layer(keras, keras2, model3, model2, outputs_of, sample, tolerance)
        raise UnsupportedError(
            f"The Keras 3 -> tf_keras bridge rebuilt {model3.name}, but its outputs differ by {diff:.3g} "
            f"(tolerance {tolerance:g}), starting at {culprit}. This layer does not translate to tf_keras: "
            "replace it, or use --set quantization.method=ptq (PTQ converts Keras 3 models directly)."
        )
    if report is not None:
        report.update(
            {"max_abs_diff": float(diff), "tolerance": tolerance, "layers": len(model2.layers), "dropped_keys": dropped}
        )
    return model2


def _load(keras: Any, source: Any) -> Any:
    if isinstance(source, (str, Path)):
        try:
            return keras.saving.load_model(source, compile=False)
        except Exception as exc:  # Keras raises many types for unreadable files
            raise ModelError(f"Cannot load {source} with Keras 3: {str(exc).splitlines()[0][:300]}") from None
    if not isinstance(source, keras.Model):
        raise ModelError(f"The Keras 3 bridge needs a Keras 3 model or .keras path, not {type(source).__name__}.")
    return source


def _rebuild(keras2: Any, model3: Any, dropped: dict[str, list[str]], outputs_of: dict[str, Any]) -> Any:
    """The tf_keras graph; `outputs_of` maps each Keras 3 layer name to its (last) tf_keras output tensor."""
    config = model3.get_config()
    layer_configs = config["layers"]
    if type(model3).__name__ == "Sequential":
        x = inputs = None
        for layer_config in layer_configs:
            if layer_config["class_name"] == "InputLayer":
                inputs = x = _input(keras2, layer_config)
                continue
            if x is None:
                inputs = x = keras2.Input(batch_shape=tuple(model3.inputs[0].shape), dtype=model3.inputs[0].dtype)
            layer, activation = _make_layer(keras2, layer_config, dropped)
            name = layer_config.get("name") or layer_config["config"]["name"]
            x = outputs_of[name] = _activate(keras2, activation, layer(x))
        return keras2.Model(inputs, x, name=model3.name)

    tensors: dict[tuple[str, int, int], Any] = {}
    pending: list[tuple[Any, str, int, Any]] = []
    for layer_config in layer_configs:
        if layer_config["class_name"] == "InputLayer":
            tensors[(layer_config["name"], 0, 0)] = _input(keras2, layer_config)
            continue
        layer = _make_layer(keras2, layer_config, dropped)
        pending.extend((layer, layer_config["name"], i, node) for i, node in enumerate(layer_config["inbound_nodes"]))
    while pending:  # nodes come in topological order; the loop only matters for shared layers
        progressed = False
        for item in list(pending):
            (layer, activation), name, index, node = item
            try:
                args = _resolve(node.get("args", []), tensors)
            except KeyError:
                continue
            kwargs = {
                k: v
                for k, v in _resolve(node.get("kwargs", {}), tensors).items()
                if v is not None and k not in {"training", "mask"}
            }
            try:
                outputs = outputs_of[name] = _activate(keras2, activation, layer(*args, **kwargs))
            except (ValueError, TypeError) as exc:
                raise UnsupportedError(
                    f"The Keras 3 bridge cannot call layer '{name}' ({type(layer).__name__}) in tf_keras: "
                    f"{str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__}. Replace the layer, "
                    "or use --set quantization.method=ptq (PTQ converts Keras 3 models directly)."
                ) from None
            for t_index, tensor in enumerate(outputs if isinstance(outputs, (list, tuple)) else [outputs]):
                tensors[(name, index, t_index)] = tensor
            pending.remove(item)
            progressed = True
        if not progressed:
            raise UnsupportedError(
                f"The Keras 3 bridge could not order the graph of {model3.name} (stuck at layer {pending[0][1]})."
            )
    inputs = [tensors[tuple(ref)] for ref in _refs(config["input_layers"])]
    outputs = [tensors[tuple(ref)] for ref in _refs(config["output_layers"])]
    return keras2.Model(
        inputs[0] if len(inputs) == 1 else inputs, outputs[0] if len(outputs) == 1 else outputs, name=model3.name
    )


def _refs(value: Any) -> list[list[Any]]:
    """Keras 3 writes one reference as [name, node, tensor] and several as a list of those."""
    return [value] if value and isinstance(value[0], str) else list(value)


def _resolve(value: Any, tensors: dict[tuple[str, int, int], Any]) -> Any:
    if isinstance(value, dict):
        if value.get("class_name") == "__keras_tensor__":
            name, node, index = value["config"]["keras_history"]
            return tensors[(name, node, index)]
        return {k: _resolve(v, tensors) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_resolve(v, tensors) for v in value)
    return value


def _input(keras2: Any, layer_config: dict) -> Any:
    config = layer_config["config"]
    shape = config.get("batch_shape") or config.get("batch_input_shape")
    return keras2.Input(
        batch_shape=tuple(shape), dtype=_dtype_name(config.get("dtype")) or "float32", name=config.get("name")
    )


def _dtype_name(dtype: Any) -> Any:
    if isinstance(dtype, dict):  # {"class_name": "DTypePolicy", "config": {"name": "float32"}}
        return dtype.get("config", {}).get("name")
    return dtype


def _make_layer(keras2: Any, layer_config: dict, dropped: dict[str, list[str]]) -> Any:
    kind = layer_config["class_name"]
    name = layer_config.get("name") or layer_config["config"].get("name")
    module = layer_config.get("module") or "keras.layers"
    if module.startswith(("keras.src.ops", "keras.ops")):
        raise UnsupportedError(
            f"The Keras 3 bridge cannot rebuild '{name}' ({kind} from {module}): a Keras 3 operation, not a layer "
            "(e.g. `x - 0.5` or keras.ops on symbolic tensors). Use layers instead (e.g. Rescaling for "
            "x * a + b), or use --set quantization.method=ptq (PTQ converts Keras 3 models directly)."
        )
    cls = getattr(keras2.layers, kind, None) if module.startswith("keras.layers") else None
    if cls is None or kind in _RENAMED_CLASSES or layer_config.get("registered_name") not in (None, kind):
        what = "a nested model" if kind in _RENAMED_CLASSES else f"a layer tf_keras does not have (from {module})"
        raise UnsupportedError(
            f"The Keras 3 bridge cannot rebuild layer '{name}' ({kind}): {what}. Replace it with built-in layers "
            "(flatten nested models), or use --set quantization.method=ptq (PTQ converts Keras 3 models directly)."
        )
    accepted = _accepted_keys(cls)
    config, skipped, activation = {}, [], None
    for key, value in layer_config["config"].items():
        key = _RENAMED_KEYS.get((kind, key), key)
        if key in _DROPPED_KEYS:
            continue
        if key == "dtype":
            value = _dtype_name(value)
        if key == "activation" and isinstance(value, str) and value in _SPLIT_ACTIVATIONS:
            activation, value = value, "linear"  # applied after the layer by _activate
        if key not in accepted:
            if value not in (None, False, {}, []):  # unset keys are not worth reporting
                skipped.append(key)
            continue
        config[key] = value
    if skipped:
        dropped[name] = skipped
    if kind == "Activation" and activation is not None:
        return keras2.layers.Activation("linear", name=f"{name}_linear"), (activation, name)
    try:
        return cls.from_config(config), (activation, f"{name}_{activation}") if activation else None
    except Exception as exc:  # bad values (an activation tf_keras lacks...) surface in many types
        raise UnsupportedError(
            f"The Keras 3 bridge cannot rebuild layer '{name}' ({kind}) in tf_keras: "
            f"{str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__}. Replace the layer, or use "
            "--set quantization.method=ptq (PTQ converts Keras 3 models directly)."
        ) from None


# Keras 3 activations tf_keras lacks or defines differently, rebuilt from tf_keras layers.
# (Keras 3 hard_sigmoid is relu6(x + 3) / 6; tf_keras's is clip(0.2 x + 0.5, 0, 1).)
_SPLIT_ACTIVATIONS = {"relu6", "hard_sigmoid", "hard_silu", "hard_swish", "leaky_relu", "silu"}


def _activate(keras2: Any, activation: tuple[str, str] | None, x: Any) -> Any:
    """Apply a split-off Keras 3 activation with tf_keras layers; the last layer gets the Keras 3 layer's name."""
    if activation is None:
        return x
    kind, name = activation
    layers = keras2.layers

    def hard_sigmoid(t: Any, final: str) -> Any:
        t = layers.Rescaling(1.0, offset=3.0, name=f"{name}_plus3")(t)
        t = layers.ReLU(6.0, name=f"{name}_relu6")(t)
        return layers.Rescaling(1.0 / 6.0, name=final)(t)

    if kind == "relu6":
        return layers.ReLU(6.0, name=name)(x)
    if kind == "leaky_relu":
        return layers.LeakyReLU(0.2, name=name)(x)
    if kind == "silu":
        return layers.Activation("swish", name=name)(x)
    if kind == "hard_sigmoid":
        return hard_sigmoid(x, name)
    return layers.Multiply(name=name)([x, hard_sigmoid(x, f"{name}_gate")])  # hard_silu / hard_swish


def _accepted_keys(cls: type) -> set[str]:
    keys: set[str] = set()
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        params = inspect.signature(init).parameters
        keys |= {p for p, spec in params.items() if spec.kind not in (spec.VAR_KEYWORD, spec.VAR_POSITIONAL)}
        if not any(spec.kind == spec.VAR_KEYWORD for spec in params.values()):
            break
    return (keys | _BASE_LAYER_KEYS) - {"self"}


def _copy_weights(model3: Any, model2: Any) -> None:
    for layer3 in model3.layers:
        if not layer3.weights:
            continue
        layer2 = model2.get_layer(layer3.name)
        weights = [np.asarray(w) for w in layer3.get_weights()]
        expected = [tuple(w.shape) for w in layer2.weights]
        if [w.shape for w in weights] != expected:
            raise UnsupportedError(
                f"The Keras 3 bridge cannot copy the weights of layer '{layer3.name}' ({type(layer3).__name__}): "
                f"Keras 3 holds shapes {[w.shape for w in weights]}, tf_keras expects {expected}. "
                "Use --set quantization.method=ptq (PTQ converts Keras 3 models directly)."
            )
        layer2.set_weights(weights)


def _predict(model: Any, x: np.ndarray) -> list[np.ndarray]:
    out = model(x, training=False)
    return [np.asarray(o) for o in (out if isinstance(out, (list, tuple)) else [out])]


def _max_scaled_diff(a: list[np.ndarray], b: list[np.ndarray]) -> float:
    if len(a) != len(b) or any(x.shape != y.shape for x, y in zip(a, b, strict=True)):
        return float("inf")
    return max(float(np.max(np.abs(x - y)) / max(1.0, float(np.max(np.abs(x))))) for x, y in zip(a, b, strict=True))


def _first_differing_layer(
    keras: Any, keras2: Any, model3: Any, model2: Any, outputs_of: dict[str, Any], sample: np.ndarray, tolerance: float
) -> str:
    for layer3 in model3.layers:
        if type(layer3).__name__ == "InputLayer":
            continue
        try:
            probe3 = keras.Model(model3.inputs, layer3.output)
            probe2 = keras2.Model(model2.inputs, outputs_of[layer3.name])
            if _max_scaled_diff(_predict(probe3, sample), _predict(probe2, sample)) > tolerance:
                return f"layer '{layer3.name}' ({type(layer3).__name__})"
        except Exception:  # a layer we cannot probe is reported as the culprit
            return f"layer '{layer3.name}' ({type(layer3).__name__})"
    return "the model outputs"
