"""(model, profile) -> the ordered stages of one target's build.

Runs before TensorFlow loads, so impossible requests (a feature this version
lacks, integer quantization without calibration data) fail in milliseconds.
"""

from __future__ import annotations

from dataclasses import dataclass

from edgebuild.errors import DataError, ProfileError, UnsupportedError
from edgebuild.profiles.schema import Profile


@dataclass(frozen=True)
class Stage:
    name: str
    what: str


@dataclass(frozen=True)
class TargetPlan:
    profile: Profile
    stages: tuple[Stage, ...]

    @property
    def target(self) -> str:
        return self.profile.name


def make_plan(profile: Profile, has_data: bool, random_calibration: bool, bench_device: bool = False) -> TargetPlan:
    """The stages one target's build runs, in order: the pipeline executes exactly this list."""
    _check_training_passes(profile, has_data)
    quant = profile.quantization
    if quant.method == "qat":
        if quant.scheme != "int8":
            raise UnsupportedError(
                f"Target '{profile.name}': quantization-aware training produces full-integer int8 models, but "
                f'quantization.scheme = "{quant.scheme}". Use --set quantization.scheme=int8 or '
                "--set quantization.method=ptq."
            )
        if not has_data:
            raise DataError(
                f"Target '{profile.name}' uses quantization-aware training (quantization.method = \"qat\"), which "
                "fine-tunes the model: pass labelled data with --data (an .npz with 'x' and 'y')."
            )
    if quant.needs_calibration and not has_data and not random_calibration:
        raise DataError(
            f"Target '{profile.name}' quantizes to {quant.scheme} and needs calibration data: pass --data "
            "(an .npz with 'x', an .npy, or an image folder). For a smoke test only, "
            "--calibration random uses noise (accuracy will be meaningless)."
        )
    stages = []
    pruning, distillation = profile.pruning, profile.distillation
    if pruning.kind != "none":
        t = profile.training
        recovery = (
            "distillation"
            if distillation.enabled
            else {
                "auto": "fine-tuning (distillation if it recovers better)",
                "fine-tune": "fine-tuning",
                "distill": "distillation",
            }[pruning.recovery]
        )
        recovery += (
            f" (up to {t.recovery_epochs} epochs, lr {t.recovery_learning_rate} {t.recovery_schedule}, "
            f"early stopping {t.recovery_early_stopping or 'off'}, budget {t.time_budget:g} s)"
        )
        what = (
            f"structured: remove {pruning.ratio:.0%} of channels by {pruning.criterion}, then {recovery}"
            if pruning.kind == "structured"
            else f"{pruning.kind} sparsity, then fine-tuning"
        )
        stages.append(Stage("prune", what))
    elif distillation.enabled:
        stages.append(
            Stage(
                "distill", f"student {distillation.student}, T={distillation.temperature}, alpha={distillation.alpha}"
            )
        )
    if quant.method == "qat":
        t = profile.training
        stages.append(
            Stage(
                "train",
                f"quantization-aware training: up to {t.epochs} epochs, {t.optimizer} "
                f"lr {t.learning_rate}, early stopping {t.early_stopping or 'off'}; PTQ comparison",
            )
        )
    stages.append(Stage("convert", _convert_text(profile)))
    stages.append(Stage("inspect", "read the artifact back: ops, dtypes, sizes"))
    if needs_baseline(profile):
        stages.append(Stage("baseline", "plain float32 conversion once per build, for size and latency ratios"))
    compilers = (
        [f"edgetpu_compiler -m {profile.edgetpu.min_runtime} when it is installed"] if profile.edgetpu.compile else []
    ) + ([f"Arm Vela for {profile.vela.accelerator}"] if profile.vela.accelerator else [])
    if compilers:
        stages.append(Stage("compile", "; ".join(compilers)))
    if profile.validation.enabled:
        stages.append(Stage("validate", _validate_text(profile, has_data)))
    layers = layers_stage(profile, has_data)  # issue 15: per-layer quantization error, selective precision
    if layers is not None:
        stages.append(layers)
    if profile.benchmark.enabled:
        threads = ", ".join(str(t) for t in profile.benchmark.threads)
        stages.append(
            Stage(
                "benchmark", f"LiteRT invoke() latency on this host, {profile.benchmark.runs} runs, threads {threads}"
            )
        )
        if bench_device:
            stages.append(Stage("device", "the same benchmark on the device (--bench-device)"))
    if profile.mcu.c_array:
        stages.append(
            Stage("emit", f"C sources (model_data.cc/.h, model_ops.h, model_settings.h) as '{profile.mcu.symbol}'")
        )
    firmware = profile.mcu.c_array and profile.mcu.firmware and profile.validation.enabled
    if firmware:
        mcu = profile.mcu
        stages.append(
            Stage(
                "firmware",
                (
                    f"link a TFLite Micro firmware for {mcu.board} ({mcu.firmware_kernels} kernels), "
                    "measure flash and RAM "
                    f"from the ELF, run {mcu.firmware_samples} validation samples under QEMU "
                    "against LiteRT's reference kernels"
                    + ("; compile the generated C++ with host g++" if mcu.firmware_host_check else "")
                    + " (skipped with a note without a TFLite Micro tree, the cross compiler or QEMU)"
                ),
            )
        )
    if profile.validation.enabled and (profile.budget.flash or profile.budget.ram):
        stages.append(
            Stage(
                "budgets",
                "flash and RAM against the budget: the linked firmware image when it was "
                "built, else the model array and the declared tensor arena",
            )
        )
    stages.append(Stage("report", "report.json, report.md, profile.resolved.toml"))
    return TargetPlan(profile=profile, stages=tuple(stages))


