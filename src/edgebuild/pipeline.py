"""The one driver: resolve profiles, load the model once, then run each target's stages in order.

Each target is built in a hidden temporary folder beside its destination and
moved into place only when complete, so a failed or interrupted build leaves
the previous result untouched and never a partial artifact.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgebuild import partials
from edgebuild.data import check_labels
from edgebuild.errors import EdgebuildError, GateFailed, UnsupportedError
from edgebuild.partials import clean_stale_partials as clean_stale_partials  # public: the API and tests use it
from edgebuild.plan import TargetPlan, make_plan, needs_baseline
from edgebuild.profiles import Profile, resolve, to_toml
from edgebuild.report import write_json
from edgebuild.stages.context import BuildCancelled, Progress, SharedInputs, SilentProgress, TargetContext

if TYPE_CHECKING:
    from edgebuild.cache import BuildCache
    from edgebuild.device import DeviceBenchOptions
    from edgebuild.model import LoadedModel


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
    bench_device: DeviceBenchOptions | None = None  # also benchmark on a device
    stage_timeout: float | None = None  # seconds a non-training stage may run; None = $EDGEBUILD_STAGE_TIMEOUT or 1800


@dataclass
class TargetResult:
    target: str
    out_dir: Path
    report: dict[str, Any]
    error: EdgebuildError | None = None
    cached: bool = False

    @property
    def passed(self) -> bool:
        return self.error is None and self.report.get("validation", {}).get("passed", True)


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

            raise DataError(
                f"Data {path} does not exist. Pass an .npz with 'x' (and 'y'), an .npy, or an image folder."
            )
    profiles = resolve_targets(request.targets, request.overrides)
    return [
        make_plan(
            p, request.data is not None, request.random_calibration, bench_device=request.bench_device is not None
        )
        for p in profiles
    ]


def default_out_dir(model_path: Path) -> Path:
    name = model_path.stem if model_path.is_file() else model_path.resolve().name
    return Path("build") / name


def build(request: BuildRequest, progress: Progress | None = None) -> list[TargetResult]:
    """Build every requested target; cache hits are restored without loading TensorFlow.

    Errors of one target do not stop the others; the caller decides the exit code from the results.
    The work runs in a separate thread. Ctrl-C and SIGTERM only set the cancel event (raising
    KeyboardInterrupt in the middle of a TFLite conversion aborts TensorFlow's threads): every worker
    stops at its next stage boundary and removes its partial folder, then KeyboardInterrupt is raised
    here. A second Ctrl-C, or a SIGTERM build still running after a short grace, removes the partial
    folders and exits at once. A watchdog ends a build whose stage runs past the stage timeout (a hang
    must become an error that names the stage, never a silent wait).
    """
    progress = progress or SilentProgress()
    plans = plan_build(request)
    cancelled = threading.Event()
    running: dict[str, tuple[str, float]] = {}
    results: list[list[TargetResult]] = []  # the worker's one result, handed to this thread
    failure: list[BaseException] = []
    terminated: list[float] = []
    timeout = _stage_timeout(request)

    def work() -> None:
        try:
            results.append(_build_all(request, plans, progress, cancelled, running))
        except BaseException as exc:  # handed to the main thread
            failure.append(exc)

    def on_interrupt(signum: int, frame: object) -> None:
        if cancelled.is_set() and signum == signal.SIGINT:
            _abandon(130)
        cancelled.set()
        if signum == signal.SIGTERM:
            terminated.append(time.monotonic())
        progress.message("interrupted: stopping every target at its next stage boundary (Ctrl-C again to quit now)...")

    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = (
        {sig: signal.signal(sig, on_interrupt) for sig in (signal.SIGINT, signal.SIGTERM)} if in_main_thread else {}
    )
    runner = threading.Thread(target=work, name="edgebuild-build", daemon=True)
    try:
        runner.start()
        while runner.is_alive():
            runner.join(0.2)
            if terminated and time.monotonic() - terminated[0] > SIGTERM_GRACE_S:
                _abandon(143)
            stuck = _stuck_stage(running, timeout)
            if stuck is not None:
                cancelled.set()
                raise _stage_timeout_error(stuck, timeout)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if cancelled.is_set():
        raise KeyboardInterrupt
    if failure:
        raise failure[0]
    return results[0]


SIGTERM_GRACE_S = 5.0
DEFAULT_STAGE_TIMEOUT_S = 1800.0
UNTIMED_STAGES = {"prune", "distill", "train", "device", "firmware"}  # own budgets / tool timeouts


def _stage_timeout(request: BuildRequest) -> float:
    if request.stage_timeout is not None:
        return request.stage_timeout
    try:
        return float(os.environ.get("EDGEBUILD_STAGE_TIMEOUT", DEFAULT_STAGE_TIMEOUT_S))
    except ValueError:
        return DEFAULT_STAGE_TIMEOUT_S


def _stuck_stage(running: dict[str, tuple[str, float]], timeout: float) -> tuple[str, str, float] | None:
    now = time.monotonic()
    for target, (stage, started) in list(running.items()):
        if stage not in UNTIMED_STAGES and now - started > timeout:
            return target, stage, now - started
    return None


def _stage_timeout_error(stuck: tuple[str, str, float], timeout: float) -> EdgebuildError:
    """Dump every thread's stack for a bug report, remove partial folders, and name the stage."""
    import faulthandler
    import tempfile

    from edgebuild.errors import StageTimeout

    target, stage, seconds = stuck
    fd, stacks = tempfile.mkstemp(prefix="edgebuild-stuck-", suffix=".txt")
    with os.fdopen(fd, "w") as handle:
        faulthandler.dump_traceback(handle, all_threads=True)
    partials.remove_active_partials()
    return StageTimeout(
        f"Target '{target}' spent {seconds:.0f} s in its '{stage}' stage, past the {timeout:.0f} s stage limit, "
        f"so the build was stopped instead of waiting forever. Thread stacks are in {stacks}: please attach "
        "them to a bug report. Retry with -j 1 to rule out a parallel-build problem, or raise the limit with "
        "EDGEBUILD_STAGE_TIMEOUT=SECONDS for a model that is just slow. No partial artifacts were left behind."
    )


def _abandon(exit_code: int) -> None:
    """Exit now, without waiting for stage boundaries, leaving no partial folders behind."""
    partials.remove_active_partials()
    sys.stderr.write("edgebuild: interrupted; no partial artifacts were left behind\n")
    sys.stderr.flush()
    os._exit(exit_code)


def _build_all(
    request: BuildRequest,
    plans: list[TargetPlan],
    progress: Progress,
    cancelled: threading.Event,
    running: dict[str, tuple[str, float]],
) -> list[TargetResult]:
    from edgebuild.hashing import hash_path

    out_root = request.out or default_out_dir(request.model)
    for stale in partials.clean_stale_partials(out_root):
        progress.message(f"removed {stale.name} left by an interrupted build")
    model_sha = hash_path(request.model)  # once: the cache key and every report use it
    cache, keys = _cache_keys(request, plans, model_sha)
    results: dict[str, TargetResult] = {}
    pending = []
    for plan in plans:
        restored = _restore_cached(cache, keys.get(plan.target), plan, request, out_root, progress)
        if restored is not None:
            results[plan.target] = restored
        else:
            pending.append(plan)
    if pending:
        shared = _load_shared(request, pending, progress, model_sha)
        shared.cancelled, shared.running = cancelled, running
        _trace_once(shared, pending)

        def build_one(plan: TargetPlan) -> TargetResult:
            try:
                result = _build_target(plan, request, shared, out_root, progress, keys.get(plan.target))
            except EdgebuildError as exc:
                result = TargetResult(plan.target, out_root / plan.target, {}, error=exc)
            if cache is not None and result.report:
                cache.store(keys[plan.target], result.out_dir)
            return result

        for result in _run_all(build_one, pending, default_jobs(request.jobs, len(pending))):
            results[result.target] = result
    ordered = [results[plan.target] for plan in plans]
    from edgebuild.summary import write_summary

    write_summary(out_root, {r.target: r.report for r in ordered if r.report})
    return ordered


def default_jobs(requested: int | None, targets: int) -> int:
    """Requested, else one per core, capped by available memory (~1.5 GiB per concurrent conversion)."""
    if requested is not None:
        return max(1, min(requested, targets))
    cores = os.cpu_count() or 1
    try:
        available_kib = next(
            int(line.split()[1])
            for line in Path("/proc/meminfo").read_text().splitlines()
            if line.startswith("MemAvailable:")
        )
        by_memory = max(1, available_kib // (1536 * 1024))
    except (OSError, StopIteration, ValueError):
        by_memory = 1
    return max(1, min(cores, by_memory, targets))


def _run_all(build_one: Callable[[TargetPlan], TargetResult], plans: list[TargetPlan], jobs: int) -> list[TargetResult]:
    """Build targets serially or in threads that share the traced model (the converter releases the GIL)."""
    if jobs <= 1:
        return [build_one(plan) for plan in plans]
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="edgebuild-target") as pool:
        return list(pool.map(build_one, plans))


def _trace_once(shared: SharedInputs, plans: list[TargetPlan]) -> None:
    """Trace and export every batch size and the float baseline up front, in one thread.

    Workers then only read: each conversion of the shared model loads the exported SavedModel, so no
    two threads ever trace or save the same TensorFlow object (which can deadlock, see LoadedModel.export).
    """
    model = shared.model
    for batch in sorted({plan.profile.model.batch for plan in plans}):
        model.concrete_function(batch)
        model.export(batch)
    baseline_plans = [plan for plan in plans if needs_baseline(plan.profile)]
    if baseline_plans:
        shared.float_baseline(baseline_plans[0].profile.model.batch)


def _cache_keys(
    request: BuildRequest, plans: list[TargetPlan], model_sha: str
) -> tuple[BuildCache | None, dict[str, str]]:
    if not request.use_cache or request.bench_device is not None:  # device numbers are measured fresh each time
        return None, {}
    from edgebuild.cache import BuildCache, build_key, default_cache_dir, referenced_files, stack_fingerprint
    from edgebuild.hashing import hash_path

    cache = BuildCache(request.cache_dir or default_cache_dir())
    data = {
        "data": hash_path(request.data) if request.data else None,
        "val_data": hash_path(request.val_data) if request.val_data else None,
    }
    flags = {"random_calibration": request.random_calibration}
    versions = stack_fingerprint()
    keys = {
        plan.target: build_key(
            model_sha256=model_sha,
            profile_toml=to_toml(plan.profile),
            data_sha256=data,
            flags=flags,
            versions=versions,
            files=referenced_files(plan.profile),
        )
        for plan in plans
    }
    return cache, keys


def _restore_cached(
    cache: BuildCache | None,
    key: str | None,
    plan: TargetPlan,
    request: BuildRequest,
    out_root: Path,
    progress: Progress,
) -> TargetResult | None:
    if cache is None or key is None:
        return None
    entry, note = cache.lookup(key)
    if note:
        progress.message(f"  {plan.target:<10} {note}")
    if entry is None:
        return None
    started = time.perf_counter()
    out_root.mkdir(parents=True, exist_ok=True)
    work_dir = partials.new_partial_dir(out_root, plan.target)
    try:
        cache.restore(entry, work_dir)
        report = json.loads((work_dir / "report.json").read_text())
        report["cache"] = {"hit": True, "key": key}
        write_json(work_dir / "report.json", report)
        final_dir = out_root / plan.target
        partials.move_into_place(work_dir, final_dir)
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)
        partials.ACTIVE_PARTIALS.discard(work_dir)
    progress.stage_finished(plan.target, "cached", time.perf_counter() - started, f"restored {key[:12]}")
    result = TargetResult(plan.target, final_dir, report, cached=True)
    validation = report.get("validation")
    if validation is not None and not validation["passed"] and request.gates:
        result.error = GateFailed(_gate_message(plan.target, final_dir, validation))
    return result


