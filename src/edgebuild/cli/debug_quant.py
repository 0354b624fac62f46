"""`edgebuild debug-quant MODEL --target T --data D`: which layer breaks int8, and would more calibration help.

Converts the model the way a build of target T would (PTQ int8, the same calibration and validation
split), measures every layer's quantization error (the `layers` stage) and prints the ranked table,
then a short calibration-size sweep, and what selective precision would keep when the profile asks
for it (`quantization.selective = "auto"` or `quantization.keep`). Nothing is written unless --json.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer

from edgebuild.errors import DataError, UnsupportedError


def register(app: typer.Typer) -> None:
    app.command("debug-quant")(debug_quant)


def debug_quant(
    model: Path = typer.Argument(..., help="The model (SavedModel folder, .keras or .h5)."),
    target: str = typer.Option(..., "--target", "-t", help="Target whose int8 conversion and gates apply."),
    data: Path = typer.Option(..., "--data", "-d", help="Calibration and validation data, split as a build does."),
    set_: list[str] = typer.Option([], "--set", help="Profile override KEY=VALUE (repeatable)."),
    samples: int | None = typer.Option(None, "--samples", help="Validation samples to analyse (layers.samples)."),
    top: int | None = typer.Option(None, "--top", help="Rows of the table (layers.top)."),
    sweep: bool = typer.Option(True, "--sweep/--no-sweep", help="Accuracy against calibration set size."),
    as_json: Path | None = typer.Option(None, "--json", help="Also write the report's layers block here."),
) -> int:
    """Per-layer quantization error of the target's int8 model: ranked, with causes."""
    block = analyse(
        model,
        target,
        data,
        list(set_),
        samples,
        top,
        sweep,
        progress=lambda text: typer.echo(f"debug-quant: {text}", err=True),
    )
    from edgebuild.quant_debug.render import layers_text

    typer.echo(layers_text(block))
    if as_json is not None:
        as_json.write_text(json.dumps(block, indent=2) + "\n")
    return 0


def analyse(
    model_path: Path,
    target: str,
    data: Path,
    overrides: list[str],
    samples: int | None,
    top: int | None,
    sweep: bool,
    progress: Callable[[str], None] = lambda text: None,
) -> dict[str, Any]:
    """The `layers` block for one target, computed like a build computes it (also used by the API and tests)."""
    from edgebuild.pipeline import BuildRequest, plan_build

    if samples is not None:
        overrides = [*overrides, f"layers.samples={samples}"]
    if top is not None:
        overrides = [*overrides, f"layers.top={top}"]
    plan = plan_build(BuildRequest(model=model_path, targets=(target,), data=data, overrides=tuple(overrides)))[0]
    profile = plan.profile
    quant = profile.quantization
    if quant.scheme != "int8" or quant.method != "ptq":
        raise UnsupportedError(
            f"debug-quant analyses post-training int8 models; target '{profile.name}' uses scheme "
            f'"{quant.scheme}", method "{quant.method}". Use --set quantization.scheme=int8 '
            "(and --set quantization.method=ptq)."
        )
    from edgebuild.converters import convert
    from edgebuild.data import check_fits, load_dataset
    from edgebuild.model import check_static_shape, load_model
    from edgebuild.quant_debug.analysis import analyze
    from edgebuild.quant_debug.selective import Inputs, run
    from edgebuild.quant_debug.sweep import calibration_sweep
    from edgebuild.samples import single
    from edgebuild.stages.context import SharedInputs, SilentProgress, TargetContext

    progress(f"loading {model_path}")
    loaded = load_model(model_path)
    check_static_shape(loaded)
    if loaded.multi_input:
        raise UnsupportedError(
            f"{model_path} has {len(loaded.inputs)} inputs ({', '.join(loaded.input_names)}); debug-quant's "
            "per-layer analysis feeds single-input models only. `edgebuild build` builds and validates it."
        )
    dataset = check_fits(
        load_dataset(data, loaded.input_shape, profile.data.image_range), loaded.input_shape, str(model_path)
    )
    shared = SharedInputs(model=loaded, model_sha256="", dataset=dataset)
    with tempfile.TemporaryDirectory(prefix="edgebuild-debug-quant-") as folder:
        ctx = TargetContext(profile=profile, shared=shared, work_dir=Path(folder), progress=SilentProgress())
        ctx.choose_samples()
        validation = ctx.validation_samples()
        if validation is None or ctx.calibration is None:
            raise DataError(f"{data} leaves no validation samples after the calibration split: pass more data.")
        x, y, key = validation
        x, calibration = single(x, "debug-quant"), single(ctx.calibration, "debug-quant")
        batch = profile.model.batch
        progress(f"converting: float32 and int8 ({len(ctx.calibration)} calibration samples)")
        shared.float_baseline(batch)
        assert shared.float_blob is not None
        artifact = convert(loaded.export(batch), None, quant, ctx.calibration)
        progress(f"measuring every layer on {min(len(x), profile.layers.samples)} validation samples")
        analysis = analyze(
            artifact,
            shared.float_blob,
            calibration,
            x,
            io=quant.io,
            dense_per_channel=quant.dense_per_channel,
            samples=profile.layers.samples,
        )
        block = analysis.block(profile.layers.top)
        inputs = Inputs(
            profile=profile,
            float_blob=shared.float_blob,
            artifact_blob=artifact,
            calibration=calibration,
            x=x,
            y=y,
            reference=shared.reference_outputs(x, key),
            work_dir=Path(folder),
        )
        from edgebuild.quant_debug.selective import evaluate

        plain = evaluate(artifact, inputs)
        block["accuracy"] = plain.short
        if sweep:
            progress("calibration sweep")
            block["calibration_sweep"] = calibration_sweep(inputs)
        if quant.selective != "off" or quant.keep:
            progress("selective precision")
            block["selective"], _ = run(inputs, analysis.ranked, plain.passed)
            block["selective"]["before"] = plain.short
    return block
