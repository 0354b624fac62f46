"""Selective precision: keep the fewest, most harmful layers at higher precision until the accuracy gate passes.

Starting from the per-layer ranking (the layer that adds the most error first), the search tries the
worst layer, then the worst two, and so on (up to MAX_LAYERS). For each it tries the layers alone and
then with the ops that read their outputs: a layer whose *output range* is the problem stays broken if
the next layer reads its output back in int8 at the same per-tensor scale, so its readers (through
pooling and reshapes, up to the next op that computes with the value) are kept too. The first set
that passes the profile's accuracy gate wins.

What "higher precision" may be depends on the target:

- mobile (LiteRT on a phone CPU/GPU): float compute with float16 weights;
- mcu (TFLite Micro): int16 activations with int8 weights (16x8), checked by running the model in
  TFLite Micro; float32 only where TFLite Micro cannot run the 16x8 model, with a warning (float
  kernels are slow on a Cortex-M and the arena grows);
- edgetpu: nothing. Any float or 16-bit op stops the Edge TPU's mapping, and that op and every op
  after it run on the CPU: the report says which ops and how many MACs that would be, and recommends
  quantization-aware training instead of producing a model that silently runs on the CPU;
- a Vela (Ethos-U) target: not yet; its compiled model would have to be rebuilt.
"""

from __future__ import annotations

import re
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgebuild.errors import ArtifactError, EdgebuildError
from edgebuild.profiles.schema import Profile
from edgebuild.quant_debug.capture import KeptModel, Op
from edgebuild.quant_debug.match import IO_OPS, PASS_THROUGH, readers_to_keep
from edgebuild.quant_debug.mixed import PRECISION_TEXT, MixedQuantizer, Precision, scope_regex, version

MAX_LAYERS = 5  # the most layers (ranked) the automatic search keeps before giving up
EXACT_DB = 100.0  # an op whose added error is above this SNR adds none worth keeping
WEIGHTED = {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "TRANSPOSE_CONV", "BATCH_MATMUL"}
TFLM_PROBE_SAMPLES = 8
TFLM_PROBE_ARENA = 4 << 20
LATENCY_RUNS = 50


def target_kind(profile: Profile) -> str:
    """mobile, mcu, edgetpu or vela: which higher precisions the target can run."""
    if profile.vela.accelerator:
        return "vela"
    if profile.validation.rules == "edgetpu" or profile.edgetpu.compile:
        return "edgetpu"
    if profile.validation.rules == "mcu" or profile.validation.tflm or profile.mcu.c_array:
        return "mcu"
    return "mobile"


@dataclass
class Evaluation:
    accuracy: dict[str, Any]
    passed: bool
    summary: str  # the accuracy check's own sentence

    @property
    def short(self) -> str:
        return accuracy_text(self.accuracy) + ("" if self.passed else " (fails the gate)")


def accuracy_text(accuracy: dict[str, Any]) -> str:
    """A few words for a table cell: top-1 and its drop, agreement, or the output SNR."""
    if "artifact_top1" in accuracy:
        return (
            f"top-1 {100 * accuracy['artifact_top1']:.1f}% (float {100 * accuracy['reference_top1']:.1f}%, "
            f"drop {accuracy['drop_points']:.2f} points)"
        )
    if "agreement" in accuracy:
        return f"top-1 agreement with float {100 * accuracy['agreement']:.1f}%"
    snr = accuracy.get("min_snr_db")
    return "output identical to float" if snr is None else f"output SNR {snr:.1f} dB"


@dataclass
class Attempt:
    kept: list[Op]
    precision: Precision
    size_bytes: int
    evaluation: Evaluation
    blob: bytes = field(repr=False)
    tflm: str | None = None  # None: not checked; "runs" or the TFLite Micro error
    selected: frozenset[int] = frozenset()  # indices of the ops chosen from the ranking (the rest read their outputs)

    def describe(self, names: dict[int, str]) -> dict[str, Any]:
        out = {
            "kept": [names[o.index] for o in self.kept],
            "precision": self.precision,
            "size_bytes": self.size_bytes,
            "passed": self.evaluation.passed,
            "accuracy": self.evaluation.short,
        }
        if self.tflm is not None:
            out["tflite_micro"] = self.tflm
        return out


