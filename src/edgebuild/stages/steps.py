"""One function per stage of a target's build, keyed by the stage names `plan.make_plan` emits.

The pipeline walks the plan and calls `STEPS[stage.name]` for each stage, in order; nothing else decides
what runs. Each step reads what earlier steps left in the target's `TargetState` and fills in its own
fields; the one-line note it returns is printed beside the stage's timing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgebuild.report import first_p50
from edgebuild.stages.compile import Compilation

if TYPE_CHECKING:
    from edgebuild.artifact import TfliteArtifact
    from edgebuild.device import DeviceBenchOptions
    from edgebuild.stages.context import TargetContext
    from edgebuild.stages.emit import Emission


@dataclass
class TargetState:
    """What one target's stages have produced so far (each field is written by the step named beside it)."""

    bench_device: DeviceBenchOptions | None = None  # the request's device options (the `device` step uses them)
    cache_key: str | None = None
    keras_model: Any = None  # prune / distill: the model the later steps convert
    passes: dict[str, Any] = field(default_factory=dict)  # prune / distill: their report blocks
    training: dict[str, Any] | None = None  # train (QAT)
    blob: bytes | None = None  # train (QAT) or convert
    artifact_path: Path | None = None  # convert
    artifact: TfliteArtifact | None = None  # inspect
    float_reference: dict[str, Any] | None = None  # baseline
    compiled: Compilation = field(default_factory=Compilation)  # compile
    validation: dict[str, Any] | None = None  # validate; budgets appends its check
    benchmark: dict[str, Any] | None = None  # benchmark; device adds benchmark["device"]
    emission: Emission | None = None  # emit: C sources, the model array's flash, the declared arena
    firmware: dict[str, Any] | None = None  # firmware
    layers: dict[str, Any] | None = None  # layers (per-layer quantization error, selective precision; issue 15)
    report: dict[str, Any] = field(default_factory=dict)  # report


def prune_or_distill(ctx: TargetContext, state: TargetState) -> str:
    from edgebuild.stages import train

    state.keras_model, state.passes = train.train_prune_distill(ctx)
    pruned = state.passes.get("pruning")
    return f"{pruned['mac_reduction']:.2f}x fewer MACs" if pruned else ""


def train_qat(ctx: TargetContext, state: TargetState) -> str:
    from edgebuild.stages import train

    state.blob, training = train.train_qat(ctx, state.keras_model)
    state.training = training
    return f"{training['epochs_run']} epochs (best {training['best_epoch']})" + (
        ", stopped early" if training["stopped_early"] else ""
    )


def convert(ctx: TargetContext, state: TargetState) -> str:
    from edgebuild.converters import convert as convert_model
    from edgebuild.converters import trace_keras

    profile, shared = ctx.profile, ctx.shared
    if state.blob is None and state.keras_model is not None:  # the pruned / distilled model
        shape = shared.model.fixed_input_shape(profile.model.batch)
        state.blob = convert_model(
            trace_keras(state.keras_model, shape), state.keras_model, profile.quantization, ctx.calibration
        )
    elif state.blob is None:
        state.blob = convert_model(
            shared.model.export(profile.model.batch), None, profile.quantization, ctx.calibration
        )
    state.artifact_path = ctx.work_dir / "model.tflite"
    state.artifact_path.write_bytes(state.blob)
    return f"{len(state.blob) / 1024:.1f} KiB"


def inspect(ctx: TargetContext, state: TargetState) -> str:
    from edgebuild.artifact import parse_artifact

    assert state.blob is not None
    state.artifact = parse_artifact(state.blob, source=str(state.artifact_path))
    return ""


def baseline(ctx: TargetContext, state: TargetState) -> str:
    state.float_reference = ctx.shared.float_baseline(ctx.profile.model.batch)
    return ""