def _load_shared(request: BuildRequest, plans: list[TargetPlan], progress: Progress, model_sha: str) -> SharedInputs:
    from edgebuild.model import check_static_shape, load_model
    from edgebuild.named_data import load_model_data

    started = time.perf_counter()
    progress.stage_started("*", "load")
    model = load_model(request.model)
    check_static_shape(model)
    if model.multi_input:
        _check_multi_input_plans(model, plans)
    image_range = plans[0].profile.data.image_range
    datasets = []
    classes = _num_classes(model) if request.data or request.val_data else None  # traces the any-batch function
    for path in (request.data, request.val_data):
        dataset = None
        if path is not None:
            dataset = load_model_data(path, model.inputs, image_range, str(request.model))
            check_labels(dataset, classes)
        datasets.append(dataset)
    shared = SharedInputs(model=model, model_sha256=model_sha, dataset=datasets[0], val_dataset=datasets[1])
    shapes = ", ".join(f"{s.name} {s.shape}" for s in model.inputs) if model.multi_input else str(model.input_shape)
    progress.stage_finished("*", "load", time.perf_counter() - started, f"{model.format}, input {shapes}")
    return shared


TRAINING_STAGES = ("prune", "distill", "train")


def _check_multi_input_plans(model: LoadedModel, plans: list[TargetPlan]) -> None:
    """Before any work: the passes that train or re-quantize a model take single-input models only."""
    for plan in plans:
        quant = plan.profile.quantization
        training = [s.name for s in plan.stages if s.name in TRAINING_STAGES]
        if training or quant.selective != "off" or quant.keep:
            what = f"the '{training[0]}' pass" if training else "selective precision (quantization.selective/keep)"
            raise UnsupportedError(
                f"Model {model.source} has {len(model.inputs)} inputs ({', '.join(model.input_names)}); "
                f"target '{plan.target}' asks for {what}, which supports single-input models only. "
                "Build it with post-training quantization (the default: drop the pruning/QAT/distillation or "
                "selective settings), or train those steps yourself and build the result."
            )


