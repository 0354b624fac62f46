"""Steps 4-5 with the weights: score channels, slice the kept ones and rebuild a narrower tf_keras model.

`prune_structured` is the whole surgery (trace, score, select, rebuild); see the package doc.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from edgebuild.profiles.schema import PruningSection

from .grouping import Group, select
from .options import PruningOptions
from .trace import (
    CHANNELWISE,
    DEPTHWISE,
    PRODUCERS,
    TIES,
    Node,
    Trace,
    graph_nodes,
    trace_channels,
)

# --------------------------------------------------------------------------- scores


def _weights(layer: Any) -> dict[str, np.ndarray]:
    """{short name (kernel, bias, gamma, ...): value} of a layer's weights."""
    return {w.name.split("/")[-1].split(":")[0]: np.asarray(w.numpy()) for w in layer.weights}


def _filter_norms(layer: Any, criterion: str) -> np.ndarray:
    weights = _weights(layer)
    kind = type(layer).__name__
    if kind in ("SeparableConv1D", "SeparableConv2D"):
        kernel, out_axis = weights["pointwise_kernel"], -1
    else:
        kernel, out_axis = weights["kernel"], (-2 if kind == "Conv2DTranspose" else -1)
    kernel = np.moveaxis(kernel, out_axis, -1).reshape(-1, kernel.shape[out_axis])
    return np.sqrt((kernel**2).sum(axis=0)) if criterion == "l2" else np.abs(kernel).sum(axis=0)


def _scores(trace: Trace, layers: dict[str, Any], criterion: str) -> tuple[dict[int, float], list[str]]:
    """Per channel id: its producer-normalized score; plus the producers that fell back to L1."""
    scores: dict[int, float] = {}
    fallback = []
    gammas: dict[str, np.ndarray] = {}
    for name, ids in trace.graph.producers.items():
        values = _filter_norms(layers[name], "l2" if criterion == "l2" else "l1")
        if criterion == "bn_scale":
            found = [trace.first_bn[i] for i in ids if i in trace.first_bn]
            if len(found) == len(ids):
                bn_values = []
                for bn_name, pos in found:
                    if bn_name not in gammas:
                        w = _weights(layers[bn_name])
                        gammas[bn_name] = np.abs(w["gamma"]) if "gamma" in w else np.ones(len(w["moving_mean"]))
                    bn_values.append(gammas[bn_name][pos])
                values = np.asarray(bn_values)
            else:
                fallback.append(name)
        mean = float(np.mean(values)) if len(values) else 0.0
        normalized = values / mean if mean > 0 else values
        scores.update({i: float(v) for i, v in zip(ids, normalized, strict=True)})
    return scores, fallback


# --------------------------------------------------------------------------- rebuild


def _positions_kept(ids: list[int], kept: set[int], fixed: set[int]) -> np.ndarray:
    return np.asarray([p for p, i in enumerate(ids) if i in kept or i in fixed], dtype=np.int64)


def _sliced_weights(node: Node, ins: list[np.ndarray], out: np.ndarray, in_ids: list[list[int]]) -> list[np.ndarray]:
    """The layer's weights (in get_weights order) cut to the kept input positions `ins` and output positions `out`."""
    layer, kind = node.layer, type(node.layer).__name__
    result = []
    for w in layer.weights:
        short = w.name.split("/")[-1].split(":")[0]
        value = np.asarray(w.numpy())
        if kind in PRODUCERS:
            if short == "kernel" and kind == "Conv2DTranspose":
                value = np.take(np.take(value, ins[0], axis=-1), out, axis=-2)
            elif short == "kernel":
                value = np.take(np.take(value, ins[0], axis=-2), out, axis=-1)
            elif short == "depthwise_kernel":
                value = np.take(value, ins[0], axis=-2)
            elif short == "pointwise_kernel":
                multiplier = value.shape[-2] // len(in_ids[0])
                mid = np.asarray([p * multiplier + j for p in ins[0] for j in range(multiplier)], dtype=np.int64)
                value = np.take(np.take(value, mid, axis=-2), out, axis=-1)
            elif short == "bias":
                value = value[out]
        elif kind in DEPTHWISE:
            if short == "depthwise_kernel":
                value = np.take(value, ins[0], axis=-2)
            elif short == "bias":
                value = value[out]
        elif kind in CHANNELWISE and value.ndim >= 1 and value.shape[-1] == len(in_ids[0]):
            value = np.take(value, ins[0], axis=-1)  # BatchNormalization, PReLU: per-channel weights
        result.append(value)
    return result


