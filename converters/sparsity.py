"""Weight sparsity through TFMOT (`[pruning] kind = "unstructured"` or `"m_by_n"`).

What it is and is not: the model keeps every shape. TFMOT's
`prune_low_magnitude` masks the smallest-magnitude weights during
fine-tuning, following a schedule (`PolynomialDecay` from
`initial_sparsity` to `target_sparsity` over the first epoch, then held; or
`ConstantSparsity` from the first step), or in an
M:N pattern (2:4: at most 2 non-zero weights in every 4 consecutive input
weights) for hardware that can skip them. `strip_pruning` then leaves a plain
model whose zeros are real zeros.

The dense `.tflite` stays the same size: the report gives the measured
sparsity per layer, the `.tflite` size and its gzip-compressed size next to
the dense model's (zeros compress), and no speed-up is claimed: LiteRT's
CPU kernels run the zeros like any other weight.

Which layers: Conv1D/2D/3D, Conv2DTranspose and Dense, except those named in
`skip_layers` (TFMOT 0.8.1 wraps DepthwiseConv2D but left its kernel dense
when tried, so it is not offered). The M:N pattern applies to Conv2D and
Dense whose inputs per output (kernel size x input channels) are a multiple
of N; others stay dense and are listed under `skipped`. The
fine-tuning step counter (`UpdatePruningStep`) is attached to the model's
own `fit` so the shared training loop (`train.fit`) drives the schedule.
"""

from __future__ import annotations

import gzip
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edgebuild.errors import ProfileError, UnsupportedError

SPARSE_KINDS = ("unstructured", "m_by_n")
SCHEDULES = ("polynomial", "constant")
_UNSTRUCTURED = {"Conv1D", "Conv2D", "Conv3D", "Conv2DTranspose", "Dense"}
_M_BY_N = {"Conv2D", "Dense"}


@dataclass(frozen=True)
class SparsityOptions:
    kind: str = "unstructured"
    target_sparsity: float = 0.5
    initial_sparsity: float = 0.0
    schedule: str = "polynomial"
    m: int = 2
    n: int = 4
    frequency: int = 10  # mask update every N steps
    skip_layers: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.kind not in SPARSE_KINDS:
            raise ProfileError(
                f"pruning.kind = {self.kind!r} is not a sparsity kind; choose one of "
                f"{', '.join(SPARSE_KINDS)} (or 'structured' to remove channels)."
            )
        for key, value in (("target_sparsity", self.target_sparsity), ("initial_sparsity", self.initial_sparsity)):
            if not (0.0 <= value < 1.0) or math.isnan(value):
                raise ProfileError(
                    f"pruning.{key} = {value} is out of range: the share of zero weights, "
                    "from 0 up to but not including 1 (e.g. 0.75)."
                )
        if self.initial_sparsity > self.target_sparsity:
            raise ProfileError(
                f"pruning.initial_sparsity = {self.initial_sparsity} exceeds pruning.target_sparsity "
                f"= {self.target_sparsity}; the schedule ramps up to the target."
            )
        if self.schedule not in SCHEDULES:
            raise ProfileError(f"pruning.schedule = {self.schedule!r}; choose one of {', '.join(SCHEDULES)}.")
        if not (1 <= self.m < self.n):
            raise ProfileError(f"pruning m_by_n = {self.m}:{self.n} is not valid; M must be in 1..N-1 (e.g. 2:4).")
        if self.frequency < 1:
            raise ProfileError(
                f"pruning.frequency = {self.frequency} must be >= 1 (training steps between mask updates)."
            )

    @classmethod
    def from_section(cls, section: Any) -> SparsityOptions:
        """From a `[pruning]` section; fields it lacks take their defaults (`ratio` doubles as the target)."""
        target: Any = getattr(section, "target_sparsity", None)
        if target is None:
            target = getattr(section, "ratio", 0.5)
        m_by_n = getattr(section, "m_by_n", None) or (2, 4)
        return cls(
            kind=section.kind,
            target_sparsity=float(target),
            initial_sparsity=float(getattr(section, "initial_sparsity", 0.0)),
            schedule=getattr(section, "schedule", "polynomial"),
            m=int(m_by_n[0]),
            n=int(m_by_n[1]),
            frequency=int(getattr(section, "frequency", 10)),
            skip_layers=tuple(getattr(section, "skip_layers", ()) or ()),
        )


