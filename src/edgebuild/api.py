"""The Python API: build, validate and benchmark a model from a notebook or a training script.

```python
import edgebuild

result = edgebuild.build(model, targets=["mcu", "mobile"], data=(x_test, y_test))
result                                  # a summary table in Jupyter, plain text elsewhere
result["mcu"].artifact_bytes            # the .tflite; result["mcu"].report.validation.accuracy.agreement, ...
```

Everything runs the same pipeline as `edgebuild build` (the CLI is a thin layer over `build`), with the
same profiles, cache and output folders. `model` is a path or an in-memory Keras model (tf_keras or
Keras 3); in-memory models and arrays are written to a temporary folder first (a `.keras` archive and an
`.npz`, both byte-for-byte deterministic, so the build cache recognizes them) and read back exactly as the
CLI reads files: the artifacts are the bytes the CLI builds from the same model and data.

Failures raise the exceptions of `edgebuild.errors` (`DataError`, `ModelError`, `GateFailed`, ...), never
exit codes. An exception raised after targets were built carries the whole outcome as `exc.result` (a
`BuildResult`). With `gates=False` failed validation gates do not raise: they are in `passed` and
`failed_checks`. Importing this module does not import TensorFlow.
"""

from __future__ import annotations

import base64
import html
import json
import os
import re
import shutil
import tempfile
import threading
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, TypeGuard

import numpy as np

from edgebuild.errors import EdgebuildError, GateFailed, ModelError, UsageError

if TYPE_CHECKING:
    from edgebuild.profiles import Profile

__all__ = [
    "AccuracyReport",
    "ArenaReport",
    "ArtifactInfo",
    "ArtifactLike",
    "BenchmarkReport",
    "BuildResult",
    "Check",
    "DataLike",
    "LatencyStats",
    "ModelLike",
    "Overrides",
    "Report",
    "TargetBuild",
    "TensorSpec",
    "ValidationReport",
    "bench",
    "build",
    "carray",
    "resolve_profile",
    "validate",
]

ModelLike = str | os.PathLike[str] | Any
"""A model path (SavedModel folder, `.keras`, `.h5`) or an in-memory Keras model (tf_keras or Keras 3)."""

DataLike = str | os.PathLike[str] | np.ndarray | tuple[Any, ...] | list[Any] | dict[str, Any] | Any
"""A data path (`.npz`, `.npy`, image folder), a NumPy array of inputs, an `(x, y)` tuple, a dict
(`{"x": ..., "y": ...}` or `{input_name: ..., "y": ...}`), or a finite `tf.data.Dataset` of those, batched or not."""

Overrides = Mapping[str, Any] | Sequence[str] | None
"""Profile overrides: `{"quantization.io": "uint8", "benchmark.enabled": False}` (nested dicts work too) or
CLI-style strings `["quantization.io=uint8"]`."""

_TEMP_PREFIX = "edgebuild-api-"


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


@dataclass
class TargetBuild:
    """One target of a build: its folder, artifact and report, or the error that stopped it."""

    target: str
    """Profile name."""
    out_dir: Path
    """OUT/<target>/."""
    report: Report | None
    """None when the target failed before writing a report."""
    error: EdgebuildError | None = None
    """The failure (a GateFailed only with gates=True)."""
    cached: bool = False
    """Restored from the build cache."""

    @property
    def passed(self) -> bool:
        """No error, and every validation check passed."""
        return self.error is None and self.report is not None and self.report.passed

    @property
    def artifact_path(self) -> Path | None:
        """The `.tflite` (None when the target failed before writing it)."""
        return None if self.report is None else self.report.artifact.path

    @property
    def artifact_bytes(self) -> bytes | None:
        """The `.tflite` file's bytes, read from `artifact_path`."""
        path = self.artifact_path
        return None if path is None else path.read_bytes()

    @property
    def failed_checks(self) -> list[Check]:
        """Validation checks that failed."""
        return [] if self.report is None or self.report.validation is None else self.report.validation.failed_checks

    @property
    def validation(self) -> ValidationReport | None:
        """Shortcut for `report.validation`."""
        return None if self.report is None else self.report.validation

    @property
    def benchmark(self) -> BenchmarkReport | None:
        """Shortcut for `report.benchmark`."""
        return None if self.report is None else self.report.benchmark

    def __repr__(self) -> str:
        state = "error" if self.error is not None and self.report is None else ("passed" if self.passed else "FAILED")
        return f"TargetBuild(target={self.target!r}, {state}, artifact={str(self.artifact_path)!r})"


