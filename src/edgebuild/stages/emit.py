"""C sources for TFLite Micro firmware, and the flash they take on a Cortex-M4."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgebuild.artifact import TfliteArtifact, parse_artifact
from edgebuild.profiles import Profile
from edgebuild.validation import recommended_arena

NO_CROSS_COMPILER = {
    "measured": False,
    "reason": "arm-none-eabi-gcc not found (apt-get install gcc-arm-none-eabi libnewlib-arm-none-eabi)",
}


MODEL_ARRAY_SCOPE = (
    "model array only (model_data.o): the TFLite Micro runtime, kernels and application "
    "are not included until a firmware image is linked"
)


@dataclass(frozen=True)
class Emission:
    """The emit stage's result: the C sources written, and what the firmware and budget stages build on."""

    files: list[str]  # relative to the work folder (report.json `files`)
    flash: dict[str, Any] | None  # the model array's flash on a Cortex-M4; None without the cross compiler
    declared_arena: int | None  # kTensorArenaSize in model_settings.h; None when no arena was measured

    def note(self) -> str:
        """The progress line's note for the emit stage."""
        if self.flash:
            return f"model array {self.flash['model_array_bytes']:,} bytes of flash (Cortex-M4)"
        return "no arm-none-eabi-gcc: flash not measured"


def emit_c(
    blob: bytes,
    artifact: TfliteArtifact,
    profile: Profile,
    work_dir: Path,
    validation: dict[str, Any] | None,
    vela: dict[str, Any] | None,
) -> Emission:
    """Write the C sources (from the Vela output on Ethos-U); measure the model array's flash when the cross
    compiler exists."""
    from edgebuild.codegen import CSourceOptions, write_c_sources
    from edgebuild.codegen.flash import compile_for_cortex_m, object_sizes

    arena = None
    if validation is not None:
        arena = validation.get("arena", {}).get("recommended_bytes")
    if vela is not None:
        blob = (work_dir / vela["files"]["model"]).read_bytes()
        artifact = parse_artifact(blob, source=vela["files"]["model"])
        if vela.get("sram_bytes"):
            arena = recommended_arena(vela["sram_bytes"], profile.mcu.arena_margin)
    options = CSourceOptions(symbol=profile.mcu.symbol, xxd_names=profile.mcu.xxd_names, arena_bytes=arena)
    paths = write_c_sources(blob, artifact, work_dir / "c", options)
    flash = None
    with tempfile.TemporaryDirectory(prefix="edgebuild-cc-") as scratch:
        obj = compile_for_cortex_m(work_dir / "c" / "model_data.cc", Path(scratch))
        sizes = object_sizes(obj) if obj is not None else None
        if sizes is not None:
            flash = {
                "measured": True,
                "scope": MODEL_ARRAY_SCOPE,
                "tool": "arm-none-eabi-g++ -mcpu=cortex-m4 -mthumb -Os; arm-none-eabi-size",
                "model_array_bytes": sizes["text"] + sizes["data"],
                "text_bytes": sizes["text"],
                "data_bytes": sizes["data"],
                "bss_bytes": sizes["bss"],
            }
    return Emission(files=[str(p.relative_to(work_dir)) for p in paths], flash=flash, declared_arena=arena)


def declare_vela_arena(validation: dict[str, Any], declared: int) -> None:
    """On Ethos-U the firmware runs Vela's model, whose arena Vela planned: report that one as the recommendation.

    TFLite Micro's proof on the plain int8 model (the CPU fallback) stays in the block under `cpu_model`, so
    `validation.arena.recommended_bytes` always equals the kTensorArenaSize that model_settings.h declares.
    """
    arena = validation.setdefault("arena", {})
    cpu_model = {
        k: arena.pop(k)
        for k in ("proven_bytes", "measured_bytes", "recorded_bytes", "recommended_bytes", "verified")
        if k in arena
    }
    arena.update(
        {
            "recommended_bytes": declared,
            "source": "Vela's SRAM plan for model_vela.tflite plus the margin",
            "cpu_model": cpu_model,
        }
    )
