"""OUT/report.html: the whole build in one self-contained page for a browser, a phone or paper.

No network and no JavaScript: the charts are SVG drawn here (edgebuild.report_charts) and the styles
are inline, so the file opens offline, from a CI artifact or an e-mail attachment, and its tables read
the same with scripts off. A Content-Security-Policy forbids the page any request at all.

Everything is read from the targets' report.json (plus each target's model.tflite for the size
breakdown). Every section is optional: what a report does not have is simply not drawn, so older
reports and reports with new sections (e.g. `firmware`) both render.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgebuild import report_charts as charts

if TYPE_CHECKING:
    from typing_extensions import TypeIs

CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'"


# ---------------------------------------------------------------- small formatting helpers


def _e(value: Any) -> str:
    return escape(str(value))


def kib(n: float | None) -> str:
    return "-" if n is None else f"{n / 1024:,.1f} KiB"


def _bytes(n: float | None) -> str:
    return "-" if n is None else f"{int(n):,} B"


def _size_fmt(n: float) -> str:
    """Bar labels: bytes below 1 KiB, KiB above."""
    return f"{n:,.0f} B" if n < 1024 else f"{n / 1024:,.1f} KiB"


def _ms(v: float | None) -> str:
    return "-" if v is None else f"{v:.3f} ms"


def _pct(v: float | None, digits: int = 1) -> str:
    return "-" if v is None else f"{100 * v:.{digits}f}%"


def _num(v: Any) -> TypeIs[int | float]:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _cell(text: str, value: Any = None, field: str | None = None, cls: str = "") -> str:
    """A table cell; with `field` it carries the exact report.json value (`data-value`) for machines."""
    attrs = f' class="{cls}"' if cls else ""
    if field is not None:
        attrs += f' data-field="{_e(field)}" data-value="{_e(json.dumps(value))}"'
    return f"<td{attrs}>{text}</td>"


def _table(headers: Iterable[str], rows: Iterable[str], cls: str = "", attrs: str = "") -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    return (
        f'<div class="scroll"><table class="{cls}"{attrs}><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table></div>"
    )


def _status(passed: bool | None, text_pass: str = "pass", text_fail: str = "FAIL") -> str:
    if passed is None:
        return '<span class="badge muted">-</span>'
    return f'<span class="badge pass">{text_pass}</span>' if passed else f'<span class="badge fail">{text_fail}</span>'


Series = tuple[str, list[tuple[float, float]]]  # a training metric: (name, [(epoch, value)])


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


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


def _checks(target: str, report: dict[str, Any]) -> str:
    checks = [c for c in _list(_dict(report.get("validation")).get("checks")) if isinstance(c, dict)]
    if not checks:
        return ""
    rows = []
    for check in checks:
        details = _check_details(check)
        rows.append(
            f'<tr data-check="{_e(check.get("name", ""))}"><th scope="row">{_e(check.get("name", ""))}</th>'
            + _cell(_status(check.get("passed")), check.get("passed"), "passed")
            + f"<td>{_e(check.get('summary', ''))}{details}</td></tr>"
        )
    return "<h3>Checks</h3>" + _table(["Check", "Result", "Details"], rows, "checks", f' data-target="{_e(target)}"')


def _check_details(check: dict[str, Any]) -> str:
    findings = [f for f in _list(check.get("findings")) if isinstance(f, dict)]
    details = {
        **_dict(check.get("details")),
        **{k: v for k, v in check.items() if k not in ("name", "passed", "summary", "findings", "details")},
    }
    details.pop("findings", None)
    if not findings and not details:
        return ""
    parts = []
    if findings:
        items = []
        for f in findings[:50]:
            where = f"op #{f.get('op_index')} {f.get('op')}" if f.get("op") else "model"
            fix = f" <em>Fix:</em> {_e(f['fix'])}" if f.get("fix") else ""
            items.append(
                f'<li class="{_e(f.get("severity", ""))}"><strong>{_e(where)}</strong> '
                f"({_e(f.get('severity', ''))}): {_e(f.get('message', ''))}{fix}</li>"
            )
        more = f"<li>... {len(findings) - 50} more in report.json</li>" if len(findings) > 50 else ""
        parts.append(f'<ul class="findings">{"".join(items)}{more}</ul>')
    if details:
        parts.append(_kv(details))
    open_attr = " open" if check.get("passed") is False else ""
    count = f"{len(findings)} finding(s), " if findings else ""
    return f"<details{open_attr}><summary>{count}details</summary>{''.join(parts)}</details>"


def _kv(values: dict[str, Any], depth: int = 0) -> str:
    rows = []
    for key, value in values.items():
        if isinstance(value, dict) and depth < 2:
            text = _kv(value, depth + 1)
        elif isinstance(value, (dict, list)):
            text = f"<code>{_e(json.dumps(value, default=str)[:400])}</code>"
        elif isinstance(value, float):
            text = f"{value:.6g}"
        elif isinstance(value, int) and not isinstance(value, bool):
            text = f"{value:,}"
        else:
            text = _e(value)
        rows.append(f"<dt>{_e(key)}</dt><dd>{text}</dd>")
    return f'<dl class="kv">{"".join(rows)}</dl>'


def _facts(report: dict[str, Any]) -> str:
    art = _dict(report.get("artifact"))
    model = _dict(report.get("model"))
    rows = []
    if model:
        rows.append(("Model", f"<code>{_e(model.get('path', ''))}</code> ({_e(model.get('format', ''))})"))
    if art:
        float_size = _dict(report.get("float_reference")).get("size_bytes")
        ratio = (
            f", {art['size_bytes'] / float_size:.2f}x the float32 model ({kib(float_size)})"
            if _num(float_size) and float_size and _num(art.get("size_bytes"))
            else ""
        )
        rows.append(("Artifact", f"<code>{_e(art.get('path', ''))}</code>, {_bytes(art.get('size_bytes'))}{ratio}"))
        for io in ("inputs", "outputs"):
            for t in _list(art.get(io)):
                if isinstance(t, dict):
                    quant = (
                        f", scale {t['scale']:.6g}, zero point {t['zero_point']}"
                        if isinstance(t.get("scale"), float)
                        else ""
                    )
                    rows.append(
                        (
                            f"{io[:-1].capitalize()} <code>{_e(t.get('name', ''))}</code>",
                            f"{_e(t.get('dtype'))} {_e(t.get('shape'))}{_e(quant)}",
                        )
                    )
        if art.get("ops"):
            rows.append(("Ops", _e(", ".join(f"{k} x{v}" for k, v in _dict(art.get("ops")).items()))))
        if _num(art.get("macs")):
            rows.append(("MACs", f"{art['macs']:,}"))
        if art.get("weight_bytes_by_dtype"):
            rows.append(("Weights", _e(", ".join(f"{k}: {kib(v)}" for k, v in art["weight_bytes_by_dtype"].items()))))
    for note in _list(_dict(report.get("quantization")).get("notes")):
        rows.append(("Quantization", _e(note)))
    if not rows:
        return ""
    body = "".join(f'<tr><th scope="row">{k}</th><td>{v}</td></tr>' for k, v in rows)
    return f'<div class="scroll"><table class="facts"><tbody>{body}</tbody></table></div>'


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


def _fmt(value: Any, unit: str = "", none: str = "-") -> str:
    if value is None:
        return none
    if _num(value):
        return f"{value:.4g}{' ' + unit if unit else ''}"
    return _e(value)


HOST_COLOR, DEVICE_COLOR = charts.PALETTE[0], charts.PALETTE[1]


def latency_rows(report: dict[str, Any]) -> list[tuple[str, dict[str, Any], str]]:
    """(label, stats in ms, colour) for every measured distribution, host and device labelled as such."""
    benchmark = _dict(report.get("benchmark"))
    host = _dict(benchmark.get("host"))
    rows = []
    where = f"host: {host.get('cpu') or 'this machine'}"
    for threads, stats in _dict(benchmark.get("threads")).items():
        if isinstance(stats, dict) and _num(stats.get("p50_ms", stats.get("mean_ms"))):
            rows.append((f"{where} · {threads} thr", _stats(stats), HOST_COLOR))
    device = _dict(benchmark.get("device"))
    info = _dict(device.get("device"))
    for threads, stats in _dict(device.get("threads")).items():
        if isinstance(stats, dict) and _num(stats.get("p50_ms", stats.get("mean_ms"))):
            name = info.get("cpu") or info.get("machine") or info.get("url") or "device"
            rows.append((f"device: {name} · {threads} thr", _stats(stats), DEVICE_COLOR))
    return rows


def _stats(stats: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for key in ("min", "p50", "p90", "p99", "max", "mean"):
        value = stats.get(f"{key}_ms")
        if _num(value):
            out[key] = float(value)
    if "p50" not in out and "mean" in out:
        out["p50"] = out["mean"]
    return out


def _latency(target: str, report: dict[str, Any]) -> str:
    benchmark = _dict(report.get("benchmark"))
    rows = latency_rows(report)
    out = []
    if rows:
        host = _dict(benchmark.get("host"))
        runtime = _dict(benchmark.get("runtime"))
        caption = (
            f"Latency per inference, measured. Host: {_e(host.get('cpu', '?'))} ({_e(host.get('cores', '?'))} "
            f"cores), {_e(runtime.get('name', '?'))} {_e(runtime.get('version', ''))}"
            f"{'; scope: ' + _e(benchmark['scope']) if benchmark.get('scope') else ''}. Box p50 to p90, "
            'whiskers min to max, tick p99, dot mean. <span style="color:'
            + HOST_COLOR
            + '">Blue: the build host</span>'
            + (
                ', <span style="color:' + DEVICE_COLOR + '">orange: the device</span>'
                if any(label.startswith("device") for label, _, _ in rows)
                else ""
            )
            + "."
        )
        out.append(charts.ranges(f"{target}:latency", rows, caption))
        table_rows = []
        for label, s, _ in rows:
            table_rows.append(
                f'<tr><th scope="row">{_e(label)}</th>'
                + "".join(
                    _cell(_fmt(s.get(k)), s.get(k), f"{k}_ms", "num")
                    for k in ("p50", "p90", "p99", "mean", "min", "max")
                )
                + "</tr>"
            )
        out.append(
            _table(
                ["Where", "p50 ms", "p90 ms", "p99 ms", "mean ms", "min ms", "max ms"],
                table_rows,
                "latency",
                f' data-target="{_e(target)}"',
            )
        )
    vs = _dict(benchmark.get("vs_float32"))
    if _num(vs.get("ratio")):
        out.append(
            f"<p>Against the plain float32 conversion on this host ({vs.get('threads')} thread(s)): "
            f"{vs['ratio']:.2f}x its p50 ({_ms(vs.get('float32_p50_ms'))})"
            f"{'' if vs.get('applies', True) else ', for context only (the target is not this CPU)'}.</p>"
        )
    device = _dict(benchmark.get("device"))
    if _dict(device.get("error")):
        out.append(
            f'<p class="fail">Device benchmark ({_e(device.get("url", ""))}) failed: '
            f"{_e(device['error'].get('message', ''))}</p>"
        )
    vela = _dict(_dict(report.get("compile")).get("vela"))
    if _num(vela.get("inference_time_ms")):
        out.append(
            f"<p>Ethos-U estimate (Arm Vela, not a measurement): {vela['inference_time_ms']:.4f} ms, "
            f"{vela.get('cycles_total', 0):,} cycles at {vela.get('core_clock_hz', 0) / 1e6:g} MHz.</p>"
        )
    cost = _dict(_dict(_dict(report.get("firmware")).get("device")).get("instructions_per_inference"))
    if _num(cost.get("median")):
        out.append(
            f"<p>On the emulated device (QEMU, counted instructions, not time): {cost['median']:,} "
            "instructions per inference.</p>"
        )
    return ("<h3>Latency</h3>" + "".join(out)) if out else ""


def budget_rows(report: dict[str, Any]) -> list[tuple[str, float, float | None, str]]:
    rows = []
    budget = _dict(_dict(report.get("profile")).get("budget"))
    for kind, label in (("flash", "flash"), ("ram", "RAM")):
        block = budget_block(report, kind)
        if _num(block.get("used_bytes")):
            scope = block.get("scope") or ""
            rows.append(
                (
                    f"{label} ({scope})" if scope else label,
                    float(block["used_bytes"]),
                    block.get("budget_bytes"),
                    (
                        f"{label}: {block['used_bytes']:,} of "
                        f"{block.get('budget_bytes') or 0:,} bytes; {block.get('source', '')}"
                    ),
                )
            )
    if not rows:
        arena = arena_bytes(report)
        if arena is not None:
            rows.append(("tensor arena", float(arena), budget.get("ram"), f"arena {arena:,} bytes"))
        model_array = _dict(report.get("flash")).get("model_array_bytes")
        if _num(model_array):
            rows.append(
                ("flash (model array)", float(model_array), budget.get("flash"), f"model array {model_array:,} bytes")
            )
    firmware = _dict(report.get("firmware"))
    fw_flash, fw_ram = _dict(firmware.get("flash")), _dict(firmware.get("ram"))
    total = fw_flash.get("total_bytes_without_samples", fw_flash.get("total_bytes"))
    shown = {used for _, used, _, _ in rows}  # the budgets check may already measure the linked firmware
    if _num(total) and float(total) not in shown:
        rows.append(
            (
                "flash (linked firmware)",
                float(total),
                budget.get("flash"),
                f"linked firmware image: {total:,} bytes (embedded validation samples excluded)",
            )
        )
    if _num(fw_ram.get("total_bytes")) and float(fw_ram["total_bytes"]) not in shown:
        rows.append(
            (
                "RAM (linked firmware)",
                float(fw_ram["total_bytes"]),
                budget.get("ram"),
                f"RAM the linker reserves: {fw_ram['total_bytes']:,} bytes",
            )
        )
    device = _dict(firmware.get("device"))
    if _num(device.get("arena_used_bytes")):
        declared = device.get("arena_size_bytes", firmware.get("declared_arena_bytes"))
        rows.append(
            (
                "arena used on device",
                float(device["arena_used_bytes"]),
                declared if _num(declared) else None,
                f"arena_used_bytes() {device['arena_used_bytes']:,} of kTensorArenaSize {declared}",
            )
        )
    return rows


def _memory(target: str, report: dict[str, Any]) -> str:
    rows = budget_rows(report)
    out = []
    if rows:
        out.append(
            charts.budget_bars(
                f"{target}:budgets",
                rows,
                "Memory against the profile's budgets (grey: the budget; red: over it).",
                _size_fmt,
            )
        )
    arena = _dict(_dict(report.get("validation")).get("arena"))
    if _num(arena.get("proven_bytes")):
        out.append(
            f"<p>Tensor arena: {arena['proven_bytes']:,} bytes proven by running TFLite Micro, "
            f"{arena.get('recommended_bytes', 0):,} recommended (+{100 * (arena.get('margin') or 0):.0f}%"
            f"{', verified' if arena.get('verified') else ''}).</p>"
        )
    elif arena.get("error"):
        out.append(f'<p class="fail">Tensor arena: {_e(arena["error"])}</p>')
    return ("<h3>Memory and budgets</h3>" + "".join(out)) if out else ""


def _compilers(target: str, report: dict[str, Any]) -> str:
    compiled = _dict(report.get("compile"))
    out = []
    edgetpu = _dict(compiled.get("edgetpu"))
    if edgetpu:
        if edgetpu.get("available") is False:
            rules = _dict(edgetpu.get("rules"))
            text = _e(edgetpu.get("message", "edgetpu_compiler not available"))
            if rules:
                text += (
                    f" edgebuild's rules: {rules.get('mapped_ops')} of {rules.get('total_ops')} ops "
                    f"({_pct(rules.get('mapped_ops_fraction'))}) and {_pct(rules.get('mapped_macs_fraction'))} "
                    "of MACs map to the Edge TPU."
                )
            out.append(f"<p><strong>Edge TPU</strong>: {text}</p>")
            if _num(rules.get("mapped_ops")) and _num(rules.get("total_ops")):
                parts = [
                    ("Edge TPU (rules)", float(rules["mapped_ops"])),
                    ("CPU (rules)", float(rules["total_ops"] - rules["mapped_ops"])),
                ]
                out.append(
                    charts.stacked(
                        f"{target}:edgetpu-split",
                        parts,
                        "Ops on the Edge TPU vs the CPU by edgebuild's rules (an estimate: the compiler was not run).",
                        lambda v: f"{v:g} ops",
                    )
                )
        else:
            out.append(
                f"<p><strong>Edge TPU</strong> (edgetpu_compiler {_e(edgetpu.get('compiler_version'))}): "
                f"{edgetpu.get('ops_mapped_edgetpu')} of {edgetpu.get('total_ops')} ops mapped, on-chip "
                f"memory {kib(edgetpu.get('on_chip_memory_bytes'))}, off-chip "
                f"{kib(edgetpu.get('off_chip_memory_bytes'))}.</p>"
            )
            per_op = [r for r in _list(edgetpu.get("per_op")) if isinstance(r, dict)]
            if per_op:
                rows = [
                    f'<tr><td>{_e(r.get("op"))}</td><td class="num">{_e(r.get("count"))}</td>'
                    f"<td>{_status(r.get('mapped'), 'Edge TPU', 'CPU')}</td><td>{_e(r.get('status', ''))}</td></tr>"
                    for r in per_op
                ]
                out.append(_table(["Op", "Count", "Runs on", "Compiler's note"], rows, "edgetpu-ops"))
            by_op = _dict(edgetpu.get("by_op"))
            if by_op:
                parts = [
                    ("Edge TPU", float(sum(v.get("edgetpu", 0) for v in by_op.values()))),
                    ("CPU", float(sum(v.get("cpu", 0) for v in by_op.values()))),
                ]
                out.append(
                    charts.stacked(
                        f"{target}:edgetpu-split", parts, "Ops on the Edge TPU vs the CPU.", lambda v: f"{v:g} ops"
                    )
                )
    vela = _dict(compiled.get("vela"))
    if vela:
        out.append(
            f"<p><strong>Arm Vela</strong> ({_e(vela.get('accelerator'))}, {_e(vela.get('system_config'))}, "
            f"{_e(vela.get('memory_mode'))}): {vela.get('npu_ops')} ops on the NPU, {vela.get('cpu_ops')} on the "
            f"CPU; SRAM {kib(vela.get('sram_bytes'))}, off-chip flash {kib(vela.get('off_chip_flash_bytes'))}, "
            f"{vela.get('macs', 0):,} MACs, {vela.get('cycles_total', 0):,} cycles (estimate).</p>"
        )
        per_op = [r for r in _list(vela.get("per_op")) if isinstance(r, dict)]
        if per_op:
            rows = [
                f'<tr><td>{_e(r.get("op"))}</td><td class="num">{_e(r.get("count"))}</td>'
                f'<td class="num">{_e(r.get("npu"))}</td><td class="num">{_e(r.get("cpu"))}</td></tr>'
                for r in per_op
            ]
            out.append(_table(["Op", "Count", "NPU", "CPU"], rows, "vela-ops"))
            parts = [
                ("NPU", float(sum(r.get("npu", 0) or 0 for r in per_op))),
                ("CPU", float(sum(r.get("cpu", 0) or 0 for r in per_op))),
            ]
            out.append(
                charts.stacked(
                    f"{target}:vela-split", parts, "Ops on the Ethos-U NPU vs the CPU (Vela).", lambda v: f"{v:g} ops"
                )
            )
    return ("<h3>Compilers</h3>" + "".join(out)) if out else ""


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


def _firmware(target: str, report: dict[str, Any]) -> str:
    firmware = _dict(report.get("firmware"))
    if not firmware:
        return ""
    status = firmware.get("status", "?")
    board = _dict(firmware.get("board"))
    badge = (
        f'<span class="badge muted">{_e(status)}</span>'
        if status == "skipped"
        else _status(status in ("passed", "ok"), str(status), str(status).upper())
    )
    out = [
        (
            f"<h3>Firmware</h3><p>{badge} Board <strong>{_e(board.get('name', '?'))}</strong> "
            f"({_e(board.get('cpu', ''))}), TFLite Micro kernels: {_e(firmware.get('kernels', '?'))}.</p>"
        )
    ]
    if firmware.get("note"):
        out.append(f"<p>{_e(firmware['note'])}</p>")
    if _dict(firmware.get("error")):
        out.append(
            f'<p class="fail">Error ({_e(firmware["error"].get("stage"))}): {_e(firmware["error"].get("message"))}</p>'
        )
    flash = _dict(firmware.get("flash"))
    breakdown = [(k, float(v)) for k, v in _dict(flash.get("breakdown")).items() if _num(v)]
    if breakdown:
        from edgebuild.firmware.render import PART_LABELS

        budget = _dict(_dict(report.get("profile")).get("budget")).get("flash")
        parts = [(PART_LABELS.get(k, k), v) for k, v in breakdown]
        out.append(
            charts.stacked(
                f"{target}:firmware-flash",
                parts,
                f"Flash of the linked firmware: {flash.get('total_bytes', 0):,} bytes"
                + (f" against a {budget:,}-byte budget (grey)" if _num(budget) else "")
                + " (arm-none-eabi-size, split with the linker map).",
                _size_fmt,
                budget=budget if _num(budget) else None,
            )
        )
    ram = _dict(firmware.get("ram"))
    ram_parts = [(k.replace("_", " "), float(v)) for k, v in _dict(ram.get("breakdown")).items() if _num(v)]
    if ram_parts:
        budget = _dict(_dict(report.get("profile")).get("budget")).get("ram")
        out.append(
            charts.stacked(
                f"{target}:firmware-ram",
                ram_parts,
                f"RAM the linker reserves: {ram.get('total_bytes', 0):,} bytes"
                + (f" against a {budget:,}-byte budget (grey)" if _num(budget) else "")
                + ".",
                _size_fmt,
                budget=budget if _num(budget) else None,
            )
        )
    device = _dict(firmware.get("device"))
    cost = _dict(device.get("instructions_per_inference"))
    per_op = [r for r in _list(cost.get("per_op")) if isinstance(r, dict) and _num(r.get("instructions"))]
    if per_op:
        items = [
            (
                f"{r.get('op')} x{r.get('count', 1)}",
                float(r["instructions"]),
                f"{r.get('op')} x{r.get('count', 1)}: {r['instructions']:,} instructions",
            )
            for r in per_op
        ]
        out.append(
            charts.hbars(
                f"{target}:firmware-instructions",
                items,
                lambda v: f"{v:,.0f}",
                f"Instructions per inference by op on QEMU ({cost.get('median', 0):,} in all; "
                "instructions, not cycles or time).",
                color=charts.PALETTE[3],
            )
        )
    if device.get("note"):
        out.append(f"<p>{_e(device['note'])}</p>")
    listed = {c.get("name") for c in _list(_dict(report.get("validation")).get("checks")) if isinstance(c, dict)}
    checks = [
        c for c in _list(firmware.get("checks")) if isinstance(c, dict) and f"firmware: {c.get('name')}" not in listed
    ]
    if checks:  # those the validation's checks table does not already list
        rows = [
            f'<tr><th scope="row">{_e(c.get("name"))}</th>'
            + _cell(_status(c.get("passed")), c.get("passed"), "passed")
            + f"<td>{_e(c.get('summary', ''))}</td></tr>"
            for c in checks
        ]
        out.append(_table(["Check", "Result", "Details"], rows, "firmware-checks"))
    return "".join(out)


def _warnings(report: dict[str, Any]) -> str:
    warnings = [w for w in _list(report.get("warnings")) if w]
    if not warnings:
        return ""
    return '<h3>Warnings</h3><ul class="warnings">' + "".join(f"<li>{_e(w)}</li>" for w in warnings) + "</ul>"


def _timings(report: dict[str, Any]) -> str:
    timings = {k: v for k, v in _dict(report.get("timings_s")).items() if _num(v)}
    versions = _dict(report.get("versions"))
    parts = []
    if timings:
        parts.append("Stage timings: " + ", ".join(f"{_e(k)} {v:.2f} s" for k, v in timings.items()) + ".")
    if versions:
        parts.append(" ".join(f"{_e(k)} {_e(v)}" for k, v in versions.items() if k != "converter") + ".")
    cache = _dict(report.get("cache"))
    if cache.get("hit"):
        parts.append("Restored from the build cache.")
    return f'<p class="small">{" ".join(parts)}</p>' if parts else ""


def _target_section(target: str, report: dict[str, Any], out_root: Path | None) -> str:
    target_dir = out_root / target if out_root is not None else None
    files = [
        f
        for f in ("report.md", "report.json", _dict(report.get("artifact")).get("path", "model.tflite"))
        if target_dir is None or (target_dir / f).exists()
    ]
    links = " · ".join(f'<a href="{_e(target)}/{_e(f)}">{_e(f)}</a>' for f in files)
    parts = [
        f'<section class="target" id="t-{_e(target)}" data-target="{_e(target)}">',
        f"<h2>{_e(target)} {_status(target_passed(report), 'passed', 'FAILED')}</h2>",
        f"<p>{_e(report.get('description', ''))}</p>",
        f'<p class="links">{links}</p>' if links else "",
        _facts(report),
        _warnings(report),
        _checks(target, report),
        _size(target, report, target_dir),
        _accuracy(target, report),
        _latency(target, report),
        _memory(target, report),
        _compilers(target, report),
        _pruning(target, report),
        _training(target, report),
        _firmware(target, report),
        _timings(report),
        "</section>",
    ]
    return "".join(p for p in parts if p)


STYLE = """
:root{--fg:#1b1b1b;--muted:#666;--line:#ddd;--pass:#2e7d32;--fail:#c62828;--bg:#fff}
*{box-sizing:border-box}
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--fg);background:var(--bg);
  margin:0 auto;max-width:1000px;padding:12px 16px 40px}
