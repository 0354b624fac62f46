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

Modules: `options` (what to prune: the profile's `[pruning]` section; `PruningOptions` makes one in code),
`grouping` (steps 2-4 on pure data, no TensorFlow), `trace` (step 1 and the fixing of step 3 on a tf_keras
graph), `surgery` (scores, weight slicing and the rebuild: `prune_structured`), `recovery` (the build's
`prune` stage: surgery plus fine-tuning/distillation, `run_structured_pruning`) and `io` (the standalone
commands: load `--data`, save the model and report). None imports TensorFlow until a function needs it.
"""

from .grouping import ChannelGraph, Group, keep_count, select
from .io import load_training_data, prune_file, save_model
from .options import CRITERIA, RECOVERIES, PruningOptions, check_ratio
from .recovery import (
    AUTO_DISTILL_GAP,
    PruneOutcome,
    recovery_mode,
    run_structured_pruning,
    top1,
)
from .surgery import PruningResult, prune_structured

__all__ = [
    "AUTO_DISTILL_GAP",
    "CRITERIA",
    "RECOVERIES",
    "ChannelGraph",
    "Group",
    "PruneOutcome",
    "PruningOptions",
    "PruningResult",
    "check_ratio",
    "keep_count",
    "load_training_data",
    "prune_file",
    "prune_structured",
    "recovery_mode",
    "run_structured_pruning",
    "save_model",
    "select",
    "top1",
]