ArtifactLike = str | os.PathLike[str] | bytes | TargetBuild
"""A `.tflite` path, its bytes, or a `TargetBuild` (its artifact)."""


class BuildResult(Sequence[TargetBuild]):
    """Every target of one build, in the order asked; `result["mcu"]` picks one by name.

    Displays as the summary table (with the comparison chart for several targets) in Jupyter, and as a
    plain-text table elsewhere.
    """

    def __init__(self, targets: list[TargetBuild], out: Path) -> None:
        self.targets: tuple[TargetBuild, ...] = tuple(targets)
        """Every target, in the order asked."""
        self.out: Path = out
        """The output root (OUT/<target>/ folders, summary.md, summary.png)."""

    @property
    def passed(self) -> bool:
        """Every target built without error and passed validation."""
        return all(t.passed for t in self.targets)

    @property
    def failed_checks(self) -> dict[str, list[Check]]:
        """Failed validation checks per target (only targets with failures)."""
        return {t.target: t.failed_checks for t in self.targets if t.failed_checks}

    @property
    def errors(self) -> dict[str, EdgebuildError]:
        """Errors per target (a GateFailed appears only with gates=True)."""
        return {t.target: t.error for t in self.targets if t.error is not None}

    def raise_for_errors(self) -> None:
        """Raise the most serious target error (real errors outrank gate failures), carrying this result."""
        errors = [t.error for t in self.targets if t.error is not None]
        if errors:
            error = max(errors, key=lambda e: not isinstance(e, GateFailed))
            error.result = self  # type: ignore[attr-defined]
            raise error

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str):
            for t in self.targets:
                if t.target == key:
                    return t
            raise KeyError(f"No target {key!r} in this build (targets: {', '.join(self.keys())}).")
        return self.targets[key]

    def __len__(self) -> int:
        return len(self.targets)

    def keys(self) -> list[str]:
        """Target names, in build order."""
        return [t.target for t in self.targets]

    _COLUMNS: ClassVar[list[str]] = [
        "target",
        "size",
        "vs fp32",
        "I/O",
        "accuracy (vs float)",
        "agree",
        "host p50",
        "arena",
        "status",
        "artifact",
    ]

    def _rows(self) -> list[tuple[TargetBuild, list[str]]]:
        from edgebuild.report import accuracy_text, kib

        rows = []
        for t in self.targets:
            if t.report is None:
                rows.append((t, [t.target, *["-"] * 7, "ERROR", str(t.error).split(". ")[0]]))
                continue
            rep = t.report
            ratio = f"{rep.artifact.size_bytes / rep.float_size_bytes:.2f}x" if rep.float_size_bytes else "-"
            accuracy = rep.validation.accuracy if rep.validation else None
            agree = f"{100 * accuracy.agreement:.1f}%" if accuracy and accuracy.agreement is not None else "-"
            p50 = rep.benchmark.p50_ms if rep.benchmark else None
            arena = rep.validation.arena.recommended_bytes if rep.validation and rep.validation.arena else None
            io = rep.artifact.inputs[0].dtype if rep.artifact.inputs else "-"
            rows.append(
                (
                    t,
                    [
                        t.target,
                        kib(rep.artifact.size_bytes),
                        ratio,
                        io,
                        accuracy_text(accuracy.raw if accuracy else None),
                        agree,
                        f"{p50:.3f} ms" if p50 is not None else "-",
                        kib(arena) if arena else "-",
                        "ok" if t.passed else "FAILED",
                        str(rep.artifact.path),
                    ],
                )
            )
        return rows

    def __str__(self) -> str:
        text = _text_table(self._COLUMNS, [cells for _, cells in self._rows()])
        for t in self.targets:
            for check in t.failed_checks:
                text += f"\n{t.target}: {check.name} failed: {check.summary}"
        return text

    def __repr__(self) -> str:
        return str(self)

    def _repr_html_(self) -> str:
        rows = []
        for t, cells in self._rows():
            cells = [html.escape(c) for c in cells]
            cells[8] = _status_html(t.passed, cells[8], cells[8])
            rows.append(cells)
        parts = [
            _html_table(self._COLUMNS, rows, escape=False, title=f"edgebuild results ({html.escape(str(self.out))})")
        ]
        for t in self.targets:
            for check in t.failed_checks:
                parts.append(
                    f"<p><b>{html.escape(t.target)}</b>: {html.escape(check.name)} failed: "
                    f"{html.escape(check.summary)}</p>"
                )
        chart = self.out / "summary.png"
        if len(self.targets) > 1 and chart.is_file():
            data = base64.b64encode(chart.read_bytes()).decode()
            parts.append(f'<img alt="size, accuracy and latency per target" src="data:image/png;base64,{data}"/>')
        return "\n".join(parts)


