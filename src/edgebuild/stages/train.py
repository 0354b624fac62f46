"""Training-time passes before conversion: structured pruning, sparsity, distillation, then QAT."""

from __future__ import annotations

from typing import Any

import numpy as np

from edgebuild.errors import DataError
from edgebuild.samples import single
from edgebuild.stages.context import BuildCancelled, TargetContext

Arrays = tuple[np.ndarray, np.ndarray | None]  # (x, y): y is None for unlabelled data


def training_sets(ctx: TargetContext, labels_required: bool = True) -> tuple[Arrays, Arrays | None]:
    """(train, early_stopping) arrays: the training and early-stopping splits of --data.

    Never the validation samples the accuracy gate scores (see `gate_samples`): no training pass trains on
    them or picks its best epoch with them. `early_stopping` is None when the data was too small to hold
    one out (training then watches its own loss).
    """
    shared = ctx.shared
    if shared.dataset is None or ctx.splits is None or (labels_required and shared.dataset.y is None):
        raise DataError(
            'quantization.method = "qat" fine-tunes the model: pass labelled data with --data '
            "(an .npz with 'x' and 'y', or an image folder with class sub-folders)."
        )
    x, y = shared.dataset.x, shared.dataset.y

    def take(indices: np.ndarray) -> Arrays:
        return x[indices], (y[indices] if y is not None else None)

    held_out = ctx.splits.early_stopping
    return take(ctx.splits.training), (take(held_out) if len(held_out) else None)


def gate_samples(ctx: TargetContext) -> Arrays | None:
    """(x, y) of the accuracy gate's validation samples, for reporting accuracy only; None without any."""
    samples = ctx.validation_samples()
    return (single(samples[0], "training"), samples[1]) if samples is not None else None


def _stop_if_cancelled(ctx: TargetContext) -> None:
    """Ctrl-C during training stopped it at a batch end; the stage ends here, before any further work."""
    if ctx.shared.cancelled.is_set():
        raise BuildCancelled()


def train_prune_distill(ctx: TargetContext) -> tuple[Any, dict[str, Any]]:
    """[pruning]/[distillation]: (the tf_keras model to convert, the report blocks they produced).

    Training uses the `recovery_*` settings of [training], early stopping watches the early-stopping split,
    and the accuracy in the report is measured on the gate's validation samples (never trained on).
    """
    from edgebuild.converters import model_for_training, recovery_settings

    profile, shared = ctx.profile, ctx.shared
    train, held_out = training_sets(ctx, labels_required=False)
    model, bridge = model_for_training(shared.model, sample=train[0][:32])
    pruning, distillation, blocks = profile.pruning, profile.distillation, {}
    training, cancel = recovery_settings(profile.training), shared.cancelled

    def progress(e: dict[str, Any]) -> None:
        _epoch_message(ctx, e)

    teacher = model
    if distillation.enabled and distillation.teacher != "original":
        from edgebuild.converters import load_keras

        teacher = load_keras(distillation.teacher)
    if pruning.kind == "structured":
        from edgebuild.converters import run_structured_pruning

        pruned = run_structured_pruning(
            model,
            train,
            held_out,
            pruning,
            training,
            distillation,
            seed=profile.data.seed,
            progress=progress,
            teacher=teacher,
            evaluation=gate_samples(ctx),
            cancel=cancel,
        )
        _stop_if_cancelled(ctx)
        model, blocks["pruning"] = pruned.model, pruned.report()
        _budget_note(ctx, pruned.training)
        blocks["pruning"]["artifact_before"] = _unpruned_artifact(ctx)
    elif pruning.kind in ("unstructured", "m_by_n"):
        from edgebuild.converters import run_sparsity

        sparse = run_sparsity(
            model, train, held_out, pruning, training, seed=profile.data.seed, progress=progress, cancel=cancel
        )
        _stop_if_cancelled(ctx)
        model, blocks["sparsity"] = sparse.model, sparse.report()
        _budget_note(ctx, sparse.training)
    elif distillation.enabled:
        from edgebuild.converters import make_student, run_distillation

        student, what = make_student(teacher, distillation.student, round_to=pruning.round_to)
        outcome = run_distillation(
            teacher,
            student,
            train,
            held_out,
            distillation,
            training,
            seed=profile.data.seed,
            progress=progress,
            student_label=what,
            cancel=cancel,
        )
        _stop_if_cancelled(ctx)
        blocks["distillation"] = outcome.report()
        _budget_note(ctx, outcome.training)
        model = student
    if bridge:
        blocks["keras3_bridge"] = bridge
    return model, blocks