def _num_classes(model: LoadedModel) -> int | None:
    shape = None
    try:
        fn = model.concrete_function(None)
        shape = fn.outputs[0].shape
    except (AttributeError, IndexError):
        return None
    return int(shape[-1]) if shape is not None and len(shape) >= 2 and shape[-1] is not None else None


def _build_target(
    plan: TargetPlan,
    request: BuildRequest,
    shared: SharedInputs,
    out_root: Path,
    progress: Progress,
    cache_key: str | None = None,
) -> TargetResult:
    """Run one target's stages in a hidden folder, then move it into place."""
    profile = plan.profile
    final_dir = out_root / profile.name
    out_root.mkdir(parents=True, exist_ok=True)
    work_dir = partials.new_partial_dir(out_root, profile.name)
    work_dir.mkdir()
    ctx = TargetContext(profile=profile, shared=shared, work_dir=work_dir, progress=progress)
    try:
        report = _run_stages(ctx, plan, request, cache_key)
        if shared.cancelled.is_set():
            raise BuildCancelled()
        partials.move_into_place(work_dir, final_dir)
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)  # gone already after a successful move
        partials.ACTIVE_PARTIALS.discard(work_dir)
    result = TargetResult(profile.name, final_dir, report)
    validation = report.get("validation")
    if validation is not None and not validation["passed"] and request.gates:
        result.error = GateFailed(_gate_message(profile.name, final_dir, validation))
    return result


def _run_stages(ctx: TargetContext, plan: TargetPlan, request: BuildRequest, cache_key: str | None) -> dict[str, Any]:
    """Run exactly the plan's stages, in order (the list `edgebuild plan` prints); returns the report."""
    from edgebuild.stages.steps import STEPS, TargetState

    state = TargetState(bench_device=request.bench_device, cache_key=cache_key)
    ctx.choose_samples()
    for stage in plan.stages:
        with ctx.stage(stage.name) as note:
            note.append(STEPS[stage.name](ctx, state))
    return state.report


def _gate_message(target: str, out_dir: Path, validation: dict[str, Any]) -> str:
    failed = [c for c in validation.get("checks", []) if not c.get("passed", True)]
    reasons = "; ".join(c.get("summary", c.get("name", "")).rstrip(". ") for c in failed) or "see the report"
    return (
        f"Target '{target}' failed validation: {reasons}. The artifact and report are kept in {out_dir} "
        "for inspection (see report.md). Fix the cause, or pass --no-gates to report without failing."
    )


__all__ = ["BuildRequest", "Progress", "SilentProgress", "TargetResult", "build", "default_out_dir", "plan_build"]
