"""The typed shape of a target profile.

Each stage owns one sub-table and validates it here; unknown keys are errors
(`extra="forbid"`), every model is frozen so no stage can change another's
settings behind its back.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

_UNITS = {"": 1, "b": 1, "kb": 1000, "kib": 1024, "mb": 1000**2, "mib": 1024**2, "gb": 1000**3, "gib": 1024**3}


def _parse_bytes(value: object) -> object:
    """Accept 262144, "256KiB", "1 MiB" or "512kB" for sizes."""
    if isinstance(value, str):
        match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", value)
        if not match or match.group(2).lower() not in _UNITS:
            raise ValueError('a size such as 262144, "256KiB" or "1MiB"')
        return int(float(match.group(1)) * _UNITS[match.group(2).lower()])
    return value


ByteSize = Annotated[int, BeforeValidator(_parse_bytes), Field(gt=0)]


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelSection(Section):
    batch: int = Field(1, ge=1, description="dynamic batch dimensions are fixed to this size")


class QuantizationSection(Section):
    scheme: Literal["float16", "int8", "int16x8", "dynamic", "none"] = "none"
    method: Literal["ptq", "qat"] = "ptq"
    io: Literal["float32", "int8", "uint8", "int16"] = "float32"
    calibration_samples: int = Field(200, ge=1, le=100_000)
    dense_per_channel: bool = Field(
        True,
        description="per-channel weight scales for FULLY_CONNECTED; false = one scale per tensor, "
        "which TFLite Micro needs far less arena for (mcu profiles)",
    )
    # selective precision (issue 15): int8 except the layers that break it (edgebuild.quant_debug.selective)
    selective: Literal["off", "auto"] = Field(
        "off",
        description="auto: when the int8 accuracy gate fails, keep the fewest worst layers (ranked by [layers]) at "
        "a higher precision the target runs (mobile: float compute, float16 weights; mcu: int16 activations)",
    )
    keep: list[str] = Field([], description="regexes of layer (output tensor) names kept at higher precision")

    @model_validator(mode="after")
    def _io_fits_scheme(self) -> QuantizationSection:
        allowed = {
            "int8": {"float32", "int8", "uint8"},
            "int16x8": {"float32", "int16"},
        }.get(self.scheme, {"float32"})
        if self.io not in allowed:
            raise ValueError(f"io = {self.io!r} does not fit scheme = {self.scheme!r}; choose one of {sorted(allowed)}")
        return self

    @property
    def needs_calibration(self) -> bool:
        return self.scheme in {"int8", "int16x8"}


class DataSection(Section):
    seed: int = 0
    validation_fraction: float = Field(0.2, gt=0.0, lt=1.0)
    max_validation_samples: int = Field(500, ge=1)
    image_range: Literal["0-255", "0-1", "-1-1"] = "0-255"


class ValidationSection(Section):
    enabled: bool = True
    rules: Literal["mobile", "edgetpu", "mcu", "none"] = "none"
    max_accuracy_drop: float = Field(2.0, ge=0.0, le=100.0, description="percentage points")
    min_agreement: float = Field(
        0.95, ge=0.0, le=1.0, description="without labels: least share of top-1 predictions equal to the float model's"
    )
    metric: Literal["auto", "top1", "snr"] = Field(
        "auto", description="auto: top-1 for probability/logit outputs or labelled data, else SNR vs float"
    )
    min_snr_db: float = Field(15.0, description="lowest output SNR against the float model, in dB (metric snr)")
    max_tflm_steps: float = Field(
        16.0, ge=0.0, description="largest TFLite Micro vs LiteRT-reference output difference, in quantization steps"
    )
    tflm: bool = False


class LayersSection(Section):
    """Per-layer quantization error of PTQ int8 builds: the `layers` stage (issue 15)."""

    enabled: bool = True
    top: int = Field(10, ge=1, le=1000, description="rows of the ranked table in report.json / report.md")
    samples: int = Field(100, ge=1, le=100_000, description="validation samples the per-layer analysis runs")


class BudgetSection(Section):
    flash: ByteSize | None = None
    ram: ByteSize | None = None


class BenchmarkSection(Section):
    enabled: bool = True
    threads: list[Annotated[int, Field(ge=1, le=64)]] = [1]
    runs: int = Field(100, ge=1)
    warmup: int = Field(10, ge=0)
    host_representative: bool = Field(
        False,
        description="the target runs on a CPU like this host's (phones): host latency predicts the device's, "
        "so an artifact slower than float32 here is worth a warning; for NPUs and MCUs it says nothing",
    )


class McuSection(Section):
    c_array: bool = False
    symbol: str = "g_model"
    xxd_names: bool = False
    arena_margin: float = Field(0.1, ge=0.0, le=4.0, description="safety margin on the measured arena")
    # The firmware stage: link the C sources against TensorFlow Lite Micro, measure the ELF, run it on `board`.
    firmware: bool = False
    board: str = "mps2-an386"  # a built-in board (targets/boards/<name>.toml) or a board .toml path
    tflm_dir: str | None = None  # a TFLite Micro tree; else $EDGEBUILD_TFLM_DIR; without either: stage skipped
    firmware_samples: int = Field(10, ge=1, le=1000, description="validation samples the firmware runs")
    firmware_kernels: Literal["cmsis-nn", "reference"] = "cmsis-nn"
    firmware_host_check: bool = True  # also compile the generated C++ with host g++ and compare its outputs

    @field_validator("board")
    @classmethod
    def _board_exists(cls, board: str) -> str:
        from edgebuild.errors import ProfileError
        from edgebuild.firmware.boards import load_board

        try:
            load_board(board)
        except ProfileError as exc:
            raise ValueError(str(exc)) from None
        return board

    @field_validator("symbol")
    @classmethod
    def _symbol_is_c_identifier(cls, symbol: str) -> str:
        # the code generator's own rules and keyword list, so a name it would refuse fails here, before TensorFlow
        from edgebuild.codegen.identifiers import symbol_problem

        problem = symbol_problem(symbol)
        if problem is not None:
            raise ValueError(problem)
        return symbol


class EdgeTpuSection(Section):
    compile: bool = False
    compiler: str = "edgetpu_compiler"
    min_runtime: int = Field(14, ge=10)
    min_mapped_fraction: float = Field(0.0, ge=0.0, le=1.0)


# `vela --accelerator-config` choices of the pinned Vela (a unit test compares them with `vela --help`);
# edgebuild.compilers.vela.ACCELERATORS is this list.
VelaAccelerator = Literal[
    "ethos-u55-32",
    "ethos-u55-64",
    "ethos-u55-128",
    "ethos-u55-256",
    "ethos-u65-256",
    "ethos-u65-512",
    "ethos-u85-128",
    "ethos-u85-256",
    "ethos-u85-512",
    "ethos-u85-1024",
    "ethos-u85-2048",
]


class VelaSection(Section):
    """Arm Ethos-U: Vela runs when an accelerator is set (see targets/ethos-u55.toml)."""

    accelerator: VelaAccelerator | None = None
    system_config: str | None = None  # a section of Vela's bundled Arm/vela.ini, or of config_file
    memory_mode: str | None = None
    config_file: str | None = None


class PruningSection(Section):
    kind: Literal["none", "structured", "unstructured", "m_by_n"] = "none"
    ratio: float = Field(
        0.5, ge=0.0, lt=1.0, description="structured: share of channels removed; sparsity: default target"
    )
    criterion: Literal["l1", "l2", "bn_scale"] = "l1"
    round_to: int = Field(1, ge=1, description="kept channel counts rounded to a multiple (8/16 for accelerators)")
    min_channels: int = Field(1, ge=1)
    layer_ratios: dict[str, Annotated[float, Field(ge=0.0, lt=1.0)]] = {}
    target_sparsity: float | None = Field(None, ge=0.0, lt=1.0)
    initial_sparsity: float = Field(0.0, ge=0.0, lt=1.0)
    schedule: Literal["polynomial", "constant"] = "polynomial"
    m_by_n: tuple[int, int] = (2, 4)
    frequency: int = Field(10, ge=1)
    skip_layers: list[str] = []
    recovery: Literal["auto", "fine-tune", "distill"] = Field(
        "auto", description="structured: auto = fine-tune, then distill from the unpruned model if still short"
    )


class DistillationSection(Section):
    enabled: bool = False
    teacher: str = "original"
    student: str = "pruned"  # "pruned" | "width:0.5" | path to a .keras/.h5
    temperature: float = Field(4.0, gt=0.0)
    alpha: float = Field(0.5, ge=0.0, le=1.0)


class TrainingSection(Section):
    optimizer: Literal["adam", "sgd", "rmsprop"] = "adam"
    epochs: int = Field(5, ge=1)
    batch_size: int = Field(32, ge=1)
    learning_rate: float = Field(1e-4, gt=0.0)
    early_stopping: int = Field(0, ge=0, description="patience in epochs; 0 turns it off")
    mixed_precision: Literal["auto", "float16", "bfloat16", "off"] = "off"
    schedule: Literal["constant", "cosine", "plateau"] = Field("constant", description="QAT learning-rate schedule")
    time_budget: float = Field(1800.0, ge=0.0, description="seconds per training pass, then stop; 0 = no limit")
    # recovery after pruning surgery, sparsity and distillation (the fields above are QAT's)
    recovery_epochs: int = Field(100, ge=1, description="epoch ceiling; early stopping ends recovery sooner")
    recovery_learning_rate: float = Field(2e-3, gt=0.0)
    recovery_early_stopping: int = Field(12, ge=0, description="patience in epochs; 0 turns it off")
    recovery_schedule: Literal["constant", "cosine", "plateau"] = "plateau"


class OptimizeSection(Section):
    """The search space of `edgebuild optimize` (edgebuild.optimize): every combination is one candidate build."""

    pruning_ratios: list[Annotated[float, Field(ge=0.0, lt=1.0)]] = Field(
        [0.0, 0.25, 0.5, 0.75], min_length=1, description="structured pruning ratios (0 = unpruned)"
    )
    widths: list[Annotated[float, Field(gt=0.0, le=1.0)]] = Field(
        [1.0], min_length=1, description="width multipliers below 1 train a narrower student by distillation"
    )
    precisions: list[Literal["float16", "int8", "int16x8"]] = Field(["int8"], min_length=1)
    methods: list[Literal["ptq", "qat"]] = Field(["ptq"], min_length=1)
    distillation: list[bool] = Field([False], min_length=1, description="recover pruned models by distillation")
    fidelities: list[Annotated[float, Field(gt=0.0, le=1.0)]] = Field(
        [0.25, 1.0], min_length=1, description="successive halving: share of the training epochs per rung"
    )
    eta: int = Field(2, ge=2, description="successive halving keeps the best 1/eta of each rung")


class Profile(Section):
    """A fully resolved target profile: what one build of one target does."""

    name: str
    description: str = ""
    model: ModelSection = ModelSection()
    quantization: QuantizationSection = QuantizationSection()
    data: DataSection = DataSection()
    validation: ValidationSection = ValidationSection()
    layers: LayersSection = LayersSection()
    budget: BudgetSection = BudgetSection()
    benchmark: BenchmarkSection = BenchmarkSection()
    mcu: McuSection = McuSection()
    edgetpu: EdgeTpuSection = EdgeTpuSection()
    vela: VelaSection = VelaSection()
    pruning: PruningSection = PruningSection()
    distillation: DistillationSection = DistillationSection()
    training: TrainingSection = TrainingSection()
    optimize: OptimizeSection = OptimizeSection()

    @model_validator(mode="after")
    def _name_is_safe(self) -> Profile:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", self.name):
            raise ValueError(f"name {self.name!r} must be letters, digits, '_', '-' or '.' (it names a folder)")
        return self
