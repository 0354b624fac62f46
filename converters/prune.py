"""Structured pruning: remove whole filters/channels and rebuild a narrower tf_keras model.

TFMOT's pruning only zeroes weights (same shapes, same MACs, same latency).
This pass removes channels for real:

1. **Trace channels.** Every channel of every tensor is given an id. Layers
   that make new channels (Conv, Dense, SeparableConv, Conv2DTranspose: the
   *producers*) create new ids; per-channel layers (BatchNormalization,
   activations, pooling, padding, DepthwiseConv, global pooling, ...) pass their
   input ids through (a depthwise conv with multiplier m repeats each id m
   times); `Flatten` repeats the channel ids once per spatial position (channels
   last, so flat index = position x C + c); `Concatenate` joins its inputs' ids.
2. **Tie.** `Add`, `Subtract`, `Multiply`, `Average`, `Maximum`, `Minimum` tie
   their inputs position by position: tied channels are kept or removed
   together. Producers whose channels are tied form one *group* that shares one
   mask (a residual block's convs; with `Concatenate` the masks are offset).
3. **Fix.** Channels that reach a model output, the model input, or a layer
   that mixes channels without weights (`Softmax`, `Reshape`) are never removed.
4. **Rank and select.** Each channel is scored by `criterion`: "l1" / "l2" norm
   of its filter (all kernel weights producing it), or "bn_scale" = |gamma| of
   the BatchNormalization that first normalizes it (L1 where none does). Scores
   are divided by their producer's mean so every member of a group weighs the
   same, then summed over the tied channels. Per group, of its n removable
   channels `n - floor(n * ratio)` are kept, rounded to the nearest multiple
   of `round_to` (at least `round_to`, at most n), and never fewer than
   `min_channels`, also per producer.
5. **Rebuild.** Each layer is re-created from its config with the new
   `filters`/`units`, called on the new tensors, and given its weights sliced
   to the kept input and output channels (BatchNormalization and other
   per-channel weights follow their input).

A layer type the surgery does not know is an UnsupportedError naming it, as
are channels-first layouts, grouped convs, shared layers and nested models.
"""

from __future__ import annotations

import copy
import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from edgebuild.errors import ProfileError, UnsupportedError

CRITERIA = ("l1", "l2", "bn_scale")

PRODUCERS = {"Conv1D", "Conv2D", "Conv3D", "Conv2DTranspose", "Dense", "SeparableConv1D", "SeparableConv2D"}
CHANNELWISE = {
    "BatchNormalization", "ReLU", "LeakyReLU", "ELU", "PReLU", "ThresholdedReLU", "Activation", "Dropout",
    "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D", "GaussianNoise", "GaussianDropout", "AlphaDropout",
    "ActivityRegularization", "MaxPooling1D", "MaxPooling2D", "MaxPooling3D", "AveragePooling1D",
    "AveragePooling2D", "AveragePooling3D", "GlobalAveragePooling1D", "GlobalAveragePooling2D",
    "GlobalAveragePooling3D", "GlobalMaxPooling1D", "GlobalMaxPooling2D", "GlobalMaxPooling3D", "ZeroPadding1D",
    "ZeroPadding2D", "ZeroPadding3D", "Cropping1D", "Cropping2D", "Cropping3D", "UpSampling1D", "UpSampling2D",
    "UpSampling3D", "Rescaling",
}
DEPTHWISE = {"DepthwiseConv1D", "DepthwiseConv2D"}
TIES = {"Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum"}
FIXING = {"Softmax", "Reshape"}  # mix channels without per-channel weights: inputs kept whole
KNOWN = PRODUCERS | CHANNELWISE | DEPTHWISE | TIES | FIXING | {"Flatten", "Concatenate", "InputLayer"}
_CHANNEL_MIXING_ACTIVATIONS = {"softmax", "log_softmax"}


# --------------------------------------------------------------------------- options and selection (no TF)

