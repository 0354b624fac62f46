"""Compare an artifact's outputs with the float model's on the same samples.

Top-1 accuracy needs labels; agreement (share of equal top-1) and per-output
error (max abs error, SNR in dB) need only the float model's outputs.
"""

from __future__ import annotations

import math

import numpy as np


def snr_db(reference: np.ndarray, candidate: np.ndarray) -> float:
    """Signal-to-noise ratio of candidate against reference; inf when identical."""
    noise = float(np.sum((reference.astype(np.float64) - candidate) ** 2))
    signal = float(np.sum(reference.astype(np.float64) ** 2))
    if noise == 0.0:
        return math.inf
    if signal == 0.0:
        return -math.inf
    return 10.0 * math.log10(signal / noise)


def compare(reference: list[np.ndarray], candidate: list[np.ndarray], labels: np.ndarray | None) -> dict:
    """The accuracy block of report.json (fractions in 0..1; the first output decides top-1)."""
    ref, cand = reference[0], candidate[0]
    result: dict = {"samples": int(len(ref))}
    if ref.ndim >= 2 and ref.shape[-1] > 1:
        ref_top1 = ref.reshape(len(ref), -1).argmax(axis=-1)
        cand_top1 = cand.reshape(len(cand), -1).argmax(axis=-1)
        result["agreement"] = float((ref_top1 == cand_top1).mean())
        if labels is not None:
            result["reference_top1"] = float((ref_top1 == labels).mean())
            result["artifact_top1"] = float((cand_top1 == labels).mean())
            result["drop_points"] = round(100.0 * (result["reference_top1"] - result["artifact_top1"]), 3)
    result["outputs"] = [
        {"index": i, "max_abs_error": float(np.max(np.abs(r.astype(np.float64) - c))) if r.size else 0.0,
         "snr_db": _finite(snr_db(r, c))}
        for i, (r, c) in enumerate(zip(reference, candidate))
    ]
    return result


def _finite(value: float) -> float | None:
    """JSON has no infinity: identical outputs report null SNR (documented as 'exact')."""
    return None if math.isinf(value) else round(value, 3)
