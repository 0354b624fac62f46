"""Why a layer loses accuracy, where the numbers say so.

Three causes are recognised, each from measured facts (never from the layer's name):

- an activation range dominated by outliers: either one channel's range is many times the others'
  (activations get one scale per tensor in TFLite, so the narrow channels keep a few levels), or rare
  values set the range (the maximum is many times the 99.9th percentile);
- weights quantized with one scale per tensor over output channels whose ranges differ widely
  (FULLY_CONNECTED with `quantization.dense_per_channel = false`, or a QAT model);
- a calibration set too small or unlike the validation data: validation values fall outside the
  range calibrated on it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

CHANNEL_SPREAD = 8.0  # widest channel / median channel range
OUTLIER_SPREAD = 8.0  # max |x| / 99.9th percentile
FEW_LEVELS = 16.0  # quantization steps the typical value range spans, below which rounding dominates
WEIGHT_SPREAD = 8.0  # widest / median output channel of a per-tensor weight
CLIPPED = 0.005  # share of validation values outside the calibrated range
TINY_CALIBRATION = 100  # calibration samples


def reasons(
    row: dict[str, Any], facts: dict[str, Any], weight: dict[str, Any] | None, calibration_samples: int | None
) -> list[dict[str, str]]:
    """The causes that hold for one layer, each {kind, text}; empty when none can be told."""
    out: list[dict[str, str]] = []
    scale = row.get("scale")
    if scale and facts.get("median_channel_absmax") and facts.get("widest_channel_absmax"):
        wide, median = facts["widest_channel_absmax"], facts["median_channel_absmax"]
        levels = median / scale
        if median > 0 and wide / median >= CHANNEL_SPREAD and levels < FEW_LEVELS:
            out.append(
                {
                    "kind": "outlier_range",
                    "text": (
                        "outlier-dominated activation range: "
                        f"channel {facts['widest_channel']} of {facts['channels']} reaches {wide:.4g}, "
                        f"{wide / median:.0f}x the median channel ({median:.4g}); activations take one scale per "
                        f"tensor ({scale:.4g}), so a typical channel spans only {levels:.1f} quantization steps"
                    ),
                }
            )
    absmax, p999 = facts.get("absmax"), facts.get("p99_9")
    if scale and absmax and p999 and p999 > 0 and absmax / p999 >= OUTLIER_SPREAD and not out:
        out.append(
            {
                "kind": "outlier_range",
                "text": (
                    f"outlier-dominated activation range: the largest |value| {absmax:.4g} is {absmax / p999:.0f}x the "
                    f"99.9th percentile ({p999:.4g}); 99.9% of values use {p999 / scale:.1f} of the scale's steps"
                ),
            }
        )
    if weight is not None and weight.get("per_tensor") and weight.get("spread", 0) >= WEIGHT_SPREAD:
        out.append(
            {
                "kind": "per_tensor_weights",
                "text": (
                    "per-tensor weight scale over channels that differ widely: one scale for "
                    f"{weight['channels']} output channels whose ranges differ up to {weight['spread']:.0f}x"
                    + (
                        " (quantization.dense_per_channel = false; per-channel scales would fix it)"
                        if row.get("op") == "FULLY_CONNECTED"
                        else ""
                    )
                ),
            }
        )
    clipped = facts.get("clipped_fraction")
    if clipped is not None and clipped >= CLIPPED:
        small = calibration_samples is not None and calibration_samples < TINY_CALIBRATION
        out.append(
            {
                "kind": "calibration",
                "text": (
                    f"{'tiny calibration set' if small else 'calibration unlike validation'}: {100 * clipped:.1f}% of "
                    f"validation values fall outside the range calibrated on {calibration_samples} samples"
                    + (" (quantization.calibration_samples)" if small else "")
                ),
            }
        )
    return out


def weight_facts(op_name: str, weight_tensor: Any, float_weights: np.ndarray | None) -> dict[str, Any] | None:
    """Per-tensor or per-channel, and how much the output channels' ranges differ (from the float weights)."""
    if weight_tensor is None or float_weights is None or float_weights.ndim < 2:
        return None
    axis = 3 if op_name == "DEPTHWISE_CONV_2D" else 0  # TFLite's output-channel axis
    moved = np.moveaxis(np.abs(float_weights), axis, 0).reshape(float_weights.shape[axis], -1)
    ranges = moved.max(axis=1)
    live = ranges[ranges > 0]
    spread = float(live.max() / np.median(live)) if live.size > 1 else 1.0
    return {"per_tensor": len(weight_tensor.scales) <= 1, "channels": int(ranges.size), "spread": spread}