@dataclass(frozen=True)
class PruningOptions:
    """What to prune; checks its own invariants (ProfileError naming the pruning.* key)."""

    ratio: float = 0.5
    criterion: str = "l1"
    round_to: int = 1
    min_channels: int = 1
    layer_ratios: dict[str, float] = field(default_factory=dict)  # layer name -> ratio (0 leaves it alone)

    def __post_init__(self) -> None:
        check_ratio(self.ratio, "pruning.ratio")
        for name, ratio in self.layer_ratios.items():
            check_ratio(ratio, f"pruning.layer_ratios.{name}")
        if self.criterion not in CRITERIA:
            raise ProfileError(f"pruning.criterion = {self.criterion!r} is not known; choose one of "
                               f"{', '.join(CRITERIA)}.")
        if not isinstance(self.round_to, int) or self.round_to < 1:
            raise ProfileError(f"pruning.round_to = {self.round_to!r} must be a whole number >= 1 (e.g. 8 or 16 "
                               "to keep channel counts hardware-friendly; 1 turns rounding off).")
        if not isinstance(self.min_channels, int) or self.min_channels < 1:
            raise ProfileError(f"pruning.min_channels = {self.min_channels!r} must be a whole number >= 1 "
                               "(no layer may lose all its channels).")

    @classmethod
    def from_section(cls, section: Any) -> "PruningOptions":
        """From a `[pruning]` PruningSection; fields it does not have yet take their defaults."""
        return cls(ratio=float(getattr(section, "ratio", 0.5)), criterion=getattr(section, "criterion", "l1"),
                   round_to=int(getattr(section, "round_to", 1)),
                   min_channels=int(getattr(section, "min_channels", 1)),
                   layer_ratios=dict(getattr(section, "layer_ratios", None) or {}))


def check_ratio(ratio: Any, key: str = "ratio") -> float:
    """0 <= ratio < 1, else a ProfileError saying so."""
    if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not (0.0 <= float(ratio) < 1.0) \
            or math.isnan(float(ratio)):
        raise ProfileError(
            f"{key} = {ratio!r} is out of range: it is the share of channels to remove, from 0 (keep all) up to "
            "but not including 1 (e.g. 0.5 removes half of each layer's filters)."
        )
    return float(ratio)


def keep_count(n: int, ratio: float, round_to: int = 1, min_channels: int = 1) -> int:
    """How many of `n` removable channels stay: n - floor(n * ratio), rounded to a multiple of `round_to`
    (nearest, ties up, at least `round_to`), then clamped to [min(min_channels, n), n]."""
    if n <= 0:
        return 0
    keep = n - math.floor(n * ratio + 1e-9)
    if round_to > 1:
        keep = max(round_to, int(math.floor(keep / round_to + 0.5)) * round_to)
    return max(min(min_channels, n), min(keep, n))


class _UnionFind:
    def __init__(self) -> None:
        self.parent: dict[Any, Any] = {}

    def add(self, item: Any) -> None:
        self.parent.setdefault(item, item)

    def find(self, item: Any) -> Any:
        root = item
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[item] != root:
            self.parent[item], item = root, self.parent[item]
        return root

    def union(self, a: Any, b: Any) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb, key=str)] = min(ra, rb, key=str)


@dataclass
class ChannelGraph:
    """The traced channels (pure data): which ids each producer makes, which ids are tied or fixed."""

    producers: dict[str, list[int]] = field(default_factory=dict)  # producer layer -> its output channel ids
    ties: list[tuple[int, int]] = field(default_factory=list)
    fixed: set[int] = field(default_factory=set)


@dataclass(frozen=True)
class Group:
    layers: tuple[str, ...]  # producers sharing one mask
    channels: int  # removable channel units before
    kept: int  # after
    ratio: float