def needs_baseline(profile: Profile) -> bool:
    """The float32 baseline serves validation (size ratios) and the never-slower benchmark; bare conversions skip it."""
    return profile.validation.enabled or profile.benchmark.enabled


def _check_training_passes(profile: Profile, has_data: bool) -> None:
    """Combinations of pruning, distillation and QAT that cannot work, refused before TensorFlow loads."""
    pruning, distillation = profile.pruning, profile.distillation
    trains = pruning.kind != "none" or distillation.enabled
    if trains and not has_data:
        raise DataError(
            f"Target '{profile.name}' prunes or distills the model, which trains it: pass training data with --data "
            "(an .npz with 'x' and, for fine-tuning, 'y')."
        )
    if distillation.enabled and distillation.student == "pruned" and pruning.kind != "structured":
        raise ProfileError(
            f'Target \'{profile.name}\': distillation.student = "pruned" needs pruning.kind = "structured". '
            "Set --set pruning.kind=structured, or name a student: --set distillation.student=width:0.5."
        )
    if distillation.enabled and pruning.kind in {"unstructured", "m_by_n"}:
        raise UnsupportedError(
            f"Target '{profile.name}': distillation after sparsity pruning would refill the zeroed weights. "
            "Use one of them (--set distillation.enabled=false, or --set pruning.kind=structured)."
        )


def _convert_text(profile: Profile) -> str:
    quant = profile.quantization
    text = {
        "none": "float32, no quantization",
        "float16": "float16 weights",
        "dynamic": "dynamic-range int8 weights",
        "int8": "full-integer int8",
        "int16x8": "int16 activations, int8 weights",
    }[quant.scheme]
    if quant.needs_calibration:
        text += f", {quant.calibration_samples} calibration samples"
    return f"{text}, {quant.io} I/O, batch {profile.model.batch}"


def _validate_text(profile: Profile, has_data: bool) -> str:
    parts = []
    if profile.validation.rules != "none":
        parts.append(f"{profile.validation.rules} op rules")
    if has_data:
        parts.append(f"accuracy vs float (max drop {profile.validation.max_accuracy_drop} points)")
    if profile.validation.tflm:
        parts.append("TFLite Micro run + exact arena")
    return ", ".join(parts) or "nothing to check"


def layers_stage(profile: Profile, has_data: bool) -> Stage | None:
    """The per-layer quantization error stage (edgebuild.stages.quant_debug), for PTQ int8 builds with data."""
    quant = profile.quantization
    selective = quant.selective != "off" or bool(quant.keep)
    if selective and (quant.scheme != "int8" or quant.method != "ptq"):
        raise UnsupportedError(
            f"Target '{profile.name}': selective precision (quantization.selective / quantization.keep) starts from "
            f'a post-training int8 model, but quantization.scheme = "{quant.scheme}" and method = '
            f'"{quant.method}". Use --set quantization.scheme=int8 --set quantization.method=ptq.'
        )
    if quant.scheme != "int8" or quant.method != "ptq" or not profile.validation.enabled or not has_data:
        return None
    if not profile.layers.enabled and not selective:
        return None
    what = (
        f"per-layer quantization error on {profile.layers.samples} validation samples: float vs int8 tensors, "
        "the error each layer adds (TFLite debugger's layer-wise model), ranked, with causes"
    )
    if quant.keep:
        what += f"; keep {', '.join(quant.keep)} at higher precision (ai-edge-quantizer)"
    elif quant.selective == "auto":
        what += "; if the accuracy gate fails, keep the worst layers at higher precision until it passes"
    return Stage("layers", what)