# ---------------------------------------------------------------------------------------------- the functions


def build(
    model: ModelLike,
    targets: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    data: DataLike | None = None,
    *,
    val_data: DataLike | None = None,
    out: str | os.PathLike[str] | None = None,
    overrides: Overrides = None,
    gates: bool = True,
    calibration: str = "data",
    jobs: int | None = None,
    cache: bool = True,
    cache_dir: str | os.PathLike[str] | None = None,
    progress: Any = "auto",
    bench_device: str | None = None,
    device_options: Mapping[str, Any] | None = None,
    stage_timeout: float | None = None,
) -> BuildResult:
    """Convert, validate and benchmark `model` for each target; write OUT/<target>/ as the CLI does.

    Args:
        model: a SavedModel folder, `.keras`/`.h5` path, or an in-memory Keras model (tf_keras or Keras 3).
        targets: a built-in target name (`"mcu"`, `"mobile"`, ...), a profile `.toml`, `"all"`, or a list.
        data: calibration/validation data (see `DataLike`); needed by integer targets.
        val_data: separate validation data (default: a seeded split of `data`).
        out: output root (default `build/<model name>`).
        overrides: profile overrides, e.g. `{"benchmark.enabled": False}` (see `Overrides`).
        gates: raise `GateFailed` when a validation gate fails; with False, failures are in `passed`
            and `failed_checks` instead.
        calibration: `"data"`, or `"random"` (noise; smoke tests only).
        jobs: targets built in parallel (default: cores, capped by memory).
        cache: use the build cache (`cache_dir`, default `$EDGEBUILD_CACHE_DIR` or the XDG cache).
        progress: `"auto"` (a live block in Jupyter, lines on stderr elsewhere), False for none, or an
            object with `stage_started`, `stage_finished` and `message` methods.
        bench_device: also benchmark on a device, `ssh://user@host[:port]` or `adb:SERIAL`;
            `device_options` takes `identity`, `accept_new_host_key`, `known_hosts`, `device_python`,
            `benchmark_model`, `connect_timeout`.
        stage_timeout: seconds a non-training stage may run (default `$EDGEBUILD_STAGE_TIMEOUT` or 1800).

    Returns:
        A `BuildResult`, one `TargetBuild` per target.

    Raises:
        UsageError, ProfileError, ModelError, DataError, UnsupportedError, ConversionError,
        ExternalToolError, GateFailed (with gates=True): subclasses of `edgebuild.errors.EdgebuildError`.
        Errors raised after the targets ran carry the `BuildResult` as `exc.result`.
    """
    from edgebuild.pipeline import BuildRequest, default_out_dir
    from edgebuild.pipeline import build as run_build

    _refuse_spawn_reimport()
    names = _target_names(targets)
    if not names:
        raise UsageError(
            "No target given. Pass targets='mcu' (or 'mobile', 'edgetpu', a list, or 'all'; see `edgebuild targets`)."
        )
    if calibration not in {"data", "random"}:
        raise UsageError(f"calibration={calibration!r} is not valid; use 'data' or 'random'.")
    settings = tuple(_override_strings(overrides))
    bench_options = None
    if bench_device is not None:
        from edgebuild.device import DeviceBenchOptions

        bench_options = DeviceBenchOptions(device=bench_device, **_path_options(device_options or {}))
    elif device_options:
        raise UsageError("device_options needs bench_device='ssh://user@host' or 'adb:SERIAL'.")
    reporter = _progress(progress)
    with _Inputs() as inputs:
        model_path = inputs.model(model)
        data_path = inputs.data(data, "data")
        val_path = inputs.data(val_data, "val_data")
        if out is not None:
            out_root = Path(out)
        elif inputs.model_label is not None:
            out_root = Path("build") / inputs.model_name
        else:
            out_root = default_out_dir(model_path)

        def request(path: Path) -> BuildRequest:
            return BuildRequest(
                model=path,
                targets=names,
                data=data_path,
                val_data=val_path,
                out=out_root,
                overrides=settings,
                random_calibration=calibration == "random",
                gates=gates,
                use_cache=cache,
                cache_dir=Path(cache_dir) if cache_dir is not None else None,
                jobs=jobs,
                bench_device=bench_options,
                stage_timeout=stage_timeout,
            )

        try:
            try:
                results = run_build(request(model_path), reporter)
            except ModelError as exc:
                fallback = inputs.savedmodel_fallback(exc)
                if fallback is None:
                    raise
                reporter.message(
                    f"note: {inputs.model_label} did not load back from .keras "
                    f"({str(exc).split(': ', 1)[-1].split('.')[0]}); building it from a SavedModel export"
                )
                results = run_build(request(fallback), reporter)
        except EdgebuildError as exc:
            raise inputs.relabel_error(exc) from None
        targets_built = []
        for r in results:
            report = inputs.relabel_report(r.out_dir, r.report) if r.report else None
            error = inputs.relabel_error(r.error) if r.error is not None else None
            targets_built.append(
                TargetBuild(r.target, r.out_dir, Report(report, r.out_dir) if report else None, error, r.cached)
            )
        inputs.relabel_file(out_root / "summary.md")
    result = BuildResult(targets_built, out_root)
    result.raise_for_errors()
    return result


