"""Per-layer quantization error of one int8 artifact: which layer loses accuracy, and why.

1. Calibrate the build's float32 conversion with the build's calibration samples and quantize it the way
   the converter does (`engine`): a reproduction of the artifact (checked), and the layer-wise debug model.
2. Run the float model, the artifact and the debug model on the validation samples with every
   intermediate tensor kept (`capture`), pair tensors by name (`match`) and accumulate errors (`metrics`):
   cumulative (artifact vs float) and added (each op vs the float op on its own quantized inputs).
3. Rank layers by the error they add and say why where the numbers tell (`diagnose`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edgebuild.quant_debug import diagnose
from edgebuild.quant_debug.capture import KeptModel, sample_at, split_samples
from edgebuild.quant_debug.match import IO_OPS, PASS_THROUGH, added_pairs, cumulative_pairs
from edgebuild.quant_debug.metrics import PairStats, worst_db
from edgebuild.quant_debug.render import short_name

CHUNK = 16  # samples whose tensors are gathered before the statistics run over them together
EXACT_DB = 100.0  # an op whose output is this close to the float op's adds no error worth naming (rounding of floats)
FIXED_RANGE_OPS = {"SOFTMAX", "LOGISTIC", "TANH", "LOG_SOFTMAX"}  # output scale fixed by the op, not calibrated
WEIGHTED_OPS = {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "TRANSPOSE_CONV", "BATCH_MATMUL"}
ENGINE = (
    "TFLite converter: calibrator + MLIR quantizer (mlir_quantize), layer-wise debug model with NumericVerify "
    "(what tf.lite.experimental.QuantizationDebugger builds); LiteRT with experimental_preserve_all_tensors"
)


@dataclass
class Analysis:
    """Everything one analysis measured; `block()` is the report's `layers` section."""

    rows: list[dict[str, Any]]  # one per artifact op output, in execution order
    ranked: list[dict[str, Any]]  # rows that can add error, worst first
    samples: int
    calibration_samples: int
    reproduces_artifact: bool
    unmatched: list[str]
    seconds: dict[str, float]
    calibrated: bytes = field(repr=False, default=b"")
    notes: list[str] = field(default_factory=list)

    def block(self, top: int = 10) -> dict[str, Any]:
        worst = self.ranked[0] if self.ranked else None
        block: dict[str, Any] = {
            "engine": ENGINE,
            "samples": self.samples,
            "calibration_samples": self.calibration_samples,
            "reproduces_artifact": self.reproduces_artifact,
            "ranked_by": "added_snr_db: SNR of each op's output against the float op run on the same quantized "
            "inputs (the lower of the whole tensor's and the median channel's), lowest first",
            "top": [_public(r) for r in self.ranked[:top]],
            "per_layer": [
                {
                    "layer": short_name(r["tensor"]),
                    "tensor": r["tensor"],
                    "op": r["op"],
                    "snr_db": _round(r["snr_db"]),
                    "added_snr_db": _round(r["added_snr_db"]),
                }
                for r in self.rows
            ],
            "matched": len(self.rows),
            "unmatched": self.unmatched,
            "seconds": {k: round(v, 3) for k, v in self.seconds.items()},
        }
        if worst is not None:
            block["worst"] = {
                "tensor": worst["tensor"],
                "op": worst["op"],
                "added_snr_db": worst["added_snr_db"],
                "reasons": [r["text"] for r in worst["reasons"]],
            }
        if self.notes:
            block["notes"] = self.notes
        return block


