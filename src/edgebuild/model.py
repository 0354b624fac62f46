"""Detect and load the user's model once, and trace it once per batch size.

Every input format (SavedModel, Keras 2 `.keras`/`.h5`, Keras 3 `.keras`)
ends up as the same thing: a TensorFlow function with one or more named
inputs, whose outputs are an ordered list. Conversion, reference predictions and every
target of a build reuse it, so the graph is traced once per batch size.
"""

from __future__ import annotations

import atexit
import json
import shutil
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from edgebuild.errors import ModelError, UnsupportedError
from edgebuild.samples import Samples

ModelFormat = Literal["savedmodel", "keras2", "keras3", "h5", "tflite"]


def detect_format(path: Path) -> ModelFormat:
    """Decide the model format from the files alone (no TensorFlow import)."""
    if not path.exists():
        raise ModelError(f"Model {path} does not exist. Pass a SavedModel folder, a .keras or .h5 file.")
    if path.is_dir():
        if (path / "saved_model.pb").is_file():
            return "savedmodel"
        raise ModelError(
            f"Model folder {path} has no saved_model.pb, so it is not a SavedModel. "
            "Pass the folder that model.export() or tf.saved_model.save() wrote, or a .keras/.h5 file."
        )
    suffix = path.suffix.lower()
    if suffix == ".keras":
        return _keras_zip_version(path)
    if suffix in {".h5", ".hdf5"}:
        return "h5"
    if suffix == ".tflite":
        return "tflite"
    raise ModelError(
        f"Model {path} has an unknown format ('{suffix or 'no extension'}'). "
        "edgebuild reads a SavedModel folder, a .keras file (Keras 2 or 3) or an .h5 file."
    )


def _keras_zip_version(path: Path) -> ModelFormat:
    try:
        with zipfile.ZipFile(path) as archive:
            metadata = json.loads(archive.read("metadata.json"))
    except (zipfile.BadZipFile, KeyError, json.JSONDecodeError, OSError):
        raise ModelError(
            f"Model {path} is not a valid .keras archive (no readable metadata.json). "
            "Save it again with model.save('model.keras')."
        ) from None
    major = str(metadata.get("keras_version", "3")).split(".")[0]
    return "keras3" if not major.isdigit() or int(major) >= 3 else "keras2"


@dataclass(frozen=True)
class InputSpec:
    """One model input: its name (what `--data` arrays are matched by), shape (batch first) and dtype."""

    name: str
    shape: tuple[int | None, ...]
    dtype: str