def validate(
    tflite: ArtifactLike,
    target: str | os.PathLike[str],
    data: DataLike | None = None,
    *,
    reference: ModelLike | None = None,
    overrides: Overrides = None,
    gates: bool = True,
) -> ValidationReport:
    """Check an existing artifact against a target's op rules, accuracy gate, TFLite Micro arena and budgets.

    Args:
        tflite: the artifact (path, bytes or a `TargetBuild`).
        target: built-in target name or profile `.toml` whose rules and gates apply.
        data: validation data (see `DataLike`; up to `data.max_validation_samples` are used).
        reference: the float model (path or in-memory Keras model), for the accuracy comparison.
        overrides: profile overrides (see `Overrides`).
        gates: raise `GateFailed` when a check fails (the report is `exc.result`); False returns it.
    """
    from edgebuild.artifact import read_artifact
    from edgebuild.data import check_fits, load_dataset
    from edgebuild.profiles import resolve
    from edgebuild.validation import ValidationData, validate_artifact

    profile = resolve(str(target), tuple(_override_strings(overrides)))
    with _Inputs() as inputs:
        path = inputs.artifact(tflite)
        label = inputs.artifact_label or str(path)
        try:
            artifact = read_artifact(path)
            vdata = None
            if data is not None:
                shape = (None, *artifact.inputs[0].shape[1:])
                if _is_path(data):
                    dataset = load_dataset(Path(data), shape, profile.data.image_range)
                else:
                    from edgebuild.data import dataset_from_object

                    dataset = dataset_from_object(data, _data_label(data, "data"), input_rank=len(shape))
                dataset = check_fits(dataset, shape, label)
                x = dataset.x[: profile.data.max_validation_samples]
                y = dataset.y[: len(x)] if dataset.y is not None else None
                reference_outputs = _reference_outputs(reference, x) if reference is not None else None
                vdata = ValidationData(x=x, y=y, reference=reference_outputs)
            raw = validate_artifact(path, artifact, profile, vdata)
        except EdgebuildError as exc:
            raise inputs.relabel_error(exc) from None
    report = ValidationReport.from_dict(raw)
    if not report.passed and gates:
        failed = "; ".join(c.summary.rstrip(". ") for c in report.failed_checks)
        error = GateFailed(f"{label} failed validation for '{profile.name}': {failed}.")
        error.result = report  # type: ignore[attr-defined]
        raise error
    return report


def bench(
    tflite: ArtifactLike,
    *,
    threads: int | Sequence[int] = (1,),
    runs: int = 100,
    warmup: int = 10,
    data: DataLike | None = None,
    device: str | None = None,
    device_options: Mapping[str, Any] | None = None,
) -> BenchmarkReport:
    """Measure invoke() latency in LiteRT on this host (or on a device with `device=`).

    Args:
        tflite: the artifact (path, bytes or a `TargetBuild`).
        threads: a thread count or several (each measured in turn).
        runs, warmup: timed and untimed invocations per thread count.
        data: real input samples (see `DataLike`; host only); default: seeded random inputs.
        device: `ssh://user@host[:port]` or `adb:SERIAL`; `device_options` as for `build`.
    """
    thread_list = [threads] if isinstance(threads, int) else list(threads)
    with _Inputs() as inputs:
        path = inputs.artifact(tflite)
        if device is not None:
            from edgebuild.device import bench_on_device

            if data is not None:
                raise UsageError("data is not supported with device= yet: device benchmarks use seeded random inputs.")
            raw = bench_on_device(
                path, device, threads=thread_list, runs=runs, warmup=warmup, **_path_options(device_options or {})
            )
            return BenchmarkReport.from_dict(raw)
        from edgebuild.artifact import read_artifact
        from edgebuild.bench import benchmark_threads
        from edgebuild.data import check_fits, load_dataset

        try:
            x = None
            if data is not None:
                artifact = read_artifact(path)
                shape = (None, *artifact.inputs[0].shape[1:])
                if _is_path(data):
                    dataset = load_dataset(Path(data), shape)
                else:
                    from edgebuild.data import dataset_from_object

                    dataset = dataset_from_object(data, _data_label(data, "data"), input_rank=len(shape))
                x = check_fits(dataset, shape, inputs.artifact_label or str(path)).x
            raw = benchmark_threads(path, thread_list, runs=runs, warmup=warmup, inputs=x)
        except EdgebuildError as exc:
            raise inputs.relabel_error(exc) from None
    return BenchmarkReport.from_dict(raw)


