"""A target's report.json as typed, read-only objects: `Report` and its parts."""

from __future__ import annotations

import html
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from edgebuild.api.rendering import _html_table, _status_html, _text_table

# ---------------------------------------------------------------------------------------------- typed results


@dataclass(frozen=True)
class TensorSpec:
    """One input or output tensor of an artifact."""

    name: str
    """Tensor name in the flatbuffer."""
    shape: tuple[int, ...]
    """Shape, batch first."""
    dtype: str
    """NumPy dtype name, e.g. `int8`."""
    scale: float | list[float] | None
    """None when the tensor is not quantized; a list when per-channel."""
    zero_point: int | list[int] | None
    """Quantization zero point(s), like `scale`."""

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TensorSpec:
        """From a report's `artifact.inputs[]` / `outputs[]` entry."""
        return cls(
            d.get("name", ""), tuple(d.get("shape") or ()), d.get("dtype", ""), d.get("scale"), d.get("zero_point")
        )


@dataclass(frozen=True)
class ArtifactInfo:
    """The `.tflite` a target produced: where it is and what is in it."""

    path: Path
    """The `.tflite` file."""
    size_bytes: int
    """File size."""
    sha256: str
    """Hash of the file."""
    inputs: tuple[TensorSpec, ...]
    """Input tensors."""
    outputs: tuple[TensorSpec, ...]
    """Output tensors."""
    ops: dict[str, int]
    """Op name -> count."""
    macs: int | None
    """Multiply-accumulates per inference, counted from tensor shapes."""

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], folder: Path) -> ArtifactInfo:
        """From a report's `artifact` block; `folder` is the target folder the path is relative to."""
        return cls(
            folder / d["path"],
            int(d["size_bytes"]),
            d.get("sha256", ""),
            tuple(TensorSpec.from_dict(t) for t in d.get("inputs", [])),
            tuple(TensorSpec.from_dict(t) for t in d.get("outputs", [])),
            dict(d.get("ops") or {}),
            d.get("macs"),
        )


@dataclass(frozen=True)
class Check:
    """One validation check (op rules, accuracy vs float, TFLite Micro arena, budgets)."""

    name: str
    """E.g. `op rules (mcu)`, `accuracy vs float`, `budgets`."""
    passed: bool
    """Whether this gate passed."""
    summary: str
    """One line: the numbers and, when failed, why."""
    findings: tuple[dict[str, Any], ...] = ()
    """Per-op findings of rule checks."""
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)
    """The check as in report.json (with `details`, `flash`, `ram`, ...)."""

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Check:
        """From a report's `validation.checks[]` entry."""
        return cls(
            d.get("name", ""),
            bool(d.get("passed", True)),
            d.get("summary", ""),
            tuple(d.get("findings") or ()),
            dict(d),
        )


@dataclass(frozen=True)
class AccuracyReport:
    """The artifact against the float model on the validation samples (`validation.accuracy`)."""

    metric: str
    """`top1` (classifiers) or `snr` (closeness to the float outputs, for everything else)."""
    samples: int
    """Validation samples compared."""
    agreement: float | None
    """Top-1 agreement with the float model, 0..1."""
    reference_top1: float | None
    """Float model top-1 with labels, 0..1."""
    artifact_top1: float | None
    """The artifact's top-1 with labels, 0..1."""
    drop_points: float | None
    """Top-1 drop in percentage points."""
    min_snr_db: float | None
    """Worst output's signal-to-noise ratio against the float model, dB (None: identical)."""
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)
    """`validation.accuracy` as in report.json."""

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> AccuracyReport:
        """From a report's `validation.accuracy` block."""
        return cls(
            d.get("metric", ""),
            int(d.get("samples") or 0),
            d.get("agreement"),
            d.get("reference_top1"),
            d.get("artifact_top1"),
            d.get("drop_points"),
            d.get("min_snr_db"),
            dict(d),
        )


@dataclass(frozen=True)
class ArenaReport:
    """The TFLite Micro tensor arena, proven by running the model (`validation.arena`, mcu targets)."""

    proven_bytes: int | None
    """The smallest arena the model allocates and runs in."""
    recommended_bytes: int | None
    """Proven plus the profile's margin: what model_settings.h declares."""
    litert_agreement: float | None
    """TFLite Micro vs LiteRT reference kernels, top-1, 0..1."""
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)
    """`validation.arena` as in report.json."""

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ArenaReport:
        """From a report's `validation.arena` block."""
        return cls(d.get("proven_bytes"), d.get("recommended_bytes"), d.get("litert_agreement"), dict(d))


@dataclass(frozen=True)
class ValidationReport:
    """All checks of one artifact against one target; `passed` is their conjunction."""

    passed: bool
    """All checks passed."""
    checks: tuple[Check, ...]
    """Every check, in order."""
    accuracy: AccuracyReport | None
    """Artifact vs float model (needs data and a reference model)."""
    arena: ArenaReport | None
    """TFLite Micro arena (targets with `validation.tflm`)."""
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)
    """The `validation` block as in report.json."""

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ValidationReport:
        """From a report's `validation` block (or `edgebuild validate --json`)."""
        return cls(
            bool(d.get("passed", True)),
            tuple(Check.from_dict(c) for c in d.get("checks", [])),
            AccuracyReport.from_dict(d["accuracy"]) if d.get("accuracy") else None,
            ArenaReport.from_dict(d["arena"]) if d.get("arena") else None,
            dict(d),
        )

    @property
    def failed_checks(self) -> list[Check]:
        """The checks that failed (empty when `passed`)."""
        return [c for c in self.checks if not c.passed]

    def __str__(self) -> str:
        return _text_table(
            ["check", "result", "details"], [[c.name, "pass" if c.passed else "FAIL", c.summary] for c in self.checks]
        )

    def _repr_html_(self) -> str:
        return _html_table(
            ["check", "result", "details"],
            [[c.name, _status_html(c.passed, "pass", "FAIL"), html.escape(c.summary)] for c in self.checks],
            escape=False,
        )


