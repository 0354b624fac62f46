"""Training-time passes before conversion: structured pruning, sparsity, distillation, then QAT."""

from __future__ import annotations

from edgebuild.errors import DataError
from edgebuild.stages.context import TargetContext


def training_sets(ctx: TargetContext, labels_required: bool = True):
    """(train, val) arrays: the training split of --data, and the validation samples of this build."""
    shared = ctx.shared
    if shared.dataset is None or ctx.splits is None or (labels_required and shared.dataset.y is None):
        raise DataError("quantization.method = \"qat\" fine-tunes the model: pass labelled data with --data "
                        "(an .npz with 'x' and 'y', or an image folder with class sub-folders).")
    x, y = shared.dataset.x, shared.dataset.y
    train = (x[ctx.splits.training], y[ctx.splits.training] if y is not None else None)
    samples = ctx.validation_samples()
    val = (samples[0], samples[1]) if samples is not None else None
    return train, val


def train_prune_distill(ctx: TargetContext) -> tuple[object, dict]:
    """[pruning]/[distillation]: (the tf_keras model to convert, the report blocks they produced)."""
    from edgebuild.converters.qat import model_for_training

    profile, shared = ctx.profile, ctx.shared
    train, val = training_sets(ctx, labels_required=False)
    model, bridge = model_for_training(shared.model, sample=(val[0] if val is not None else train[0])[:32])
    pruning, distillation, blocks = profile.pruning, profile.distillation, {}

    def progress(e: dict) -> None:
        ctx.progress.message(f"  {profile.name:<10} train      epoch {e['epoch']}: loss {e['loss']:.4f}")

    teacher = model
    if distillation.enabled and distillation.teacher != "original":
        from edgebuild.converters.distill import load_keras

        teacher = load_keras(distillation.teacher)
    if pruning.kind == "structured":
        from edgebuild.converters.prune import run_structured_pruning

        out = run_structured_pruning(model, train, val, pruning, profile.training,
                                     distillation if distillation.enabled else None, seed=profile.data.seed,
                                     progress=progress, teacher=teacher)
        model, blocks["pruning"] = out.model, out.report()
        blocks["pruning"]["artifact_before"] = _unpruned_artifact(ctx)
    elif pruning.kind in ("unstructured", "m_by_n"):
        from edgebuild.converters.sparsity import run_sparsity

        out = run_sparsity(model, train, val, pruning, profile.training, seed=profile.data.seed, progress=progress)
        model, blocks["sparsity"] = out.model, out.report()
    elif distillation.enabled:
        from edgebuild.converters.distill import distill, make_student

        student, what = make_student(teacher, distillation.student, round_to=pruning.round_to)
        blocks["distillation"] = distill(teacher, student, train, val, distillation, profile.training,
                                         seed=profile.data.seed, progress=progress, student_label=what).report()
        model = student
    if bridge:
        blocks["keras3_bridge"] = bridge
    return model, blocks


def train_qat(ctx: TargetContext, keras_model: object | None = None) -> tuple[bytes, dict]:
    """Quantization-aware training; returns the int8 artifact and the report's `training` block.

    The block compares float, PTQ and QAT on the same validation samples, so users see what QAT bought.
    """
    from edgebuild.accuracy import compare
    from edgebuild.converters.ptq import convert
    from edgebuild.converters.qat import model_for_training, run_qat
    from edgebuild.runtime import LiteRTModel

    profile, shared = ctx.profile, ctx.shared
    train, val = training_sets(ctx)
    sample = (val[0] if val is not None else train[0])[:32]
    bridge = None
    if keras_model is None:  # QAT of the loaded model; else of the pruned/distilled one
        keras_model, bridge = model_for_training(shared.model, sample=sample)

    def epoch_done(e: dict) -> None:
        val_loss = e.get("val_loss")
        ctx.progress.message(f"  {profile.name:<10} train      epoch {e['epoch']}: loss {e['loss']:.4f}"
                             + (f", val_loss {val_loss:.4f}" if val_loss is not None else ""))

    outcome = run_qat(keras_model, train, val, profile.training, profile.quantization, batch=profile.model.batch,
                      seed=profile.data.seed, progress=epoch_done, calibration=ctx.calibration)
    block = outcome.report()
    if bridge:
        block["keras3_bridge"] = bridge
    if val is not None:
        model = shared.model
        ptq_blob = convert(model.concrete_function(profile.model.batch), model.keep_alive, profile.quantization,
                           ctx.calibration)
        reference = shared.reference_outputs(val[0], f"qat-val/{len(val[0])}")
        block["comparison"] = {name: compare(reference, LiteRTModel(blob).predict(val[0]), val[1])
                               for name, blob in (("ptq", ptq_blob), ("qat", outcome.blob))}
    return outcome.blob, block


def _unpruned_artifact(ctx: TargetContext) -> dict:
    """Size and latency of the unpruned model with the same scheme, so the report shows what pruning bought."""
    from edgebuild.bench import benchmark
    from edgebuild.converters.ptq import convert

    model, profile = ctx.shared.model, ctx.profile
    blob = convert(model.concrete_function(profile.model.batch), model.keep_alive, profile.quantization, ctx.calibration)
    block: dict = {"size_bytes": len(blob)}
    if profile.benchmark.enabled:
        block["p50_ms"] = benchmark(blob, threads=profile.benchmark.threads[0], runs=profile.benchmark.runs,
                                    warmup=profile.benchmark.warmup)["p50_ms"]
    return block