def carray(
    tflite: ArtifactLike,
    out_dir: str | os.PathLike[str] = ".",
    *,
    name: str = "g_model",
    xxd_names: bool = False,
    arena: int | None = None,
) -> list[Path]:
    """Write C sources for a `.tflite`: model_data.h/.cc and model_ops.h (model_settings.h and main.cc with an arena).

    Args:
        tflite: the artifact (path, bytes or a `TargetBuild`; a `TargetBuild` supplies its proven arena).
        out_dir: folder for the files (created).
        name: C symbol of the model array.
        xxd_names: `xxd -i` style declarations (`unsigned char NAME[]` and `NAME_len`).
        arena: tensor arena bytes for model_settings.h.

    Returns:
        The paths written.
    """
    from edgebuild.artifact import read_artifact
    from edgebuild.codegen import CSourceOptions, write_c_sources

    if arena is None and isinstance(tflite, TargetBuild) and tflite.validation and tflite.validation.arena:
        arena = tflite.validation.arena.recommended_bytes
    with _Inputs() as inputs:
        path = inputs.artifact(tflite)
        try:
            artifact = read_artifact(path)
        except EdgebuildError as exc:
            raise inputs.relabel_error(exc) from None
        blob = path.read_bytes()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    return write_c_sources(blob, artifact, out, CSourceOptions(symbol=name, xxd_names=xxd_names, arena_bytes=arena))


def resolve_profile(name: str | os.PathLike[str], overrides: Overrides = None) -> Profile:
    """A target profile (built-in name or `.toml` path) with overrides applied: a frozen, validated
    `edgebuild.profiles.Profile` (`profile.quantization.scheme`, `profile.budget.flash`, ...).

    Raises `ProfileError` naming the file (or override) and key at fault.
    """
    from edgebuild.profiles import resolve

    return resolve(str(name), tuple(_override_strings(overrides)))


# ---------------------------------------------------------------------------------------------- inputs


