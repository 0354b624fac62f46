"""A target's training and pruning sections: the training history charts."""

from __future__ import annotations

from typing import Any

from edgebuild import report_charts as charts
from edgebuild.report_html.markup import _cell, _dict, _e, _list, _num, _pct, _table, kib

Series = tuple[str, list[tuple[float, float]]]  # a training metric: (name, [(epoch, value)])


def training_blocks(report: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """Every training block with a history (QAT, pruning recovery, distillation, sparsity)."""
    blocks = [("Quantization-aware training", report.get("training"))]
    for key, name in (("pruning", "Pruning recovery"), ("distillation", "Distillation"), ("sparsity", "Sparsity")):
        block = _dict(report.get(key))
        blocks.append((name, block.get("training")))
        blocks.append((f"{name} (distillation)", _dict(block.get("distillation")).get("training")))
    return [(name, b) for name, b in blocks if isinstance(b, dict) and _list(b.get("history"))]


def training_series(history: list[dict[str, Any]]) -> tuple[list[Series], list[Series]]:
    """(loss series, other metric series) from per-epoch records; epoch and lr are not series."""
    keys: list[str] = []
    for record in history:
        for key, value in record.items():
            if key not in ("epoch", "lr") and _num(value) and key not in keys:
                keys.append(key)
    series = []
    for key in keys:
        points = [(float(r.get("epoch", i + 1)), float(r[key])) for i, r in enumerate(history) if _num(r.get(key))]
        series.append((key, points))
    return [s for s in series if "loss" in s[0]], [s for s in series if "loss" not in s[0]]


def _training(target: str, report: dict[str, Any]) -> str:
    out = []
    for i, (name, block) in enumerate(training_blocks(report)):
        history = [r for r in _list(block.get("history")) if isinstance(r, dict)]
        losses, metrics = training_series(history)
        summary = (
            f"{_e(block.get('pass', name))}: {block.get('epochs_run', len(history))} of "
            f"{block.get('epochs_limit', '?')} epochs, best epoch {block.get('best_epoch', '?')}"
            f"{', stopped by ' + _e(block['stopped_by']) if block.get('stopped_by') else ''}"
            f"{', {:.1f} s'.format(block['seconds']) if _num(block.get('seconds')) else ''}."
        )
        out.append(f"<h4>{_e(name)}</h4><p>{summary}</p>")
        best = block.get("best_epoch") if _num(block.get("best_epoch")) else None
        if losses:
            out.append(
                charts.lines(
                    f"{target}:training-{i}-loss",
                    losses,
                    f"{_e(name)}: loss per epoch.",
                    y_label="loss",
                    marker_x=best,
                    marker_label="best",
                )
            )
        if metrics:
            out.append(
                charts.lines(
                    f"{target}:training-{i}-metrics",
                    metrics,
                    f"{_e(name)}: metrics per epoch.",
                    marker_x=best,
                    marker_label="best",
                )
            )
    comparison = _dict(_dict(report.get("training")).get("comparison"))
    if _dict(comparison.get("qat")).get("artifact_top1") is not None:
        rows = [
            f"<tr><td>{label}</td>"
            + _cell(
                _pct(_dict(comparison.get(k)).get("artifact_top1"), 2),
                _dict(comparison.get(k)).get("artifact_top1"),
                f"{k}_top1",
            )
            + "</tr>"
            for k, label in (("ptq", "PTQ int8"), ("qat", "QAT int8"))
        ]
        out.append(_table(["Model", "top-1"], rows, "qat-comparison"))
    return ("<h3>Training</h3>" + "".join(out)) if out else ""


def _pruning(target: str, report: dict[str, Any]) -> str:
    pruning = _dict(report.get("pruning"))
    before, after = _dict(pruning.get("before")), _dict(pruning.get("after"))
    if not before or not after:
        return ""
    rows, bars = [], []
    for key, label in (("params", "parameters"), ("macs", "MACs")):
        if _num(before.get(key)) and _num(after.get(key)):
            rows.append(
                f'<tr><th scope="row">{label}</th><td class="num">{before[key]:,}</td>'
                f'<td class="num">{after[key]:,}</td></tr>'
            )
            bars += [
                (f"{label} before", float(before[key]), f"{label} before: {before[key]:,}"),
                (f"{label} after", float(after[key]), f"{label} after: {after[key]:,}"),
            ]
    art_before = _dict(pruning.get("artifact_before"))
    size_after = _dict(report.get("artifact")).get("size_bytes")
    if _num(art_before.get("size_bytes")) and _num(size_after):
        rows.append(
            f'<tr><th scope="row">.tflite</th><td class="num">{kib(art_before["size_bytes"])}</td>'
            f'<td class="num">{kib(size_after)}</td></tr>'
        )
    acc = _dict(pruning.get("accuracy"))
    if acc:
        rows.append(
            f'<tr><th scope="row">float top-1</th><td class="num">{_e(acc.get("original"))}%</td>'
            f'<td class="num">{_e(acc.get("recovered"))}% (right after pruning {_e(acc.get("pruned"))}%)'
            "</td></tr>"
        )
    out = [
        (
            f"<h3>Pruning</h3><p>{_e(pruning.get('ratio'))} of channels by {_e(pruning.get('criterion'))}, "
            f"recovered by {_e(pruning.get('recovery'))}.</p>"
        ),
        _table(["", "before", "after"], rows, "pruning"),
    ]
    if bars:
        # relative to the unpruned model so parameters and MACs share one axis
        base = {label.split(" ")[0]: value for label, value, _ in bars if label.endswith("before")}
        rel = [(label, 100 * value / (base[label.split(" ")[0]] or 1), title) for label, value, title in bars]
        out.append(
            charts.hbars(
                f"{target}:pruning",
                rel,
                lambda v: f"{v:.0f}%",
                "Pruning: after as a share of before (100% = the unpruned model).",
                color=[charts.MUTED, charts.PALETTE[0]],
            )
        )
    return "".join(out)
