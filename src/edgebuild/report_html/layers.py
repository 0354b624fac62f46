"""A target's accuracy section: validation accuracy, output errors and the per-layer errors."""

from __future__ import annotations

from typing import Any

from edgebuild import report_charts as charts
from edgebuild.report_html.markup import _cell, _dict, _e, _fmt, _list, _num, _pct, _table


def _accuracy(target: str, report: dict[str, Any]) -> str:
    validation = _dict(report.get("validation"))
    accuracy = _dict(validation.get("accuracy"))
    out = []
    if accuracy:
        rows = []
        for key, label, fmt in (
            ("samples", "validation samples", str),
            ("metric", "metric", str),
            ("reference_top1", "float top-1", _pct),
            ("artifact_top1", "artifact top-1", _pct),
            ("drop_points", "drop (points)", lambda v: f"{v:.2f}"),
            ("agreement", "top-1 agreement with float", _pct),
            ("min_snr_db", "worst output SNR", lambda v: f"{v:.1f} dB"),
        ):
            if accuracy.get(key) is not None:
                rows.append(
                    f'<tr><th scope="row">{label}</th>' + _cell(_e(fmt(accuracy[key])), accuracy[key], key) + "</tr>"
                )
        out.append(_table(["", "value"], rows, "accuracy", f' data-target="{_e(target)}"'))
        outputs = [o for o in _list(accuracy.get("outputs")) if isinstance(o, dict)]
        if outputs:
            rows = [
                f"<tr><td>{_e(o.get('index'))}</td><td>{_fmt(o.get('snr_db'), 'dB', 'identical')}</td>"
                f"<td>{_fmt(o.get('max_abs_error'))}</td><td>{_fmt(o.get('relative_error'))}</td>"
                f"<td>{_fmt(o.get('cosine_similarity'))}</td></tr>"
                for o in outputs
            ]
            out.append(_table(["Output", "SNR", "max |error|", "relative error", "cosine"], rows, "outputs"))
    layers = per_layer_errors(report)
    if layers:
        metric, unit, layer_rows = layers
        items = [(name, value, f"{name}: {metric} {value:.4g}{unit}") for name, value in layer_rows]
        worse = "lower is worse" if metric in ("snr_db", "added_snr_db") else "higher is worse"
        out.append(
            charts.hbars(
                f"{target}:per-layer-error",
                items,
                lambda v: f"{v:.3g}{unit}",
                f"Quantization error per layer ({metric}, {worse}), in graph order.",
                color=charts.PALETTE[1],
            )
        )
    return ("<h3>Accuracy</h3>" + "".join(out)) if out else ""


def per_layer_errors(report: dict[str, Any]) -> tuple[str, str, list[tuple[str, float]]] | None:
    """Per-layer quantization error when a report has it: a list of {layer|name|tensor, snr_db|error|...}
    under `quantization.per_layer` / `quantization.layers`, `layers.per_layer` (the layers stage: its
    added_snr_db is drawn), or `validation.accuracy.per_layer` / `.layers`."""
    accuracy = _dict(_dict(report.get("validation")).get("accuracy"))
    quant = _dict(report.get("quantization"))
    layers = _dict(report.get("layers"))
    source = next(
        (
            v
            for v in (
                quant.get("per_layer"),
                quant.get("layers"),
                layers.get("per_layer"),
                accuracy.get("per_layer"),
                accuracy.get("layers"),
            )
            if isinstance(v, list) and v
        ),
        None,
    )
    if not source:
        return None
    rows = [r for r in source if isinstance(r, dict)]
    metrics = (("snr_db", " dB"), ("relative_error", ""), ("max_abs_error", ""), ("error", ""), ("mse", ""))
    for metric, unit in (("added_snr_db", " dB"), *metrics):
        values = [
            (str(r.get("layer", r.get("name", r.get("tensor", "?")))), float(r[metric]))
            for r in rows
            if _num(r.get(metric))
        ]
        if values:
            return metric, unit, values
    return None