@dataclass(frozen=True)
class LatencyStats:
    """invoke() latency at one thread count, in milliseconds."""

    threads: int
    """Interpreter threads."""
    p50_ms: float | None
    """Median."""
    p90_ms: float | None
    """90th percentile."""
    p99_ms: float | None
    """99th percentile."""
    mean_ms: float | None
    """Mean."""
    std_ms: float | None
    """Standard deviation."""
    runs: int
    """Timed runs."""
    load_ms: float | None
    """Interpreter construction and tensor allocation."""
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)
    """The entry as measured (peak RSS, input source, ...)."""

    @classmethod
    def from_dict(cls, threads: int, d: Mapping[str, Any]) -> LatencyStats:
        """From one `benchmark.threads.<n>` entry."""
        return cls(
            threads,
            d.get("p50_ms"),
            d.get("p90_ms"),
            d.get("p99_ms"),
            d.get("mean_ms"),
            d.get("std_ms"),
            int(d.get("runs") or 0),
            d.get("load_ms"),
            dict(d),
        )


@dataclass(frozen=True)
class BenchmarkReport:
    """Latency per thread count (host LiteRT, or a device with `device=`)."""

    threads: dict[int, LatencyStats]
    """Latency per thread count."""
    best_threads: int | None
    """Thread count with the lowest p50."""
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)
    """The `benchmark` block as in report.json (host, runtime, vs_float32, ...)."""

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> BenchmarkReport:
        """From a report's `benchmark` block (or `edgebuild bench --json`)."""
        threads = {int(k): LatencyStats.from_dict(int(k), v) for k, v in (d.get("threads") or {}).items()}
        return cls(threads, d.get("best_threads"), dict(d))

    @property
    def p50_ms(self) -> float | None:
        """Median latency at the first thread count measured."""
        first = next(iter(self.threads.values()), None)
        return None if first is None else (first.p50_ms if first.p50_ms is not None else first.mean_ms)

    _COLUMNS: ClassVar[list[str]] = ["threads", "p50 ms", "p90 ms", "p99 ms", "mean ms", "std ms", "runs", "load ms"]

    def _rows(self) -> list[list[str]]:
        def ms(v: float | None, digits: int = 3) -> str:
            return "-" if v is None else f"{v:.{digits}f}"

        return [
            [
                str(n),
                ms(s.p50_ms),
                ms(s.p90_ms),
                ms(s.p99_ms),
                ms(s.mean_ms),
                ms(s.std_ms),
                str(s.runs),
                ms(s.load_ms, 1),
            ]
            for n, s in self.threads.items()
        ]

    def __str__(self) -> str:
        return _text_table(self._COLUMNS, self._rows())

    def _repr_html_(self) -> str:
        return _html_table(self._COLUMNS, self._rows())


class Report(Mapping[str, Any]):
    """One target's report.json as typed fields; also a read-only mapping over the raw dict (`report["artifact"]`)."""

    def __init__(self, raw: dict[str, Any], folder: Path) -> None:
        self.raw: dict[str, Any] = raw
        """Report.json exactly as written (see docs/report-schema.md)."""
        self.target: str = raw.get("target", "")
        """Profile name."""
        self.artifact: ArtifactInfo = ArtifactInfo.from_dict(raw["artifact"], folder)
        """The `.tflite`: path, size, tensors, ops."""
        self.validation: ValidationReport | None = (
            ValidationReport.from_dict(raw["validation"]) if raw.get("validation") is not None else None
        )
        """Checks, accuracy and arena (None when validation was disabled)."""
        self.benchmark: BenchmarkReport | None = (
            BenchmarkReport.from_dict(raw["benchmark"]) if raw.get("benchmark") else None
        )
        """Host latency (None when the benchmark was disabled)."""
        self.float_size_bytes: int | None = (raw.get("float_reference") or {}).get("size_bytes")
        """Size of a plain float32 conversion of the same model, for ratios."""
        self.warnings: list[str] = list(raw.get("warnings", []))
        """Things a person must read (random calibration, slower than float32, ...)."""
        self.timings_s: dict[str, float] = dict(raw.get("timings_s", {}))
        """Seconds per stage."""

    @property
    def passed(self) -> bool:
        """Every validation check passed (True when validation did not run)."""
        return self.validation is None or self.validation.passed

    def __getitem__(self, key: str) -> Any:
        return self.raw[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.raw)

    def __len__(self) -> int:
        return len(self.raw)

    def __repr__(self) -> str:
        return f"Report(target={self.target!r}, size_bytes={self.artifact.size_bytes}, passed={self.passed})"
