"""Whether a model's TFLite detection post-processing (`TFLite_Detection_PostProcess`) runs on the target.

The op is a custom op that decodes boxes against anchors and runs non-maximum suppression. Where it runs
differs by target, and the answer is known from the artifact alone, so the report says it up front:
LiteRT registers it with its built-in ops; TFLite Micro has a DETECTION_POSTPROCESS kernel (float32 only,
registered by `AddDetectionPostprocess`, which the generated model_ops.h calls); the Edge TPU compiler
leaves it to the host CPU, as Vela leaves it to TFLite Micro on the Cortex-M beside an Ethos-U.
"""

from __future__ import annotations

from typing import Any

from edgebuild.artifact import TfliteArtifact

OP = "TFLite_Detection_PostProcess"

_WHERE = {
    "mobile": (True, "LiteRT on the device's CPU (a custom op LiteRT registers with its built-in ops)"),
    "mcu": (True, "TFLite Micro's DETECTION_POSTPROCESS kernel (float32; model_ops.h registers it)"),
    "edgetpu": (True, "the host CPU: the Edge TPU compiler leaves custom ops off the TPU (the graph splits there)"),
    "ethos-u": (True, "the Cortex-M CPU in TFLite Micro: Vela leaves custom ops to the CPU"),
}


def postprocess_block(artifact: TfliteArtifact, target_kind: str) -> dict[str, Any] | None:
    """The report's `detection_postprocess` block, or None when the model has no such op."""
    count = sum(1 for op in artifact.ops if op.custom and op.name == OP)
    if not count:
        return None
    runs, where = _WHERE.get(target_kind, (False, f"unknown for rule set '{target_kind}'"))
    return {"op": OP, "count": count, "runs": runs, "where": where}
