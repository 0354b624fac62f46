"""How accuracy moves with the number of calibration samples: would more calibration data help?

Each point calibrates the float model on the first N calibration samples and quantizes it the way the
converter does (`engine`, milliseconds per point after the calibration run), then measures accuracy on
the validation samples exactly like validation does.
"""

from __future__ import annotations

from typing import Any

from edgebuild.quant_debug import engine
from edgebuild.quant_debug.selective import Inputs, evaluate


def sizes(available: int) -> list[int]:
    """Up to five sizes from 1/16 of the calibration set to all of it (at least 8 samples each)."""
    points = sorted({max(8, available // d) for d in (16, 8, 4, 2)} | {available})
    return [p for p in points if p <= available]


def calibration_sweep(inputs: Inputs) -> dict[str, Any]:
    quant = inputs.profile.quantization
    points: list[dict[str, Any]] = []
    for count in sizes(len(inputs.calibration)):
        calibrated = engine.calibrate(inputs.float_blob, inputs.calibration[:count])
        blob = engine.quantize(calibrated, quant.io, quant.dense_per_channel)
        result = evaluate(blob, inputs)
        points.append(
            {
                "samples": count,
                "accuracy": result.short,
                "passed": result.passed,
                "score": _score(result.accuracy),
                "metric": result.accuracy.get("metric"),
            }
        )
    out: dict[str, Any] = {"points": points}
    if len(points) >= 2:
        first, last = points[-2]["score"], points[-1]["score"]
        top1 = points[-1]["metric"] == "top1"
        metric = "points" if top1 else "dB"
        gain = 100 * (last - first) if top1 else last - first
        out["note"] = (
            f"Doubling the calibration samples from {points[-2]['samples']} to {points[-1]['samples']} "
            f"moved accuracy by {gain:+.2f} {metric}: "
            + (
                "more calibration data would likely help."
                if gain > 0.5
                else "more calibration data is unlikely to help; the error is in the model's ranges."
            )
        )
    return out


def _score(accuracy: dict[str, Any]) -> float:
    if "artifact_top1" in accuracy:
        return float(accuracy["artifact_top1"])
    if "agreement" in accuracy:
        return float(accuracy["agreement"])
    return float(accuracy.get("min_snr_db") or 0.0)