class _Inputs:
    """Turns in-memory models, data and artifacts into files in one temporary folder, removed on exit.

    Also rewrites that folder's paths in error messages and reports into labels the user recognizes.
    """

    def __init__(self) -> None:
        self.root: Path | None = None
        self.model_label: str | None = None
        self.model_name: str = "model"
        self.artifact_label: str | None = None
        self._keras: Any = None
        self._input_names: tuple[str, ...] = ()
        self._input_rank: int | None = None
        self._labels: dict[str, str] = {}

    def __enter__(self) -> _Inputs:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)

    def _dir(self) -> Path:
        if self.root is None:
            self.root = Path(tempfile.mkdtemp(prefix=_TEMP_PREFIX))
        return self.root

    # The model: a path as is; a Keras model saved as a deterministic .keras archive.
    def model(self, model: ModelLike) -> Path:
        if _is_path(model):
            return Path(model)
        flavor = _keras_flavor(model)
        if flavor is None:
            raise UsageError(
                f"model must be a path (SavedModel folder, .keras or .h5) or a Keras model; got "
                f"{type(model).__module__}.{type(model).__name__}."
            )
        if not getattr(model, "built", True):
            raise ModelError(
                f"The {flavor} model '{getattr(model, 'name', '?')}' is not built yet (it has no input "
                "shape). Call it on a batch once, or give it an Input layer, before building."
            )
        self._keras = model
        self.model_name = _safe_name(getattr(model, "name", "") or "model")
        self.model_label = f"in-memory {flavor} model '{self.model_name}'"
        self._input_names, self._input_rank = _keras_inputs(model)
        folder = self._dir() / "model"
        folder.mkdir()
        path = folder / f"{self.model_name}.keras"
        try:
            keras_model: Any = model
            keras_model.save(path)
        except Exception as exc:  # subclassed models without get_config(), unserializable objects
            from edgebuild.model import _first_line

            fallback = self._export_savedmodel(ModelError(str(exc)))
            if fallback is None:
                raise ModelError(f"Cannot save the {self.model_label} for the build: {_first_line(exc)}.") from None
            return fallback
        _normalize_keras_archive(path)
        self._labels["model"] = self.model_label
        return path

    def savedmodel_fallback(self, exc: ModelError) -> Path | None:
        """An in-memory model whose .keras does not load back (unregistered custom layers): a SavedModel instead."""
        if self._keras is None or "Cannot load" not in str(exc):
            return None
        return self._export_savedmodel(exc)

    def _export_savedmodel(self, exc: ModelError) -> Path | None:
        if self._keras is None:
            return None
        from edgebuild._tf import tf

        folder = self._dir() / "model" / f"{self.model_name}_savedmodel"
        shutil.rmtree(folder, ignore_errors=True)
        try:
            if hasattr(self._keras, "export") and _keras_flavor(self._keras) == "keras3":
                self._keras.export(str(folder), verbose=False)
            else:
                tf().saved_model.save(self._keras, str(folder))
        except Exception:
            return None
        self._labels["model"] = self.model_label or "in-memory model"
        return folder

    # Data: a path as is; anything else as a deterministic .npz.
    def data(self, data: DataLike | None, what: str) -> Path | None:
        if data is None:
            return None
        if _is_path(data):
            return Path(data)
        from edgebuild.data import dataset_from_object, write_npz

        label = _data_label(data, what)
        dataset = dataset_from_object(data, label, self._input_names, self._input_rank)
        path = write_npz(self._dir() / f"{what}.npz", dataset)
        self._labels[f"{what}.npz"] = label
        return path

    # Artifacts: a path as is; bytes written to a file; a TargetBuild's artifact.
    def artifact(self, tflite: ArtifactLike) -> Path:
        if isinstance(tflite, TargetBuild):
            if tflite.artifact_path is None:
                raise UsageError(f"Target '{tflite.target}' has no artifact (it failed: {tflite.error}).")
            return tflite.artifact_path
        if isinstance(tflite, (bytes, bytearray, memoryview)):
            path = self._dir() / "model.tflite"
            path.write_bytes(bytes(tflite))
            self.artifact_label = f"tflite bytes ({len(path.read_bytes()):,} bytes)"
            self._labels["model.tflite"] = self.artifact_label
            return path
        if _is_path(tflite):
            return Path(tflite)
        raise UsageError(f"Expected a .tflite path, its bytes or a TargetBuild; got {type(tflite).__name__}.")

    # Temporary paths -> labels, in messages and reports.
    def _pattern(self) -> re.Pattern[str] | None:
        if not self._labels:
            return None
        temp = re.escape(str(Path(tempfile.gettempdir())))
        return re.compile(
            temp + "/" + re.escape(_TEMP_PREFIX) + r"[A-Za-z0-9_]+/(model/[A-Za-z0-9_.-]+|"
            r"data\.npz|val_data\.npz|model\.tflite)"
        )

    def relabel(self, text: str) -> str:
        pattern = self._pattern()
        if pattern is None:
            return text

        def label(match: re.Match[str]) -> str:
            name = match.group(1)
            return self._labels.get("model" if name.startswith("model/") else name, name)

        return pattern.sub(label, text)

    def relabel_error(self, exc: EdgebuildError) -> EdgebuildError:
        text = str(exc)
        new = self.relabel(text)
        if new != text:
            exc.args = (new, *exc.args[1:])
        return exc

    def relabel_report(self, folder: Path, report: dict[str, Any]) -> dict[str, Any]:
        if self._pattern() is None:
            return report
        for name in ("report.json", "report.md"):
            self.relabel_file(folder / name)
        relabeled: dict[str, Any] = json.loads(self.relabel(json.dumps(report)))
        return relabeled

    def relabel_file(self, path: Path) -> None:
        if self._pattern() is None or not path.is_file():
            return
        text = path.read_text()
        new = self.relabel(text)
        if new != text:
            tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            tmp.write_text(new)
            tmp.replace(path)


