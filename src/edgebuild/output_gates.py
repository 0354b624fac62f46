"""One accuracy check per output after the first, each with the metric that fits that output.

A detection-style model returns class scores and boxes: the scores are judged by top-1 agreement with
the float model, the boxes by SNR. The first output keeps the `accuracy vs float` check (labels belong
to it); every other output gets its own line here, and the build's gate is all checks passing.
"""

from __future__ import annotations

from typing import Any

from edgebuild.profiles.schema import ValidationSection

CHECK_NAME = "accuracy vs float, output {index}"


def output_checks(accuracy: dict[str, Any], gate: ValidationSection) -> list[dict[str, Any]]:
    """The checks of outputs 1..n-1 (none for a single-output model)."""
    return [_check(entry, gate) for entry in accuracy.get("outputs", [])[1:]]


def _check(entry: dict[str, Any], gate: ValidationSection) -> dict[str, Any]:
    index, metric = entry["index"], entry.get("metric", "snr")
    name = CHECK_NAME.format(index=index) + (f" '{entry['name']}'" if entry.get("name") else "")
    if metric == "top1":
        agreement = float(entry["agreement"])
        passed = agreement >= gate.min_agreement
        summary = (
            f"output {index}: top-1 agreement with float {100 * agreement:.1f}% "
            f"(class scores; limit {100 * gate.min_agreement:.1f}%)"
        )
        return {"name": name, "passed": passed, "summary": summary, "metric": metric, "output": index}
    snr = entry.get("snr_db")
    passed = snr is None or snr >= gate.min_snr_db
    summary = (
        f"output {index}: SNR {'exact' if snr is None else f'{snr:.1f} dB'} vs float (limit {gate.min_snr_db:g} dB), "
        f"relative error {entry.get('relative_error')}, max abs error {entry.get('max_abs_error', 0.0):.4g}"
    )
    return {"name": name, "passed": passed, "summary": summary, "metric": metric, "output": index}
