"""The flash/RAM budget check: every figure says what it measures (linked firmware, model array or .tflite)."""

from __future__ import annotations

from typing import Any

from edgebuild.artifact import TfliteArtifact
from edgebuild.profiles import Profile


def budget_check(
    artifact: TfliteArtifact,
    profile: Profile,
    flash: dict[str, Any] | None,
    declared_arena: int | None,
    arena_source: str,
) -> dict[str, Any] | None:
    """None when the profile sets no budget; otherwise used vs budget for flash and RAM, with their sources."""
    budget = profile.budget
    if budget.flash is None and budget.ram is None:
        return None
    problems, parts = [], []
    firmware = bool(flash and flash.get("total_bytes") is not None)
    if firmware:
        assert flash is not None
        flash_used, flash_scope = flash["total_bytes"], "firmware image"
        flash_source = (
            f"linked firmware for {flash.get('board')}: model, TFLite Micro runtime and kernels, "
            "application; arm-none-eabi-size, validation samples excluded"
        )
    elif flash and flash.get("measured"):
        flash_used, flash_scope = flash["model_array_bytes"], "model array"
        flash_source = "model array, arm-none-eabi-size; runtime and kernels not included"
    else:
        flash_used, flash_scope = artifact.size_bytes, "model array"
        flash_source = ".tflite size (model array estimate; runtime and kernels not included)"
    if budget.flash is not None:
        parts.append(f"flash {flash_used:,} / {budget.flash:,} bytes ({flash_source})")
        if flash_used > budget.flash:
            what = "the linked firmware takes" if firmware else "the model array alone takes"
            problems.append(
                f"{what} {flash_used:,} bytes of flash, over the budget "
                f"{budget.flash:,} by {flash_used - budget.flash:,}"
            )
    if firmware:
        assert flash is not None
        ram_used, ram_scope = flash.get("ram_bytes"), "firmware RAM"
        ram_source = "linker: .data + .bss (with the tensor arena) + heap + stack of the linked firmware"
    else:
        ram_used, ram_scope = declared_arena, "tensor arena"
        ram_source = f"{arena_source}; stack and runtime state not included"
    if budget.ram is not None and ram_used is not None:
        parts.append(f"RAM {ram_used:,} / {budget.ram:,} bytes ({ram_source})")
        if ram_used > budget.ram:
            what = "the linked firmware reserves" if firmware else "the tensor arena alone needs"
            problems.append(
                f"{what} {ram_used:,} bytes of RAM, over the budget {budget.ram:,} by {ram_used - budget.ram:,}"
            )
    summary = (
        "; ".join(problems) + " — shrink the model (pruning, smaller input) or raise the budget"
        if problems
        else ", ".join(parts)
    )
    return {
        "name": "budgets",
        "passed": not problems,
        "summary": summary,
        "flash": {"used_bytes": flash_used, "budget_bytes": budget.flash, "source": flash_source, "scope": flash_scope},
        "ram": {
            "used_bytes": ram_used,
            "budget_bytes": budget.ram,
            "source": ram_source if ram_used is not None else None,
            "scope": ram_scope,
        },
    }