h1,h2,p,li,nav,figcaption{overflow-wrap:anywhere}
h1{font-size:1.5em;margin:.4em 0}h2{font-size:1.25em;margin:1.6em 0 .3em;border-bottom:2px solid var(--line)}
h3{font-size:1.05em;margin:1.2em 0 .3em}h4{font-size:.95em;margin:.8em 0 .2em}
nav{font-size:.9em;margin:.5em 0 1em}nav a{margin-right:.8em}
.scroll{overflow-x:auto;-webkit-overflow-scrolling:touch;margin:.4em 0}
table{border-collapse:collapse;min-width:50%;font-size:.9em}
th,td{border-bottom:1px solid var(--line);padding:4px 8px;text-align:left;vertical-align:top}
thead th{background:#f5f5f5;white-space:nowrap}td.num{text-align:right;white-space:nowrap}
.badge{display:inline-block;padding:0 .5em;border-radius:3px;font-size:.8em;font-weight:600;color:#fff}
.badge.pass{background:var(--pass)}.badge.fail{background:var(--fail)}.badge.muted{background:#9e9e9e}
.fail{color:var(--fail)}.small{font-size:.8em;color:var(--muted)}
figure.chart{margin:.6em 0 1em;max-width:760px}figure.chart figcaption{font-size:.85em;color:var(--muted)}
svg.chart-svg{display:block;height:auto}svg .value{fill:#333}
dl.kv{display:grid;grid-template-columns:max-content 1fr;gap:0 .8em;margin:.3em 0;font-size:.9em}
dl.kv dt{color:var(--muted)}dl.kv dd{margin:0;overflow-wrap:anywhere}
ul.findings li.error{color:var(--fail)}code{font-size:.9em;overflow-wrap:anywhere}
details summary{cursor:pointer;color:var(--muted);font-size:.9em}
@media (max-width:600px){body{font-size:14px;padding:8px}th,td{padding:3px 5px}}
@media print{nav,.links{display:none}body{max-width:none;font-size:11pt}section.target{break-before:page}
  figure.chart{break-inside:avoid}details>*{display:block}a{color:inherit;text-decoration:none}}
"""


def render_report_html(
    reports: dict[str, dict[str, Any]], out_root: Path | None = None, title: str | None = None
) -> str:
    """The page for the given reports (target -> report.json content); out_root locates the artifacts."""
    reports = {t: r for t, r in reports.items() if isinstance(r, dict)}
    first = next(iter(reports.values()), {})
    model = _dict(first.get("model"))
    heading = title or f"edgebuild report: {Path(str(model.get('path') or 'build')).name}"
    failed = [t for t, r in reports.items() if not target_passed(r)]
    status = (
        f"{len(reports)} target(s), all passed"
        if not failed
        else f'{len(reports)} target(s); <span class="fail">failed: {_e(", ".join(failed))}</span>'
    )
    nav = " ".join(f'<a href="#t-{_e(t)}">{_e(t)}</a>' for t in reports)
    version = _dict(first.get("versions")).get("edgebuild", "")
    body = [
        f"<h1>{_e(heading)}</h1>",
        (
            f"<p>{status}. Model <code>{_e(model.get('path', '-'))}</code> ({_e(model.get('format', '?'))}), built by "
            f"edgebuild {_e(version)}; data <code>{_e(_dict(first.get('data')).get('source', '-'))}"
            "</code>. Sizes in bytes (KiB = 1024 B); latency measured on the build host unless labelled device.</p>"
        ),
        f'<nav>Targets: {nav} · <a href="summary.md">summary.md</a></nav>' if reports else "",
        '<h2 id="overview">Overview</h2>',
        _overview(reports),
        targets_chart(reports),
        *(_target_section(t, r, out_root) for t, r in reports.items()),
    ]
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(heading)}</title><style>{STYLE}</style></head><body>"
        + "".join(p for p in body if p)
        + "</body></html>\n"
    )


def load_reports(out_root: Path) -> dict[str, dict[str, Any]]:
    """target -> report.json of every target folder in a build folder, in name order."""
    reports = {}
    for path in sorted(Path(out_root).glob("*/report.json")):
        try:
            reports[path.parent.name] = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
    return reports


def write_report_html(out_root: Path, reports: dict[str, dict[str, Any]] | None = None) -> Path:
    """Write OUT/report.html (atomically) from the given reports, or from the report.json files in out_root."""
    out_root = Path(out_root)
    reports = load_reports(out_root) if reports is None else reports
    path = out_root / "report.html"
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(render_report_html(reports, out_root), encoding="utf-8")
    tmp.replace(path)
    return path
