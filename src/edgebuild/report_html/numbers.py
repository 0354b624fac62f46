"""Numbers read from a target's report.json, shared with the tests and edgebuild.compare."""

from __future__ import annotations

from typing import Any

from edgebuild.report_html.markup import _dict, _list, _num

# ---------------------------------------------------------------- numbers shared with tests and compare


def target_passed(report: dict[str, Any]) -> bool:
    return _dict(report.get("validation")).get("passed", True) is not False


def accuracy_value(report: dict[str, Any]) -> tuple[str, float] | None:
    """The accuracy a person compares across targets: (label, value) as top-1 %, agreement % or SNR dB."""
    accuracy = _dict(_dict(report.get("validation")).get("accuracy"))
    if _num(accuracy.get("artifact_top1")):
        return "top-1 (%)", 100 * accuracy["artifact_top1"]
    if accuracy.get("metric") != "snr" and _num(accuracy.get("agreement")):
        return "agreement with float (%)", 100 * accuracy["agreement"]
    if _num(accuracy.get("min_snr_db")):
        return "output SNR (dB)", float(accuracy["min_snr_db"])
    return None


def first_p50(report: dict[str, Any]) -> float | None:
    first = next(iter(_dict(_dict(report.get("benchmark")).get("threads")).values()), None)
    if not isinstance(first, dict):
        return None
    value = first.get("p50_ms") if first.get("p50_ms") is not None else first.get("mean_ms")
    return float(value) if _num(value) else None


def budget_block(report: dict[str, Any], kind: str) -> dict[str, Any]:
    """`flash` or `ram` of the budgets check: {used_bytes, budget_bytes, source, scope} (empty when absent)."""
    for check in _list(_dict(report.get("validation")).get("checks")):
        if isinstance(check, dict) and check.get("name") == "budgets" and isinstance(check.get(kind), dict):
            block: dict[str, Any] = check[kind]
            return block
    return {}


def arena_bytes(report: dict[str, Any]) -> int | None:
    arena = _dict(_dict(report.get("validation")).get("arena"))
    value = arena.get("recommended_bytes", arena.get("proven_bytes"))
    return int(value) if _num(value) else None


def flash_bytes(report: dict[str, Any]) -> int | None:
    """Flash a product pays: the linked firmware when there is one, else the budgets check's figure, else the array."""
    firmware_flash = _dict(_dict(report.get("firmware")).get("flash"))
    for value in (
        firmware_flash.get("total_bytes_without_samples"),
        firmware_flash.get("total_bytes"),
        budget_block(report, "flash").get("used_bytes"),
        _dict(report.get("flash")).get("total_bytes"),
        _dict(report.get("flash")).get("model_array_bytes"),
    ):
        if _num(value):
            return int(value)
    return None