def _refuse_spawn_reimport() -> None:
    """A build started by a script's top-level code, re-run in a worker process that is importing the script.

    TFLite Micro runs in a spawned worker process, which imports the main script again; without an
    `if __name__ == "__main__":` guard the script would build again inside the worker, forever.
    """
    import inspect

    frame = inspect.currentframe()
    while frame is not None:
        if frame.f_code.co_name == "<module>" and frame.f_globals.get("__name__") == "__mp_main__":
            raise UsageError(
                "edgebuild.build() was called while a worker process imported your script: edgebuild runs "
                "TensorFlow Lite Micro in a separate process, which imports the main script again. Put the "
                'script\'s top-level code under `if __name__ == "__main__":`.'
            )
        frame = frame.f_back


def _is_path(value: object) -> TypeGuard[str | os.PathLike[str]]:
    return isinstance(value, (str, os.PathLike))


def _keras_flavor(model: object) -> str | None:
    """'tf_keras' or 'keras3' for Keras models (by their class hierarchy, without importing either)."""
    for cls in type(model).__mro__:
        root = cls.__module__.split(".")[0]
        if root == "tf_keras" and cls.__name__ == "Model":
            return "tf_keras"
        if root == "keras" and cls.__name__ == "Model":
            return "keras3"
    return None


def _keras_inputs(model: Any) -> tuple[tuple[str, ...], int | None]:
    try:
        inputs = list(model.inputs or [])
    except (AttributeError, ValueError):
        return (), None
    names = tuple(str(getattr(t, "name", "")).split(":")[0] for t in inputs)
    rank = len(inputs[0].shape) if len(inputs) == 1 else None
    return names, rank


def _safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name).strip(".") or "model"


def _normalize_keras_archive(path: Path) -> None:
    """Make a saved .keras byte-for-byte deterministic: fixed entry timestamps, no `date_saved`.

    The weights inside are already deterministic; only the save time differs between two saves of the
    same model. With it gone, the same weights hash the same and the build cache can recognize them.
    """
    entries = []
    with zipfile.ZipFile(path) as archive:
        for info in archive.infolist():
            data = archive.read(info.filename)
            if info.filename == "metadata.json":
                metadata = json.loads(data)
                metadata.pop("date_saved", None)
                data = json.dumps(metadata).encode()
            entries.append((info.filename, info.compress_type, data))
    tmp = path.with_name(path.name + ".tmp")
    with zipfile.ZipFile(tmp, "w") as archive:
        for name, compression, data in entries:
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = compression
            archive.writestr(info, data)
    tmp.replace(path)


def _data_label(data: object, what: str) -> str:
    """How error messages and reports name in-memory data: `data=ndarray float32 (597, 32, 32, 1)`."""
    if isinstance(data, np.ndarray):
        return f"{what}=ndarray {data.dtype} {tuple(data.shape)}"
    if isinstance(data, dict):
        return f"{what}=dict({', '.join(map(str, data))})"
    if isinstance(data, (tuple, list)):
        shapes = ", ".join(
            f"{getattr(v, 'dtype', type(v).__name__)} {tuple(getattr(v, 'shape', ()))}" for v in data[:3]
        )
        return f"{what}=({shapes})"
    return f"{what}={type(data).__name__}"


def _target_names(targets: Any) -> tuple[str, ...]:
    if targets is None:
        return ()
    if _is_path(targets):
        return (str(targets),)
    return tuple(str(t) for t in targets)


def _override_strings(overrides: Overrides) -> list[str]:
    """{"a.b": value} (or nested dicts) -> ["a.b=<TOML value>"]; strings pass through."""
    if overrides is None:
        return []
    if isinstance(overrides, str):
        return [overrides]
    if not isinstance(overrides, Mapping):
        return [str(o) for o in overrides]
    import tomli_w

    flat: dict[str, Any] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, Mapping):
            for k, v in value.items():
                walk(f"{prefix}.{k}" if prefix else str(k), v)
        else:
            flat[prefix] = value

    walk("", overrides)
    strings = []
    for key, value in flat.items():
        if isinstance(value, os.PathLike):
            value = str(value)
        try:
            literal = tomli_w.dumps({"v": value}).strip()[len("v = ") :]
        except TypeError:
            raise UsageError(
                f"Override {key}={value!r}: {type(value).__name__} is not a TOML value "
                "(use str, int, float, bool or a list of them)."
            ) from None
        strings.append(f"{key}={literal}")
    return strings


def _path_options(options: Mapping[str, Any]) -> dict[str, Any]:
    allowed = {"identity", "accept_new_host_key", "known_hosts", "device_python", "benchmark_model", "connect_timeout"}
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise UsageError(f"Unknown device option(s) {', '.join(unknown)}; valid: {', '.join(sorted(allowed))}.")
    paths = {"identity", "known_hosts"}
    return {k: Path(v) if k in paths and v is not None else v for k, v in options.items()}