def select(graph: ChannelGraph, scores: dict[int, float], options: PruningOptions) -> tuple[set[int], list[Group]]:
    """(ids kept, groups) from traced channels and per-id scores (higher = more important)."""
    uf = _UnionFind()
    for ids in graph.producers.values():
        for i in ids:
            uf.add(i)
    for i in graph.fixed:
        uf.add(i)
    for a, b in graph.ties:
        uf.add(a)
        uf.add(b)
        uf.union(a, b)
    fixed_roots = {uf.find(i) for i in graph.fixed}
    owner_of = {i: name for name, ids in graph.producers.items() for i in ids}
    members: dict[int, list[int]] = {}
    for i in uf.parent:
        members.setdefault(uf.find(i), []).append(i)
    # producers connected through tied channels form one group
    layer_uf = _UnionFind()
    for name in graph.producers:
        layer_uf.add(name)
    for root, ids in members.items():
        owners = sorted({owner_of[i] for i in ids if i in owner_of})
        for other in owners[1:]:
            layer_uf.union(owners[0], other)
    groups: dict[str, list[str]] = {}
    for name in graph.producers:
        groups.setdefault(layer_uf.find(name), []).append(name)
    kept_roots = set(fixed_roots)
    report = []
    for names in groups.values():
        names_set = set(names)
        roots = sorted({uf.find(i) for n in names for i in graph.producers[n]} - fixed_roots)
        if not roots:
            continue
        ratio = _group_ratio(names, options)
        ranked = sorted(roots, key=lambda r: (-sum(scores.get(i, 0.0) for i in members[r]), r))
        keep = set(ranked[:keep_count(len(roots), ratio, options.round_to, options.min_channels)])
        for name in names:  # every producer keeps at least min_channels of its own channels
            own = [r for r in ranked if any(owner_of.get(i) == name for i in members[r])]
            own_fixed = sum(1 for i in graph.producers[name] if uf.find(i) in fixed_roots)
            need = min(options.min_channels, len(own)) - own_fixed - sum(1 for r in own if r in keep)
            for r in own:
                if need <= 0:
                    break
                if r not in keep:
                    keep.add(r)
                    need -= 1
        kept_roots |= keep
        report.append(Group(tuple(n for n in names if n in names_set), len(roots), len(keep), ratio))
    kept = {i for i in uf.parent if uf.find(i) in kept_roots}
    return kept, report


def _group_ratio(names: list[str], options: PruningOptions) -> float:
    given = {n: options.layer_ratios[n] for n in names if n in options.layer_ratios}
    if len(set(given.values())) > 1:
        raise ProfileError(
            f"pruning.layer_ratios gives different ratios to layers whose channels are tied (residual Add or "
            f"similar): {', '.join(f'{k} = {v}' for k, v in sorted(given.items()))}. They share one mask; give them "
            "the same ratio."
        )
    return next(iter(given.values())) if given else options.ratio


# --------------------------------------------------------------------------- tracing the Keras graph

@dataclass
class _Node:
    layer: Any
    config: dict
    inputs: list[tuple[str, int]]  # (layer name, output tensor index)
    call_kwargs: dict = field(default_factory=dict)


