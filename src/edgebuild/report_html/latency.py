"""A target's latency section: host and device latency statistics."""

from __future__ import annotations

from typing import Any

from edgebuild import report_charts as charts
from edgebuild.report_html.markup import _cell, _dict, _e, _fmt, _ms, _num, _table

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