@dataclass
class Inputs:
    """What the search measures with: the same samples, float outputs and gate as validation."""

    profile: Profile
    float_blob: bytes
    artifact_blob: bytes
    calibration: np.ndarray
    x: np.ndarray
    y: np.ndarray | None
    reference: list[np.ndarray]
    work_dir: Path | None = None


def run(inputs: Inputs, ranked: list[dict[str, Any]], gate_passed: bool) -> tuple[dict[str, Any], bytes | None]:
    """The report's `selective` block, and the artifact to ship instead of the int8 one (or None)."""
    quant = inputs.profile.quantization
    kind = target_kind(inputs.profile)
    block: dict[str, Any] = {"mode": "manual" if quant.keep else quant.selective, "target_kind": kind}
    if not quant.keep and gate_passed:
        block.update(applied=False, kept=[], note="the int8 artifact passes the accuracy gate: every layer stays int8")
        return block, None
    if kind == "vela":
        block.update(
            applied=False,
            note="selective precision is not available for Ethos-U (Vela) targets yet: "
            "the Vela-compiled model would have to be rebuilt. Try QAT "
            "(--set quantization.method=qat).",
        )
        return block, None
    started = time.perf_counter()
    try:
        mixed = MixedQuantizer(
            inputs.float_blob, inputs.calibration, quant.io if kind != "edgetpu" else "int8", quant.dense_per_channel
        )
    except EdgebuildError as exc:
        block.update(applied=False, note=str(exc))
        return block, None
    block["engine"] = f"ai-edge-quantizer {version()}"
    graph = KeptModel(inputs.artifact_blob, keep_all=False)
    names = {op.index: graph.tensors[op.outputs[0]].name for op in graph.ops if op.outputs}
    float_names = set(KeptModel(inputs.float_blob, keep_all=False).by_name)
    precision: Precision = "int16" if kind == "mcu" else "float16"
    search = _Search(inputs, mixed, graph, names, float_names, kind)
    try:
        if quant.keep:
            chosen = search.manual(quant.keep, precision)
            attempts = [chosen] if chosen is not None else []
            if chosen is None:
                block.update(applied=False, note=f"quantization.keep {quant.keep} matches no quantized layer")
                return block, None
        else:
            chosen, attempts = search.auto(ranked, precision)
    except EdgebuildError as exc:
        block.update(applied=False, note=str(exc))
        return block, None
    block["attempts"] = [a.describe(names) for a in attempts]
    block["seconds"] = round(time.perf_counter() - started, 3)
    if kind == "edgetpu":
        block.update(_edgetpu_advice(inputs, chosen, attempts, names))
        return block, None
    if chosen is None or (not chosen.evaluation.passed and not quant.keep):
        best = max(attempts, key=lambda a: _score(a.evaluation.accuracy), default=None)
        block.update(
            applied=False,
            note=(
                f"no set of up to {MAX_LAYERS} layers at {PRECISION_TEXT[precision]} passes the accuracy gate"
                + (f" (best: {best.evaluation.short})" if best else "")
                + "; the int8 artifact is kept. Try quantization-aware training (--set quantization.method=qat)."
            ),
        )
        return block, None
    block.update(applied=True, **search.describe(chosen, ranked))
    block["cost"] = _cost(inputs.artifact_blob, chosen.blob, inputs.x)
    if chosen.precision == "float32" and kind == "mcu":
        block.setdefault("warnings", []).append(
            "TFLite Micro could not run these layers with int16 activations, so they run in float32: float kernels "
            "are slow on a Cortex-M without an FPU and the tensor arena grows. Consider QAT instead."
        )
    return block, chosen.blob


