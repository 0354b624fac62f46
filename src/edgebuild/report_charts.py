"""Charts as plain inline SVG, drawn here in Python: no JavaScript, no charting library, no network.

Every chart is a `<figure class="chart" data-chart=ID data-marks=N>` whose SVG holds exactly N elements
of class `mark` (a bar, a segment, a line, a point): the browser test counts them. Every mark carries a
`<title>` with its exact value, which browsers show on hover without any script. The SVG scales with
its container (`viewBox`, width 100%), so one drawing serves a laptop, a phone and paper.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from html import escape
from typing import Any

PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f", "#d62728")
PASS, FAIL, MUTED, BUDGET = "#2e7d32", "#c62828", "#9e9e9e", "#e0e0e0"
WIDTH = 640
LABEL_W = 190  # left column for bar labels
Fmt = Callable[[float], str]


def _num(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".") if value != int(value) else str(int(value))


def _text(
    x: float, y: float, text: str, *, anchor: str = "start", size: int = 12, cls: str = "", weight: str = ""
) -> str:
    attrs = f' class="{cls}"' if cls else ""
    if weight:
        attrs += f' font-weight="{weight}"'
    return f'<text x="{_num(x)}" y="{_num(y)}" text-anchor="{anchor}" font-size="{size}"{attrs}>{escape(text)}</text>'


def _title(text: str) -> str:
    return f"<title>{escape(text)}</title>"


def nice_max(value: float) -> float:
    """The smallest 1/2/2.5/5 x 10^k at or above value (axis end)."""
    if value <= 0 or not math.isfinite(value):
        return 1.0
    exp = math.floor(math.log10(value))
    scale: float = 10**exp  # an int for exp >= 0
    for step in (1, 2, 2.5, 5, 10):
        if step * scale >= value * 0.999999:
            return step * scale
    above: float = 10 ** (exp + 1)
    return above


def ticks(lo: float, hi: float, count: int = 4) -> list[float]:
    span = hi - lo
    if span <= 0:
        return [lo]
    step = nice_max(span / count)
    start = math.ceil(lo / step) * step
    out, value = [], start
    while value <= hi + step * 1e-9:
        out.append(round(value, 12))
        value += step
    return out


def figure(chart_id: str, svg_body: str, height: float, marks: int, caption: str, label: str) -> str:
    svg = (
        f'<svg class="chart-svg" viewBox="0 0 {WIDTH} {_num(height)}" width="100%" role="img" '
        f'aria-label="{escape(label)}" xmlns="http://www.w3.org/2000/svg" '
        f'font-family="system-ui, -apple-system, Segoe UI, Roboto, sans-serif">{svg_body}</svg>'
    )
    return (
        f'<figure class="chart" data-chart="{escape(chart_id)}" data-marks="{marks}">{svg}'
        f"<figcaption>{caption}</figcaption></figure>"
    )


def hbars(
    chart_id: str,
    items: Sequence[tuple[str, float, str]],
    fmt: Fmt,
    caption: str,
    *,
    color: str | Sequence[str] = PALETTE[0],
    limit: tuple[float, str] | None = None,
) -> str:
    """Horizontal bars: items are (label, value, hover title); an optional dashed limit line (value, label)."""
    row, top = 22, 8
    height = top + row * len(items) + 26
    peak = max([v for _, v, _ in items] + [limit[0] if limit else 0] + [1e-12])
    span = WIDTH - LABEL_W - 80
    scale = span / peak
    parts = []
    for i, (label, value, title) in enumerate(items):
        y = top + i * row
        fill = color if isinstance(color, str) else color[i % len(color)]
        parts.append(_text(LABEL_W - 6, y + 14, _clip(label, 26), anchor="end"))
        parts.append(
            f'<rect class="mark" x="{LABEL_W}" y="{y + 3}" width="{_num(max(value * scale, 0.5))}" '
            f'height="{row - 6}" fill="{fill}">{_title(title)}</rect>'
        )
        parts.append(_text(LABEL_W + value * scale + 4, y + 14, fmt(value), size=11, cls="value"))
    axis_y = top + row * len(items) + 2
    parts.append(f'<line x1="{LABEL_W}" y1="{axis_y}" x2="{LABEL_W + span}" y2="{axis_y}" stroke="#999"/>')
    if limit:
        x = LABEL_W + limit[0] * scale
        parts.append(
            f'<line class="limit" x1="{_num(x)}" y1="{top}" x2="{_num(x)}" y2="{axis_y}" stroke="#555" '
            f'stroke-dasharray="4 3"/>'
        )
        parts.append(_text(x, axis_y + 16, limit[1], anchor="middle", size=11))
    return figure(chart_id, "".join(parts), height, len(items), caption, caption)


def budget_bars(chart_id: str, rows: Sequence[tuple[str, float, float | None, str]], caption: str, fmt: Fmt) -> str:
    """One track per row: the budget as the grey track, the use as the filled bar (red when over)."""
    row, top = 34, 8
    height = top + row * len(rows) + 8
    span = WIDTH - LABEL_W - 20
    parts = []
    for i, (label, used, budget, title) in enumerate(rows):
        y = top + i * row
        full = max(budget or 0, used, 1e-12)
        over = budget is not None and used > budget
        parts.append(_text(LABEL_W - 6, y + 15, _clip(label, 26), anchor="end"))
        parts.append(f'<rect x="{LABEL_W}" y="{y + 4}" width="{span}" height="16" fill="{BUDGET}"/>')
        width = span * used / full
        parts.append(
            f'<rect class="mark" x="{LABEL_W}" y="{y + 4}" width="{_num(max(width, 1))}" height="16" '
            f'fill="{FAIL if over else PASS}">{_title(title)}</rect>'
        )
        text = f"{fmt(used)} of {fmt(budget)} ({100 * used / budget:.1f}%)" if budget else f"{fmt(used)} (no budget)"
        parts.append(_text(LABEL_W, y + 32, text, size=11, cls="value"))
    return figure(chart_id, "".join(parts), height + 6, len(rows), caption, caption)


def stacked(
    chart_id: str, parts_in: Sequence[tuple[str, float]], caption: str, fmt: Fmt, *, budget: float | None = None
) -> str:
    """One horizontal bar split into parts, with a legend; against a budget when given."""
    total = sum(v for _, v in parts_in)
    full = max(total, budget or 0, 1e-12)
    span = WIDTH - 20
    parts, x = [], 10.0
    for i, (label, value) in enumerate(parts_in):
        width = span * value / full
        parts.append(
            f'<rect class="mark" x="{_num(x)}" y="8" width="{_num(max(width, 0.5))}" height="24" '
            f'fill="{PALETTE[i % len(PALETTE)]}">{_title(f"{label}: {fmt(value)}")}</rect>'
        )
        x += width
    if budget:
        parts.append(f'<rect x="{_num(x)}" y="8" width="{_num(max(10 + span - x, 0))}" height="24" fill="{BUDGET}"/>')
    legend_y = 50
    for i, (label, value) in enumerate(parts_in):
        col, line = i % 2, i // 2
        lx, ly = 10 + col * (WIDTH // 2), legend_y + line * 18
        parts.append(f'<rect x="{lx}" y="{ly - 10}" width="10" height="10" fill="{PALETTE[i % len(PALETTE)]}"/>')
        parts.append(_text(lx + 14, ly, f"{_clip(label, 42)}: {fmt(value)}", size=11))
    height = legend_y + 18 * ((len(parts_in) + 1) // 2)
    return figure(chart_id, "".join(parts), height, len(parts_in), caption, caption)


def ranges(chart_id: str, rows: Sequence[tuple[str, dict[str, Any], str]], caption: str, unit: str = "ms") -> str:
    """Latency distributions: whisker min..max, box p50..p90, tick at p99, dot at the mean; one mark per row.

    rows are (label, stats with min/p50/p90/p99/max/mean in `unit`, colour).
    """
    row, top = 30, 8
    height = top + row * len(rows) + 34
    hi = nice_max(max([s.get("max") or s.get("p99") or s.get("p50") or 0 for _, s, _ in rows] + [1e-9]))
    span = WIDTH - LABEL_W - 20

    def x(v: float) -> float:
        return LABEL_W + span * v / hi

    parts = []
    for i, (label, s, color) in enumerate(rows):
        y = top + i * row + row / 2
        p50 = s.get("p50") or 0.0
        lo, mx = s.get("min", p50), s.get("max", s.get("p99", p50))
        p90, p99 = s.get("p90", p50), s.get("p99", p50)
        title = ", ".join(f"{k} {v:.4g} {unit}" for k, v in s.items() if isinstance(v, (int, float)))
        parts.append(_text(LABEL_W - 6, y + 4, _clip(label, 26), anchor="end"))
        parts.append(
            f'<g class="mark">{_title(f"{label}: {title}")}'
            f'<line x1="{_num(x(lo))}" y1="{_num(y)}" x2="{_num(x(mx))}" y2="{_num(y)}" stroke="{color}"/>'
            f'<rect x="{_num(x(p50))}" y="{_num(y - 8)}" width="{_num(max(x(p90) - x(p50), 1))}" height="16" '
            f'fill="{color}" fill-opacity="0.35" stroke="{color}"/>'
            f'<line x1="{_num(x(p50))}" y1="{_num(y - 9)}" x2="{_num(x(p50))}" y2="{_num(y + 9)}" stroke="{color}" '
            f'stroke-width="3"/>'
            f'<line x1="{_num(x(p99))}" y1="{_num(y - 6)}" x2="{_num(x(p99))}" y2="{_num(y + 6)}" stroke="{color}"/>'
            + (f'<circle cx="{_num(x(s["mean"]))}" cy="{_num(y)}" r="2.5" fill="#000"/>' if "mean" in s else "")
            + "</g>"
        )
    axis_y = top + row * len(rows) + 2
    parts.append(f'<line x1="{LABEL_W}" y1="{axis_y}" x2="{LABEL_W + span}" y2="{axis_y}" stroke="#999"/>')
    for t in ticks(0, hi):
        parts.append(f'<line x1="{_num(x(t))}" y1="{axis_y}" x2="{_num(x(t))}" y2="{axis_y + 4}" stroke="#999"/>')
        parts.append(_text(x(t), axis_y + 16, f"{t:g}", anchor="middle", size=11))
    parts.append(_text(LABEL_W + span, axis_y + 30, unit, anchor="end", size=11))
    return figure(chart_id, "".join(parts), height, len(rows), caption, caption)


def lines(
    chart_id: str,
    series: Sequence[tuple[str, Sequence[tuple[float, float]]]],
    caption: str,
    *,
    y_label: str = "",
    marker_x: float | None = None,
    marker_label: str = "",
) -> str:
    """Line chart, one polyline (one mark) per series, with a legend and an optional vertical marker."""
    left, right, top, plot_h = 56, 12, 10, 170
    pts = [p for _, s in series for p in s]
    xs, ys = [p[0] for p in pts] or [0, 1], [p[1] for p in pts] or [0, 1]
    x0, x1 = min(xs), max(xs)
    y0, y1 = min(ys), max(ys)
    if x1 == x0:
        x0, x1 = x0 - 1, x1 + 1
    if y1 == y0:
        y0, y1 = y0 - abs(y0) * 0.1 - 1e-9, y1 + abs(y1) * 0.1 + 1e-9
    pad = (y1 - y0) * 0.05
    y0, y1 = y0 - pad, y1 + pad
    span = WIDTH - left - right

    def px(v: float) -> float:
        return left + span * (v - x0) / (x1 - x0)

    def py(v: float) -> float:
        return top + plot_h * (1 - (v - y0) / (y1 - y0))

    parts = [f'<rect x="{left}" y="{top}" width="{span}" height="{plot_h}" fill="none" stroke="#ccc"/>']
    for t in ticks(y0, y1):
        parts.append(f'<line x1="{left}" y1="{_num(py(t))}" x2="{left + span}" y2="{_num(py(t))}" stroke="#eee"/>')
        parts.append(_text(left - 4, py(t) + 4, f"{t:.3g}", anchor="end", size=10))
    for t in ticks(x0, x1, 6):
        if float(t).is_integer():
            parts.append(_text(px(t), top + plot_h + 14, f"{t:g}", anchor="middle", size=10))
    if marker_x is not None:
        parts.append(
            f'<line x1="{_num(px(marker_x))}" y1="{top}" x2="{_num(px(marker_x))}" y2="{top + plot_h}" '
            f'stroke="#555" stroke-dasharray="4 3"/>'
        )
        parts.append(_text(px(marker_x) + 3, top + 12, marker_label, size=10))
    for i, (name, s) in enumerate(series):
        color = PALETTE[i % len(PALETTE)]
        points = " ".join(f"{_num(px(a))},{_num(py(b))}" for a, b in s)
        dots = "".join(f'<circle cx="{_num(px(a))}" cy="{_num(py(b))}" r="2" fill="{color}"/>' for a, b in s)
        values = ", ".join(f"{a:g}: {b:.4g}" for a, b in s)
        parts.append(
            f'<g class="mark"><polyline points="{points}" fill="none" stroke="{color}" stroke-width="2">'
            f"{_title(f'{name}: {values}')}</polyline>{dots}</g>"
        )
    legend_y = top + plot_h + 32
    for i, (name, _) in enumerate(series):
        lx, ly = left + (i % 3) * 190, legend_y + (i // 3) * 16
        parts.append(f'<rect x="{lx}" y="{ly - 9}" width="12" height="4" fill="{PALETTE[i % len(PALETTE)]}"/>')
        parts.append(_text(lx + 16, ly, _clip(name, 26), size=11))
    if y_label:
        parts.append(
            _text(12, top + plot_h / 2, y_label, anchor="middle", size=10).replace(
                "<text ", f'<text transform="rotate(-90 12 {_num(top + plot_h / 2)})" ', 1
            )
        )
    height = legend_y + 16 * ((len(series) + 2) // 3) + 2
    return figure(chart_id, "".join(parts), height, len(series), caption, caption)


def scatter(chart_id: str, points: Sequence[dict[str, Any]], caption: str, *, x_label: str, y_label: str) -> str:
    """Bubbles: points are {label, x, y, size (None = smallest), color, title}; one mark per point."""
    left, right, top, plot_h = 56, 20, 12, 220
    span = WIDTH - left - right
    xs, ys = [p["x"] for p in points], [p["y"] for p in points]
    x1 = nice_max(max(xs) * 1.15)
    ylo: float = min(ys)
    yhi: float = max(ys)
    pad = max((yhi - ylo) * 0.25, 0.5)
    y0, y1 = ylo - pad, yhi + pad
    sizes = [p["size"] for p in points if p.get("size")]
    biggest = max(sizes) if sizes else 1.0

    def px(v: float) -> float:
        return left + span * v / x1

    def py(v: float) -> float:
        return top + plot_h * (1 - (v - y0) / (y1 - y0))

    parts = [f'<rect x="{left}" y="{top}" width="{span}" height="{plot_h}" fill="none" stroke="#ccc"/>']
    for t in ticks(y0, y1):
        parts.append(f'<line x1="{left}" y1="{_num(py(t))}" x2="{left + span}" y2="{_num(py(t))}" stroke="#eee"/>')
        parts.append(_text(left - 4, py(t) + 4, f"{t:.4g}", anchor="end", size=10))
    for t in ticks(0, x1):
        parts.append(_text(px(t), top + plot_h + 14, f"{t:g}", anchor="middle", size=10))
    parts.append(_text(left + span, top + plot_h + 30, x_label, anchor="end", size=11))
    parts.append(
        _text(12, top + plot_h / 2, y_label, anchor="middle", size=11).replace(
            "<text ", f'<text transform="rotate(-90 12 {_num(top + plot_h / 2)})" ', 1
        )
    )
    placed: list[tuple[float, float, float]] = []  # label boxes (centre x, baseline y, half width)
    for p in points:
        r = 5 + 17 * math.sqrt((p["size"] or 0) / biggest) if sizes else 7
        cx, cy = px(p["x"]), py(p["y"])
        parts.append(
            f'<circle class="mark" cx="{_num(cx)}" cy="{_num(cy)}" r="{_num(r)}" fill="{p["color"]}" '
            f'fill-opacity="0.55" stroke="{p["color"]}">{_title(p["title"])}</circle>'
        )
        half, ly = 3.5 * len(p["label"]) + 4, cy - r - 3
        while any(abs(ly - y) < 13 and abs(cx - x) < half + h for x, y, h in placed):
            ly -= 13  # stack labels of bubbles that sit on top of each other
        placed.append((cx, ly, half))
        parts.append(_text(cx, ly, p["label"], anchor="middle", size=11, weight="600"))
    return figure(chart_id, "".join(parts), top + plot_h + 38, len(points), caption, caption)


def _clip(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"
