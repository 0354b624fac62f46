"""The build's overview across targets: OUT/summary.md, OUT/summary.png and OUT/report.html.

One chart answers what a person compares first (size, accuracy, latency per target)
faster than reading four reports. Written atomically after all targets finished.
report.html (edgebuild.report_html) is the whole build in one self-contained page.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from edgebuild.report import accuracy_text, first_p50


def _rows(reports: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for target, report in reports.items():
        accuracy = (report.get("validation") or {}).get("accuracy") or {}
        rows.append(
            {
                "target": target,
                "size_kib": report["artifact"]["size_bytes"] / 1024,
                "float_kib": ((report.get("float_reference") or {}).get("size_bytes") or 0) / 1024,
                "top1": accuracy.get("artifact_top1"),
                "accuracy": accuracy_text(accuracy),
                "float_top1": accuracy.get("reference_top1"),
                "p50_ms": first_p50(report.get("benchmark")),
                "passed": (report.get("validation") or {}).get("passed", True),
            }
        )
    return rows


def write_summary(out_root: Path, reports: dict[str, dict[str, Any]]) -> list[Path]:
    """Write summary.md and report.html (always) and summary.png (when there is more than one target)."""
    rows = _rows(reports)
    if not rows:
        return []
    fingerprint = hashlib.sha256(json.dumps(rows, sort_keys=True).encode()).hexdigest()[:16]
    summary_md, chart = out_root / "summary.md", out_root / "summary.png"
    unchanged = chart.exists() and summary_md.exists() and fingerprint in summary_md.read_text()
    written = [_write_atomic(summary_md, (_markdown(rows) + f"<!-- rows {fingerprint} -->\n").encode())]
    if len(rows) > 1:
        if not unchanged:  # a warm rebuild restores the same numbers: skip matplotlib (a third of its time)
            _write_atomic(chart, _chart(rows))
        written.append(chart)
    html = _write_html(out_root, reports)
    if html is not None:
        written.append(html)
    return written


def _write_html(out_root: Path, reports: dict[str, dict[str, Any]]) -> Path | None:
    """report.html; a page that fails to render must not fail a build whose artifacts are fine: say so instead."""
    from edgebuild.report_html import write_report_html

    try:
        return write_report_html(out_root, reports)
    except Exception as exc:  # the artifacts and report.json files are already written
        import sys

        sys.stderr.write(f"edgebuild: warning: report.html not written ({type(exc).__name__}: {exc})\n")
        return None


def _markdown(rows: list[dict[str, Any]]) -> str:
    lines = [
        "# edgebuild summary",
        "",
        "| Target | Size | vs float32 | Accuracy (vs float) | Float top-1 | p50 latency (host) | Status |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        ratio = f"{r['size_kib'] / r['float_kib']:.2f}x" if r["float_kib"] else "-"
        top1 = r["accuracy"]
        float_top1 = f"{100 * r['float_top1']:.2f}%" if r["float_top1"] is not None else "-"
        p50 = f"{r['p50_ms']:.3f} ms" if r["p50_ms"] is not None else "-"
        lines.append(
            f"| [{r['target']}]({r['target']}/report.md) | {r['size_kib']:.1f} KiB | {ratio} | {top1} | "
            f"{float_top1} | {p50} | {'pass' if r['passed'] else 'FAIL'} |"
        )
    lines += [
        "",
        "![size, accuracy and latency per target](summary.png)" if len(rows) > 1 else "",
        "",
        "Every check, size breakdown, latency distribution and budget: [report.html](report.html).",
        "",
    ]
    return "\n".join(lines)


def _chart(rows: list[dict[str, Any]]) -> bytes:
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [r["target"] for r in rows]
    colors = ["#2e7d32" if r["passed"] else "#c62828" for r in rows]
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.6))
    panels = [
        ("Size (KiB)", [r["size_kib"] for r in rows], rows[0]["float_kib"] or None, "float32"),
        (
            "Top-1 accuracy (%)",
            [100 * r["top1"] if r["top1"] is not None else 0 for r in rows],
            100 * rows[0]["float_top1"] if rows[0]["float_top1"] is not None else None,
            "float model",
        ),
        ("p50 latency on this host (ms)", [r["p50_ms"] or 0 for r in rows], None, ""),
    ]
    for ax, (title, values, reference, label) in zip(axes, panels, strict=True):
        bars = ax.bar(names, values, color=colors)
        ax.bar_label(bars, fmt="%.3g", fontsize=8)
        if reference:
            ax.axhline(reference, color="#555", linestyle="--", linewidth=1, label=label)
            ax.legend(fontsize=8, loc="lower right")
        ax.set_title(title, fontsize=10)
        ax.tick_params(axis="x", labelrotation=20, labelsize=8)
        ax.spines[["top", "right"]].set_visible(False)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, metadata={"Software": None})
    plt.close(fig)
    return buffer.getvalue()


def _write_atomic(path: Path, data: bytes) -> Path:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    tmp.replace(path)
    return path
