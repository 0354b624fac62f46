"""The `layers` stage: per-layer quantization error of a PTQ int8 artifact, and selective precision.

Runs after `validate`, so it knows whether the accuracy gate passed. With `quantization.selective =
"auto"` and a failed gate (or `quantization.keep`), the mixed-precision model replaces `model.tflite`
(the all-int8 one is kept as `model_int8.tflite`) and is validated again, so every later stage
(benchmark, C array, firmware, budgets) works on the artifact that ships.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from edgebuild.errors import EdgebuildError
from edgebuild.samples import single

if TYPE_CHECKING:
    from edgebuild.profiles.schema import Profile
    from edgebuild.stages.context import TargetContext
    from edgebuild.stages.steps import TargetState

ACCURACY_CHECK = "accuracy vs float"
CULPRIT_DB = 20.0  # a layer whose added error is below this SNR is named in a failed accuracy check


def float_source(ctx: TargetContext, state: TargetState) -> bytes:
    """The float32 conversion of what the convert stage converted (the pruned/distilled model if there is one)."""
    if state.keras_model is None:
        if ctx.shared.float_blob is None:
            ctx.shared.float_baseline(ctx.profile.model.batch)
        assert ctx.shared.float_blob is not None
        return ctx.shared.float_blob
    from edgebuild.converters import convert, trace_keras
    from edgebuild.profiles.schema import QuantizationSection

    shape = ctx.shared.model.fixed_input_shape(ctx.profile.model.batch)
    return convert(trace_keras(state.keras_model, shape), state.keras_model, QuantizationSection(scheme="none"), None)


def run_layers(ctx: TargetContext, state: TargetState) -> str:
    from edgebuild.quant_debug.analysis import analyze
    from edgebuild.quant_debug.render import short_name

    profile = ctx.profile
    if ctx.shared.model.multi_input:  # the debugger's capture and the layer matching feed one input
        message = "the per-layer analysis supports single-input models; this model has several inputs"
        state.layers = {"error": {"type": "UnsupportedError", "message": message}}
        return f"not measured: {message}"
    samples = ctx.validation_samples()
    assert state.blob is not None and samples is not None and ctx.calibration is not None
    x, y, key = samples
    x, calibration = single(x, "the per-layer analysis"), single(ctx.calibration, "the per-layer analysis")
    float_blob = float_source(ctx, state)
    quant = profile.quantization
    try:
        analysis = analyze(
            state.blob,
            float_blob,
            calibration,
            x,
            io=quant.io,
            dense_per_channel=quant.dense_per_channel,
            samples=profile.layers.samples,
        )
    except EdgebuildError as exc:  # diagnostics never fail a build: the report says what went wrong
        state.layers = {"error": {"type": type(exc).__name__, "message": str(exc)}}
        return f"not measured: {exc}"[:200]
    block = analysis.block(profile.layers.top)
    note = ""
    worst = block.get("worst")
    if worst:
        added = worst["added_snr_db"]
        note = f"worst: {worst['op']} {short_name(worst['tensor'])} adds {'no' if added is None else f'{added:.1f} dB'}"
    if quant.selective != "off" or quant.keep:
        note += "; " + _selective(ctx, state, analysis, block, x, y, ctx.shared.reference_outputs(x, key), float_blob)
    state.layers = block
    _name_the_culprit(state, block, profile)
    return note


def _name_the_culprit(state: TargetState, block: dict[str, Any], profile: Profile) -> None:
    """A failed accuracy check says which layer the analysis blames, so the build's error message does too."""
    from edgebuild.quant_debug.render import short_name
    from edgebuild.quant_debug.selective import target_kind

    worst = block.get("worst") or {}
    check = next((c for c in (state.validation or {}).get("checks", []) if c["name"] == ACCURACY_CHECK), None)
    added = worst.get("added_snr_db")
    if check is None or check["passed"] or added is None or added >= CULPRIT_DB:
        return
    why = "; ".join(worst.get("reasons") or []).split(":")[0] or "see the per-layer table"
    check["summary"] += (
        f"; per-layer analysis: {worst['op']} {short_name(worst['tensor'])} adds the most error "
        f"({added:.1f} dB SNR against the float op: {why}), see report.md"
        + (
            " or try --set quantization.selective=auto"
            if not block.get("selective") and target_kind(profile) in ("mobile", "mcu")
            else ""
        )
    )


def _selective(
    ctx: TargetContext,
    state: TargetState,
    analysis: Any,
    block: dict[str, Any],
    x: Any,
    y: Any,
    reference: list[Any],
    float_blob: bytes,
) -> str:
    from edgebuild.artifact import parse_artifact
    from edgebuild.quant_debug import selective
    from edgebuild.quant_debug.selective import accuracy_text
    from edgebuild.stages import compile as compile_stage
    from edgebuild.stages import measure

    assert state.blob is not None and state.validation is not None and ctx.calibration is not None
    check = next((c for c in state.validation["checks"] if c["name"] == ACCURACY_CHECK), None)
    gate_passed = check is None or bool(check["passed"])
    inputs = selective.Inputs(
        profile=ctx.profile,
        float_blob=float_blob,
        artifact_blob=state.blob,
        calibration=single(ctx.calibration, "selective precision"),
        x=x,
        y=y,
        reference=reference,
        work_dir=ctx.work_dir,
    )
    sel, blob = selective.run(inputs, analysis.ranked, gate_passed)
    block["selective"] = sel
    if blob is None:
        if gate_passed:
            return "selective: nothing to keep"
        if "cpu_fallback" in sel:
            return f"selective: not on an Edge TPU ({len(sel['cpu_fallback']['ops'])} ops would run on the CPU)"
        return "selective: not applied"
    assert state.artifact_path is not None
    sel["before"] = accuracy_text(state.validation["accuracy"]) if "accuracy" in state.validation else None
    arena_before = (state.validation.get("arena") or {}).get("recommended_bytes")
    (ctx.work_dir / "model_int8.tflite").write_bytes(state.blob)
    state.blob = blob
    state.artifact_path.write_bytes(blob)
    state.artifact = parse_artifact(blob, source=str(state.artifact_path))
    state.validation = measure.validate(ctx, state.artifact_path, state.artifact)
    compile_stage.add_compiler_checks(state.validation, state.compiled, ctx.profile)
    sel["int8_artifact"] = "model_int8.tflite"
    arena_after = (state.validation.get("arena") or {}).get("recommended_bytes")
    if arena_before and arena_after:  # TFLite Micro: int16 activations take twice the bytes
        sel["cost"].update(
            int8_arena_bytes=arena_before, arena_bytes=arena_after, arena_ratio=round(arena_after / arena_before, 3)
        )
    kept = len(sel.get("kept", []))
    return f"selective: {kept} op(s) kept, {'passed' if state.validation['passed'] else 'still FAILED'}"