@dataclass
class LoadedModel:
    """A model ready to trace: its inputs in model order, an ordered list of outputs."""

    source: Path
    format: ModelFormat
    inputs: list[InputSpec]
    output_names: list[str]
    call: Callable[[list[Any]], list[Any]]  # one tensor per input -> list of tensors, inference mode
    keep_alive: Any  # the object that owns the variables (needed by the converter)
    keras_model: Any = None  # the tf_keras model when there is one (training passes use it)
    _traced: dict[int | None, Any] = field(default_factory=dict, repr=False)
    _exported: dict[int, Path] = field(default_factory=dict, repr=False)

    @property
    def name(self) -> str:
        return self.source.stem if self.source.is_file() else self.source.name

    @property
    def input_name(self) -> str:
        return self.inputs[0].name

    @property
    def input_shape(self) -> tuple[int | None, ...]:
        """The first input's shape (the only one of a single-input model), batch first."""
        return self.inputs[0].shape

    @property
    def input_dtype(self) -> str:
        return self.inputs[0].dtype

    @property
    def input_names(self) -> list[str]:
        return [spec.name for spec in self.inputs]

    @property
    def multi_input(self) -> bool:
        return len(self.inputs) > 1

    def fixed_input_shape(self, batch: int) -> tuple[int, ...]:
        return fixed_shape(self.input_shape, batch)

    def concrete_function(self, batch: int | None) -> Any:
        """The model traced with a fixed batch (or None for any batch), cached per batch.

        Each input keeps its name in the signature, so the converted artifact's signature names its inputs
        as the model does (how calibration and validation data find their input).
        """
        if batch not in self._traced:
            from edgebuild._tf import tf

            tensorflow = tf()
            specs = [tensorflow.TensorSpec((batch, *s.shape[1:]), s.dtype, name=s.name) for s in self.inputs]
            fn = tensorflow.function(lambda *xs: self.call(list(xs)), input_signature=specs, autograph=False)
            self._traced[batch] = fn.get_concrete_function()
        return self._traced[batch]

    def export(self, batch: int) -> Path:
        """The model as a SavedModel with a fixed batch: what every conversion of it reads, exported once.

        The TFLite converter given a concrete function saves its owner to a temporary SavedModel on
        every conversion. Saving a Keras model swaps its layers' call functions while it traces them,
        so two targets converting one shared model in parallel threads could deadlock on TensorFlow's
        function locks. Exporting once, before any worker starts, and converting each target from the
        files means no conversion touches the shared model object at all. Call it from one thread.
        """
        if batch not in self._exported:
            from edgebuild._tf import tf

            tensorflow = tf()
            export_dir = Path(tempfile.mkdtemp(prefix=f"edgebuild-b{batch}-"))
            atexit.register(shutil.rmtree, export_dir, True)
            function = self.concrete_function(batch)
            options = tensorflow.saved_model.SaveOptions(save_debug_info=True)
            # A bare module holding only the variables the traced function captures saves in a fraction of the
            # time a Keras model takes (no layer call functions to re-trace) and converts faster and identically.
            holder = tensorflow.Module()
            holder.captured = list(function.variables)
            try:
                tensorflow.saved_model.save(
                    holder, str(export_dir), signatures={"serving_default": function}, options=options
                )
            except (ValueError, AssertionError):  # it captures an untracked resource (a lookup table, say)
                shutil.rmtree(export_dir, ignore_errors=True)
                tensorflow.saved_model.save(
                    self.keep_alive, str(export_dir), signatures={"serving_default": function}, options=options
                )
            self._exported[batch] = export_dir
        return self._exported[batch]

    def predict(self, x: Samples, batch_size: int = 64) -> list[np.ndarray]:
        """Float reference outputs, run in TensorFlow in batches (one sample at a time when the batch is fixed).

        `x` is one array, or one array per input keyed by input name. A model that declares its batch (a
        streaming model with `batch_size=1`, a SavedModel whose signature says (1, ...)) cannot take more
        samples per call, and a stateful one must see them in order.
        """
        fixed = self.input_shape[0]
        if fixed is not None:
            batch_size = fixed
        fn = self.concrete_function(fixed)
        arrays = [x[s.name] for s in self.inputs] if isinstance(x, dict) else [x]
        chunks: list[list[np.ndarray]] = []
        for start in range(0, len(arrays[0]), batch_size):
            parts = [a[start : start + batch_size].astype(s.dtype) for a, s in zip(arrays, self.inputs, strict=True)]
            short = batch_size - len(parts[0]) if fixed is not None else 0
            if short:  # a fixed batch the samples do not fill: pad with the last sample, drop its outputs
                parts = [np.concatenate([p, np.repeat(p[-1:], short, axis=0)]) for p in parts]
            outputs = fn(*parts)
            chunks.append([np.asarray(o)[: batch_size - short] for o in outputs])
        return [np.concatenate([c[i] for c in chunks]) for i in range(len(self.output_names))]


def fixed_shape(shape: tuple[int | None, ...], batch: int) -> tuple[int, ...]:
    rest = [d for d in shape[1:] if d is not None]
    assert len(rest) == len(shape) - 1, "a free dimension after the batch (check_static_shape first)"
    return (batch, *rest)


def load_model(path: Path) -> LoadedModel:
    """Load any supported format; clear errors for everything we cannot take."""
    fmt = detect_format(path)
    if fmt == "tflite":
        raise ModelError(
            f"{path} is already a .tflite artifact. `edgebuild build` needs the trained model it came from; "
            "use `edgebuild validate` or `edgebuild bench` for .tflite files."
        )
    if fmt == "keras3":
        return _load_keras3(path)
    if fmt == "savedmodel":
        return _load_savedmodel(path, fmt)
    return _load_keras2(path, fmt)


def _load_keras2(path: Path, fmt: ModelFormat) -> LoadedModel:
    from edgebuild._tf import tf_keras

    keras2 = tf_keras()
    try:
        model = keras2.models.load_model(path, compile=False)
    except Exception as exc:  # tf_keras raises many types for unreadable files
        if fmt == "h5":
            return _load_keras3(path)
        raise ModelError(
            f"Cannot load {path} with tf_keras: {_first_line(exc)}. Save it again with model.save()."
        ) from None
    return _from_keras2_model(model, path, fmt)


def _from_keras2_model(model: Any, path: Path, fmt: ModelFormat) -> LoadedModel:
    specs = [InputSpec(_clean_name(t.name), tuple(t.shape), t.dtype.name) for t in model.inputs]
    _check_input_names(specs, path)
    return LoadedModel(
        source=path,
        format=fmt,
        inputs=specs,
        output_names=_keras_output_names(model),
        call=lambda xs: _as_list(model(xs[0] if len(xs) == 1 else xs, training=False)),
        keep_alive=model,
        keras_model=model,
    )