def _nodes(keras2: Any, model: Any) -> tuple[list[_Node], list[tuple[str, int]], list[tuple[str, int]]]:
    """(nodes in call order, model input refs, model output refs) of a Sequential or functional tf_keras model."""
    if not isinstance(model, keras2.Model):
        raise UnsupportedError(f"Structured pruning needs a tf_keras model, not {type(model).__name__}.")
    if isinstance(model, keras2.Sequential):
        nodes: list[_Node] = []
        first_input = model.inputs[0] if model.inputs else None
        if first_input is None:
            raise UnsupportedError(f"Sequential model {model.name} has no input shape yet; build it with "
                                   "keras.Input(shape=...) first.")
        input_layer = first_input._keras_history.layer
        nodes.append(_Node(input_layer, input_layer.get_config(), []))
        prev = (input_layer.name, 0)
        for layer in model.layers:
            _check_layer(keras2, layer)
            nodes.append(_Node(layer, layer.get_config(), [prev]))
            prev = (layer.name, 0)
        return nodes, [(input_layer.name, 0)], [prev]
    if not getattr(model, "_is_graph_network", False):
        raise UnsupportedError(f"Structured pruning needs a Sequential or functional model; {model.name} is a "
                               "subclassed model, whose graph cannot be rebuilt.")
    config = model.get_config()
    by_name = {layer.name: layer for layer in model.layers}
    nodes = []
    for layer_config in config["layers"]:
        layer = by_name[layer_config["name"]]
        _check_layer(keras2, layer)
        inbound = layer_config.get("inbound_nodes") or []
        if len(inbound) > 1:
            raise UnsupportedError(f"Layer '{layer.name}' ({type(layer).__name__}) is called {len(inbound)} times "
                                   "(a shared layer); structured pruning rebuilds layers that are called once.")
        refs, kwargs = [], {}
        for entry in (inbound[0] if inbound else []):
            refs.append((entry[0], int(entry[2])))
            if len(entry) > 3 and entry[3]:
                kwargs = dict(entry[3])
        nodes.append(_Node(layer, layer.get_config(), refs, kwargs))
    inputs = [(r[0], int(r[2])) for r in config["input_layers"]]
    outputs = config["output_layers"]
    if outputs and not isinstance(outputs[0], (list, tuple)):
        outputs = [outputs]
    return nodes, inputs, [(r[0], int(r[2])) for r in outputs]


def _check_layer(keras2: Any, layer: Any) -> None:
    kind = type(layer).__name__
    if isinstance(layer, keras2.Model):
        raise UnsupportedError(f"Layer '{layer.name}' is a nested model ({kind}); structured pruning needs the "
                               "layers in one flat graph. Rebuild the model without nesting.")
    if kind not in KNOWN:
        raise UnsupportedError(
            f"Structured pruning does not know layer '{layer.name}' of type {kind}, so it cannot tell how its "
            f"channels map to the next layer's. Replace or remove it, or use --set pruning.kind=unstructured "
            f"(which keeps every shape). Known types: {', '.join(sorted(KNOWN - {'InputLayer'}))}."
        )
    config = layer.get_config()
    if config.get("data_format") == "channels_first":
        raise UnsupportedError(f"Layer '{layer.name}' ({kind}) uses data_format='channels_first'; structured "
                               "pruning handles channels-last models only.")
    if int(config.get("groups", 1) or 1) != 1:
        raise UnsupportedError(f"Layer '{layer.name}' ({kind}) is a grouped convolution (groups="
                               f"{config['groups']}); structured pruning does not rebuild grouped convolutions.")


@dataclass
class _Trace:
    graph: ChannelGraph
    channels: dict[tuple[str, int], list[int]]  # tensor -> channel id per position of its last axis
    in_channels: dict[str, list[list[int]]]  # layer -> channel ids of each input
    first_bn: dict[int, tuple[str, int]]  # channel id -> (BatchNormalization layer, position)


def _trace(nodes: list[_Node], outputs: list[tuple[str, int]]) -> _Trace:
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
                raise UnsupportedError(f"Concatenate layer '{name}' joins along axis {node.config.get('axis')}; "
                                       "structured pruning handles concatenation along the channel axis only.")
            out = [i for ids in ins for i in ids]
        elif kind in TIES:
            width = max(len(ids) for ids in ins)
            full = [ids for ids in ins if len(ids) == width]
            for ids in ins:
                if len(ids) != width:
                    if len(ids) != 1:
                        raise UnsupportedError(f"{kind} layer '{name}' merges tensors of {len(ids)} and {width} "
                                               "channels; structured pruning cannot tie them.")
                    graph.fixed.update(ids)  # broadcast channel
            for ids in full[1:]:
                graph.ties.extend(zip(full[0], ids))
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
    return _Trace(graph, channels, in_channels, first_bn)


def _last_dim(tensor: Any) -> int:
    if isinstance(tensor, (list, tuple)):
        raise UnsupportedError("Structured pruning handles layers with one output tensor.")
    return int(tensor.shape[-1])


