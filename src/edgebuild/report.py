"""report.json (a public contract, see docs/report-schema.md) and the number formats every view shares.

report.md is rendered by report_md.py.

No TensorFlow here: the report is plain data assembled from what the stages measured.
"""

from __future__ import annotations

import json
import platform
from pathlib import Path
from typing import Any

from edgebuild import __version__
from edgebuild.artifact import TfliteArtifact
from edgebuild.profiles import Profile

SCHEMA_VERSION = 1


def stack_versions() -> dict[str, str]:
    from edgebuild.versions import package_versions

    versions = {
        "edgebuild": __version__,
        "python": platform.python_version(),
        **package_versions(("tensorflow", "tf-keras", "ai-edge-litert", "tflite-micro", "numpy")),
    }
    versions["converter"] = f"TFLiteConverter (tensorflow {versions.get('tensorflow', '?')})"
    return versions


def build_report(
    *,
    profile: Profile,
    model: Any,
    model_sha256: str,
    artifact: TfliteArtifact,
    artifact_file: str,
    float_reference: dict[str, Any] | None,
    data: dict[str, Any],
    timings: dict[str, float],
    validation: dict[str, Any] | None,
    benchmark: dict[str, Any] | None,
    extra_files: list[str],
) -> dict[str, Any]:
    report: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "target": profile.name,
        "description": profile.description,
        "profile": profile.model_dump(mode="json"),
        "model": {
            "path": str(model.source),
            "format": model.format,
            "sha256": model_sha256,
            "input_shape": [d for d in model.input_shape],
            "inputs": [{"name": i.name, "shape": list(i.shape), "dtype": i.dtype} for i in model.inputs],
            "outputs": list(model.output_names),
        },
        "artifact": artifact_block(artifact, artifact_file),
        "float_reference": float_reference,
        "data": data,
        "files": [artifact_file, "report.json", "report.md", "profile.resolved.toml", *extra_files],
        "versions": stack_versions(),
        "timings_s": timings,
    }
    if validation is not None:
        report["validation"] = validation
    if benchmark is not None:
        report["benchmark"] = benchmark
    report["warnings"] = _warnings(report)
    return report


def artifact_block(artifact: TfliteArtifact, path: str) -> dict[str, Any]:
    return {
        "path": path,
        "sha256": artifact.sha256,
        "size_bytes": artifact.size_bytes,
        "inputs": [t.describe() for t in artifact.inputs],
        "outputs": [t.describe() for t in artifact.outputs],
        "ops": artifact.op_counts(),
        "op_count": len(artifact.ops),
        "weight_bytes_by_dtype": artifact.weight_dtypes(),
        "macs": artifact.total_macs,
    }


def _warnings(report: dict[str, Any]) -> list[str]:
    warnings = []
    if "random" in str(report["data"].get("calibration", "")):
        warnings.append(
            "Calibrated on random noise (--calibration random): integer scales are not representative "
            "and accuracy on real data will be poor. Use --data for anything you ship."
        )
    guard = (report.get("benchmark") or {}).get("vs_float32") or {}
    if guard.get("slower"):
        warnings.append(
            f"This artifact runs {guard['ratio']:.2f}x slower than the plain float32 model on this host "
            f"(p50 {guard['float32_p50_ms'] * guard['ratio']:.3f} vs {guard['float32_p50_ms']:.3f} ms, "
            f"{guard['threads']} thread(s)). Expected for some schemes on x86 (dynamic range, float16 "
            "without a GPU); check on the device before shipping it for speed."
        )
    for name, block in _training_blocks(report):
        if block.get("stopped_by") == "time_budget":
            warnings.append(
                f"{name} stopped at its time budget ({block.get('time_budget_s', '?')} s, training."
                "time_budget) before it converged; the best epoch so far was kept. Raise the budget for "
                "a better model."
            )
    validation = report.get("validation")
    if report["data"].get("source") is None and validation is not None:
        warnings.append("No --data given: accuracy against the float model was not measured.")
    elif validation is not None and validation.get("accuracy") is None:
        warnings.append("Accuracy against the float model was not measured (no validation samples reached it).")
    return warnings


def _training_blocks(report: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """Every training block in the report (QAT, pruning recovery, distillation, sparsity), with a name for people."""
    blocks = [("Quantization-aware training", report.get("training"))]
    for key, name in (("pruning", "Pruning recovery"), ("distillation", "Distillation"), ("sparsity", "Sparsity")):
        block = report.get(key) or {}
        blocks.append((name, block.get("training")))
        inner = (block.get("distillation") or {}) if isinstance(block.get("distillation"), dict) else {}
        blocks.append((name, inner.get("training")))
    return [(name, block) for name, block in blocks if isinstance(block, dict)]


def write_json(path: Path, report: dict[str, Any]) -> None:
    path.write_text(json.dumps(report, indent=2, sort_keys=False, default=_json_default) + "\n")


def _json_default(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


def kib(n: int | float | None) -> str:
    return "-" if n is None else f"{n / 1024:,.1f} KiB"


def first_p50(benchmark: dict[str, Any] | None) -> float | None:
    """p50 of the first thread count measured (the mean where a tool reports no median, e.g. benchmark_model)."""
    first = next(iter(((benchmark or {}).get("threads") or {}).values()), None)
    if not first:
        return None
    value = first.get("p50_ms") or first.get("mean_ms")
    return float(value) if value is not None else None


def accuracy_text(accuracy: dict[str, Any] | None) -> str:
    """One cell for tables: top-1 and its change, agreement without labels, or SNR for non-classifiers."""
    if not accuracy:
        return "-"
    if accuracy.get("artifact_top1") is not None:
        change = accuracy["artifact_top1"] - accuracy["reference_top1"]
        return f"{100 * accuracy['artifact_top1']:.1f}% ({100 * change:+.1f})"
    if accuracy.get("metric") == "snr" or accuracy.get("agreement") is None:
        snr = accuracy.get("min_snr_db")
        return "SNR exact" if snr is None else f"SNR {snr:.1f} dB"
    return f"agree {100 * accuracy['agreement']:.1f}%"
