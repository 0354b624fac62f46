"""The firmware stage of a build: the emitted C sources linked against TFLite Micro and run on the board.

The work is `edgebuild.firmware.run_firmware_stage`; this module feeds it from the build (validation
samples, the declared arena, the profile's board and tree) and folds its checks into the target's
validation, so a firmware that does not link, run in its declared arena or match LiteRT fails the build
like any other check. A missing tree, cross compiler or QEMU is a note, never a failure.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from edgebuild.stages.context import TargetContext

CHECK_PREFIX = "firmware: "


def run_firmware(
    ctx: TargetContext, artifact_path: Path, declared_arena: int | None, validation: dict[str, Any]
) -> tuple[dict[str, Any], str]:
    """(the report's firmware block, the progress note); appends the firmware's checks to `validation`."""
    from edgebuild.firmware import run_firmware_stage
    from edgebuild.firmware.render import stage_note

    mcu = ctx.profile.mcu
    if declared_arena is None:
        block = {
            "status": "skipped",
            "note": "firmware not built: no tensor arena was measured "
            "(validation.tflm = false), so model_settings.h declares none",
        }
        return block, stage_note(block)
    samples, labels = _samples(ctx, mcu.firmware_samples, artifact_path)
    block = run_firmware_stage(
        artifact_path,
        ctx.work_dir / "c",
        ctx.work_dir / "firmware",
        samples,
        mcu.board,
        mcu.tflm_dir,
        declared_arena,
        kernels=mcu.firmware_kernels,
        host_check=mcu.firmware_host_check,
        max_steps=ctx.profile.validation.max_tflm_steps,
        symbol=mcu.symbol,
        labels=labels,
        classifier=_is_classifier(validation),
        log=lambda text: ctx.progress.message(f"  {ctx.target:<10} {text}"),
    )
    block["project_dir"] = "firmware"  # relative to the target's folder: the work folder is moved into place
    _fold_into_validation(block, validation)
    return block, stage_note(block)


def _samples(ctx: TargetContext, count: int, artifact_path: Path) -> tuple[object, object]:
    """The first `count` validation samples (in the artifact's input order) and their labels.

    (None, None) without data: one all-zero input.
    """
    chosen = ctx.validation_samples()
    if chosen is None:
        return None, None
    from edgebuild.artifact import parse_artifact
    from edgebuild.samples import for_artifact, take

    x, y, _ = chosen
    artifact = parse_artifact(artifact_path.read_bytes())
    return for_artifact(take(x, slice(0, count)), artifact), (y[:count] if y is not None else None)


def _is_classifier(validation: dict[str, Any]) -> bool | None:
    """The validation stage decided (metric top1 or snr); None when it measured no accuracy."""
    metric = (validation.get("accuracy") or {}).get("metric")
    return None if metric is None else metric == "top1"


def _fold_into_validation(block: dict[str, Any], validation: dict[str, Any]) -> None:
    """The firmware's checks join the target's validation; the arena block gains what the device used."""
    from edgebuild.validation import add_check

    for check in block.get("checks", []):
        add_check(validation, {**check, "name": CHECK_PREFIX + check["name"]})
    device = block.get("device") or {}
    if device.get("arena_used_bytes") is not None:
        validation.setdefault("arena", {})["on_device"] = {
            "board": (block.get("board") or {}).get("name"),
            "kernels": block.get("kernels"),
            "declared_bytes": device.get("arena_size_bytes"),
            "used_bytes": device["arena_used_bytes"],
            "source": "arena_used_bytes() in the firmware on QEMU, run with exactly kTensorArenaSize",
        }
