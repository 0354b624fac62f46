"""The one driver: resolve profiles, load the model once, then run each target's stages in order.

Each target is built in a hidden temporary folder beside its destination and
moved into place only when complete, so a failed or interrupted build leaves
the previous result untouched and never a partial artifact.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Protocol

import numpy as np

from edgebuild import __version__
from edgebuild.artifact import TfliteArtifact, parse_artifact
from edgebuild.data import Dataset, Splits, check_fits, check_labels, load_dataset, random_calibration, split
from edgebuild.errors import EdgebuildError, GateFailed
from edgebuild.plan import TargetPlan, make_plan
from edgebuild.profiles import Profile, resolve, to_toml
from edgebuild.report import build_report, render_markdown, write_json


class Progress(Protocol):
    def stage_started(self, target: str, stage: str) -> None: ...
    def stage_finished(self, target: str, stage: str, seconds: float, note: str = "") -> None: ...
    def message(self, text: str) -> None: ...


class SilentProgress:
    def stage_started(self, target: str, stage: str) -> None:
        pass

    def stage_finished(self, target: str, stage: str, seconds: float, note: str = "") -> None:
        pass

    def message(self, text: str) -> None:
        pass


@dataclass(frozen=True)
class BuildRequest:
    model: Path
    targets: tuple[str, ...]
    data: Path | None = None
    val_data: Path | None = None  # separate validation set; otherwise a seeded split of `data`
    out: Path | None = None
    overrides: tuple[str, ...] = ()
    random_calibration: bool = False
    gates: bool = True
    use_cache: bool = True
    cache_dir: Path | None = None
    jobs: int | None = None  # parallel target builds; None = cores, capped by available memory
    bench_device: object | None = None  # edgebuild.device.DeviceBenchOptions: also benchmark on a device


@dataclass
class TargetResult:
    target: str
    out_dir: Path
    report: dict
    error: EdgebuildError | None = None
    cached: bool = False

    @property
    def passed(self) -> bool:
        return self.error is None and self.report.get("validation", {}).get("passed", True)


@dataclass
class SharedInputs:
    """Everything every target of one build reuses: the loaded model, data, splits, reference outputs."""

    model: object
    model_sha256: str
    dataset: Dataset | None
    val_dataset: Dataset | None = None
    float_reference: dict | None = None  # size and weight bytes of the plain float32 conversion
    float_blob: bytes | None = None
    float_latency: dict[tuple[int, int], float] = field(default_factory=dict)  # (threads, runs) -> p50 ms
    reference_cache: dict[str, list[np.ndarray]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    cancelled: threading.Event = field(default_factory=threading.Event)


def resolve_targets(names: tuple[str, ...], overrides: tuple[str, ...]) -> list[Profile]:
    from edgebuild.profiles import builtin_names

    expanded: list[str] = []
    for name in names:
        expanded.extend(builtin_names() if name == "all" else [name])
    seen: set[str] = set()
    profiles = []
    for name in expanded:
        profile = resolve(name, overrides)
        if profile.name not in seen:
            seen.add(profile.name)
            profiles.append(profile)
    return profiles


def plan_build(request: BuildRequest) -> list[TargetPlan]:
    """Everything that can be checked without TensorFlow, checked first."""
    from edgebuild.model import detect_format

    detect_format(request.model)
    for path in (request.data, request.val_data):
        if path is not None and not path.exists():
            from edgebuild.errors import DataError

            raise DataError(f"Data {path} does not exist. Pass an .npz with 'x' (and 'y'), an .npy, or an image folder.")
    profiles = resolve_targets(request.targets, request.overrides)
    return [make_plan(p, request.data is not None, request.random_calibration) for p in profiles]


def default_out_dir(model_path: Path) -> Path:
    name = model_path.stem if model_path.is_file() else model_path.resolve().name
    return Path("build") / name


def build(request: BuildRequest, progress: Progress | None = None) -> list[TargetResult]:
    """Build every requested target; cache hits are restored without loading TensorFlow.

    Errors of one target do not stop the others; the caller decides the exit code from the results.
    """
    progress = progress or SilentProgress()
    plans = plan_build(request)
    out_root = request.out or default_out_dir(request.model)
    cache, keys = _cache_keys(request, plans)
    results: dict[str, TargetResult] = {}
    pending = []
    for plan in plans:
        restored = _restore_cached(cache, keys.get(plan.target), plan, request, out_root, progress)
        if restored is not None:
            results[plan.target] = restored
        else:
            pending.append(plan)
    if pending:
        shared = _load_shared(request, pending, progress)
        _trace_once(shared, pending)

        def build_one(plan: TargetPlan) -> TargetResult:
            try:
                result = _build_target(plan, request, shared, out_root, progress)
            except EdgebuildError as exc:
                result = TargetResult(plan.target, out_root / plan.target, {}, error=exc)
            if cache is not None and result.report:
                _mark_cache(result.out_dir, keys[plan.target], hit=False)
                cache.store(keys[plan.target], result.out_dir)
            return result

        for result in _run_all(build_one, pending, default_jobs(request.jobs, len(pending)), shared, out_root):
            results[result.target] = result
    return [results[plan.target] for plan in plans]


def default_jobs(requested: int | None, targets: int) -> int:
    """Requested, else one per core, capped by available memory (~1.5 GiB per concurrent conversion)."""
    if requested is not None:
        return max(1, min(requested, targets))
    cores = os.cpu_count() or 1
    try:
        available_kib = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                             if line.startswith("MemAvailable:"))
        by_memory = max(1, available_kib // (1536 * 1024))
    except (OSError, StopIteration, ValueError):
        by_memory = 1
    return max(1, min(cores, by_memory, targets))


def _run_all(build_one, plans: list[TargetPlan], jobs: int, shared: SharedInputs, out_root: Path) -> list[TargetResult]:
    """Build targets serially or in threads that share the traced model (the converter releases the GIL).

    On Ctrl-C every worker stops at its next stage boundary and removes its partial folder.
    """
    if jobs <= 1:
        return [build_one(plan) for plan in plans]
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="edgebuild-target") as pool:
        futures = [pool.submit(build_one, plan) for plan in plans]
        try:
            return [future.result() for future in futures]
        except KeyboardInterrupt:
            shared.cancelled.set()
            for future in futures:
                future.cancel()
            raise


def _trace_once(shared: SharedInputs, plans: list[TargetPlan]) -> None:
    """Trace every batch size and the float baseline up front, in one thread, so workers only convert."""
    model = shared.model
    for batch in sorted({plan.profile.model.batch for plan in plans}):
        model.concrete_function(batch)  # type: ignore[attr-defined]
    if any(plan.profile.validation.enabled for plan in plans) and shared.dataset is not None:
        model.concrete_function(None)  # type: ignore[attr-defined]
    _float_reference(shared, plans[0].profile)


def _cache_keys(request: BuildRequest, plans: list[TargetPlan]) -> tuple[object | None, dict[str, str]]:
    if not request.use_cache:
        return None, {}
    from edgebuild.cache import BuildCache, build_key, default_cache_dir, stack_fingerprint
    from edgebuild.hashing import hash_path

    cache = BuildCache(request.cache_dir or default_cache_dir())
    model_sha = hash_path(request.model)
    data = {"data": hash_path(request.data) if request.data else None,
            "val_data": hash_path(request.val_data) if request.val_data else None}
    flags = {"random_calibration": request.random_calibration}
    versions = stack_fingerprint()
    keys = {plan.target: build_key(model_sha256=model_sha, profile_toml=to_toml(plan.profile), data_sha256=data,
                                   flags=flags, versions=versions) for plan in plans}
    return cache, keys


def _restore_cached(cache: object | None, key: str | None, plan: TargetPlan, request: BuildRequest, out_root: Path,
                    progress: Progress) -> TargetResult | None:
    if cache is None or key is None:
        return None
    entry, note = cache.lookup(key)  # type: ignore[attr-defined]
    if note:
        progress.message(f"  {plan.target:<10} {note}")
    if entry is None:
        return None
    started = time.perf_counter()
    out_root.mkdir(parents=True, exist_ok=True)
    work_dir = out_root / f".{plan.target}.partial"
    shutil.rmtree(work_dir, ignore_errors=True)
    cache.restore(entry, work_dir)  # type: ignore[attr-defined]
    _mark_cache(work_dir, key, hit=True)
    report = json.loads((work_dir / "report.json").read_text())
    final_dir = out_root / plan.target
    _move_into_place(work_dir, final_dir)
    progress.stage_finished(plan.target, "cached", time.perf_counter() - started, f"restored {key[:12]}")
    result = TargetResult(plan.target, final_dir, report, cached=True)
    validation = report.get("validation")
    if validation is not None and not validation["passed"] and request.gates:
        result.error = GateFailed(_gate_message(plan.target, final_dir, validation))
    return result


def _mark_cache(folder: Path, key: str, hit: bool) -> None:
    """Record in report.json whether this folder was built or restored, and under which key."""
    path = folder / "report.json"
    report = json.loads(path.read_text())
    report["cache"] = {"hit": hit, "key": key}
    write_json(path, report)


def _load_shared(request: BuildRequest, plans: list[TargetPlan], progress: Progress) -> SharedInputs:
    from edgebuild.model import check_static_shape, load_model, model_sha256

    started = time.perf_counter()
    progress.stage_started("*", "load")
    model = load_model(request.model)
    check_static_shape(model)
    image_range = plans[0].profile.data.image_range
    datasets = []
    for path in (request.data, request.val_data):
        dataset = None
        if path is not None:
            dataset = check_fits(load_dataset(path, model.input_shape, image_range), model.input_shape, str(request.model))
            check_labels(dataset, _num_classes(model))
        datasets.append(dataset)
    shared = SharedInputs(model=model, model_sha256=model_sha256(request.model), dataset=datasets[0],
                          val_dataset=datasets[1])
    progress.stage_finished("*", "load", time.perf_counter() - started, f"{model.format}, input {model.input_shape}")
    return shared


def _num_classes(model: object) -> int | None:
    shape = None
    try:
        fn = model.concrete_function(None)  # type: ignore[attr-defined]
        shape = fn.outputs[0].shape
    except (AttributeError, IndexError):
        return None
    return int(shape[-1]) if shape is not None and len(shape) >= 2 and shape[-1] is not None else None


class BuildCancelled(KeyboardInterrupt):
    """Raised in a worker at a stage boundary after Ctrl-C in the main thread."""


@contextmanager
def _stage(timings: dict[str, float], target: str, name: str, progress: Progress, note: list[str],
           cancelled: threading.Event | None = None) -> Iterator[None]:
    if cancelled is not None and cancelled.is_set():
        raise BuildCancelled()
    progress.stage_started(target, name)
    started = time.perf_counter()
    yield
    timings[name] = round(time.perf_counter() - started, 4)
    progress.stage_finished(target, name, timings[name], note[0] if note else "")


def _samples(shared: SharedInputs, profile: Profile, request: BuildRequest) -> tuple[Splits | None, np.ndarray | None]:
    """(splits, calibration array) for one profile; calibration is None when not needed."""
    quant = profile.quantization
    splits = None
    if shared.dataset is not None:
        splits = split(len(shared.dataset.x), profile.data, quant.calibration_samples,
                       hold_out_validation=shared.val_dataset is None)
    if not quant.needs_calibration:
        return splits, None
    if splits is not None and len(splits.calibration) > 0:
        return splits, shared.dataset.x[splits.calibration]  # type: ignore[union-attr]
    shape = shared.model.fixed_input_shape(1)  # type: ignore[attr-defined]
    return splits, random_calibration(shape, quant.calibration_samples, profile.data.seed)


def _build_target(plan: TargetPlan, request: BuildRequest, shared: SharedInputs, out_root: Path,
                  progress: Progress) -> TargetResult:
    from edgebuild.converters.ptq import convert

    profile = plan.profile
    final_dir = out_root / profile.name
    out_root.mkdir(parents=True, exist_ok=True)
    work_dir = Path(out_root / f".{profile.name}.partial")
    shutil.rmtree(work_dir, ignore_errors=True)
    work_dir.mkdir()
    timings: dict[str, float] = {}
    target = profile.name
    try:
        splits, calibration = _samples(shared, profile, request)
        training = None
        note: list[str] = []
        if profile.quantization.method == "qat":
            with _stage(timings, target, "train", progress, note, shared.cancelled):
                training = _train_qat(profile, shared, splits, calibration, progress)
                note.append(f"{training['epochs_run']} epochs (best {training['best_epoch']})"
                            + (", stopped early" if training["stopped_early"] else ""))
            note = []
        with _stage(timings, target, "convert", progress, note, shared.cancelled):
            model = shared.model
            if training is not None:
                blob = training.pop("_blob")
            else:
                blob = convert(model.concrete_function(profile.model.batch), model.keep_alive,  # type: ignore[attr-defined]
                               profile.quantization, calibration)
            artifact_path = work_dir / "model.tflite"
            artifact_path.write_bytes(blob)
            note.append(f"{len(blob) / 1024:.1f} KiB")
        with _stage(timings, target, "inspect", progress, [], shared.cancelled):
            artifact = parse_artifact(blob, source=str(artifact_path))
        with _stage(timings, target, "baseline", progress, [], shared.cancelled):
            float_reference = _float_reference(shared, profile)
        compiled: dict = {}
        if profile.edgetpu.compile or profile.vela.accelerator:
            note = []
            with _stage(timings, target, "compile", progress, note, shared.cancelled):
                compiled = _compile(profile, artifact_path, work_dir)
                note.append(_compile_note(compiled))
        validation, benchmark = None, None
        if profile.validation.enabled:
            note = []
            with _stage(timings, target, "validate", progress, note, shared.cancelled):
                validation = _validate(artifact_path, artifact, profile, shared, splits, request)
                _add_compiler_checks(validation, compiled, profile)
                note.append("checks passed" if validation["passed"] else "FAILED")
        if profile.benchmark.enabled:
            note = []
            with _stage(timings, target, "benchmark", progress, note, shared.cancelled):
                benchmark = _benchmark(artifact_path, profile, shared, splits)
                note.append(f"p50 {_first_p50(benchmark):.3f} ms")
            if request.bench_device is not None:
                note = []
                with _stage(timings, target, "device", progress, note, shared.cancelled):
                    benchmark["device"] = _bench_device(work_dir, artifact_path, profile, request.bench_device)
                    device = benchmark["device"]
                    note.append(f"p50 {_first_p50(device):.3f} ms on {device.get('device', {}).get('cpu', '?')}"
                                if "error" not in device else f"FAILED: {device['error']['type']}")
        emitted: list[str] = []
        flash = None
        if profile.mcu.c_array:
            note = []
            with _stage(timings, target, "emit", progress, note, shared.cancelled):
                emitted, flash = _emit_c(blob, artifact, profile, work_dir, validation, compiled.get("vela"))
                note.append(f"flash {flash['text_bytes'] + flash['data_bytes']:,} bytes (Cortex-M4)" if flash
                            else "no arm-none-eabi-gcc: flash not measured")
        if validation is not None:
            from edgebuild.validation import add_budget_check

            vela = compiled.get("vela")
            if vela is not None:  # the NPU build: Vela's own SRAM and flash figures decide the budgets
                add_budget_check(validation, artifact, profile, vela.get("off_chip_flash_bytes") or None,
                                 ram_bytes=vela.get("sram_bytes"))
            else:
                add_budget_check(validation, artifact, profile, flash["text_bytes"] + flash["data_bytes"] if flash else None)
        with _stage(timings, target, "report", progress, [], shared.cancelled):
            report = build_report(
                profile=profile,
                model=shared.model,
                model_sha256=shared.model_sha256,
                artifact=artifact,
                artifact_file="model.tflite",
                float_reference=float_reference,
                data=_data_block(shared, splits, calibration, request),
                timings=timings,
                validation=validation,
                benchmark=benchmark,
                extra_files=emitted,
            )
            if compiled:
                report["compile"] = compiled
            if training is not None:
                report["training"] = training
            if profile.mcu.c_array:
                report["flash"] = flash or {"measured": False, "reason": "arm-none-eabi-gcc not found "
                                            "(apt-get install gcc-arm-none-eabi libnewlib-arm-none-eabi)"}
            (work_dir / "profile.resolved.toml").write_text(to_toml(profile))
            write_json(work_dir / "report.json", report)
            (work_dir / "report.md").write_text(render_markdown(report))
        if shared.cancelled.is_set():
            raise BuildCancelled()
        _move_into_place(work_dir, final_dir)
    except BaseException:
        shutil.rmtree(work_dir, ignore_errors=True)
        raise
    result = TargetResult(target, final_dir, report)
    if validation is not None and not validation["passed"] and request.gates:
        result.error = GateFailed(_gate_message(target, final_dir, validation))
    return result


def _move_into_place(work_dir: Path, final_dir: Path) -> None:
    """Swap the finished folder in; the old result survives until the new one is complete."""
    backup = final_dir.with_name(f".{final_dir.name}.previous")
    shutil.rmtree(backup, ignore_errors=True)
    if final_dir.exists():
        final_dir.rename(backup)
    work_dir.rename(final_dir)
    shutil.rmtree(backup, ignore_errors=True)


def _training_sets(shared: SharedInputs, splits: Splits | None, profile: Profile):
    if shared.dataset is None or splits is None or shared.dataset.y is None:
        from edgebuild.errors import DataError

        raise DataError("quantization.method = \"qat\" fine-tunes the model: pass labelled data with --data "
                        "(an .npz with 'x' and 'y', or an image folder with class sub-folders).")
    x, y = shared.dataset.x, shared.dataset.y
    train = (x[splits.training], y[splits.training])
    samples = _validation_samples(shared, splits, profile)
    val = (samples[0], samples[1]) if samples is not None else None
    return train, val


def _train_qat(profile: Profile, shared: SharedInputs, splits: Splits | None, calibration: np.ndarray | None,
               progress: Progress) -> dict:
    """Quantization-aware training, then the numbers that show what it bought: float vs PTQ vs QAT."""
    from edgebuild.accuracy import compare
    from edgebuild.converters.ptq import convert
    from edgebuild.converters.qat import model_for_training, run_qat
    from edgebuild.runtime import LiteRTModel

    train, val = _training_sets(shared, splits, profile)
    sample = (val[0] if val is not None else train[0])[:32]
    keras_model, bridge = model_for_training(shared.model, sample=sample)

    def epoch_done(e: dict) -> None:
        val_loss = e.get("val_loss")
        progress.message(f"  {profile.name:<10} train      epoch {e['epoch']}: loss {e['loss']:.4f}"
                         + (f", val_loss {val_loss:.4f}" if val_loss is not None else ""))

    outcome = run_qat(keras_model, train, val, profile.training, profile.quantization, batch=profile.model.batch,
                      seed=profile.data.seed, progress=epoch_done, calibration=calibration)
    block = outcome.report()
    if bridge:
        block["keras3_bridge"] = bridge
    if val is not None:
        model = shared.model
        ptq_blob = convert(model.concrete_function(profile.model.batch), model.keep_alive,  # type: ignore[attr-defined]
                           profile.quantization, calibration)
        reference = _reference_outputs(shared, val[0], f"qat-val/{len(val[0])}")
        comparison = {}
        for name, blob in (("ptq", ptq_blob), ("qat", outcome.blob)):
            comparison[name] = compare(reference, LiteRTModel(blob).predict(val[0]), val[1])
        if val[1] is not None:
            comparison["float_top1"] = comparison["qat"].get("reference_top1")
        block["comparison"] = comparison
    block["_blob"] = outcome.blob
    return block


def _float_reference(shared: SharedInputs, profile: Profile) -> dict:
    """Size and weight bytes of a plain float32 conversion of the same model (once per build)."""
    with shared.lock:
        return _float_reference_locked(shared, profile)


def _float_reference_locked(shared: SharedInputs, profile: Profile) -> dict:
    if shared.float_reference is None:
        from edgebuild.converters.ptq import convert
        from edgebuild.profiles.schema import QuantizationSection

        model = shared.model
        blob = convert(model.concrete_function(profile.model.batch), model.keep_alive,  # type: ignore[attr-defined]
                       QuantizationSection(scheme="none"), None)
        weights = parse_artifact(blob).weight_dtypes()
        shared.float_reference = {"size_bytes": len(blob), "weight_bytes": sum(weights.values())}
        shared.float_blob = blob
    return shared.float_reference


def _data_block(shared: SharedInputs, splits: Splits | None, calibration: np.ndarray | None,
                request: BuildRequest) -> dict:
    block: dict = {"source": shared.dataset.source if shared.dataset else None}
    if shared.val_dataset is not None:
        block["validation_source"] = shared.val_dataset.source
    if shared.dataset is not None:
        block["samples"] = int(len(shared.dataset.x))
        block["labels"] = shared.dataset.y is not None
    if splits is not None:
        block["splits"] = splits.describe()
    if calibration is not None:
        block["calibration"] = "random noise (--calibration random): NOT representative" if (
            shared.dataset is None) else "data"
    return block


def _reference_outputs(shared: SharedInputs, x: np.ndarray, key: str) -> list[np.ndarray]:
    with shared.lock:  # several targets usually validate on the same samples: compute once
        if key not in shared.reference_cache:
            shared.reference_cache[key] = shared.model.predict(x)  # type: ignore[attr-defined]
        return shared.reference_cache[key]


def _validate(artifact_path: Path, artifact: TfliteArtifact, profile: Profile, shared: SharedInputs,
              splits: Splits | None, request: BuildRequest) -> dict:
    from edgebuild.validation import ValidationData, validate_artifact

    data = None
    samples = _validation_samples(shared, splits, profile)
    if samples is not None:
        x, y, key = samples
        data = ValidationData(x=x, y=y, reference=_reference_outputs(shared, x, key))
    return validate_artifact(artifact_path, artifact, profile, data, check_budgets=False)


def _validation_samples(shared: SharedInputs, splits: Splits | None, profile: Profile
                        ) -> tuple[np.ndarray, np.ndarray | None, str] | None:
    """(x, y, cache key) of the validation samples: `--val-data`, else the held-out split of `--data`."""
    if shared.val_dataset is not None:
        limit = profile.data.max_validation_samples
        val = shared.val_dataset
        return val.x[:limit], (val.y[:limit] if val.y is not None else None), f"val-data/{limit}"
    if shared.dataset is None or splits is None or len(splits.validation) == 0:
        return None
    indices = splits.validation
    y = shared.dataset.y[indices] if shared.dataset.y is not None else None
    return shared.dataset.x[indices], y, ",".join(map(str, indices[:8])) + f"/{len(indices)}"


def _benchmark(artifact_path: Path, profile: Profile, shared: SharedInputs, splits: Splits | None) -> dict:
    from edgebuild.bench import benchmark_threads

    samples = _validation_samples(shared, splits, profile)
    inputs = samples[0] if samples is not None else None
    bench = profile.benchmark
    result = benchmark_threads(artifact_path, bench.threads, runs=bench.runs, warmup=bench.warmup, inputs=inputs)
    result["vs_float32"] = _never_slower(result, profile, shared, inputs)
    return result


def _never_slower(result: dict, profile: Profile, shared: SharedInputs, inputs: np.ndarray | None) -> dict | None:
    """Compare with the plain float32 model on this host (measured once per build and thread count).

    An optimized artifact that runs slower than float32 here (dynamic-range models on x86, float16 without
    a GPU) is worth a warning: the user may be shipping a slower model without knowing.
    """
    import tempfile

    from edgebuild.bench import benchmark

    if shared.float_blob is None:
        return None
    threads = profile.benchmark.threads[0]
    key = (threads, profile.benchmark.runs)
    with shared.lock:
        if key not in shared.float_latency:
            with tempfile.NamedTemporaryFile(suffix=".tflite") as handle:
                handle.write(shared.float_blob)
                handle.flush()
                shared.float_latency[key] = benchmark(Path(handle.name), threads=threads, runs=profile.benchmark.runs,
                                                      warmup=profile.benchmark.warmup, inputs=inputs)["p50_ms"]
        float_p50 = shared.float_latency[key]
    p50 = result["threads"][str(threads)]["p50_ms"]
    ratio = p50 / float_p50 if float_p50 > 0 else None
    return {"threads": threads, "float32_p50_ms": float_p50, "ratio": ratio,
            "slower": ratio is not None and ratio > 1.1}


def _bench_device(work_dir: Path, artifact_path: Path, profile: Profile, options: object) -> dict:
    """Benchmark on the device (the Edge TPU-compiled model when there is one); a failure is recorded, not fatal."""
    from edgebuild.device import DeviceError

    compiled = work_dir / "model_edgetpu.tflite"
    path = compiled if compiled.exists() else artifact_path
    bench = profile.benchmark
    try:
        result = options.run(path, threads=bench.threads, runs=bench.runs, warmup=bench.warmup)  # type: ignore[attr-defined]
    except DeviceError as exc:
        return {"url": options.device, "error": {"type": type(exc).__name__, "exit_code": exc.exit_code,  # type: ignore[attr-defined]
                                                 "message": str(exc)}}
    result["artifact"] = path.name
    return result


def _first_p50(benchmark: dict) -> float:
    runs = benchmark.get("threads", {})
    first = next(iter(runs.values()), {})
    return float(first.get("p50_ms", 0.0))


def _emit_c(blob: bytes, artifact: TfliteArtifact, profile: Profile, work_dir: Path, validation: dict | None,
            vela: dict | None) -> tuple[list[str], dict | None]:
    """C sources for TFLite Micro (from the Vela output on Ethos-U), and their Cortex-M4 flash when measurable."""
    import tempfile

    from edgebuild.codegen import CSourceOptions, write_c_sources
    from edgebuild.codegen.flash import compile_for_cortex_m, object_sizes

    arena = None
    if validation is not None:
        arena = validation.get("arena", {}).get("recommended_bytes")
    if vela is not None:
        blob = (work_dir / vela["files"]["model"]).read_bytes()
        artifact = parse_artifact(blob, source=vela["files"]["model"])
        if vela.get("sram_bytes"):
            arena = _round_up(int(vela["sram_bytes"] * (1.0 + profile.mcu.arena_margin)), 16)
    options = CSourceOptions(symbol=profile.mcu.symbol, xxd_names=profile.mcu.xxd_names, arena_bytes=arena)
    paths = write_c_sources(blob, artifact, work_dir / "c", options)
    flash = None
    with tempfile.TemporaryDirectory(prefix="edgebuild-cc-") as scratch:
        obj = compile_for_cortex_m(work_dir / "c" / "model_data.cc", Path(scratch))
        sizes = object_sizes(obj) if obj is not None else None
        if sizes is not None:
            flash = {"measured": True, "tool": "arm-none-eabi-g++ -mcpu=cortex-m4 -mthumb -Os; arm-none-eabi-size",
                     "text_bytes": sizes["text"], "data_bytes": sizes["data"], "bss_bytes": sizes["bss"]}
    return [str(p.relative_to(work_dir)) for p in paths], flash


def _round_up(value: int, multiple: int) -> int:
    return (value + multiple - 1) // multiple * multiple


def _compile(profile: Profile, artifact_path: Path, work_dir: Path) -> dict:
    """Run the target's compilers: edgetpu_compiler when installed, Vela for Ethos-U."""
    compiled: dict = {}
    if profile.edgetpu.compile:
        from edgebuild.compilers.edgetpu import compile_edgetpu, edgetpu_status

        status = edgetpu_status(profile.edgetpu.compiler)
        compiled["edgetpu"] = (compile_edgetpu(artifact_path, work_dir, status["compiler"], profile.edgetpu.min_runtime)
                               if status["available"] else status)
    if profile.vela.accelerator:
        from edgebuild.compilers.vela import compile_vela

        vela = profile.vela
        compiled["vela"] = compile_vela(artifact_path, work_dir, vela.accelerator, vela.system_config, vela.memory_mode,
                                        Path(vela.config_file) if vela.config_file else None)
    return compiled


