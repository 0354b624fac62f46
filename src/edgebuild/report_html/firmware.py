"""A target's firmware section."""

from __future__ import annotations

from typing import Any

from edgebuild import report_charts as charts
from edgebuild.report_html.markup import _cell, _dict, _e, _list, _num, _size_fmt, _status, _table


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