def _rebuild(
    keras2: Any,
    model: Any,
    nodes: list[Node],
    inputs: list[tuple[str, int]],
    outputs: list[tuple[str, int]],
    trace: Trace,
    kept: set[int],
    copy_weights: bool,
) -> Any:
    fixed = trace.graph.fixed
    tensors: dict[tuple[str, int], Any] = {}
    pending: list[tuple[Any, list[np.ndarray]]] = []
    for node in nodes:
        layer, kind, name = node.layer, type(node.layer).__name__, node.layer.name
        if kind == "InputLayer":
            tensors[(name, 0)] = keras2.Input(
                batch_shape=tuple(layer.output.shape), dtype=layer.output.dtype, name=name
            )
            continue
        in_ids = trace.in_channels[name]
        out_ids = trace.channels[(name, 0)]
        out_pos = _positions_kept(out_ids, kept, fixed)
        config = copy.deepcopy(node.config)
        if kind in PRODUCERS:
            config["units" if kind == "Dense" else "filters"] = len(out_pos)
        new_layer = type(layer).from_config(config)
        args = [tensors[ref] for ref in node.inputs]
        call_input = args[0] if len(args) == 1 and kind not in TIES | {"Concatenate"} else args
        tensors[(name, 0)] = new_layer(call_input, **node.call_kwargs)
        if copy_weights and layer.weights:
            ins = [_positions_kept(ids, kept, fixed) for ids in in_ids]
            pending.append((new_layer, _sliced_weights(node, ins, out_pos, in_ids)))
    new_model = keras2.Model(
        [tensors[r] for r in inputs] if len(inputs) > 1 else tensors[inputs[0]],
        [tensors[r] for r in outputs] if len(outputs) > 1 else tensors[outputs[0]],
        name=f"{model.name}_pruned",
    )
    for new_layer, weights in pending:
        new_layer.set_weights(weights)
    return new_model


# --------------------------------------------------------------------------- the pass


@dataclass
class PruningResult:
    model: Any  # the narrower tf_keras model
    before: dict[str, int]  # params, trainable_params, macs
    after: dict[str, int]
    channels: dict[str, tuple[int, int]]  # producer -> (before, after)
    groups: list[Group]
    options: PruningSection
    criterion_fallback: list[str] = field(default_factory=list)  # bn_scale producers scored by L1 instead

    @property
    def mac_reduction(self) -> float:
        return self.before["macs"] / max(1, self.after["macs"])

    def report(self) -> dict[str, Any]:
        """The report's `pruning` block (JSON-ready)."""
        return {
            "kind": "structured",
            "ratio": self.options.ratio,
            "criterion": self.options.criterion,
            "round_to": self.options.round_to,
            "min_channels": self.options.min_channels,
            "layer_ratios": dict(self.options.layer_ratios),
            "before": dict(self.before),
            "after": dict(self.after),
            "mac_reduction": round(self.mac_reduction, 3),
            "param_reduction": round(self.before["params"] / max(1, self.after["params"]), 3),
            "channels": {k: list(v) for k, v in self.channels.items()},
            "groups": [asdict(g) | {"layers": list(g.layers)} for g in self.groups if len(g.layers) > 1],
            "criterion_fallback": self.criterion_fallback,
        }


def prune_structured(model: Any, options: PruningSection | None = None, copy_weights: bool = True) -> PruningResult:
    """Remove channels from a tf_keras model (see the package doc); the original is left untouched.

    `copy_weights=False` gives a width-scaled copy with freshly initialized weights.
    """
    from edgebuild._tf import tf_keras

    from ..macs import summary

    keras2 = tf_keras()
    options = options or PruningOptions()
    nodes, inputs, outputs = graph_nodes(keras2, model)
    trace = trace_channels(nodes, outputs)
    layers = {node.layer.name: node.layer for node in nodes}
    scores, fallback = _scores(trace, layers, options.criterion)
    kept, groups = select(trace.graph, scores, options)
    new_model = _rebuild(keras2, model, nodes, inputs, outputs, trace, kept, copy_weights)
    channels = {
        name: (len(ids), len(_positions_kept(ids, kept, trace.graph.fixed)))
        for name, ids in trace.graph.producers.items()
    }
    fallback = [name for name in fallback if any(name in g.layers for g in groups)]  # only layers that can shrink
    return PruningResult(new_model, summary(model), summary(new_model), channels, groups, options, fallback)