def _check_bn_axis(layer: Any) -> None:
    axis = layer.axis if isinstance(layer.axis, (list, tuple)) else [layer.axis]
    rank = len(layer.input.shape)
    if [a % rank for a in axis] != [rank - 1]:
        raise UnsupportedError(f"BatchNormalization '{layer.name}' normalizes axis {layer.axis}; structured pruning "
                               "handles normalization over the channel (last) axis only.")


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
    return np.sqrt((kernel ** 2).sum(axis=0)) if criterion == "l2" else np.abs(kernel).sum(axis=0)


def _scores(trace: _Trace, layers: dict[str, Any], criterion: str) -> tuple[dict[int, float], list[str]]:
    """Per channel id: its producer-normalized score; plus the producers that fell back to L1."""
    scores: dict[int, float] = {}
    fallback = []
    gammas: dict[str, np.ndarray] = {}
    for name, ids in trace.graph.producers.items():
        values = _filter_norms(layers[name], "l2" if criterion == "l2" else "l1")
        if criterion == "bn_scale":
            found = [trace.first_bn.get(i) for i in ids]
            if all(f is not None for f in found):
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
        scores.update({i: float(v) for i, v in zip(ids, normalized)})
    return scores, fallback


# --------------------------------------------------------------------------- rebuild

def _positions_kept(ids: list[int], kept: set[int], fixed: set[int]) -> np.ndarray:
    return np.asarray([p for p, i in enumerate(ids) if i in kept or i in fixed], dtype=np.int64)


def _sliced_weights(node: _Node, ins: list[np.ndarray], out: np.ndarray, in_ids: list[list[int]]) -> list[np.ndarray]:
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


def _rebuild(keras2: Any, model: Any, nodes: list[_Node], inputs: list[tuple[str, int]],
             outputs: list[tuple[str, int]], trace: _Trace, kept: set[int], copy_weights: bool) -> Any:
    fixed = trace.graph.fixed
    tensors: dict[tuple[str, int], Any] = {}
    pending: list[tuple[Any, list[np.ndarray]]] = []
    for node in nodes:
        layer, kind, name = node.layer, type(node.layer).__name__, node.layer.name
        if kind == "InputLayer":
            tensors[(name, 0)] = keras2.Input(batch_shape=tuple(layer.output.shape), dtype=layer.output.dtype,
                                              name=name)
            continue
        in_ids = trace.in_channels[name]
        out_ids = trace.channels[(name, 0)]
        out_pos = _positions_kept(out_ids, kept, fixed)
        config = copy.deepcopy(node.config)
        if kind in PRODUCERS:
            config["units" if kind == "Dense" else "filters"] = int(len(out_pos))
        new_layer = type(layer).from_config(config)
        args = [tensors[ref] for ref in node.inputs]
        call_input = args[0] if len(args) == 1 and kind not in TIES | {"Concatenate"} else args
        tensors[(name, 0)] = new_layer(call_input, **node.call_kwargs)
        if copy_weights and layer.weights:
            ins = [_positions_kept(ids, kept, fixed) for ids in in_ids]
            pending.append((new_layer, _sliced_weights(node, ins, out_pos, in_ids)))
    new_model = keras2.Model([tensors[r] for r in inputs] if len(inputs) > 1 else tensors[inputs[0]],
                             [tensors[r] for r in outputs] if len(outputs) > 1 else tensors[outputs[0]],
                             name=f"{model.name}_pruned")
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
    options: PruningOptions
    criterion_fallback: list[str] = field(default_factory=list)  # bn_scale producers scored by L1 instead

    @property
    def mac_reduction(self) -> float:
        return self.before["macs"] / max(1, self.after["macs"])

    def report(self) -> dict[str, Any]:
        """The report's `pruning` block (JSON-ready)."""
        return {
            "kind": "structured",
            "ratio": self.options.ratio, "criterion": self.options.criterion, "round_to": self.options.round_to,
            "min_channels": self.options.min_channels, "layer_ratios": dict(self.options.layer_ratios),
            "before": dict(self.before), "after": dict(self.after),
            "mac_reduction": round(self.mac_reduction, 3),
            "param_reduction": round(self.before["params"] / max(1, self.after["params"]), 3),
            "channels": {k: list(v) for k, v in self.channels.items()},
            "groups": [asdict(g) | {"layers": list(g.layers)} for g in self.groups if len(g.layers) > 1],
            "criterion_fallback": self.criterion_fallback,
        }


