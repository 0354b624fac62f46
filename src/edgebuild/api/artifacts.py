"""`validate`, `bench`, `carray` and `resolve_profile`: an existing `.tflite` and a profile."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edgebuild.api.forms import _is_path, _override_strings, _path_options
from edgebuild.api.inputs import _Inputs, _keras_flavor
from edgebuild.api.reports import BenchmarkReport, ValidationReport
from edgebuild.api.results import TargetBuild
from edgebuild.errors import EdgebuildError, GateFailed, UsageError

if TYPE_CHECKING:
    from edgebuild.api import ArtifactLike, DataLike, ModelLike, Overrides
    from edgebuild.profiles import Profile
    from edgebuild.samples import Samples


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
    from edgebuild.named_data import load_artifact_data
    from edgebuild.profiles import resolve
    from edgebuild.samples import count, take
    from edgebuild.validation import ValidationData, validate_artifact

    profile = resolve(str(target), tuple(_override_strings(overrides)))
    with _Inputs() as inputs:
        path = inputs.artifact(tflite)
        label = inputs.artifact_label or str(path)
        try:
            artifact = read_artifact(path)
            vdata = None
            if data is not None:
                source = Path(data) if _is_path(data) else data
                dataset = load_artifact_data(source, artifact, profile.data.image_range, label)
                x = take(dataset.inputs, slice(0, profile.data.max_validation_samples))
                y = dataset.y[: count(x)] if dataset.y is not None else None
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
        from edgebuild.named_data import load_artifact_data
        from edgebuild.samples import for_artifact

        try:
            x = None
            if data is not None:
                artifact = read_artifact(path)
                source = Path(data) if _is_path(data) else data
                dataset = load_artifact_data(source, artifact, "0-255", inputs.artifact_label or str(path))
                x = for_artifact(dataset.inputs, artifact)
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


def _reference_outputs(reference: ModelLike, x: Samples) -> list[np.ndarray]:
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