def _tfmot() -> Any:
    from edgebuild._tf import tfmot

    return tfmot()


def wrap(model: Any, options: SparsityOptions, steps_per_epoch: int) -> tuple[Any, list[str], list[str]]:
    """(model with prunable layers wrapped by prune_low_magnitude, wrapped layer names, M:N-incompatible names)."""
    from edgebuild._tf import tf_keras

    keras2 = tf_keras()
    tfmot = _tfmot()
    sparsity = tfmot.sparsity.keras
    if not (isinstance(model, keras2.Sequential) or getattr(model, "_is_graph_network", False)):
        raise UnsupportedError(f"Sparsity needs a Sequential or functional tf_keras model; {model.name} is subclassed.")
    # The ramp ends within the first epoch: every epoch then ends at the target sparsity, so the
    # best-weights restore of train.fit can never hand back a less sparse model.
    frequency = max(1, min(options.frequency, steps_per_epoch - 1))
    end_step = max(frequency, ((steps_per_epoch - 1) // frequency) * frequency)
    if options.kind == "m_by_n" or options.schedule == "constant":
        schedule = sparsity.ConstantSparsity(
            options.target_sparsity if options.kind == "unstructured" else 0.5, begin_step=0, frequency=frequency
        )
    else:
        schedule = sparsity.PolynomialDecay(
            options.initial_sparsity, options.target_sparsity, begin_step=0, end_step=end_step, frequency=frequency
        )
    eligible = _M_BY_N if options.kind == "m_by_n" else _UNSTRUCTURED
    wrapped: list[str] = []

    skipped: list[str] = []

    def fits(layer: Any) -> bool:
        if options.kind != "m_by_n":
            return True
        inputs = int(np.prod(layer.kernel.shape[:-1]))
        if inputs % options.n:
            skipped.append(layer.name)
            return False
        return True

    def clone(layer: Any) -> Any:
        if type(layer).__name__ in eligible and layer.name not in options.skip_layers and fits(layer):
            kwargs = {"pruning_schedule": schedule}
            if options.kind == "m_by_n":
                kwargs["sparsity_m_by_n"] = (options.m, options.n)
            try:  # a fresh copy: TFMOT would otherwise share (and train) the original model's variables
                pruned = sparsity.prune_low_magnitude(layer.__class__.from_config(layer.get_config()), **kwargs)
            except (ValueError, TypeError) as exc:
                raise UnsupportedError(
                    f"TFMOT cannot prune layer '{layer.name}' ({type(layer).__name__}): "
                    f"{str(exc).splitlines()[0][:200]}. Add it to pruning.skip_layers."
                ) from None
            wrapped.append(layer.name)
            return pruned
        return layer.__class__.from_config(layer.get_config())

    wrapped_model = keras2.models.clone_model(model, clone_function=clone)
    _copy_weights(model, wrapped_model)
    if not wrapped:
        raise UnsupportedError(
            f"No layer of {model.name} can be made sparse (TFMOT prunes {', '.join(sorted(eligible))}); nothing to do."
        )
    return wrapped_model, wrapped, skipped


def _copy_weights(model: Any, wrapped_model: Any) -> None:
    """The original weights into the wrapped model (wrappers add mask/threshold/step variables of their own)."""
    source = {layer.name: layer.get_weights() for layer in model.layers}
    for layer in wrapped_model.layers:
        target = getattr(layer, "layer", layer)
        if source.get(target.name):
            target.set_weights(source[target.name])


def strip(model: Any) -> Any:
    return _tfmot().sparsity.keras.strip_pruning(model)


def measured_sparsity(model: Any) -> dict[str, float]:
    """{layer: share of exactly-zero kernel weights} for layers with kernels (after strip_pruning)."""
    result = {}
    for layer in model.layers:
        for w in layer.weights:
            if w.name.split("/")[-1].split(":")[0] in ("kernel", "depthwise_kernel", "pointwise_kernel"):
                value = np.asarray(w.numpy())
                result[f"{layer.name}/{w.name.split('/')[-1].split(':')[0]}"] = round(float((value == 0).mean()), 4)
    return result


def gzip_size(blob: bytes) -> int:
    return len(gzip.compress(blob, compresslevel=9, mtime=0))


def float_tflite(model: Any) -> bytes:
    """A plain float32 conversion (dense size: sparsity only shows once compressed)."""
    from edgebuild.converters.ptq import convert, trace_keras
    from edgebuild.profiles.schema import QuantizationSection

    shape = (1, *tuple(model.inputs[0].shape)[1:])
    return convert(trace_keras(model, shape), model, QuantizationSection(scheme="none"), None)


@dataclass
class SparsityOutcome:
    model: Any  # stripped tf_keras model (plain layers, real zeros)
    options: SparsityOptions
    layers: list[str]
    sparsity: dict[str, float]
    sizes: dict[str, int] = field(default_factory=dict)
    training: Any = None
    skipped: list[str] = field(default_factory=list)  # M:N-incompatible layers left dense

    def report(self) -> dict[str, Any]:
        pruned = [v for k, v in self.sparsity.items() if k.split("/")[0] in self.layers]
        block = {
            "kind": self.options.kind,
            "target_sparsity": self.options.target_sparsity if self.options.kind == "unstructured" else None,
            "m_by_n": [self.options.m, self.options.n] if self.options.kind == "m_by_n" else None,
            "schedule": self.options.schedule if self.options.kind == "unstructured" else "constant",
            "layers": self.layers,
            "skipped": self.skipped,
            "sparsity": self.sparsity,
            "mean_sparsity_pruned_layers": round(float(np.mean(pruned)), 4) if pruned else 0.0,
            "sizes": self.sizes,
            "speedup": "not claimed: the dense .tflite runs every weight; measure with the benchmark stage",
        }
        if self.training is not None:
            block["training"] = self.training.to_dict()
        return block


def run_sparsity(
    model: Any,
    train: tuple[np.ndarray, np.ndarray | None],
    val: tuple[np.ndarray, np.ndarray | None] | None,
    pruning: Any,
    training: Any,
    seed: int = 0,
    progress: Any = None,
    cancel: Any = None,
) -> SparsityOutcome:
    """The sparsity stage: wrap, fine-tune with `train.fit` (schedule driven per step), strip, measure.

    `val` is what early stopping watches (in a build: the early-stopping split); `cancel` (a threading.Event)
    stops training at the next batch end, and then nothing else is done (the stage raises BuildCancelled).
    """
    from edgebuild.converters.train import check_training_data, fit, num_classes_of

    options = pruning if isinstance(pruning, SparsityOptions) else SparsityOptions.from_section(pruning)
    y, val_y = check_training_data(train, val, num_classes_of(model))  # before wrapping; `fit` trusts it
    checked_val = None if val is None else (val[0], val_y)
    steps_per_epoch = math.ceil(len(train[0]) / training.batch_size)
    wrapped, names, skipped = wrap(model, options, steps_per_epoch)
    section = (
        training.model_copy(update={"mixed_precision": "off"})
        if getattr(training, "mixed_precision", "off") != "off"
        else training
    )
    result = fit(
        wrapped,
        (train[0], y),
        checked_val,
        section,
        progress=progress,
        seed=seed,
        callbacks=(_tfmot().sparsity.keras.UpdatePruningStep(),),
        cancel=cancel,
        labels_checked=True,
    )  # the schedule's clock
    if result.cancelled:
        return SparsityOutcome(wrapped, options, names, {}, {}, result, skipped)
    _final_mask(wrapped)
    stripped = strip(wrapped)
    dense, sparse = float_tflite(model), float_tflite(stripped)
    sizes = {
        "dense_tflite_bytes": len(dense),
        "dense_gzip_bytes": gzip_size(dense),
        "sparse_tflite_bytes": len(sparse),
        "sparse_gzip_bytes": gzip_size(sparse),
    }
    return SparsityOutcome(stripped, options, names, measured_sparsity(stripped), sizes, result, skipped)


def _final_mask(wrapped: Any) -> None:
    """Apply the current masks to the weights (restored best weights may predate the last mask update)."""
    for layer in wrapped.layers:
        pruning_obj = getattr(layer, "pruning_obj", None)
        if pruning_obj is not None:
            pruning_obj.weight_mask_op()
