"""Training-time passes before conversion: quantization-aware training today."""

from __future__ import annotations

from edgebuild.errors import DataError
from edgebuild.stages.context import TargetContext


def training_sets(ctx: TargetContext):
    """(train, val) arrays: the training split of --data, and the validation samples of this build."""
    shared = ctx.shared
    if shared.dataset is None or ctx.splits is None or shared.dataset.y is None:
        raise DataError("quantization.method = \"qat\" fine-tunes the model: pass labelled data with --data "
                        "(an .npz with 'x' and 'y', or an image folder with class sub-folders).")
    x, y = shared.dataset.x, shared.dataset.y
    train = (x[ctx.splits.training], y[ctx.splits.training])
    samples = ctx.validation_samples()
    val = (samples[0], samples[1]) if samples is not None else None
    return train, val


def train_qat(ctx: TargetContext) -> tuple[bytes, dict]:
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