class _Search:
    def __init__(
        self,
        inputs: Inputs,
        mixed: MixedQuantizer,
        graph: KeptModel,
        names: dict[int, str],
        float_names: set[str],
        kind: str,
    ):
        self.inputs, self.mixed, self.graph, self.names = inputs, mixed, graph, names
        self.float_names, self.kind = float_names, kind
        self.by_index = {op.index: op for op in graph.ops}

    def keepable(self, op: Op) -> bool:
        return op.name not in IO_OPS and self.names.get(op.index) in self.float_names

    def auto(self, ranked: list[dict[str, Any]], precision: Precision) -> tuple[Attempt | None, list[Attempt]]:
        candidates = [
            self.by_index[r["index"]]
            for r in ranked
            if r["op"] not in PASS_THROUGH
            and r["index"] in self.by_index
            and (r.get("added_snr_db") is None or r["added_snr_db"] < EXACT_DB)
            and self.keepable(self.by_index[r["index"]])
        ][:MAX_LAYERS]
        attempts: list[Attempt] = []
        for k in range(1, len(candidates) + 1):
            base = candidates[:k]
            readers = [r for op in base for r in readers_to_keep(self.graph, op) if self.keepable(r)]
            variants = [base]
            expanded = _unique(base + readers)
            if len(expanded) > len(base):
                variants.append(expanded)
            for kept in variants:
                attempt = self.attempt(kept, precision, frozenset(op.index for op in base))
                attempts.append(attempt)
                if attempt.evaluation.passed:
                    return attempt, attempts
        return None, attempts

    def manual(self, patterns: list[str], precision: Precision) -> Attempt | None:
        kept = [
            op
            for op in self.graph.ops
            if self.keepable(op) and any(re.search(p, self.names[op.index] + ";") for p in patterns)
        ]
        return self.attempt(kept, precision, frozenset(op.index for op in kept)) if kept else None

    def attempt(self, kept: list[Op], precision: Precision, selected: frozenset[int]) -> Attempt:
        keep = {scope_regex(self.names[op.index]): precision for op in kept}
        weighted = {scope_regex(self.names[op.index]) for op in kept if op.name in WEIGHTED}
        blob = self.mixed.build(keep, weighted)
        attempt = Attempt(kept, precision, len(blob), self.evaluate(blob), blob, selected=selected)
        if self.kind == "mcu" and attempt.evaluation.passed and precision == "int16":
            attempt.tflm = self.tflm_runs(blob)
            if attempt.tflm != "runs":  # no 16x8 kernel in TFLite Micro: float32 where nothing else works
                fallback = self.attempt(kept, "float32", selected)
                fallback.tflm = self.tflm_runs(fallback.blob)
                fallback.evaluation.summary += f" (int16 did not run in TFLite Micro: {attempt.tflm})"
                if fallback.tflm != "runs":
                    fallback.evaluation.passed = False
                return fallback
        return attempt

    def evaluate(self, blob: bytes) -> Evaluation:
        return evaluate(blob, self.inputs)

    def tflm_runs(self, blob: bytes) -> str:
        from edgebuild.runtime import tflm_predict

        with tempfile.TemporaryDirectory(dir=self.inputs.work_dir) as folder:
            path = Path(folder) / "selective_probe.tflite"
            path.write_bytes(blob)
            try:
                tflm_predict(path, self.inputs.x[:TFLM_PROBE_SAMPLES], TFLM_PROBE_ARENA)
            except ArtifactError as exc:
                return str(exc).split(". ")[0][:300]
        return "runs"

    def describe(self, chosen: Attempt, ranked: list[dict[str, Any]]) -> dict[str, Any]:
        rank = {r["index"]: r.get("rank") for r in ranked}
        kept = []
        for op in chosen.kept:
            if op.index not in chosen.selected:
                why = "reads a kept layer's output"
            elif rank.get(op.index):
                why = f"ranked {rank[op.index]} by added error"
            else:
                why = "quantization.keep"
            kept.append(
                {
                    "tensor": self.names[op.index],
                    "op": op.name,
                    "precision": PRECISION_TEXT[
                        chosen.precision if op.name in WEIGHTED or chosen.precision != "float16" else "float32"
                    ],
                    "why": why,
                }
            )
        return {
            "precision": PRECISION_TEXT[chosen.precision],
            "kept": kept,
            "weighted_layers": sum(op.name in WEIGHTED for op in chosen.kept),
            "accuracy": chosen.evaluation.short,
        }


