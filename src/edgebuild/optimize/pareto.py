"""The trade-off front (accuracy up; size, latency, arena down) as JSON, Markdown and a chart."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from edgebuild.optimize.measure import Metrics


def _objectives(m: Metrics) -> tuple[float, ...]:
    """Smaller is better in every place; a number the target did not measure counts as no better, no worse."""
    return (
        -(m.accuracy or 0.0),
        float(m.size_bytes),
        m.latency_ms if m.latency_ms is not None else 0.0,
        float(m.arena_bytes) if m.arena_bytes is not None else 0.0,
    )


def front(rows: Sequence[tuple[str, Metrics]]) -> set[str]:
    """Names of the candidates no other candidate dominates (as good everywhere, better somewhere)."""
    points = {name: _objectives(m) for name, m in rows}
    return {
        name
        for name, p in points.items()
        if not any(
            q != p and all(a <= b for a, b in zip(q, p, strict=True)) for other, q in points.items() if other != name
        )
    }


def rows_json(trials: Sequence[dict[str, Any]]) -> str:
    return json.dumps(trials, indent=2) + "\n"


def markdown(trials: Sequence[dict[str, Any]], latency_source: str) -> str:
    lines = [
        "| candidate | size | flash | RAM | arena | top-1 | drop | latency ms | meets budgets | front |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    for t in trials:
        m = t.get("metrics")
        label = t["candidate"] + (f" @{t['fidelity']:.0%} epochs" if t["fidelity"] < 1.0 else "")
        if m is None:
            lines.append(f"| {label} | - | - | - | - | - | - | - | {t['status']} | |")
            continue
        lines.append(
            f"| {label}{' (chosen)' if t.get('chosen') else ''} | {m['size_bytes']:,} | {m['flash_bytes']:,} "
            f"| {_n(m['ram_bytes'])} | {_n(m['arena_bytes'])} | {_pct(m['accuracy'])} | {_f(m['drop_points'])} "
            f"| {_f(m['latency_ms'], 3)} | {t['status']} | {'yes' if t.get('on_front') else ''} |"
        )
    lines.append("")
    lines.append(
        f"Latency: {latency_source}. Size: the .tflite; flash and RAM as the build's budget check measured them."
    )
    return "\n".join(lines) + "\n"


def chart(trials: Sequence[dict[str, Any]], path: Path) -> None:
    """Accuracy against artifact size; the front joined by a line, the chosen candidate starred."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    built = [t for t in trials if t.get("metrics") and t["metrics"]["accuracy"] is not None]
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=100)
    for t in built:
        m = t["metrics"]
        color = "tab:green" if t["status"] == "meets budgets" else "tab:gray"
        ax.scatter(m["size_bytes"] / 1024, m["accuracy"] * 100, color=color, s=30, zorder=3)
        ax.annotate(t["candidate"], (m["size_bytes"] / 1024, m["accuracy"] * 100), fontsize=7, alpha=0.8)
        if t.get("chosen"):
            ax.scatter(m["size_bytes"] / 1024, m["accuracy"] * 100, marker="*", s=250, color="tab:orange", zorder=4)
    on_front = sorted(
        (t["metrics"]["size_bytes"] / 1024, t["metrics"]["accuracy"] * 100) for t in built if t.get("on_front")
    )
    if on_front:
        ax.plot(*zip(*on_front, strict=True), color="tab:blue", alpha=0.5, zorder=2)
    ax.set_xlabel("artifact size (KiB)")
    ax.set_ylabel("top-1 (%)")
    ax.set_title("edgebuild optimize: green meets the budgets, star = chosen")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, metadata={"Software": None})
    plt.close(fig)


def _n(v: int | None) -> str:
    return f"{v:,}" if v is not None else "-"


def _pct(v: float | None) -> str:
    return f"{v * 100:.1f}%" if v is not None else "-"


def _f(v: float | None, digits: int = 2) -> str:
    return f"{v:.{digits}f}" if v is not None else "-"
