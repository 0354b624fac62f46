"""TFLite Micro check: prove the tensor arena by running, then compare TFLM with LiteRT's reference kernels."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edgebuild.artifact import TfliteArtifact
from edgebuild.errors import ArtifactError
from edgebuild.profiles import Profile
from edgebuild.samples import count, for_artifact

if TYPE_CHECKING:
    from edgebuild.validation import ValidationData


def tflm_check(
    path: Path,
    profile: Profile,
    data: ValidationData | None,
    litert_outputs: list[np.ndarray] | None,
    artifact: TfliteArtifact,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Prove the arena by running it in TFLite Micro, then compare TFLM with LiteRT's reference kernels.

    The arena: the smallest size at which TFLM allocates and invokes the model (found by running, not
    read from TFLM's allocation record, which undercounts FULLY_CONNECTED models), plus the profile's
    margin; the recommended size is run too. The comparison: LiteRT's default kernels (XNNPACK,
    optimized) round differently from TFLM by tens of output steps on correct models, so TFLM is
    compared with LiteRT's reference kernels (BUILTIN_REF), which it matches within a few steps.
    Gates: max and mean difference in output quantization steps over all outputs, and top-1
    agreement for classifier outputs. `litert_outputs` (default kernels) is reported for context only.
    """
    from edgebuild.runtime import LiteRTModel, prove_arena, tflm_predict

    margin = profile.mcu.arena_margin
    try:
        search = prove_arena(path, margin)
    except ArtifactError as exc:  # TFLM refused or crashed: a failed check, with the artifact kept for inspection
        return (
            {"measured_bytes": None, "proven_bytes": None, "verified": False, "error": str(exc)},
            {"name": "TFLite Micro", "passed": False, "summary": str(exc)},
        )
    proven, recorded, recommended = search.proven_bytes, search.recorded_bytes, search.recommended_bytes
    arena = {
        "measured_bytes": proven,
        "proven_bytes": proven,
        "recorded_bytes": recorded,
        "margin": margin,
        "recommended_bytes": recommended,
        "verified": search.verified,
        "search": {"probes": search.probes, "seconds": round(search.seconds, 3)},
        "note": "proven by running: the smallest 16-byte multiple at which the TFLite Micro interpreter "
        "(reference kernels, 64-bit host) allocates and invokes the model; recorded_bytes is TFLM's own "
        "allocation record, which undercounts FULLY_CONNECTED models. The margin covers optimized "
        "platform kernels (e.g. CMSIS-NN scratch buffers); the recommended size was run too.",
    }
    recorded_text = f"TFLM records {recorded:,}" if recorded is not None else "TFLM records none"
    check: dict[str, Any] = {
        "name": "TFLite Micro",
        "passed": True,
        "summary": f"runs in TFLite Micro; arena {proven:,} bytes proven by running ({recorded_text}), "
        f"{recommended:,} recommended (+{margin:.0%}, verified)",
    }
    if data is None:
        return arena, check
    try:
        inputs = for_artifact(data.x, artifact)
        tflm_outputs = tflm_predict(path, inputs, recommended)
        reference = LiteRTModel(path, reference_kernels=True).predict(inputs)
    except ArtifactError as exc:
        arena["error"] = str(exc)
        return arena, {**check, "passed": False, "summary": str(exc)}
    steps = _quantization_steps(reference, tflm_outputs, artifact)
    arena["compared_with"] = "LiteRT reference kernels (BUILTIN_REF)"
    arena["samples"] = count(data.x)
    arena["litert_error_steps"] = {"max": steps["max"], "mean": steps["mean"]} if steps["max"] is not None else None
    arena["litert_max_abs_error"] = steps["max_abs_error"]
    arena["outputs"] = steps["outputs"]
    if litert_outputs is not None:  # context: how far LiteRT's default (optimized) kernels are from TFLM
        default = _quantization_steps(litert_outputs, tflm_outputs, artifact)
        arena["default_kernels_error_steps"] = (
            {"max": default["max"], "mean": default["mean"]} if default["max"] is not None else None
        )

    gate = profile.validation
    first = artifact.function_output_order()[0]  # the model's first output: the one labels and top-1 are about
    classifier = _classifier_like(artifact, data, gate.metric, reference[first], first)
    problems = []
    agreement = None
    if classifier:
        ref_pick, tflm_pick = reference[first].argmax(axis=-1), tflm_outputs[first].argmax(axis=-1)
        agreement = float(np.mean(ref_pick == tflm_pick)) if ref_pick.size else 1.0
        # a flip between outputs the reference itself rates within _TIE_STEPS steps is a rounding tie, not a bug
        step = steps["outputs"][first].get("step") or 0.0
        rows = np.arange(ref_pick.shape[0])
        lead = reference[first][rows, ref_pick] - reference[first][rows, tflm_pick]
        decisive = int(np.sum((ref_pick != tflm_pick) & (lead > _TIE_STEPS * step)))
        arena["top1_decisive_flips"] = decisive
        if ref_pick.size and decisive / ref_pick.size > 1.0 - _MIN_TFLM_TOP1:
            problems.append(
                f"top-1 differs on {decisive} of {ref_pick.size} samples beyond rounding ties "
                f"(agreement {100 * agreement:.1f}%, needs {100 * _MIN_TFLM_TOP1:.0f}%)"
            )
    arena["litert_agreement"] = agreement
    if steps["max"] is not None:
        if steps["max"] > gate.max_tflm_steps:
            problems.append(
                f"outputs differ by up to {steps['max']:.0f} quantization steps "
                f"(limit {gate.max_tflm_steps:g}, validation.max_tflm_steps)"
            )
        if steps["mean"] > _MAX_TFLM_MEAN_STEPS:
            problems.append(
                f"outputs differ by {steps['mean']:.2f} quantization steps on average (limit {_MAX_TFLM_MEAN_STEPS:g})"
            )
    if steps["float_rel_error"] is not None and steps["float_rel_error"] > _MAX_FLOAT_REL_ERROR:
        problems.append(
            f"float outputs differ by {steps['float_rel_error']:.2e} of their range (limit {_MAX_FLOAT_REL_ERROR:g})"
        )
    if problems:
        check["passed"] = False
        check["summary"] = (
            "TFLite Micro vs LiteRT reference kernels: "
            + "; ".join(problems)
            + " — a kernel computes differently in TFLite Micro; the artifact is kept for inspection"
        )
        return arena, check
    parts = []
    if agreement is not None:
        parts.append(f"top-1 agreement {100 * agreement:.1f}%")
    if steps["max"] is not None:
        parts.append(f"max difference {steps['max']:.0f} quantization step(s), mean {steps['mean']:.3f}")
    if steps["float_rel_error"] is not None:
        parts.append(f"float outputs within {steps['float_rel_error']:.1e} of their range")
    check["summary"] += f"; vs LiteRT reference kernels on {count(data.x)} samples: " + ", ".join(parts)
    return arena, check


