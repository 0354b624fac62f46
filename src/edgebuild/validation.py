"""Run every validation check on a built artifact and gather a pass/fail verdict.

Checks, in order: the target's op rules; accuracy against the float model in
LiteRT; for microcontrollers, a TFLite Micro run with the exact arena it
needs; flash/RAM budgets. Each returns a dict with `name`, `passed`,
`summary` (one line for people) and its measurements.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgebuild.accuracy import compare
from edgebuild.artifact import TfliteArtifact
from edgebuild.budgets import budget_check
from edgebuild.output_gates import output_checks
from edgebuild.profiles import Profile
from edgebuild.samples import Samples, for_artifact
from edgebuild.tflm_check import tflm_check


@dataclass(frozen=True)
class ValidationData:
    """Validation samples, labels when known, and the float model's outputs to compare with."""

    x: Samples  # one array, or one per input keyed by input name (multi-input models)
    y: np.ndarray | None
    reference: list[np.ndarray] | None  # float model outputs on x, when a reference model exists
    output_names: tuple[str, ...] = ()  # the model's output names, in model order (for the per-output lines)


def validate_artifact(
    path: Path, artifact: TfliteArtifact, profile: Profile, data: ValidationData | None, check_budgets: bool = True
) -> dict[str, Any]:
    """All checks; with check_budgets=False the caller adds budgets later (after measuring flash)."""
    checks: list[dict[str, Any]] = []
    result: dict[str, Any] = {"checks": checks}
    if profile.validation.rules != "none":
        checks.append(
            _rules_check(
                profile.validation.rules,
                artifact,
                profile.edgetpu.min_runtime,
                accept_cpu_fallback=profile.edgetpu.min_mapped_fraction < 1.0,
            )
        )
    litert_outputs = None
    if data is not None:
        from edgebuild.runtime import LiteRTModel

        litert_outputs = LiteRTModel(path).predict(for_artifact(data.x, artifact))
        if data.reference is not None:
            in_model_order = [litert_outputs[i] for i in artifact.function_output_order()]
            accuracy = compare(data.reference, in_model_order, data.y, profile.validation.metric)
            for entry, name in zip(accuracy["outputs"], data.output_names, strict=False):
                entry["name"] = name
            result["accuracy"] = accuracy
            checks.append(accuracy_check(accuracy, profile))
            checks += output_checks(accuracy, profile.validation)
    if profile.validation.tflm:
        arena, tflm_result = tflm_check(path, profile, data, litert_outputs, artifact)
        result["arena"] = arena
        checks.append(tflm_result)
    result["passed"] = all(c["passed"] for c in checks)
    if check_budgets:  # `edgebuild validate`: no C array was compiled, the arena is the one TFLM proved
        add_budget_check(
            result,
            artifact,
            profile,
            flash=None,
            declared_arena=(result.get("arena") or {}).get("recommended_bytes"),
            arena_source="recommended tensor arena (proven in TFLite Micro plus the margin)",
        )
    return result


def add_budget_check(
    result: dict[str, Any],
    artifact: TfliteArtifact,
    profile: Profile,
    flash: dict[str, Any] | None,
    declared_arena: int | None,
    arena_source: str = "tensor arena as declared in model_settings.h",
) -> None:
    """Append the budget check and update `passed`.

    Every figure is what it names. With a linked firmware (`flash` from `firmware.render.report_flash`):
    flash is the whole image and RAM what its linker reserves (.data, .bss with the arena, heap, stack).
    Without one: flash is the model array measured with the Cortex-M toolchain (from emit), else the
    .tflite size, and RAM the tensor arena model_settings.h declares; the check says they leave out the
    runtime, kernels and stack.
    """
    budget = budget_check(artifact, profile, flash, declared_arena, arena_source)
    if budget is not None:
        add_check(result, budget)


def add_check(validation: dict[str, Any], check: dict[str, Any]) -> None:
    """Append a check that a later stage made (compilers, firmware, budgets); `passed` stays all checks passed."""
    validation["checks"].append(check)
    validation["passed"] = all(c["passed"] for c in validation["checks"])