def _reference_outputs(reference: ModelLike, x: np.ndarray) -> list[np.ndarray]:
    """Float model outputs on x, in the model's output order (dict outputs by sorted key, as builds do)."""
    if _is_path(reference):
        from edgebuild.model import load_model

        return load_model(Path(reference)).predict(x)
    if _keras_flavor(reference) is None:
        raise UsageError(f"reference must be a model path or a Keras model; got {type(reference).__name__}.")
    keras_model: Any = reference
    outputs = keras_model.predict(x, verbose=0)
    if isinstance(outputs, dict):
        return [np.asarray(outputs[k]) for k in sorted(outputs)]
    if isinstance(outputs, (list, tuple)):
        return [np.asarray(o) for o in outputs]
    return [np.asarray(outputs)]


# ---------------------------------------------------------------------------------------------- progress


class _LineProgress:
    """`target  stage  seconds  note` on stderr as each stage finishes (what the CLI prints)."""

    def __init__(self) -> None:
        from edgebuild.native_output import TerminalStream

        self._stream = TerminalStream(2)

    def stage_started(self, target: str, stage: str) -> None:
        pass

    def stage_finished(self, target: str, stage: str, seconds: float, note: str = "") -> None:
        self.message(f"  {target:<10} {stage:<10} {seconds:7.2f} s  {note}")

    def message(self, text: str) -> None:
        self._stream.write(text.rstrip() + "\n")
        self._stream.flush()


class _NotebookProgress:
    """One live output block in Jupyter, updated in place as stages run (no stderr noise)."""

    def __init__(self) -> None:
        from IPython.display import HTML, display

        self._html: Any = HTML
        self._lines: list[str] = []
        self._running: dict[str, str] = {}
        self._lock = threading.Lock()
        start = HTML("<pre>edgebuild: starting...</pre>")  # type: ignore[no-untyped-call]
        self._handle: Any = display(start, display_id=True)  # type: ignore[no-untyped-call]

    def _render(self) -> None:
        running = [f"  {t:<10} {s:<10} ..." for t, s in self._running.items()]
        body = html.escape("\n".join(self._lines + running))
        self._handle.update(self._html(f"<pre style='margin:0'>{body}</pre>"))

    def stage_started(self, target: str, stage: str) -> None:
        with self._lock:
            self._running[target] = stage
            self._render()

    def stage_finished(self, target: str, stage: str, seconds: float, note: str = "") -> None:
        with self._lock:
            self._running.pop(target, None)
            self._lines.append(f"  {target:<10} {stage:<10} {seconds:7.2f} s  {note}".rstrip())
            self._render()

    def message(self, text: str) -> None:
        with self._lock:
            self._lines.append(text)
            self._render()


def _in_notebook() -> bool:
    """True inside a Jupyter kernel (IPython's ZMQ shell); never imports IPython itself."""
    import sys

    if "IPython" not in sys.modules:
        return False
    try:
        shell = sys.modules["IPython"].get_ipython()
    except AttributeError:
        return False
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"


def _progress(progress: Any) -> Any:
    from edgebuild.stages.context import SilentProgress

    if progress is False or progress is None:
        return SilentProgress()
    if progress is True or progress == "auto":
        return _NotebookProgress() if _in_notebook() else _LineProgress()
    if all(hasattr(progress, m) for m in ("stage_started", "stage_finished", "message")):
        return progress
    raise UsageError(
        "progress must be 'auto', True, False, or an object with stage_started, stage_finished and message methods."
    )


# ---------------------------------------------------------------------------------------------- tables


def _text_table(columns: list[str], rows: list[list[str]]) -> str:
    widths = [max([len(c)] + [len(r[i]) for r in rows]) for i, c in enumerate(columns)]

    def line(cells: list[str]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()

    return "\n".join([line(columns), line(["-" * w for w in widths]), *(line(r) for r in rows)])


def _html_table(columns: list[str], rows: list[list[str]], escape: bool = True, title: str | None = None) -> str:
    cell = html.escape if escape else (lambda s: s)
    head = "".join(f"<th style='text-align:left'>{html.escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td style='text-align:left'>{cell(c)}</td>" for c in r) + "</tr>" for r in rows)
    caption = f"<caption style='text-align:left'><b>{title}</b></caption>" if title else ""
    return f"<table class='edgebuild'>{caption}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _status_html(passed: bool, ok: str, failed: str) -> str:
    return f"<span style='color:#2e7d32'>{ok}</span>" if passed else f"<b style='color:#c62828'>{failed}</b>"
