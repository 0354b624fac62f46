"""A target's memory section: flash and RAM against the budgets."""

from __future__ import annotations

from typing import Any

from edgebuild import report_charts as charts
from edgebuild.report_html.markup import _dict, _e, _num, _size_fmt
from edgebuild.report_html.numbers import arena_bytes, budget_block


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