def evaluate(blob: bytes, inputs: Inputs) -> Evaluation:
    """Accuracy of `blob` on the validation samples against the float model, gated like validation."""
    from edgebuild.accuracy import compare
    from edgebuild.artifact import parse_artifact
    from edgebuild.runtime import LiteRTModel
    from edgebuild.validation import accuracy_check

    outputs = LiteRTModel(blob).predict(inputs.x)
    order = parse_artifact(blob).function_output_order()
    accuracy = compare(inputs.reference, [outputs[i] for i in order], inputs.y, inputs.profile.validation.metric)
    check = accuracy_check(accuracy, inputs.profile)
    return Evaluation(accuracy, bool(check["passed"]), check["summary"])


def _score(accuracy: dict[str, Any]) -> float:
    if "artifact_top1" in accuracy:
        return float(accuracy["artifact_top1"])
    if "agreement" in accuracy:
        return float(accuracy["agreement"])
    return float(accuracy.get("min_snr_db") or 0.0)


def _unique(ops: list[Op]) -> list[Op]:
    seen: dict[int, Op] = {}
    for op in ops:
        seen.setdefault(op.index, op)
    return sorted(seen.values(), key=lambda o: o.index)


def _cost(int8_blob: bytes, chosen_blob: bytes, x: np.ndarray) -> dict[str, Any]:
    """Size and host latency of the mixed artifact against the all-int8 one (same runs, one after the other)."""
    from edgebuild.bench import benchmark

    sample = x[: min(len(x), 16)]
    before = benchmark(int8_blob, threads=1, runs=LATENCY_RUNS, warmup=5, inputs=sample)["p50_ms"]
    after = benchmark(chosen_blob, threads=1, runs=LATENCY_RUNS, warmup=5, inputs=sample)["p50_ms"]
    return {
        "int8_size_bytes": len(int8_blob),
        "size_bytes": len(chosen_blob),
        "size_ratio": round(len(chosen_blob) / len(int8_blob), 3),
        "int8_p50_ms": round(before, 4),
        "p50_ms": round(after, 4),
        "latency_ratio": round(after / before, 3) if before > 0 else None,
        "latency_scope": f"host LiteRT, 1 thread, {LATENCY_RUNS} runs each (during the build: indicative)",
    }


def _edgetpu_advice(
    inputs: Inputs, chosen: Attempt | None, attempts: list[Attempt], names: dict[int, str]
) -> dict[str, Any]:
    """What keeping layers at higher precision would cost on an Edge TPU: the CPU tail from the first kept op."""
    from edgebuild.artifact import parse_artifact

    out: dict[str, Any] = {"applied": False}
    target = chosen or max(attempts, key=lambda a: _score(a.evaluation.accuracy), default=None)
    if target is None:
        out["note"] = "no layer to keep: nothing adds measurable error"
        return out
    artifact = parse_artifact(inputs.artifact_blob)
    first = min(op.index for op in target.kept)
    macs = artifact.macs_per_op
    total = sum(macs) or 1
    tail = [op for op in artifact.ops if op.index >= first]
    tail_macs = sum(macs[op.index] for op in tail)
    out["would_keep"] = [names[op.index] for op in target.kept]
    out["would_reach"] = target.evaluation.short
    out["cpu_fallback"] = {
        "first_op_index": first,
        "first_op": artifact.ops[first].name,
        "ops": [f"{op.name} #{op.index}" for op in tail],
        "macs": int(tail_macs),
        "macs_fraction": round(tail_macs / total, 4),
    }
    out["note"] = (
        f"The Edge TPU runs only 8-bit ops, and its compiler maps ops only up to the first one it cannot: keeping "
        f"{len(target.kept)} op(s) in float would send op #{first} ({artifact.ops[first].name}) and every op after it, "
        f"{len(tail)} ops with {tail_macs:,} MACs ({100 * tail_macs / total:.0f}% of the model), to the CPU. "
        "No such model is produced. Recommended: quantization-aware training (--set quantization.method=qat), "
        "which learns weights that survive int8, or fix the layer the table names."
    )
    return out