def _rules_check(
    rule_set: str, artifact: TfliteArtifact, edgetpu_runtime: int, accept_cpu_fallback: bool
) -> dict[str, Any]:
    from edgebuild.checks import check_rules

    report = check_rules(
        rule_set, artifact, edgetpu_runtime=edgetpu_runtime, edgetpu_accept_cpu_fallback=accept_cpu_fallback
    )
    details = report.to_dict()
    errors = [f for f in report.findings if f.severity == "error"]
    warnings = [f for f in report.findings if f.severity != "error"]
    summary = (
        f"{len(errors)} error(s), {len(warnings)} warning(s) against {report.rule_set} rules ({report.runtime_version})"
    )
    if details.get("mapped_ops_fraction") is not None:
        summary += (
            f"; {100 * details['mapped_ops_fraction']:.0f}% of ops and "
            f"{100 * details.get('mapped_macs_fraction', 0):.0f}% of MACs map"
        )
    if errors:
        first = errors[0]
        summary += f"; first: {first.op or 'model'} (op #{first.op_index}): {first.message}"
    return {
        "name": f"op rules ({rule_set})",
        "passed": report.passed,
        "summary": summary,
        "findings": details.get("findings", []),
        "details": details,
    }


def accuracy_check(accuracy: dict[str, Any], profile: Profile) -> dict[str, Any]:
    """Gate on the metric that fits the model: top-1 drop with labels, agreement without, SNR for non-classifiers."""
    gate = profile.validation
    problems = []
    if accuracy["metric"] == "top1" and "artifact_top1" in accuracy:
        summary = (
            f"top-1 {100 * accuracy['artifact_top1']:.2f}% vs float {100 * accuracy['reference_top1']:.2f}% "
            f"(drop {accuracy['drop_points']:.2f} points, limit {gate.max_accuracy_drop}), "
            f"agreement {100 * accuracy['agreement']:.1f}%"
        )
        if accuracy["drop_points"] > gate.max_accuracy_drop:
            problems.append(f"top-1 dropped {accuracy['drop_points']:.2f} points (limit {gate.max_accuracy_drop})")
    elif accuracy["metric"] == "top1":
        summary = (
            f"top-1 agreement with float {100 * accuracy['agreement']:.1f}% "
            f"(no labels; limit {100 * gate.min_agreement:.1f}%)"
        )
        if accuracy["agreement"] < gate.min_agreement:
            problems.append(
                f"top-1 agreement with the float model {100 * accuracy['agreement']:.1f}% is below "
                f"{100 * gate.min_agreement:.1f}%"
            )
    else:  # several outputs: this check is output 0's, output_checks has the others'
        first = accuracy["outputs"][0]
        snr = accuracy["min_snr_db"] if len(accuracy["outputs"]) == 1 else first["snr_db"]
        summary = (
            f"output SNR {'exact' if snr is None else f'{snr:.1f} dB'} vs float (limit {gate.min_snr_db:g} dB; "
            f"not a classifier, so no top-1), relative error {first['relative_error']}, "
            f"cosine {first['cosine_similarity']}"
        )
        if snr is not None and snr < gate.min_snr_db:
            worst = min((o for o in accuracy["outputs"][:1] if o["snr_db"] is not None), key=lambda o: o["snr_db"])
            problems.append(
                f"output {worst['index']} SNR {snr:.1f} dB against the float model is below "
                f"{gate.min_snr_db:g} dB (relative error {worst['relative_error']})"
            )
    if problems:
        summary = "; ".join(problems) + " — check the calibration data matches the model's input preprocessing"
    return {"name": "accuracy vs float", "passed": not problems, "summary": summary, "metric": accuracy["metric"]}


def recommended_arena(measured_bytes: int, margin: float) -> int:
    """The arena to declare: the proven (or Vela-reported) need plus the safety margin, 16-byte aligned."""
    from edgebuild.runtime import recommended_arena as formula

    return formula(measured_bytes, margin)
