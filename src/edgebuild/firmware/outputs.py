"""The device's outputs against LiteRT's reference kernels: the inputs the firmware embeds, the outputs it must print.

The firmware runs integer models on integers: the samples are quantized as LiteRT quantizes them, and the
device's raw outputs are compared, in quantization steps, with LiteRT's reference-kernel outputs turned back
into the integers they were computed as.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from edgebuild.artifact import TfliteArtifact
    from edgebuild.runtime import LiteRTModel


def quantize_like_litert(
    model_path: Path, samples: np.ndarray | list[np.ndarray] | None, artifact: TfliteArtifact
) -> tuple[list[np.ndarray], list[np.ndarray], LiteRTModel]:
    """(inputs in the model's input types, LiteRT reference-kernel outputs, float samples used)."""
    from edgebuild.runtime import LiteRTModel

    ref = LiteRTModel(model_path, reference_kernels=True)
    if samples is None or (isinstance(samples, np.ndarray) and samples.shape[0] == 0):
        samples = [np.zeros((1, *t.shape[1:]), np.float32) for t in artifact.inputs]
        if len(samples) == 1:
            samples = samples[0]
    inputs = ref.prepare_inputs(samples)
    reference = ref.predict(samples)
    return inputs, reference, ref


def requantize(reference: list[np.ndarray], artifact: TfliteArtifact) -> list[np.ndarray | None]:
    """LiteRT's dequantized outputs back to the integers it computed (exact: they came from integers)."""
    out: list[np.ndarray | None] = []
    for i, r in enumerate(reference):
        t = artifact.outputs[i] if i < len(artifact.outputs) else None
        if t is not None and t.dtype in ("int8", "uint8", "int16") and len(t.scale) == 1 and t.scale[0]:
            zp = t.zero_point[0] if t.zero_point else 0
            out.append(np.rint(np.asarray(r, np.float64) / t.scale[0] + zp).astype(np.int64))
        else:
            out.append(None)
    return out


def compare_with_reference(
    device: list[np.ndarray],
    reference: list[np.ndarray],
    artifact: TfliteArtifact,
    max_steps: float,
    classifier: bool | None = None,
) -> dict[str, Any]:
    """Device raw outputs vs LiteRT reference kernels: steps (quantized outputs), top-1 agreement (class vectors).

    `classifier`: whether output 0 is a class vector (the build's validation metric knows); None guesses from
    the shape (a 2-D output with more than one column), False never reports top-1 (an autoencoder's argmax
    means nothing).
    """
    ints = requantize(reference, artifact)
    first = artifact.function_output_order()[0] if artifact.outputs else 0  # the model's output 0
    outputs, all_steps, ok = [], [], True
    agreement = None
    for i, (dev, ref) in enumerate(zip(device, reference, strict=False)):
        entry: dict[str, Any] = {"index": i}
        if dev.shape[0] != ref.shape[0] or dev.size != ref.size:
            entry["error"] = f"device output {i} has {dev.size} values, LiteRT {ref.size}"
            ok = False
            outputs.append(entry)
            continue
        dev = dev.reshape(ref.shape)
        exact = ints[i]
        if exact is not None:
            steps = np.abs(dev.astype(np.int64) - exact)
            entry.update(
                max_steps=int(steps.max()) if steps.size else 0,
                mean_steps=round(float(steps.mean()), 4) if steps.size else 0.0,
                identical=bool(np.array_equal(dev.astype(np.int64), exact)),
            )
            all_steps.append(steps.reshape(-1))
        else:
            diff = np.abs(dev.astype(np.float64) - np.asarray(ref, np.float64))
            span = float(np.abs(ref).max()) if ref.size else 0.0
            entry["rel_error"] = float(diff.max() / span) if span > 0 else float(diff.max() if diff.size else 0.0)
            ok = ok and entry["rel_error"] <= 1e-4
        if i == first and ref.ndim == 2 and ref.shape[1] > 1 and classifier is not False:
            dev_pick = dev.argmax(axis=-1)
            ref_pick = (exact if exact is not None else ref).argmax(axis=-1)
            agreement = float(np.mean(dev_pick == ref_pick)) if ref_pick.size else 1.0
            entry["top1_agreement"] = agreement
        outputs.append(entry)
    flat = np.concatenate(all_steps) if all_steps else None
    result: dict[str, Any] = {
        "reference": "LiteRT reference kernels (BUILTIN_REF)",
        "samples": int(device[0].shape[0]) if device else 0,
        "outputs": outputs,
        "top1_agreement": agreement,
        "max_steps": int(flat.max()) if flat is not None and flat.size else None,
        "mean_steps": round(float(flat.mean()), 4) if flat is not None and flat.size else None,
        "limit_steps": max_steps,
    }
    if result["max_steps"] is not None and result["max_steps"] > max_steps:
        ok = False
    result["passed"] = ok
    return result


def dequantized(device: list[np.ndarray], artifact: TfliteArtifact) -> list[list[Any]]:
    out = []
    for i, arr in enumerate(device):
        t = artifact.outputs[i] if i < len(artifact.outputs) else None
        if t is not None and t.dtype in ("int8", "uint8", "int16") and len(t.scale) == 1 and t.scale[0]:
            zp = t.zero_point[0] if t.zero_point else 0
            out.append(((arr.astype(np.float64) - zp) * t.scale[0]).round(7).tolist())
        else:
            out.append(np.asarray(arr, np.float64).tolist())
    return out


def reference_first_output(artifact_path: Path, artifact: TfliteArtifact) -> tuple[float | None, float | None]:
    """LiteRT reference kernels' output 0, first value, on the all-zero input the generated main.cc feeds."""
    if not artifact.inputs:
        return None, None
    from edgebuild.runtime import LiteRTModel

    ref = LiteRTModel(artifact_path, reference_kernels=True)
    x = [np.zeros((1, *t.shape[1:]), np.float32) for t in artifact.inputs]  # every input, as main.cc fills them
    first = float(np.asarray(ref.predict(x)[0]).reshape(-1)[0])
    t = artifact.outputs[0]
    scale = t.scale[0] if t.dtype in ("int8", "uint8", "int16") and len(t.scale) == 1 and t.scale[0] else None
    return first, scale