def analyze(
    artifact_blob: bytes,
    float_blob: bytes,
    calibration: np.ndarray,
    x: Any,
    io: str = "float32",
    dense_per_channel: bool = True,
    samples: int = 100,
    calibrated: bytes | None = None,
) -> Analysis:
    """Measure every layer of `artifact_blob` (PTQ int8 of `float_blob` calibrated on `calibration`) on `x`."""
    from edgebuild.quant_debug import engine

    seconds: dict[str, float] = {}
    started = time.perf_counter()
    if calibrated is None:
        calibrated = engine.calibrate(float_blob, calibration)
    reproduced = engine.quantize(calibrated, io, dense_per_channel)
    debug_blob = engine.quantize(calibrated, io, dense_per_channel, debug=True)
    seconds["quantize"] = time.perf_counter() - started
    same = engine.same_quantization(reproduced, artifact_blob)

    started = time.perf_counter()
    float_model, artifact, debug = KeptModel(float_blob), KeptModel(artifact_blob), KeptModel(debug_blob)
    pairs, unmatched = cumulative_pairs(artifact, float_model)
    added = added_pairs(artifact, debug) if same else {}
    cumulative = {
        p.tensor.name: PairStats(scale=p.tensor.scale, zero_point=p.tensor.zero_point, qrange=p.tensor.float_range())
        for p in pairs
    }
    local = {name: PairStats(scale=p.tensor.scale) for name, p in added.items()}
    arrays, count = split_samples(x, float_model.in_specs, "the float model")
    count = min(count, samples)
    batch = max(1, float_model.in_specs[0].shape[0] if float_model.in_specs[0].shape else 1)
    pending: dict[tuple[str, str], list[tuple[np.ndarray, np.ndarray]]] = {}

    def flush() -> None:  # statistics over a chunk of samples at once: far fewer NumPy calls per sample
        for (kind, name), values in pending.items():
            if values:
                stats = cumulative[name] if kind == "cumulative" else local[name]
                # np.atleast_1d: a stateful model's scalar tensors (a step counter) are 0-d
                stats.add(
                    np.concatenate([np.atleast_1d(v[0]) for v in values]),
                    np.concatenate([np.atleast_1d(v[1]) for v in values]),
                )
                values.clear()

    for n, i in enumerate(range(0, count - batch + 1, batch), 1):
        inputs = sample_at(arrays, i, batch)
        float_model.run(inputs)
        artifact.run(inputs)
        for p in pairs:
            pending.setdefault(("cumulative", p.tensor.name), []).append(
                (float_model.value(p.reference), artifact.value(p.candidate))
            )
        if added:
            debug.run(inputs)
            for name, p in added.items():
                pending.setdefault(("added", name), []).append((debug.value(p.reference), debug.value(p.candidate)))
        if n % CHUNK == 0:
            _dequantize(pending, pairs, added)
            flush()
    _dequantize(pending, pairs, added)
    flush()
    seconds["run"] = time.perf_counter() - started

    rows = []
    for p in pairs:
        if p.op.name == "VAR_HANDLE" or p.tensor.dtype.kind not in "biuf":  # a resource handle: no values
            continue
        stats = cumulative[p.tensor.name]
        metrics = stats.finish()
        row: dict[str, Any] = {
            "index": p.op.index,
            "op": p.op.name,
            "tensor": p.tensor.name,
            "shape": list(p.tensor.shape),
            "dtype": p.tensor.dtype.name,
            "scale": p.tensor.scale,
            "zero_point": p.tensor.zero_point,
            "snr_db": metrics["snr_db"],
            "channel_snr_db": metrics["channel_snr_db"],
            "rmse_steps": metrics["rmse_steps"],
            "cosine": metrics["cosine"],
        }
        if p.tensor.name in local:
            own = local[p.tensor.name].finish()
            added_db = worst_db(own["snr_db"], own["channel_snr_db"])
            row["added_snr_db"] = None if added_db is None or added_db >= EXACT_DB else added_db
            row["added_rmse_steps"] = own["rmse_steps"]
            row["added_channel_snr_db"] = own["channel_snr_db"]
        else:
            row["added_snr_db"] = None if p.op.name in PASS_THROUGH | IO_OPS or not added else row["snr_db"]
        facts = stats.range_facts()
        if p.op.name in FIXED_RANGE_OPS:
            facts["clipped_fraction"] = None
        row["range"] = {k: facts[k] for k in ("min", "max", "p99_9", "clipped_fraction") if facts.get(k) is not None}
        row["reasons"] = diagnose.reasons(row, facts, _weight_facts(p.op, artifact, float_model), len(calibration))
        rows.append(row)
    eligible = [r for r in rows if r["op"] not in IO_OPS and (r["tensor"] in local if added else r["scale"])]
    ranked = sorted(eligible, key=_rank_key)
    for rank, row in enumerate(ranked, 1):
        row["rank"] = rank
    notes = []
    if not same:
        notes.append(
            "The artifact's quantization could not be reproduced from the float model and the calibration "
            "samples (a QAT or otherwise modified artifact?): added error is estimated from the cumulative "
            "error, so a layer may be blamed for what it inherited."
        )
    if unmatched:
        notes.append(f"{len(unmatched)} quantized tensor(s) have no float twin by name and are not measured.")
    notes += calibration_notes(rows, len(calibration))
    return Analysis(
        rows=rows,
        ranked=ranked,
        samples=count,
        calibration_samples=len(calibration),
        reproduces_artifact=same,
        unmatched=unmatched,
        seconds=seconds,
        calibrated=calibrated,
        notes=notes,
    )