def prune_structured(model: Any, options: PruningOptions | None = None, copy_weights: bool = True) -> PruningResult:
    """Remove channels from a tf_keras model (see the module doc); the original is left untouched.

    `copy_weights=False` gives a width-scaled copy with freshly initialized weights.
    """
    from edgebuild._tf import tf_keras
    from edgebuild.converters.macs import summary

    keras2 = tf_keras()
    options = options or PruningOptions()
    nodes, inputs, outputs = _nodes(keras2, model)
    trace = _trace(nodes, outputs)
    layers = {node.layer.name: node.layer for node in nodes}
    scores, fallback = _scores(trace, layers, options.criterion)
    kept, groups = select(trace.graph, scores, options)
    new_model = _rebuild(keras2, model, nodes, inputs, outputs, trace, kept, copy_weights)
    channels = {name: (len(ids), len(_positions_kept(ids, kept, trace.graph.fixed)))
                for name, ids in trace.graph.producers.items()}
    fallback = [name for name in fallback if any(name in g.layers for g in groups)]  # only layers that can shrink
    return PruningResult(new_model, summary(model), summary(new_model), channels, groups, options, fallback)


RECOVERIES = ("auto", "fine-tune", "distill")
AUTO_DISTILL_GAP = 1.0  # points of early-stopping top-1 below the unpruned model that make "auto" distill too


@dataclass
class PruneOutcome:
    """Pruning plus recovery training: what the pipeline stage gets back."""

    model: Any
    pruning: PruningResult
    accuracy: dict[str, Any]  # top-1 of original, pruned before and after recovery (on `evaluation` samples)
    training: Any  # TrainingResult or DistillationOutcome, or None without training
    recovery: str  # "fine-tune", "distill", "fine-tune + distill" or "none"
    fallback: dict[str, Any] | None = None  # "auto": why distillation ran after fine-tuning, and what was kept

    def report(self) -> dict[str, Any]:
        block = self.pruning.report()
        block["accuracy"] = self.accuracy
        block["recovery"] = self.recovery
        if self.training is not None:
            block["training"] = self.training.to_dict()
        if self.fallback is not None:
            block["distillation_fallback"] = self.fallback
        return block


def recovery_mode(pruning: Any, distillation: Any, labelled: bool) -> str:
    """"fine-tune", "distill" or "auto" for a [pruning] section (see `run_structured_pruning`)."""
    if distillation is not None and getattr(distillation, "enabled", False):
        return "distill"
    mode = getattr(pruning, "recovery", "auto")
    if mode not in RECOVERIES:
        raise ProfileError(f"pruning.recovery = {mode!r} is not known; choose one of {', '.join(RECOVERIES)}.")
    if not labelled:
        return "distill"  # no labels: learn from the unpruned model's outputs
    return mode