def _keras_output_names(model: Any) -> list[str]:
    """The output layers' names (`scores`, `box`) where Keras has them, else the output tensors' names."""
    names = list(getattr(model, "output_names", None) or [])
    if len(names) == len(model.outputs) and len(set(names)) == len(names):
        return [str(n) for n in names]
    return [_clean_name(o.name) for o in model.outputs]


def _load_keras3(path: Path) -> LoadedModel:
    """Keras 3 models go through their own SavedModel export (tf_keras cannot read them)."""
    from edgebuild._tf import keras3

    keras = keras3()
    try:
        model = keras.saving.load_model(path, compile=False)
    except Exception as exc:
        raise ModelError(
            f"Cannot load {path} with Keras 3: {_first_line(exc)}. Save it again with model.save()."
        ) from None
    export_dir = Path(tempfile.mkdtemp(prefix="edgebuild-export-"))
    try:
        model.export(str(export_dir), verbose=False)
    except Exception as exc:
        raise ModelError(f"Keras 3 could not export {path} as a SavedModel: {_first_line(exc)}.") from None
    loaded = _load_savedmodel(export_dir, "keras3")
    loaded.source = path
    return loaded


def _load_savedmodel(path: Path, fmt: ModelFormat) -> LoadedModel:
    from edgebuild._tf import tf

    tensorflow = tf()
    try:
        obj = tensorflow.saved_model.load(str(path))
    except Exception as exc:
        raise ModelError(f"Cannot load SavedModel {path}: {_first_line(exc)}.") from None
    signature = getattr(obj, "signatures", {}).get("serving_default")
    if signature is None:
        raise ModelError(
            f"SavedModel {path} has no 'serving_default' signature. Export it with model.export() or "
            "tf.saved_model.save(model, path, signatures=...)."
        )
    inputs = signature.structured_input_signature[1]
    keys = list(inputs)  # a signature's inputs have names, no order of their own
    specs = [InputSpec(key, tuple(inputs[key].shape), inputs[key].dtype.name) for key in keys]
    _check_input_names(specs, path)
    output_keys = sorted(signature.structured_outputs)
    return LoadedModel(
        source=path,
        format=fmt,
        inputs=specs,
        output_names=output_keys,
        call=lambda xs: [signature(**dict(zip(keys, xs, strict=True)))[k] for k in output_keys],
        keep_alive=obj,
    )


def check_static_shape(model: LoadedModel) -> None:
    for spec in model.inputs:
        dynamic = [i for i, d in enumerate(spec.shape) if d is None and i > 0]
        if dynamic:
            which = f"input '{spec.name}'" if model.multi_input else "input"
            raise UnsupportedError(
                f"Model {model.source} has a dynamic {which} dimension at axis {dynamic[0]} (shape "
                f"{_shape_text(spec.shape)}). Edge targets need static shapes: re-export the model "
                "with a fixed input size, e.g. keras.Input(shape=(32, 32, 1))."
            )
    batches = {spec.shape[0] for spec in model.inputs}
    if len(batches) > 1:
        raise UnsupportedError(
            f"Model {model.source}'s inputs declare different batch sizes "
            f"({', '.join(f'{s.name} {_shape_text(s.shape)}' for s in model.inputs)}). "
            "Every edge runtime feeds all inputs one batch at a time: give them the same batch (or none)."
        )


def _check_input_names(specs: list[InputSpec], path: Path) -> None:
    """Multi-input data is matched to inputs by name: the names must be distinct and not 'y' (the labels)."""
    names = [s.name for s in specs]
    if len(specs) > 1 and (len(set(names)) != len(names) or "y" in names or any(not n for n in names)):
        raise UnsupportedError(
            f"{path} has inputs named {', '.join(repr(n) for n in names)}. edgebuild matches each --data "
            "array to an input by name, so the names must be distinct, non-empty and not 'y' (the labels): "
            "name them, e.g. keras.Input(shape=..., name='image')."
        )


def _shape_text(shape: tuple[int | None, ...]) -> str:
    return "(" + ", ".join("?" if d is None else str(d) for d in shape) + ")"


def _as_list(outputs: Any) -> list[Any]:
    if isinstance(outputs, dict):
        return [outputs[k] for k in sorted(outputs)]
    if isinstance(outputs, (list, tuple)):
        return list(outputs)
    return [outputs]


def _clean_name(name: str) -> str:
    return name.split(":")[0]


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:300]
