"""The report of one target, built in one place from what its stages produced, and written beside the artifact."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from edgebuild.profiles import to_toml
from edgebuild.report import build_report, write_json
from edgebuild.report_md import render_markdown

if TYPE_CHECKING:
    from edgebuild.stages.context import TargetContext
    from edgebuild.stages.steps import TargetState


def write_report(ctx: TargetContext, state: TargetState) -> dict[str, Any]:
    """report.json, report.md and profile.resolved.toml into the work folder; returns the report."""
    from edgebuild.converters import dense_quantization_note
    from edgebuild.detection import postprocess_block
    from edgebuild.firmware.render import report_flash
    from edgebuild.stages.emit import NO_CROSS_COMPILER

    profile, shared, work_dir = ctx.profile, ctx.shared, ctx.work_dir
    assert state.artifact is not None
    report = build_report(
        profile=profile,
        model=shared.model,
        model_sha256=shared.model_sha256,
        artifact=state.artifact,
        artifact_file="model.tflite",
        float_reference=state.float_reference,
        data=ctx.data_block(),
        timings=ctx.timings,
        validation=state.validation,
        benchmark=state.benchmark,
        extra_files=state.emission.files if state.emission is not None else [],
    )
    dense_note = dense_quantization_note(profile.quantization)
    if dense_note and "FULLY_CONNECTED" in state.artifact.op_counts():
        report["quantization"] = {"dense_per_channel": profile.quantization.dense_per_channel, "notes": [dense_note]}
    compiled = state.compiled.report()
    if compiled:
        report["compile"] = compiled
    if state.training is not None:
        report["training"] = state.training
    report.update(state.passes)
    if state.cache_key is not None:
        report["cache"] = {"hit": False, "key": state.cache_key}
    if profile.mcu.c_array:
        emitted_flash = state.emission.flash if state.emission is not None else None
        report["flash"] = report_flash(state.firmware) or emitted_flash or NO_CROSS_COMPILER
    if state.firmware is not None:
        report["firmware"] = state.firmware
    report.update({"layers": state.layers} if state.layers is not None else {})  # issue 15: per-layer error
    kind = "ethos-u" if state.compiled.vela is not None else profile.validation.rules
    detection = postprocess_block(state.artifact, kind)
    if detection is not None:
        report["detection_postprocess"] = detection
    (work_dir / "profile.resolved.toml").write_text(to_toml(profile))
    write_json(work_dir / "report.json", report)
    (work_dir / "report.md").write_text(render_markdown(report))
    return report
