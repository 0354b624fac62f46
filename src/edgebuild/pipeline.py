"""The one driver: resolve profiles, load the model once, then run each target's stages in order.

Each target is built in a hidden temporary folder beside its destination and
moved into place only when complete, so a failed or interrupted build leaves
the previous result untouched and never a partial artifact.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgebuild import partials
from edgebuild.cached_builds import cache_keys, restore_cached
from edgebuild.data import check_labels
from edgebuild.errors import EdgebuildError, GateFailed, UnsupportedError
from edgebuild.partials import clean_stale_partials as clean_stale_partials  # public: the API and tests use it
from edgebuild.plan import TargetPlan, make_plan, needs_baseline
from edgebuild.profiles import Profile, resolve
from edgebuild.stages.context import BuildCancelled, Progress, SharedInputs, SilentProgress, TargetContext
from edgebuild.watchdog import Running, stage_timeout, supervise

if TYPE_CHECKING:
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

    def work(cancelled: threading.Event, running: Running) -> list[TargetResult]:
        return _build_all(request, plans, progress, cancelled, running)

    return supervise(work, progress, stage_timeout(request.stage_timeout))


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
    cache, keys = cache_keys(request, plans, model_sha)
    results: dict[str, TargetResult] = {}
    pending = []
    for plan in plans:
        restored = restore_cached(cache, keys.get(plan.target), plan.target, out_root, progress)
        if restored is not None:
            results[plan.target] = _gated(TargetResult(plan.target, *restored, cached=True), request.gates)
        else:
            pending.append(plan)
    if pending:
        shared = _load_shared(request, pending, progress, model_sha)
        shared.cancelled, shared.running = cancelled, running
        pending = _preflight(request, shared, pending, out_root, results)
        if pending:
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


def _preflight(
    request: BuildRequest,
    shared: SharedInputs,
    plans: list[TargetPlan],
    out_root: Path,
    results: dict[str, TargetResult],
) -> list[TargetPlan]:
    """Targets the model's layers alone rule out fail here, before tracing and conversion; returns the rest."""
    from edgebuild.checks.preflight import check

    for target, error in check(shared.model.keras_model, [p.profile for p in plans], str(request.model)).items():
        results[target] = TargetResult(target, out_root / target, {}, error=error)
    return [plan for plan in plans if plan.target not in results]


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
    return _gated(TargetResult(profile.name, final_dir, report), request.gates)


def _run_stages(ctx: TargetContext, plan: TargetPlan, request: BuildRequest, cache_key: str | None) -> dict[str, Any]:
    """Run exactly the plan's stages, in order (the list `edgebuild plan` prints); returns the report."""
    from edgebuild.stages.steps import STEPS, TargetState

    state = TargetState(bench_device=request.bench_device, cache_key=cache_key)
    ctx.choose_samples()
    for stage in plan.stages:
        with ctx.stage(stage.name) as note:
            note.append(STEPS[stage.name](ctx, state))
    return state.report


def _gated(result: TargetResult, gates: bool) -> TargetResult:
    """With gates on, a target whose validation failed carries a GateFailed error naming the failed checks."""
    validation = result.report.get("validation")
    if validation is None or validation["passed"] or not gates:
        return result
    failed = [c for c in validation.get("checks", []) if not c.get("passed", True)]
    reasons = "; ".join(c.get("summary", c.get("name", "")).rstrip(". ") for c in failed) or "see the report"
    result.error = GateFailed(
        f"Target '{result.target}' failed validation: {reasons}. The artifact and report are kept in "
        f"{result.out_dir} for inspection (see report.md). Fix the cause, or build without gates to report "
        "without failing (--no-gates; gates=False in the Python API)."
    )
    return result


__all__ = ["BuildRequest", "Progress", "SilentProgress", "TargetResult", "build", "default_out_dir", "plan_build"]
