"""A target's size section: the artifact's size and the model.tflite breakdown."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgebuild import report_charts as charts
from edgebuild.report_html.markup import _dict, _e, _size_fmt

# ---------------------------------------------------------------- the artifact's bytes


def size_breakdown(path: Path) -> dict[str, Any] | None:
    """Where the .tflite's bytes go: constant data per op type (each tensor counted once, at its first user),
    the largest constant tensors, and the rest (graph, metadata, alignment). None when unreadable."""
    try:
        from edgebuild.artifact import read_artifact

        art = read_artifact(path)
    except Exception:  # a report must render even when its artifact is gone or odd
        return None
    by_op: dict[str, int] = {}
    user: dict[int, str] = {}
    for op in art.ops:
        for index in op.inputs:
            if index >= 0 and index not in user and art.tensors[index].is_constant:
                user[index] = f"{op.name} #{op.index}"
                by_op[op.name] = by_op.get(op.name, 0) + art.tensors[index].constant_bytes
    constants = [t for t in art.tensors if t.is_constant]
    unused = sum(t.constant_bytes for t in constants if t.index not in user)
    other = art.size_bytes - sum(t.constant_bytes for t in constants)
    parts = sorted(by_op.items(), key=lambda kv: -kv[1])
    if unused:
        parts.append(("constants used by no op", unused))
    parts.append(("graph, metadata, alignment", max(other, 0)))
    largest = sorted(constants, key=lambda t: -t.constant_bytes)[:10]
    return {
        "size_bytes": art.size_bytes,
        "by_op": parts,
        "largest": [
            {
                "name": t.name,
                "dtype": t.dtype,
                "shape": list(t.shape),
                "bytes": t.constant_bytes,
                "user": user.get(t.index, "-"),
            }
            for t in largest
        ],
    }


def _size(target: str, report: dict[str, Any], target_dir: Path | None) -> str:
    art = _dict(report.get("artifact"))
    path = (target_dir / art.get("path", "model.tflite")) if target_dir is not None else None
    breakdown = size_breakdown(path) if path is not None and path.is_file() else None
    if breakdown is None:
        return ""
    out = ["<h3>Size</h3>"]
    total = breakdown["size_bytes"]
    items = [
        (name, float(value), f"{name}: {value:,} bytes ({100 * value / total:.1f}% of the file)")
        for name, value in breakdown["by_op"]
    ]
    out.append(
        charts.hbars(
            f"{target}:size-by-op",
            items,
            _size_fmt,
            f"Bytes of <code>{_e(art.get('path', 'model.tflite'))}</code> ({total:,}) by op type: "
            "constant data (weights, biases) counted at the first op that reads it.",
        )
    )
    if breakdown["largest"]:
        items = [
            (
                t["name"],
                float(t["bytes"]),
                (f"{t['name']} ({t['dtype']} {t['shape']}, read by {t['user']}): {t['bytes']:,} bytes"),
            )
            for t in breakdown["largest"]
        ]
        out.append(
            charts.hbars(
                f"{target}:largest-tensors",
                items,
                _size_fmt,
                f"The {len(items)} largest constant tensors.",
                color=charts.PALETTE[2],
            )
        )
    return "".join(out)
