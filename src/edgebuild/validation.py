"""Run every validation check on a built artifact and gather a pass/fail verdict.

Checks, in order: the target's op rules; accuracy against the float model in
LiteRT; for microcontrollers, a TFLite Micro run with the exact arena it
needs; flash/RAM budgets. Each returns a dict with `name`, `passed`,
`summary` (one line for people) and its measurements.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgebuild.accuracy import compare
from edgebuild.artifact import TfliteArtifact
from edgebuild.errors import ArtifactError
from edgebuild.profiles import Profile


@dataclass(frozen=True)
class ValidationData:
    x: np.ndarray
    y: np.ndarray | None
    reference: list[np.ndarray] | None  # float model outputs on x, when a reference model exists


def validate_artifact(path: Path, artifact: TfliteArtifact, profile: Profile, data: ValidationData | None,
                      check_budgets: bool = True) -> dict:
    """All checks; with check_budgets=False the caller adds budgets later (after measuring flash)."""
    checks: list[dict] = []
    result: dict = {"checks": checks}
    if profile.validation.rules != "none":
        checks.append(_rules_check(profile.validation.rules, artifact, profile.edgetpu.min_runtime))
    litert_outputs = None
    if data is not None:
        from edgebuild.runtime import LiteRTModel

        litert_outputs = LiteRTModel(path).predict(data.x)
        if data.reference is not None:
            in_model_order = [litert_outputs[i] for i in artifact.function_output_order()]
            accuracy = compare(data.reference, in_model_order, data.y)
            result["accuracy"] = accuracy
            checks.append(_accuracy_check(accuracy, profile))
    if profile.validation.tflm:
        arena, tflm_check = _tflm_check(path, profile, data, litert_outputs, artifact)
        result["arena"] = arena
        checks.append(tflm_check)
    result["passed"] = all(c["passed"] for c in checks)
    if check_budgets:
        add_budget_check(result, artifact, profile, flash_bytes=None)
    return result


def add_budget_check(result: dict, artifact: TfliteArtifact, profile: Profile, flash_bytes: int | None,
                     ram_bytes: int | None = None, flash_source: str = "measured with arm-none-eabi-size") -> None:
    """Append the budget check and update `passed`.

    Flash: measured from the compiled C array (or Vela's flash figure) when available, else the model bytes.
    RAM: `ram_bytes` when a compiler reported it (Vela's SRAM), else the recommended arena plus the I/O.
    """
    budget = _budget_check(artifact, profile, result.get("arena"), flash_bytes, ram_bytes, flash_source)
    if budget is not None:
        result["checks"].append(budget)
        result["passed"] = all(c["passed"] for c in result["checks"])


def _rules_check(rule_set: str, artifact: TfliteArtifact, edgetpu_runtime: int) -> dict:
    from edgebuild.checks import check_rules

    report = check_rules(rule_set, artifact, edgetpu_runtime=edgetpu_runtime)
    details = report.to_dict()
    errors = [f for f in report.findings if f.severity == "error"]
    warnings = [f for f in report.findings if f.severity != "error"]
    summary = f"{len(errors)} error(s), {len(warnings)} warning(s) against {report.rule_set} rules ({report.runtime_version})"
    if details.get("mapped_ops_fraction") is not None:
        summary += f"; {100 * details['mapped_ops_fraction']:.0f}% of ops and {100 * details.get('mapped_macs_fraction', 0):.0f}% of MACs map"
    if errors:
        first = errors[0]
        summary += f"; first: {first.op or 'model'} (op #{first.op_index}): {first.message}"
    return {"name": f"op rules ({rule_set})", "passed": report.passed, "summary": summary,
            "findings": details.get("findings", []), "details": details}


def _accuracy_check(accuracy: dict, profile: Profile) -> dict:
    gate = profile.validation
    problems = []
    if "drop_points" in accuracy and accuracy["drop_points"] > gate.max_accuracy_drop:
        problems.append(f"top-1 dropped {accuracy['drop_points']:.2f} points (limit {gate.max_accuracy_drop})")
    if "agreement" in accuracy and accuracy["agreement"] < gate.min_agreement:
        problems.append(f"agreement {100 * accuracy['agreement']:.1f}% is below {100 * gate.min_agreement:.1f}%")
    if "artifact_top1" in accuracy:
        summary = (f"top-1 {100 * accuracy['artifact_top1']:.2f}% vs float {100 * accuracy['reference_top1']:.2f}% "
                   f"(drop {accuracy['drop_points']:.2f} points, limit {gate.max_accuracy_drop})")
    elif "agreement" in accuracy:
        summary = f"agreement with float {100 * accuracy['agreement']:.1f}% (no labels)"
    else:
        snr = accuracy["outputs"][0]["snr_db"]
        summary = f"output SNR {snr if snr is not None else 'exact'} dB (no labels, not a classifier)"
    if "agreement" in accuracy and "artifact_top1" in accuracy:
        summary += f", agreement {100 * accuracy['agreement']:.1f}%"
    if problems:
        summary = "; ".join(problems) + " — check the calibration data matches the model's input preprocessing"
    return {"name": "accuracy vs float", "passed": not problems, "summary": summary}


def _tflm_check(path: Path, profile: Profile, data: ValidationData | None, litert_outputs: list[np.ndarray] | None,
                artifact: TfliteArtifact) -> tuple[dict, dict]:
    from edgebuild.runtime import measure_arena, tflm_predict

    try:
        measured = measure_arena(path)
    except ArtifactError as exc:  # TFLM refused or crashed: a failed check, with the artifact kept for inspection
        return {"measured_bytes": None, "error": str(exc)}, {"name": "TFLite Micro", "passed": False, "summary": str(exc)}
    margin = profile.mcu.arena_margin
    recommended = recommended_arena(measured, margin)
    arena = {"measured_bytes": measured, "margin": margin, "recommended_bytes": recommended,
             "note": "measured by the TFLite Micro interpreter's own allocation record (reference kernels); "
                     "the margin covers optimized platform kernels (e.g. CMSIS-NN scratch buffers)"}
    check = {"name": "TFLite Micro", "passed": True,
             "summary": f"runs in TFLite Micro; arena {measured:,} bytes measured, {recommended:,} recommended (+{margin:.0%})"}
    if data is not None and litert_outputs is not None:
        tflm_outputs = tflm_predict(path, data.x, recommended)
        agreement = compare(litert_outputs, tflm_outputs, None)
        steps = _quantization_steps(litert_outputs[0], tflm_outputs[0], artifact)
        arena["litert_agreement"] = agreement.get("agreement")
        arena["litert_max_abs_error"] = agreement["outputs"][0]["max_abs_error"]
        arena["litert_error_steps"] = steps
        # Kernels differ between the runtimes (XNNPACK vs TFLM reference), so outputs may differ by a few
        # quantization steps; a real mismatch shows as many steps, not as argmax flips between near-ties.
        if steps is not None and (steps["mean"] > 1.0 or steps["max"] > 16):
            check["passed"] = False
            check["summary"] = (f"TFLite Micro and LiteRT outputs differ by up to {steps['max']:.0f} quantization steps "
                                f"(mean {steps['mean']:.2f}); a kernel behaves differently between the runtimes")
        else:
            check["summary"] += (f"; matches LiteRT on {100 * (agreement.get('agreement') or 1.0):.1f}% of samples"
                                 + (f", within {steps['max']:.0f} quantization steps" if steps else ""))
    return arena, check


def _quantization_steps(a: np.ndarray, b: np.ndarray, artifact: TfliteArtifact) -> dict | None:
    """Difference of two dequantized outputs in units of the artifact's output scale (None for float outputs)."""
    scale = artifact.outputs[0].scale
    if len(scale) != 1 or scale[0] <= 0:
        return None
    diff = np.abs(a.astype(np.float64) - b) / scale[0]
    return {"max": float(diff.max()) if diff.size else 0.0, "mean": float(diff.mean()) if diff.size else 0.0}


def recommended_arena(measured_bytes: int, margin: float) -> int:
    """The arena to declare: the measured need plus the safety margin, 16-byte aligned."""
    return round_up(int(measured_bytes * (1.0 + margin)), 16)


def round_up(value: int, multiple: int) -> int:
    return (value + multiple - 1) // multiple * multiple


def io_bytes(artifact: TfliteArtifact) -> int:
    itemsize = {"int8": 1, "uint8": 1, "int16": 2, "float16": 2, "float32": 4, "int32": 4}
    return sum(t.num_elements * itemsize.get(t.dtype, 4) for t in artifact.inputs + artifact.outputs)


def _budget_check(artifact: TfliteArtifact, profile: Profile, arena: dict | None, flash_bytes: int | None,
                  ram_bytes: int | None, flash_source: str) -> dict | None:
    """Flash: the model bytes (or the measured object size); RAM: recommended arena plus one copy of the I/O."""
    budget = profile.budget
    if budget.flash is None and budget.ram is None:
        return None
    problems, parts = [], []
    flash_used = flash_bytes or artifact.size_bytes
    flash_source = flash_source if flash_bytes else "model bytes"
    if budget.flash is not None:
        parts.append(f"flash {flash_used:,} / {budget.flash:,} bytes ({flash_source})")
        if flash_used > budget.flash:
            problems.append(f"flash {flash_used:,} bytes exceeds the budget {budget.flash:,} by {flash_used - budget.flash:,}")
    ram_used = None
    if budget.ram is not None and ((arena or {}).get("recommended_bytes") is not None or ram_bytes is not None):
        ram_used = ram_bytes if ram_bytes is not None else arena["recommended_bytes"] + io_bytes(artifact)
        parts.append(f"RAM {ram_used:,} / {budget.ram:,} bytes")
        if ram_used > budget.ram:
            problems.append(f"RAM {ram_used:,} bytes (arena + I/O) exceeds the budget {budget.ram:,} by {ram_used - budget.ram:,}")
    summary = "; ".join(problems) + " — shrink the model (pruning, smaller input) or raise the budget" if problems else ", ".join(parts)
    return {"name": "budgets", "passed": not problems, "summary": summary,
            "flash": {"used_bytes": flash_used, "budget_bytes": budget.flash, "source": flash_source},
            "ram": {"used_bytes": ram_used, "budget_bytes": budget.ram}}