def _compile_note(compiled: dict) -> str:
    notes = []
    edgetpu = compiled.get("edgetpu")
    if edgetpu is not None:
        notes.append(f"edgetpu: {edgetpu.get('ops_mapped_edgetpu')}/{edgetpu.get('total_ops')} ops mapped"
                     if edgetpu.get("available", True) else "edgetpu_compiler not installed: own rule check only")
    vela = compiled.get("vela")
    if vela is not None:
        notes.append(f"vela: {vela.get('npu_ops')} NPU / {vela.get('cpu_ops')} CPU ops, "
                     f"SRAM {vela.get('sram_bytes', 0):,} B, ~{vela.get('inference_time_ms', 0):.3f} ms")
    return "; ".join(notes)


def _add_compiler_checks(validation: dict, compiled: dict, profile: Profile) -> None:
    """The real compiler's verdict, when it ran: fewer ops mapped than the profile requires fails the build."""
    edgetpu = compiled.get("edgetpu")
    if edgetpu is not None and edgetpu.get("available", True) and edgetpu.get("mapped_fraction") is not None:
        need = profile.edgetpu.min_mapped_fraction
        got = edgetpu["mapped_fraction"]
        validation["checks"].append({
            "name": "edgetpu_compiler", "passed": got >= need,
            "summary": f"{edgetpu['ops_mapped_edgetpu']} of {edgetpu['total_ops']} ops mapped to the Edge TPU "
                       f"({100 * got:.0f}%, required {100 * need:.0f}%)"})
        validation["passed"] = all(c["passed"] for c in validation["checks"])


def _gate_message(target: str, out_dir: Path, validation: dict) -> str:
    failed = [c for c in validation.get("checks", []) if not c.get("passed", True)]
    reasons = "; ".join(c.get("summary", c.get("name", "")) for c in failed) or "see the report"
    return (
        f"Target '{target}' failed validation: {reasons}. The artifact and report are kept in {out_dir} "
        "for inspection (see report.md). Fix the cause, or pass --no-gates to report without failing."
    )


__all__ = ["BuildRequest", "TargetResult", "build", "plan_build", "default_out_dir", "__version__"]