# TFLM vs LiteRT reference kernels: correct int8 models differ by a few steps, almost all by 0 (mean ~0.01);
# a kernel that computes differently moves most outputs (mean well above 1) or flips decisive top-1 picks.
_MAX_TFLM_MEAN_STEPS = 1.0
_MIN_TFLM_TOP1 = 0.99
_TIE_STEPS = 2.0
_MAX_FLOAT_REL_ERROR = 1e-3


def _classifier_like(
    artifact: TfliteArtifact, data: ValidationData, metric: str, output: np.ndarray, position: int = 0
) -> bool:
    """Whether top-1 is meaningful for the model's first output (at `position` among the artifact's outputs).

    Metric top1, labels given, or a softmax over >= 2 classes.
    """
    if metric == "snr" or output.ndim != 2 or output.shape[-1] < 2:
        return False
    if metric == "top1" or data.y is not None:
        return True
    index = artifact.output_indices[position]
    while True:  # walk back through (de)quantize/reshape to the op that computed the output
        producer = next((op for op in artifact.ops if index in op.outputs), None)
        if producer is None:
            return False
        if producer.name in ("DEQUANTIZE", "QUANTIZE", "RESHAPE") and producer.inputs:
            index = producer.inputs[0]
            continue
        return producer.name == "SOFTMAX"


