"""Accuracy (top-1, agreement, SNR) and latency (host, device, instructions, Vela) compared."""

from __future__ import annotations

from typing import Any

from edgebuild.compare.result import CHANGED, IMPROVED, OK, REGRESSED, SKIPPED, Row, TargetDiff
from edgebuild.compare.thresholds import Thresholds
from edgebuild.compare.values import (
    _d,
    _device_identity,
    _growth_row,
    _host_identity,
    _is_num,
    _ms,
    _pct_change,
    _snr,
    _spread,
    _who,
)


def _accuracy(diff: TargetDiff, base: dict[str, Any], new: dict[str, Any], th: Thresholds) -> None:
    a = _d(_d(base.get("validation")).get("accuracy"))
    b = _d(_d(new.get("validation")).get("accuracy"))
    if not a or not b:
        if a or b:
            diff.notes.append("accuracy measured in only one of the builds: not compared")
        return
    note = "" if a.get("samples") == b.get("samples") else f"on {a.get('samples')} vs {b.get('samples')} samples"
    metric = b.get("metric") or a.get("metric")
    for key, label in (("artifact_top1", "top-1"), ("agreement", "agreement with float")):
        if _is_num(a.get(key)) and _is_num(b.get(key)) and metric != "snr":
            x, y = 100 * a[key], 100 * b[key]
            drop = x - y
            status = REGRESSED if drop > th.accuracy_drop + 1e-9 else IMPROVED if drop < -1e-9 else OK
            diff.rows.append(
                Row(
                    label,
                    f"{x:.2f}%",
                    f"{y:.2f}%",
                    f"{y - x:+.2f} points",
                    f"-{th.accuracy_drop:g} points",
                    status,
                    note,
                    (x, y),
                )
            )
    x, y = a.get("min_snr_db", "absent"), b.get("min_snr_db", "absent")
    if x != "absent" and y != "absent":
        bx = float("inf") if x is None else float(x)  # null = identical outputs
        by = float("inf") if y is None else float(y)
        gated = metric == "snr"
        drop = bx - by if bx != by else 0.0
        if drop == 0:
            status = OK
        elif not gated:
            status = CHANGED  # shown, not judged: the accuracy gate of a classifier is top-1
        else:
            status = REGRESSED if drop > th.snr_drop else IMPROVED if drop < 0 else OK
        change = (
            "0 dB"
            if drop == 0
            else ("worse" if drop == float("inf") else "better" if drop == float("-inf") else f"{-drop:+.1f} dB")
        )
        diff.rows.append(
            Row(
                "worst output SNR",
                _snr(x),
                _snr(y),
                change,
                f"-{th.snr_drop:g} dB" if gated else "info (gate metric is top-1)",
                status,
                note,
                (x, y),
            )
        )


def _latency(diff: TargetDiff, base: dict[str, Any], new: dict[str, Any], th: Thresholds) -> None:
    a, b = _d(base.get("benchmark")), _d(new.get("benchmark"))
    pairs = [("host", a, b, _host_identity(a), _host_identity(b))]
    da, db = _d(a.get("device")), _d(b.get("device"))
    if da.get("threads") or db.get("threads"):
        pairs.append(("device", da, db, _device_identity(da), _device_identity(db)))
    for where, x, y, ix, iy in pairs:
        tx, ty = _d(x.get("threads")), _d(y.get("threads"))
        common = [t for t in tx if t in ty]
        if not common:
            if tx or ty:
                diff.notes.append(
                    f"{where} latency measured in only one build (or with other thread counts): not compared"
                )
            continue
        for threads in common:
            sx, sy = _d(tx[threads]), _d(ty[threads])
            metric = f"{where} p50 latency ({threads} thread{'s' if str(threads) != '1' else ''})"
            px, py = sx.get("p50_ms", sx.get("mean_ms")), sy.get("p50_ms", sy.get("mean_ms"))
            if not _is_num(px) or not _is_num(py):
                continue
            if ix != iy:
                who = "hosts" if where == "host" else "devices"
                diff.rows.append(
                    Row(
                        metric,
                        _ms(px),
                        _ms(py),
                        _pct_change(px, py),
                        "-",
                        SKIPPED,
                        f"measured on different {who} ({_who(ix)} vs {_who(iy)})",
                        (px, py),
                    )
                )
                continue
            noise = max(_spread(sx), _spread(sy))
            _growth_row(diff, metric, px, py, th.latency, _ms, noise=noise, note=f"{where}: {_who(ix)}")
    cost_a = _d(_d(_d(base.get("firmware")).get("device")).get("instructions_per_inference")).get("median")
    cost_b = _d(_d(_d(new.get("firmware")).get("device")).get("instructions_per_inference")).get("median")
    _growth_row(
        diff,
        "instructions per inference (QEMU)",
        cost_a,
        cost_b,
        th.latency,
        lambda v: f"{int(v):,}",
        note="counted on the emulated device: exact, no noise",
    )
    va, vb = _d(_d(base.get("compile")).get("vela")), _d(_d(new.get("compile")).get("vela"))
    if va.get("accelerator") == vb.get("accelerator"):
        _growth_row(
            diff,
            "NPU cycles (Vela estimate)",
            va.get("cycles_total"),
            vb.get("cycles_total"),
            th.latency,
            lambda v: f"{int(v):,}",
            note=str(vb.get("accelerator") or ""),
        )
