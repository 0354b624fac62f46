"""The firmware block of report.json in words: one progress note and the report.md section."""

from __future__ import annotations

from typing import Any


def _kib(n: int | None) -> str:
    return "-" if n is None else f"{n / 1024:,.1f} KiB"


PART_LABELS = {
    "model_array": "model array (model_data.cc)",
    "tflm_runtime": "TFLite Micro runtime (interpreter, allocator, parsing)",
    "tflm_kernels": "TFLite Micro kernels (incl. CMSIS-NN)",
    "application": "application (runner, startup, board support)",
    "validation_samples": "embedded validation samples (test firmware only)",
    "c_cpp_libraries": "C/C++ libraries (newlib, libstdc++, libgcc)",
    "padding": "alignment",
}


def stage_note(firmware: dict[str, Any]) -> str:
    """One line for the build's progress output."""
    status = firmware.get("status")
    if status == "skipped":
        return f"skipped: {firmware.get('note', '')}"
    if status == "failed":
        error = firmware.get("error") or {}
        failed = [c["summary"] for c in firmware.get("checks", []) if not c.get("passed")]
        return "FAILED: " + (error.get("message") or "; ".join(failed))[:300]
    flash = firmware.get("flash", {})
    device = firmware.get("device", {})
    cost = (device.get("instructions_per_inference") or {}).get("median")
    parts = [f"flash {_kib(flash.get('total_bytes_without_samples', flash.get('total_bytes')))}"]
    if device.get("arena_used_bytes") is not None:
        parts.append(f"arena {device['arena_used_bytes']:,}/{firmware.get('declared_arena_bytes', 0):,} B on device")
    if cost:
        parts.append(f"{cost:,} instructions/inference on QEMU")
    return ", ".join(parts)


def markdown_lines(firmware: dict[str, Any] | None) -> list[str]:
    """The "Firmware" section of report.md."""
    if not firmware:
        return []
    board = firmware.get("board", {})
    lines = ["", "## Firmware", ""]
    if firmware.get("status") == "skipped" and "flash" not in firmware:
        return [
            *lines,
            f"Not built: {firmware.get('note', '')}",
            f"The project is in `{firmware.get('project_dir', 'firmware/')}` (`make` builds it).",
        ]
    lines.append(
        f"Board **{board.get('name')}** ({board.get('cpu')}), TFLite Micro kernels: "
        f"{firmware.get('kernels')}. Status: **{firmware.get('status', '?').upper()}**."
    )
    if firmware.get("error"):
        lines += ["", f"Error ({firmware['error'].get('stage')}): {firmware['error'].get('message')}"]
    flash, ram = firmware.get("flash"), firmware.get("ram")
    if flash:
        product = flash.get("total_bytes_without_samples", flash["total_bytes"])
        lines += [
            "",
            (
                f"Flash of the linked image: **{product:,} bytes** without the embedded validation samples "
                f"({flash['total_bytes']:,} with them), measured with arm-none-eabi-size; split with the "
                "linker map:"
            ),
            "",
            "| part | bytes |",
            "|---|---:|",
        ]
        for key, value in (flash.get("breakdown") or {}).items():
            lines.append(f"| {PART_LABELS.get(key, key)} | {value:,} |")
    if ram:
        lines += [
            "",
            (
                f"RAM reserved by the linker: **{ram['total_bytes']:,} bytes** = .data {ram['data_bytes']:,} + "
                f".bss {ram['bss_bytes']:,} (tensor arena {ram.get('arena_bytes', 0):,}) + heap "
                f"{ram['heap_bytes']:,} + stack {ram['stack_bytes']:,}."
            ),
        ]
    device = firmware.get("device") or {}
    if device.get("note"):
        lines += ["", device["note"]]
    elif device:
        cost = device.get("instructions_per_inference") or {}
        lines += [
            "",
            "| on the device (QEMU) | |",
            "|---|---|",
            (
                f"| tensor arena | kTensorArenaSize {device.get('arena_size_bytes', 0):,} bytes, "
                f"arena_used_bytes() {device.get('arena_used_bytes') or 0:,} |"
            ),
            (
                f"| stack / heap used | {device.get('stack_used_bytes') or 0:,} / "
                f"{device.get('heap_used_bytes') or 0:,} bytes |"
            ),
        ]
        if cost:
            lines.append(
                f"| instructions per inference | {cost['median']:,} (min {cost['min']:,}, max {cost['max']:,}); "
                "instructions on QEMU -icount, not cycles or time |"
            )
            ops = ", ".join(f"{o['op']} x{o['count']}: {o['instructions']:,}" for o in cost.get("per_op", []))
            if ops:
                lines.append(f"| per op | {ops} |")
        comparison = firmware.get("comparison")
        if comparison:
            agreement = comparison.get("top1_agreement")
            lines.append(
                f"| vs LiteRT reference kernels | {comparison['samples']} samples, max "
                f"{comparison.get('max_steps')} step(s), mean {comparison.get('mean_steps')}"
                + (f", top-1 agreement {100 * agreement:.1f}%" if agreement is not None else "")
                + " |"
            )
    host = firmware.get("host_check")
    if host:
        lines += ["", f"Host C++ check ({host.get('status')}): {host.get('summary', '')}"]
    return lines


def report_flash(firmware: dict[str, Any] | None) -> dict[str, Any] | None:
    """The report's top-level `flash` block measured from the linked firmware (None when it was not linked).

    Replaces the model-array-only figure: `total_bytes` is the image a product would flash (the runner's
    embedded validation samples excluded), `model_array_bytes` stays as one line of the breakdown (the old
    figure, now from the linker map), and RAM is what the linker reserves: .data + .bss (with the tensor
    arena) + heap + stack.
    """
    if not firmware or "flash" not in firmware or "breakdown" not in firmware["flash"]:
        return None
    flash, ram = firmware["flash"], firmware["ram"]
    breakdown = {k: v for k, v in flash["breakdown"].items() if k != "validation_samples"}
    return {
        "measured": True,
        "scope": "linked firmware image (validation samples excluded)",
        "tool": firmware.get("size_tool", "arm-none-eabi-size -A"),
        "board": firmware["board"]["name"],
        "total_bytes": flash["total_bytes_without_samples"],
        "image_bytes": flash["total_bytes"],
        "model_array_bytes": flash["breakdown"]["model_array"],
        "breakdown": breakdown,
        "ram_bytes": ram["total_bytes"],
        "ram_breakdown": ram.get("breakdown", {}),
    }