def _quantization_steps(
    reference: list[np.ndarray], other: list[np.ndarray], artifact: TfliteArtifact
) -> dict[str, Any]:
    """Difference of two runs' outputs over all outputs, in units of each output's quantization step.

    Quantized outputs (dequantized by the runtimes) are measured in their own steps (per channel when
    per-axis); a float output produced by DEQUANTIZE in the steps of the tensor it dequantizes; plain
    integer outputs (an argmax index) in units of 1. `max` and `mean` (None when no output has steps) span
    every element of those outputs; `float_rel_error` is the largest difference of plain float outputs
    relative to their largest magnitude (None when there are none).
    """
    outputs, diffs, float_errors, max_abs = [], [], [], 0.0
    for i, (a, b) in enumerate(zip(reference, other, strict=False)):
        a64, b64 = np.asarray(a, np.float64), np.asarray(b, np.float64)
        diff = np.abs(a64 - b64)
        entry: dict[str, Any] = {"index": i, "max_abs_error": float(diff.max()) if diff.size else 0.0}
        max_abs = max(max_abs, entry["max_abs_error"])
        step = _output_step(artifact, i, diff.ndim)
        if step is not None:
            steps = diff / step
            entry.update(
                step=float(np.max(step)),
                max_steps=float(steps.max()) if steps.size else 0.0,
                mean_steps=float(steps.mean()) if steps.size else 0.0,
            )
            diffs.append(steps.reshape(-1))
        else:
            span = float(np.abs(a64).max()) if a64.size else 0.0
            entry["rel_error"] = entry["max_abs_error"] / span if span > 0 else entry["max_abs_error"]
            float_errors.append(entry["rel_error"])
        outputs.append(entry)
    all_steps = np.concatenate(diffs) if diffs else None
    for entry in outputs:  # report precision; a step is a step
        for key in ("max_steps", "mean_steps"):
            if key in entry:
                entry[key] = round(entry[key], 4)
    return {
        "max": None if all_steps is None else round(float(all_steps.max()) if all_steps.size else 0.0, 4),
        "mean": None if all_steps is None else round(float(all_steps.mean()) if all_steps.size else 0.0, 4),
        "float_rel_error": max(float_errors) if float_errors else None,
        "max_abs_error": max_abs,
        "outputs": outputs,
    }


def _output_step(artifact: TfliteArtifact, position: int, ndim: int) -> float | np.ndarray | None:
    """Output `position`'s quantization step, shaped to broadcast over (N, ...) data; None for float outputs."""
    if position >= len(artifact.outputs):
        return None
    tensor = artifact.outputs[position]
    if not tensor.scale and tensor.dtype.startswith("float"):
        producer = next((op for op in artifact.ops if tensor.index in op.outputs), None)
        if producer is not None and producer.name == "DEQUANTIZE" and producer.inputs:
            tensor = artifact.tensor(producer.inputs[0]) or tensor
    scale = np.asarray(tensor.scale, np.float64)
    if scale.size == 0 or not np.all(scale > 0):
        return 1.0 if not tensor.dtype.startswith("float") and not scale.size else None
    if scale.size == 1:
        return float(scale[0])
    shape = [1] * ndim  # per-axis: the axis counts from the tensor's own (batch-first) dimensions
    axis = tensor.quantized_dimension
    if axis >= ndim or scale.size != (tensor.shape[axis] if axis < len(tensor.shape) else -1):
        return float(scale.max())
    shape[axis] = scale.size
    return scale.reshape(shape)
