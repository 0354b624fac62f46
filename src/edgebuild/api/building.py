"""`build`: the pipeline of `edgebuild build`, called from Python."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgebuild.api.forms import _override_strings, _path_options, _target_names
from edgebuild.api.inputs import _Inputs
from edgebuild.api.rendering import _progress
from edgebuild.api.reports import Report
from edgebuild.api.results import BuildResult, TargetBuild
from edgebuild.errors import EdgebuildError, ModelError, UsageError

if TYPE_CHECKING:
    from edgebuild.api import DataLike, ModelLike, Overrides

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
