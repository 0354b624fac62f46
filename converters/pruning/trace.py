"""Step 1 and the fixing part of step 3: trace the channels of a tf_keras graph (no TensorFlow import).

Every channel of every tensor gets an id. Producers make new ids; per-channel layers pass their input's ids
through (a depthwise conv with multiplier m repeats each id m times); `Flatten` repeats them once per
spatial position; `Concatenate` joins them; TIES layers tie their inputs position by position. Channels that
reach a model output, the model input, or a layer that mixes channels without weights are fixed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edgebuild.errors import UnsupportedError

from .grouping import ChannelGraph

PRODUCERS = {"Conv1D", "Conv2D", "Conv3D", "Conv2DTranspose", "Dense", "SeparableConv1D", "SeparableConv2D"}
CHANNELWISE = {
    "BatchNormalization",
    "ReLU",
    "LeakyReLU",
    "ELU",
    "PReLU",
    "ThresholdedReLU",
    "Activation",
    "Dropout",
    "SpatialDropout1D",
    "SpatialDropout2D",
    "SpatialDropout3D",
    "GaussianNoise",
    "GaussianDropout",
    "AlphaDropout",
    "ActivityRegularization",
    "MaxPooling1D",
    "MaxPooling2D",
    "MaxPooling3D",
    "AveragePooling1D",
    "AveragePooling2D",
    "AveragePooling3D",
    "GlobalAveragePooling1D",
    "GlobalAveragePooling2D",
    "GlobalAveragePooling3D",
    "GlobalMaxPooling1D",
    "GlobalMaxPooling2D",
    "GlobalMaxPooling3D",
    "ZeroPadding1D",
    "ZeroPadding2D",
    "ZeroPadding3D",
    "Cropping1D",
    "Cropping2D",
    "Cropping3D",
    "UpSampling1D",
    "UpSampling2D",
    "UpSampling3D",
    "Rescaling",
}
DEPTHWISE = {"DepthwiseConv1D", "DepthwiseConv2D"}
TIES = {"Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum"}
FIXING = {"Softmax", "Reshape"}  # mix channels without per-channel weights: inputs kept whole
KNOWN = PRODUCERS | CHANNELWISE | DEPTHWISE | TIES | FIXING | {"Flatten", "Concatenate", "InputLayer"}
_CHANNEL_MIXING_ACTIVATIONS = {"softmax", "log_softmax"}


@dataclass
class Node:
    layer: Any
    config: dict
    inputs: list[tuple[str, int]]  # (layer name, output tensor index)
    call_kwargs: dict = field(default_factory=dict)


def graph_nodes(keras2: Any, model: Any) -> tuple[list[Node], list[tuple[str, int]], list[tuple[str, int]]]:
    """(nodes in call order, model input refs, model output refs) of a Sequential or functional tf_keras model."""
    if not isinstance(model, keras2.Model):
        raise UnsupportedError(f"Structured pruning needs a tf_keras model, not {type(model).__name__}.")
    if isinstance(model, keras2.Sequential):
        nodes: list[Node] = []
        first_input = model.inputs[0] if model.inputs else None
        if first_input is None:
            raise UnsupportedError(
                f"Sequential model {model.name} has no input shape yet; build it with keras.Input(shape=...) first."
            )
        input_layer = first_input._keras_history.layer
        nodes.append(Node(input_layer, input_layer.get_config(), []))
        prev = (input_layer.name, 0)
        for layer in model.layers:
            _check_layer(keras2, layer)
            nodes.append(Node(layer, layer.get_config(), [prev]))
            prev = (layer.name, 0)
        return nodes, [(input_layer.name, 0)], [prev]
    if not getattr(model, "_is_graph_network", False):
        raise UnsupportedError(
            f"Structured pruning needs a Sequential or functional model; {model.name} is a "
            "subclassed model, whose graph cannot be rebuilt."
        )
    config = model.get_config()
    by_name = {layer.name: layer for layer in model.layers}
    nodes = []
    for layer_config in config["layers"]:
        layer = by_name[layer_config["name"]]
        _check_layer(keras2, layer)
        inbound = layer_config.get("inbound_nodes") or []
        if len(inbound) > 1:
            raise UnsupportedError(
                f"Layer '{layer.name}' ({type(layer).__name__}) is called {len(inbound)} times "
                "(a shared layer); structured pruning rebuilds layers that are called once."
            )
        refs, kwargs = [], {}
        for entry in inbound[0] if inbound else []:
            refs.append((entry[0], int(entry[2])))
            if len(entry) > 3 and entry[3]:
                kwargs = dict(entry[3])
        nodes.append(Node(layer, layer.get_config(), refs, kwargs))
    inputs = [(r[0], int(r[2])) for r in config["input_layers"]]
    outputs = config["output_layers"]
    if outputs and not isinstance(outputs[0], (list, tuple)):
        outputs = [outputs]
    return nodes, inputs, [(r[0], int(r[2])) for r in outputs]


def _check_layer(keras2: Any, layer: Any) -> None:
    kind = type(layer).__name__
    if isinstance(layer, keras2.Model):
        raise UnsupportedError(
            f"Layer '{layer.name}' is a nested model ({kind}); structured pruning needs the "
            "layers in one flat graph. Rebuild the model without nesting."
        )
    if kind not in KNOWN:
        raise UnsupportedError(
            f"Structured pruning does not know layer '{layer.name}' of type {kind}, so it cannot tell how its "
            f"channels map to the next layer's. Replace or remove it, or use --set pruning.kind=unstructured "
            f"(which keeps every shape). Known types: {', '.join(sorted(KNOWN - {'InputLayer'}))}."
        )
    config = layer.get_config()
    if config.get("data_format") == "channels_first":
        raise UnsupportedError(
            f"Layer '{layer.name}' ({kind}) uses data_format='channels_first'; structured "
            "pruning handles channels-last models only."
        )
    if int(config.get("groups", 1) or 1) != 1:
        raise UnsupportedError(
            f"Layer '{layer.name}' ({kind}) is a grouped convolution (groups="
            f"{config['groups']}); structured pruning does not rebuild grouped convolutions."
        )


@dataclass
class Trace:
    graph: ChannelGraph
    channels: dict[tuple[str, int], list[int]]  # tensor -> channel id per position of its last axis
    in_channels: dict[str, list[list[int]]]  # layer -> channel ids of each input
    first_bn: dict[int, tuple[str, int]]  # channel id -> (BatchNormalization layer, position)


def trace_channels(nodes: list[Node], outputs: list[tuple[str, int]]) -> Trace:
    """Channel ids of every tensor, and the ties and fixed ids between them (see the module doc)."""
    graph = ChannelGraph()
    channels: dict[tuple[str, int], list[int]] = {}
    in_channels: dict[str, list[list[int]]] = {}
    first_bn: dict[int, tuple[str, int]] = {}
    counter = iter(range(1 << 62))

    def new(n: int, fixed: bool) -> list[int]:
        ids = [next(counter) for _ in range(n)]
        if fixed:
            graph.fixed.update(ids)
        return ids

    for node in nodes:
        layer, kind, name = node.layer, type(node.layer).__name__, node.layer.name
        ins = [channels[ref] for ref in node.inputs]
        in_channels[name] = ins
        if kind == "InputLayer":
            out = new(_last_dim(layer.output), fixed=True)
        elif kind in PRODUCERS:
            out = new(_last_dim(layer.output), fixed=False)
            graph.producers[name] = out
            if str(node.config.get("activation")) in _CHANNEL_MIXING_ACTIVATIONS:
                graph.fixed.update(out)
        elif kind in CHANNELWISE:
            out = list(ins[0])
            if kind == "BatchNormalization":
                _check_bn_axis(layer)
                for pos, i in enumerate(out):
                    first_bn.setdefault(i, (name, pos))
            if kind == "Activation" and str(node.config.get("activation")) in _CHANNEL_MIXING_ACTIVATIONS:
                graph.fixed.update(out)
                out = new(len(out), fixed=True)
            if kind == "Rescaling" and (np.ndim(node.config.get("scale", 1)) or np.ndim(node.config.get("offset", 0))):
                graph.fixed.update(out)  # per-channel constants: keep the channels whole
        elif kind in DEPTHWISE:
            multiplier = int(node.config.get("depth_multiplier", 1))
            out = [i for i in ins[0] for _ in range(multiplier)]
        elif kind == "Flatten":
            positions = int(np.prod([int(d) for d in layer.input.shape[1:-1]])) if len(layer.input.shape) > 2 else 1
            out = list(ins[0]) * positions
        elif kind == "Concatenate":
            rank = len(layer.output.shape)
            if int(node.config.get("axis", -1)) not in (-1, rank - 1):
                raise UnsupportedError(
                    f"Concatenate layer '{name}' joins along axis {node.config.get('axis')}; "
                    "structured pruning handles concatenation along the channel axis only."
                )
            out = [i for ids in ins for i in ids]
        elif kind in TIES:
            width = max(len(ids) for ids in ins)
            full = [ids for ids in ins if len(ids) == width]
            for ids in ins:
                if len(ids) != width:
                    if len(ids) != 1:
                        raise UnsupportedError(
                            f"{kind} layer '{name}' merges tensors of {len(ids)} and {width} "
                            "channels; structured pruning cannot tie them."
                        )
                    graph.fixed.update(ids)  # broadcast channel
            for ids in full[1:]:
                graph.ties.extend(zip(full[0], ids, strict=True))
            out = list(full[0])
        elif kind in FIXING:
            for ids in ins:
                graph.fixed.update(ids)
            out = new(_last_dim(layer.output), fixed=True)
        else:  # _check_layer refused it already
            raise UnsupportedError(f"Structured pruning does not know layer '{name}' of type {kind}.")
        channels[(name, 0)] = out
    for ref in outputs:
        graph.fixed.update(channels[ref])
    return Trace(graph, channels, in_channels, first_bn)


def _last_dim(tensor: Any) -> int:
    if isinstance(tensor, (list, tuple)):
        raise UnsupportedError("Structured pruning handles layers with one output tensor.")
    return int(tensor.shape[-1])


def _check_bn_axis(layer: Any) -> None:
    axis = layer.axis if isinstance(layer.axis, (list, tuple)) else [layer.axis]
    rank = len(layer.input.shape)
    if [a % rank for a in axis] != [rank - 1]:
        raise UnsupportedError(
            f"BatchNormalization '{layer.name}' normalizes axis {layer.axis}; structured pruning "
            "handles normalization over the channel (last) axis only."
        )