def _dequantize(
    pending: dict[tuple[str, str], list[tuple[np.ndarray, np.ndarray]]], pairs: list[Any], added: dict[str, Any]
) -> None:
    """Candidates to float in place (one call per chunk): the artifact's and the debug model's quantized values."""
    tensors = {("cumulative", p.tensor.name): p.tensor for p in pairs}
    tensors.update({("added", name): p.candidate_tensor for name, p in added.items()})
    for key, values in pending.items():
        if values and np.issubdtype(values[0][1].dtype, np.integer):
            stacked = tensors[key].dequantize(np.concatenate([v[1] for v in values]))
            reference = np.concatenate([v[0] for v in values])
            values[:] = [(reference, stacked)]


def calibration_notes(rows: list[dict[str, Any]], calibration_samples: int) -> list[str]:
    """Whether the calibration set looks unlike the validation data (values outside the calibrated ranges)."""
    clipped = [
        (r["range"]["clipped_fraction"], r["tensor"])
        for r in rows
        if (r.get("range") or {}).get("clipped_fraction", 0.0) >= diagnose.CLIPPED
    ]
    notes = []
    if clipped:
        worst, name = max(clipped)
        notes.append(
            f"The validation data leaves the calibrated range in {len(clipped)} layer(s) (up to {100 * worst:.1f}% of "
            f"the values of {short_name(name)}): the {calibration_samples} calibration samples look unlike the "
            "validation set. Calibrate on data drawn like the data the model will see."
        )
    if calibration_samples < diagnose.TINY_CALIBRATION:
        notes.append(
            f"Calibration used {calibration_samples} samples (quantization.calibration_samples): few; "
            "`edgebuild debug-quant` sweeps the count to show whether more would help."
        )
    return notes


def _rank_key(row: dict[str, Any]) -> tuple[float, float]:
    added = row.get("added_snr_db")
    cumulative = worst_db(row.get("snr_db"), row.get("channel_snr_db"))
    return (added if added is not None else float("inf"), cumulative if cumulative is not None else float("inf"))


def _weight_facts(op: Any, artifact: KeptModel, float_model: KeptModel) -> dict[str, Any] | None:
    if op.name not in WEIGHTED_OPS or len(op.inputs) < 2 or op.inputs[1] < 0:
        return None
    weight = artifact.tensors[op.inputs[1]]
    twin = float_model.by_name.get(weight.name)
    values = None
    if twin is not None:
        try:
            values = np.asarray(float_model.value(twin.index), np.float64)
        except ValueError:
            values = None
    if values is None and weight.quantized:  # per-tensor int8: the shape of the ranges survives dequantization
        values = weight.dequantize(np.asarray(artifact.value(weight.index)))
    return diagnose.weight_facts(op.name, weight, values)


def _public(row: dict[str, Any]) -> dict[str, Any]:
    keys = (
        "rank",
        "op",
        "tensor",
        "shape",
        "dtype",
        "scale",
        "zero_point",
        "added_snr_db",
        "snr_db",
        "channel_snr_db",
        "rmse_steps",
        "added_rmse_steps",
        "cosine",
        "range",
    )
    out = {k: _round(row.get(k)) for k in keys if k in row}
    out["reasons"] = [r["text"] for r in row["reasons"]]
    out["reason_kinds"] = [r["kind"] for r in row["reasons"]]
    return out


def _round(value: Any) -> Any:
    if isinstance(value, float):
        return float(f"{value:.5g}")
    if isinstance(value, dict):
        return {k: _round(v) for k, v in value.items()}
    return value