def train_qat(ctx: TargetContext, keras_model: Any = None) -> tuple[bytes, dict[str, Any]]:
    """Quantization-aware training; returns the int8 artifact and the report's `training` block.

    The block compares float, PTQ and QAT on the same validation samples, so users see what QAT bought.
    """
    from edgebuild.accuracy import compare
    from edgebuild.converters import convert, model_for_training, run_qat
    from edgebuild.runtime import LiteRTModel

    profile, shared = ctx.profile, ctx.shared
    train, held_out = training_sets(ctx)
    sample = train[0][:32]
    bridge = None
    if keras_model is None:  # QAT of the loaded model; else of the pruned/distilled one
        keras_model, bridge = model_for_training(shared.model, sample=sample)

    def epoch_done(e: dict[str, Any]) -> None:
        _epoch_message(ctx, e)

    outcome = run_qat(
        keras_model,
        train,
        held_out,
        profile.training,
        profile.quantization,
        batch=profile.model.batch,
        seed=profile.data.seed,
        progress=epoch_done,
        calibration=None if ctx.calibration is None else single(ctx.calibration, "quantization-aware training"),
        cancel=shared.cancelled,
    )
    _stop_if_cancelled(ctx)
    block = outcome.report()
    _budget_note(ctx, outcome.training)
    if bridge:
        block["keras3_bridge"] = bridge
    val = gate_samples(ctx)
    if val is not None:
        model = shared.model
        ptq_blob = convert(model.export(profile.model.batch), None, profile.quantization, ctx.calibration)
        reference = shared.reference_outputs(val[0], f"qat-val/{len(val[0])}")
        block["comparison"] = {
            name: compare(reference, LiteRTModel(blob).predict(val[0]), val[1])
            for name, blob in (("ptq", ptq_blob), ("qat", outcome.blob))
        }
    return outcome.blob, block


def _epoch_message(ctx: TargetContext, e: dict[str, Any]) -> None:
    val_loss, lr = e.get("val_loss"), e.get("lr")
    ctx.progress.message(
        f"  {ctx.profile.name:<10} train      epoch {e['epoch']}: loss {e['loss']:.4f}"
        + (f", early-stopping loss {val_loss:.4f}" if val_loss is not None else "")
        + (f", lr {lr:.2g}" if lr is not None else "")
    )


def _budget_note(ctx: TargetContext, result: object) -> None:
    """Say on the console when a training pass ran out of its time budget (the report's block says so too).

    `result`: a TrainingResult, a DistillationOutcome (which holds one), or None when nothing trained.
    """
    from edgebuild.converters import TrainingResult

    training = getattr(result, "training", result)
    if isinstance(training, TrainingResult) and training.stopped_by == "time_budget":
        ctx.progress.message(
            f"  {ctx.profile.name:<10} train      {training.stop_reason} after "
            f"{training.epochs_run} epochs; raise training.time_budget to train longer"
        )


def _unpruned_artifact(ctx: TargetContext) -> dict[str, Any]:
    """Size and latency of the unpruned model with the same scheme, so the report shows what pruning bought."""
    from edgebuild.bench import benchmark
    from edgebuild.converters import convert

    model, profile = ctx.shared.model, ctx.profile
    blob = convert(model.export(profile.model.batch), None, profile.quantization, ctx.calibration)
    block: dict[str, Any] = {"size_bytes": len(blob)}
    if profile.benchmark.enabled:
        block["p50_ms"] = benchmark(
            blob, threads=profile.benchmark.threads[0], runs=profile.benchmark.runs, warmup=profile.benchmark.warmup
        )["p50_ms"]
    return block
