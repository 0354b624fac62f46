"""Compare an artifact's outputs with the float model's on the same samples, with a metric that fits the model.

A classifier is scored by top-1 (with labels) or top-1 agreement with the float model; anything else
(a reconstruction, a regression, detection boxes, logits of unknown meaning) by how close its outputs
are to the float model's: SNR in dB, relative error and cosine similarity. The argmax of a 640-value
reconstruction is not an accuracy.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import numpy as np

Metric = Literal["top1", "snr"]
PROBABILITY_TOLERANCE = 1e-2


def snr_db(reference: np.ndarray, candidate: np.ndarray) -> float:
    """Signal-to-noise ratio of candidate against reference; inf when identical."""
    noise = float(np.sum((reference.astype(np.float64) - candidate) ** 2))
    signal = float(np.sum(reference.astype(np.float64) ** 2))
    if noise == 0.0:
        return math.inf
    if signal == 0.0:
        return -math.inf
    return 10.0 * math.log10(signal / noise)


def is_probability_vector(outputs: np.ndarray) -> bool:
    """Rows of non-negative values that sum to one (a softmax or sigmoid-normalized class vector)."""
    if outputs.ndim < 2 or outputs.shape[-1] < 2 or outputs.size == 0:
        return False
    rows = outputs.reshape(len(outputs), -1).astype(np.float64)
    return bool(
        np.all(rows >= -PROBABILITY_TOLERANCE) and np.allclose(rows.sum(axis=1), 1.0, atol=PROBABILITY_TOLERANCE)
    )


def choose_metric(reference: list[np.ndarray], labels: np.ndarray | None, requested: str = "auto") -> Metric:
    """`auto`: top-1 for class-vector outputs with labels or probabilities, otherwise closeness to float (SNR)."""
    if requested in ("top1", "snr"):
        return requested  # type: ignore[return-value]
    first = reference[0]
    class_vector = first.ndim >= 2 and first.shape[-1] > 1
    if class_vector and (labels is not None or is_probability_vector(first)):
        return "top1"
    return "snr"


def compare(
    reference: list[np.ndarray], candidate: list[np.ndarray], labels: np.ndarray | None, metric: str = "auto"
) -> dict[str, Any]:
    """The accuracy block of report.json (fractions in 0..1).

    The first output decides top-1 (labels belong to it); every output also gets its own metric in
    `outputs[i]` (`metric`, and `agreement` for top-1 outputs), so a detection model's boxes are judged by
    SNR and its class scores by top-1 agreement, and the gate checks each.
    """
    ref, cand = reference[0], candidate[0]
    chosen = choose_metric(reference, labels, metric)
    result: dict[str, Any] = {"samples": len(ref), "metric": chosen}
    if chosen == "top1" and ref.ndim >= 2 and ref.shape[-1] > 1:
        ref_top1 = ref.reshape(len(ref), -1).argmax(axis=-1)
        cand_top1 = cand.reshape(len(cand), -1).argmax(axis=-1)
        result["agreement"] = float((ref_top1 == cand_top1).mean())
        if labels is not None:
            result["reference_top1"] = float((ref_top1 == labels).mean())
            result["artifact_top1"] = float((cand_top1 == labels).mean())
            result["drop_points"] = round(100.0 * (result["reference_top1"] - result["artifact_top1"]), 3)
    result["outputs"] = [_closeness(i, r, c) for i, (r, c) in enumerate(zip(reference, candidate, strict=False))]
    for i, entry in enumerate(result["outputs"]):
        entry["metric"] = chosen if i == 0 else output_metric(reference[i])
        if entry["metric"] == "top1":
            entry["agreement"] = result.get("agreement") if i == 0 else _agreement(reference[i], candidate[i])
    finite = [o["snr_db"] for o in result["outputs"] if o["snr_db"] is not None]
    result["min_snr_db"] = min(finite) if finite else None  # None: every output identical
    return result


def output_metric(reference: np.ndarray) -> Metric:
    """The metric of an output after the first (labels belong to the first): top-1 agreement for a
    probability vector (class scores), closeness (SNR) for anything else (boxes, regressions, logits)."""
    return "top1" if is_probability_vector(reference) else "snr"


def _agreement(reference: np.ndarray, candidate: np.ndarray) -> float:
    """Top-1 agreement over every class vector of the output (a detection head scores N boxes per sample)."""
    ref = reference.reshape(-1, reference.shape[-1]).argmax(axis=-1)
    cand = candidate.reshape(-1, candidate.shape[-1]).argmax(axis=-1)
    return float((ref == cand).mean()) if ref.size else 1.0


def _closeness(index: int, reference: np.ndarray, candidate: np.ndarray) -> dict[str, Any]:
    r = reference.astype(np.float64).reshape(len(reference), -1) if reference.size else reference.astype(np.float64)
    c = candidate.astype(np.float64).reshape(r.shape)
    diff_norm = float(np.linalg.norm(r - c))
    ref_norm = float(np.linalg.norm(r))
    row_dots = np.sum(r * c, axis=-1)
    row_norms = np.linalg.norm(r, axis=-1) * np.linalg.norm(c, axis=-1)
    valid = row_norms > 0
    cosine = float(np.mean(row_dots[valid] / row_norms[valid])) if np.any(valid) else None
    return {
        "index": index,
        "max_abs_error": float(np.max(np.abs(r - c))) if r.size else 0.0,
        "snr_db": _finite(snr_db(r, c)),
        "relative_error": round(diff_norm / ref_norm, 6) if ref_norm > 0 else None,
        "cosine_similarity": round(cosine, 6) if cosine is not None else None,
    }


def _finite(value: float) -> float | None:
    """JSON has no infinity: identical outputs report null SNR (documented as 'exact'); an all-zero reference -999."""
    if math.isinf(value):
        return None if value > 0 else -999.0
    return round(value, 3)