def compile_model(ctx: TargetContext, state: TargetState) -> str:
    from edgebuild.stages import compile as compile_stage

    assert state.artifact_path is not None
    state.compiled = compile_stage.run_compilers(ctx.profile, state.artifact_path, ctx.work_dir)
    return state.compiled.note()


def validate(ctx: TargetContext, state: TargetState) -> str:
    from edgebuild.stages import compile as compile_stage
    from edgebuild.stages import measure

    assert state.artifact_path is not None and state.artifact is not None
    state.validation = measure.validate(ctx, state.artifact_path, state.artifact)
    compile_stage.add_compiler_checks(state.validation, state.compiled, ctx.profile)
    return "checks passed" if state.validation["passed"] else "FAILED"


def layers(ctx: TargetContext, state: TargetState) -> str:
    from edgebuild.stages.quant_debug import run_layers

    return run_layers(ctx, state)


def benchmark(ctx: TargetContext, state: TargetState) -> str:
    from edgebuild.stages import measure

    assert state.artifact_path is not None
    state.benchmark = measure.benchmark(ctx, state.artifact_path)
    return f"p50 {first_p50(state.benchmark) or 0.0:.3f} ms"


def device(ctx: TargetContext, state: TargetState) -> str:
    from edgebuild.stages import measure

    assert state.artifact_path is not None and state.benchmark is not None and state.bench_device is not None
    result = state.benchmark["device"] = measure.bench_device(ctx, state.artifact_path, state.bench_device)
    if "error" in result:
        return f"FAILED: {result['error']['type']}"
    cpu = result.get("device", {}).get("cpu", "?")
    if "instructions_per_inference" in result:
        return f"{result['instructions_per_inference']['median']:,} instructions/inference on {cpu} (QEMU)"
    return f"p50 {first_p50(result) or 0.0:.3f} ms on {cpu}"


def emit(ctx: TargetContext, state: TargetState) -> str:
    from edgebuild.stages import emit as emit_stage

    assert state.blob is not None and state.artifact is not None
    vela = state.compiled.vela
    emission = state.emission = emit_stage.emit_c(
        state.blob, state.artifact, ctx.profile, ctx.work_dir, state.validation, vela
    )
    if state.validation is not None and vela is not None and emission.declared_arena is not None:
        emit_stage.declare_vela_arena(state.validation, emission.declared_arena)
    return emission.note()


def firmware(ctx: TargetContext, state: TargetState) -> str:
    from edgebuild.stages.firmware import run_firmware

    assert state.artifact_path is not None and state.validation is not None
    declared = state.emission.declared_arena if state.emission is not None else None
    state.firmware, note = run_firmware(ctx, state.artifact_path, declared, state.validation)
    return note


def budgets(ctx: TargetContext, state: TargetState) -> str:
    from edgebuild.firmware.render import report_flash
    from edgebuild.validation import add_budget_check

    assert state.validation is not None and state.artifact is not None
    emission = state.emission
    recommended = (state.validation.get("arena") or {}).get("recommended_bytes")
    declared = (emission.declared_arena if emission else None) or recommended
    flash = report_flash(state.firmware) or (emission.flash if emission else None)
    add_budget_check(state.validation, state.artifact, ctx.profile, flash, declared)
    budget = next((c for c in state.validation["checks"] if c["name"] == "budgets"), None)
    return "" if budget is None else ("within budget" if budget["passed"] else "OVER BUDGET")


def report(ctx: TargetContext, state: TargetState) -> str:
    from edgebuild.stages.assemble import write_report

    state.report = write_report(ctx, state)
    return ""


STEPS: dict[str, Callable[[TargetContext, TargetState], str]] = {
    "prune": prune_or_distill,
    "distill": prune_or_distill,
    "train": train_qat,
    "convert": convert,
    "inspect": inspect,
    "baseline": baseline,
    "compile": compile_model,
    "validate": validate,
    "layers": layers,
    "benchmark": benchmark,
    "device": device,
    "emit": emit,
    "firmware": firmware,
    "budgets": budgets,
    "report": report,
}