def run_structured_pruning(model: Any, train: tuple[np.ndarray, np.ndarray | None],
                           val: tuple[np.ndarray, np.ndarray | None] | None, pruning: Any, training: Any,
                           distillation: Any = None, seed: int = 0, progress: Any = None,
                           teacher: Any = None, evaluation: tuple[np.ndarray, np.ndarray | None] | None = None,
                           cancel: Any = None) -> PruneOutcome:
    """The `prune` stage: prune `model` (tf_keras) by `[pruning]`, then recover accuracy.

    `val` is what early stopping watches (in a build: the early-stopping split); `evaluation` the samples the
    report's accuracy is measured on (in a build: the gate's validation samples, never trained on; default
    `val`). Recovery (`training` None: none):
    - "distill" (`[distillation]` enabled, `pruning.recovery = "distill"`, or data without labels):
      distillation from `teacher` (default `model`, the unpruned original);
    - "fine-tune": `train.fit` on the labels;
    - "auto" (default): fine-tune; when the result still scores more than AUTO_DISTILL_GAP points below the
      unpruned model on `val`, distill from it, starting from the fine-tuned weights, and keep whichever
      scores higher on `val` (the fine-tuned weights on a tie). Both share the one time budget.
    The report's `training` block is the TrainingResult, or with distillation only the distillation block
    (which holds its TrainingResult); "auto" adds `distillation_fallback` when it distilled.
    """
    from edgebuild.converters.train import fit

    options = PruningOptions.from_section(pruning)
    result = prune_structured(model, options)
    evaluation = val if evaluation is None else evaluation
    teacher = model if teacher is None else teacher
    before_acc = top1(model, evaluation)
    pruned_acc = top1(result.model, evaluation)
    trained, recovery, fallback = None, "none", None
    if training is not None:
        mode = recovery_mode(pruning, distillation, train[1] is not None)
        if mode == "distill":
            trained = _distill(teacher, result.model, train, val, distillation, training, seed, progress, cancel)
            recovery = "distill"
        else:
            trained = fit(result.model, train, val, training, progress=progress, seed=seed, cancel=cancel)
            recovery = "fine-tune"
            if mode == "auto" and trained.stopped_by not in ("cancelled", "time_budget"):
                fallback = _distill_fallback(model, teacher, result.model, train, val, distillation, training, seed,
                                             progress, cancel, trained.seconds)
                if fallback is not None and fallback["kept"] == "distill":
                    recovery = "fine-tune + distill"
    accuracy = {"original": before_acc, "pruned": pruned_acc, "recovered": top1(result.model, evaluation),
                "samples": 0 if evaluation is None else len(evaluation[0])}
    return PruneOutcome(result.model, result, accuracy, trained, recovery, fallback)


def _distill(teacher: Any, student: Any, train: Any, val: Any, distillation: Any, training: Any, seed: int,
             progress: Any, cancel: Any) -> Any:
    from edgebuild.converters.distill import distill
    from edgebuild.profiles.schema import DistillationSection

    section = distillation if distillation is not None else DistillationSection(enabled=True)
    return distill(teacher, student, train, val, section, training, seed=seed, progress=progress,
                   student_label="the structurally pruned model", cancel=cancel)


def _distill_fallback(original: Any, teacher: Any, student: Any, train: Any, val: Any, distillation: Any,
                      training: Any, seed: int, progress: Any, cancel: Any, spent: float) -> dict[str, Any] | None:
    """"auto": distill after fine-tuning when the early-stopping split says fine-tuning fell short."""
    if val is None or val[1] is None or len(val[0]) == 0:
        return None
    reference, fine_tuned = top1(original, val), top1(student, val)
    if reference is None or fine_tuned is None or reference - fine_tuned <= AUTO_DISTILL_GAP:
        return None
    budget = float(getattr(training, "time_budget", 0) or 0)
    if budget:
        left = budget - spent
        if left <= 0:
            return None
        training = training.model_copy(update={"time_budget": left})
    kept_weights = student.get_weights()
    outcome = _distill(teacher, student, train, val, distillation, training, seed, progress, cancel)
    distilled = top1(student, val)
    kept = "distill" if distilled is not None and distilled > fine_tuned else "fine-tune"
    if kept == "fine-tune":
        student.set_weights(kept_weights)
    return {"reason": f"fine-tuning left early-stopping top-1 at {fine_tuned:.2f}% vs {reference:.2f}% unpruned "
                      f"(more than {AUTO_DISTILL_GAP:g} points below)",
            "early_stopping_top1": {"original": reference, "fine-tune": fine_tuned, "distill": distilled},
            "kept": kept, "cancelled": outcome.training.cancelled, **outcome.report()}


