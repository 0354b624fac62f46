"""The overview: one row per target and the targets chart."""

from __future__ import annotations

from typing import Any

from edgebuild import report_charts as charts
from edgebuild.report_html.markup import _bytes, _cell, _dict, _e, _ms, _num, _pct, _status, _table, kib
from edgebuild.report_html.numbers import accuracy_value, arena_bytes, first_p50, flash_bytes, target_passed


def summary_row(report: dict[str, Any]) -> dict[str, Any]:
    """The overview table's row: what the tests compare with report.json."""
    artifact = _dict(report.get("artifact"))
    accuracy = _dict(_dict(report.get("validation")).get("accuracy"))
    float_size = _dict(report.get("float_reference")).get("size_bytes")
    return {
        "size_bytes": artifact.get("size_bytes"),
        "vs_float32": (artifact["size_bytes"] / float_size)
        if _num(float_size) and float_size and _num(artifact.get("size_bytes"))
        else None,
        "artifact_top1": accuracy.get("artifact_top1"),
        "reference_top1": accuracy.get("reference_top1"),
        "agreement": accuracy.get("agreement"),
        "min_snr_db": accuracy.get("min_snr_db"),
        "p50_ms": first_p50(report),
        "arena_bytes": arena_bytes(report),
        "flash_bytes": flash_bytes(report),
        "passed": target_passed(report),
    }


# ---------------------------------------------------------------- sections


def _overview(reports: dict[str, dict[str, Any]]) -> str:
    rows = []
    for target, report in reports.items():
        r = summary_row(report)
        acc = _dict(_dict(report.get("validation")).get("accuracy"))
        if r["artifact_top1"] is not None:
            accuracy = _cell(f"{100 * r['artifact_top1']:.2f}%", r["artifact_top1"], "artifact_top1") + _cell(
                _pct(r["reference_top1"], 2), r["reference_top1"], "reference_top1"
            )
        elif acc.get("metric") == "snr" or r["agreement"] is None:
            snr = r["min_snr_db"]
            accuracy = _cell("exact" if snr is None else f"SNR {snr:.1f} dB", snr, "min_snr_db") + _cell("-")
        else:
            accuracy = _cell(f"agree {_pct(r['agreement'])}", r["agreement"], "agreement") + _cell("-")
        rows.append(
            f'<tr data-target="{_e(target)}"><th scope="row"><a href="#t-{_e(target)}">{_e(target)}</a></th>'
            + _cell(kib(r["size_bytes"]), r["size_bytes"], "size_bytes", "num")
            + _cell(f"{r['vs_float32']:.2f}x" if r["vs_float32"] else "-", r["vs_float32"], "vs_float32", "num")
            + accuracy
            + _cell(_ms(r["p50_ms"]), r["p50_ms"], "p50_ms", "num")
            + _cell(_bytes(r["arena_bytes"]), r["arena_bytes"], "arena_bytes", "num")
            + _cell(_bytes(r["flash_bytes"]), r["flash_bytes"], "flash_bytes", "num")
            + _cell(_status(r["passed"]), r["passed"], "passed")
            + "</tr>"
        )
    return _table(
        ["Target", "Size", "vs float32", "Accuracy", "Float top-1", "p50 latency (host)", "Arena", "Flash", "Status"],
        rows,
        "summary",
        ' id="summary"',
    )


def targets_chart(reports: dict[str, dict[str, Any]]) -> str:
    points, label = [], None
    for target, report in reports.items():
        acc = accuracy_value(report)
        size = _dict(report.get("artifact")).get("size_bytes")
        if acc is None or not _num(size):
            continue
        if label is not None and acc[0] != label:
            continue  # one y axis: targets measured with another metric are left out (they are in the table)
        label = acc[0]
        p50 = first_p50(report)
        points.append(
            {
                "label": target,
                "x": size / 1024,
                "y": acc[1],
                "size": p50,
                "color": charts.PASS if target_passed(report) else charts.FAIL,
                "title": f"{target}: {kib(size)}, {label} {acc[1]:.2f}, host p50 {_ms(p50)}",
            }
        )
    if not points:
        return ""
    return charts.scatter(
        "targets",
        points,
        "Targets: accuracy against artifact size; bubble area = p50 latency "
        "on the build host (green passed, red failed). Hover a bubble for its numbers.",
        x_label="artifact size (KiB)",
        y_label=label or "",
    )