def top1(model: Any, data: tuple[np.ndarray, np.ndarray | None] | None, batch_size: int = 256) -> float | None:
    """Top-1 accuracy of a Keras model on labelled data, in percent; None without labels."""
    if data is None or data[1] is None or len(data[0]) == 0:
        return None
    x, y = np.asarray(data[0], np.float32), np.asarray(data[1])
    preds = np.concatenate([np.asarray(model(x[i:i + batch_size], training=False))
                            for i in range(0, len(x), batch_size)])
    return round(100.0 * float((preds.argmax(-1) == y.reshape(len(y))).mean()), 2)


# --------------------------------------------------------------------------- the standalone commands' library side

def load_training_data(data_path: Any, input_shape: tuple, seed: int = 0, validation_fraction: float = 0.2
                       ) -> tuple[tuple[np.ndarray, np.ndarray | None], tuple[np.ndarray, np.ndarray | None] | None,
                                  tuple[np.ndarray, np.ndarray | None]]:
    """`--data` -> seeded, non-overlapping (train, early-stopping, validation) splits (labels may be None).

    The same rule as a build's split (`edgebuild.data.split`, no calibration samples): training passes watch
    the early-stopping split (None when the data is too small for one); the validation samples only
    measure the accuracy the report gives.
    """
    from pathlib import Path

    from edgebuild.data import check_fits, load_dataset, split
    from edgebuild.profiles.schema import DataSection

    data = check_fits(load_dataset(Path(data_path), input_shape), input_shape, "the model")
    splits = split(len(data.x), DataSection(seed=seed, validation_fraction=validation_fraction), 0)
    y = data.y

    def take(idx: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        return data.x[idx], None if y is None else y[idx]

    held_out = take(splits.early_stopping) if len(splits.early_stopping) else None
    return take(splits.training), held_out, take(splits.validation)


def save_model(model: Any, out_dir: Any, report: dict[str, Any], report_name: str) -> dict[str, str]:
    """model.keras (tf_keras) + a JSON report into `out_dir`; returns the paths written."""
    import json
    from pathlib import Path

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model_path, report_path = out / "model.keras", out / report_name
    model.save(model_path)
    report_path.write_text(json.dumps(report, indent=2, default=str) + "\n")
    return {"model": str(model_path), "report": str(report_path)}


def prune_file(model_path: Any, data_path: Any, out_dir: Any, options: PruningOptions, training: Any,
               distillation: Any = None, seed: int = 0, progress: Any = None) -> dict[str, Any]:
    """`edgebuild prune`: load, prune, recover (fine-tune, or distill when asked or when the data has no
    labels), save `model.keras` and `pruning.json`; returns the report (with "files")."""
    from pathlib import Path

    from edgebuild.converters.qat import model_for_training
    from edgebuild.model import load_model

    loaded = load_model(Path(model_path))
    train, held_out, val = load_training_data(data_path, loaded.input_shape, seed)
    model, bridge = model_for_training(loaded, train[0][:8])
    if train[1] is None and (distillation is None or not distillation.enabled):
        from edgebuild.profiles.schema import DistillationSection

        distillation = DistillationSection(enabled=True, alpha=0.0)  # no labels: learn from the original's outputs
    section = _SectionView(options)
    outcome = run_structured_pruning(model, train, held_out, section, training, distillation, seed, progress,
                                     evaluation=val)
    report = outcome.report()
    report["model"] = str(model_path)
    if bridge:
        report["bridge"] = bridge
    report["files"] = save_model(outcome.model, out_dir, report, "pruning.json")
    return report


class _SectionView:
    """PruningOptions seen as a [pruning] section (what run_structured_pruning reads)."""

    def __init__(self, options: PruningOptions) -> None:
        self.kind = "structured"
        self.ratio, self.criterion = options.ratio, options.criterion
        self.round_to, self.min_channels = options.round_to, options.min_channels
        self.layer_ratios = options.layer_ratios
