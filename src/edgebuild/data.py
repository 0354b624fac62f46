"""`--data` into arrays, checked against the model, and split without overlap.

The split is seeded and documented: a permutation of all samples by
`data.seed`; the first `validation_fraction` (at most `max_validation_samples`)
are validation, the next `calibration_samples` calibrate quantization, then
`EARLY_STOPPING_FRACTION` of what is left (at most `max_validation_samples`;
none when fewer than `MIN_EARLY_STOPPING_POOL` are left) is the early-stopping
split, and the rest are training data. The four never share a sample: accuracy
is never measured on the data the quantizer saw, and the validation samples the
accuracy gate scores are never trained on nor used to pick the best epoch
(every training pass watches the early-stopping split instead).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgebuild.errors import DataError
from edgebuild.profiles.schema import DataSection
from edgebuild.samples import Samples

EARLY_STOPPING_FRACTION = 0.15
MIN_EARLY_STOPPING_POOL = 40  # fewer samples left after calibration: no early-stopping split, all train
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp"}


@dataclass(frozen=True)
class Dataset:
    x: np.ndarray  # the model's (first) input
    y: np.ndarray | None
    source: str
    named: dict[str, np.ndarray] | None = None  # a multi-input model's inputs by name, in model order

    @property
    def inputs(self) -> Samples:
        """What the build feeds the model: one array, or one array per input keyed by input name."""
        return self.named if self.named is not None else self.x


@dataclass(frozen=True)
class Splits:
    validation: np.ndarray  # sample indices
    calibration: np.ndarray
    training: np.ndarray
    early_stopping: np.ndarray = field(default_factory=lambda: np.empty((0,), np.int64))

    def describe(self) -> dict[str, int]:
        return {
            "validation": len(self.validation),
            "calibration": len(self.calibration),
            "early_stopping": len(self.early_stopping),
            "training": len(self.training),
        }


def load_dataset(path: Path, input_shape: tuple[int | None, ...] | None = None, image_range: str = "0-255") -> Dataset:
    """Read `.npz` (x, optional y), `.npy`, or a folder of class sub-folders of images."""
    if not path.exists():
        raise DataError(f"Data {path} does not exist. Pass an .npz with 'x' (and 'y'), an .npy, or an image folder.")
    if path.is_dir():
        if input_shape is None:
            raise DataError(f"Image folder {path} needs a model input shape to resize to.")
        return _load_image_folder(path, input_shape, image_range)
    suffix = path.suffix.lower()
    try:
        if suffix == ".npz":
            with np.load(path, allow_pickle=False) as archive:
                if "x" not in archive.files:
                    raise DataError(
                        f"{path} has no array named 'x' (it has: {', '.join(archive.files) or 'nothing'}). "
                        "Save it with np.savez(path, x=inputs, y=labels)."
                    )
                x = archive["x"]
                y = archive["y"] if "y" in archive.files else None
        elif suffix == ".npy":
            x, y = np.load(path, allow_pickle=False), None
        else:
            raise DataError(f"Data {path} has an unknown format '{suffix}'. Use .npz, .npy or a folder of images.")
    except (ValueError, OSError) as exc:
        raise DataError(f"Cannot read {path}: {exc}. Write it again with numpy.savez / numpy.save.") from None
    return _checked(Dataset(x=x, y=y, source=str(path)))


def _checked(data: Dataset) -> Dataset:
    x, y, source = data.x, data.y, data.source
    if x.size == 0 or len(x) == 0:
        raise DataError(f"{source} holds no samples ('x' is empty). Provide at least a few hundred samples.")
    if not (np.issubdtype(x.dtype, np.number) or x.dtype == np.bool_):
        raise DataError(f"{source}: 'x' has dtype {x.dtype}, not numbers. Store the model inputs as a numeric array.")
    if np.issubdtype(x.dtype, np.floating) and not np.isfinite(x).all():
        bad = int((~np.isfinite(x)).reshape(len(x), -1).any(axis=1).sum())
        raise DataError(f"{source}: {bad} sample(s) of 'x' contain NaN or infinity. Clean or drop them first.")
    if y is not None:
        if len(y) != len(x):
            raise DataError(f"{source}: 'x' has {len(x)} samples but 'y' has {len(y)}. They must be the same length.")
        if not np.issubdtype(y.dtype, np.integer) and not (np.issubdtype(y.dtype, np.floating) and y.ndim > 1):
            raise DataError(f"{source}: 'y' has dtype {y.dtype}; labels must be integer class ids (or one-hot rows).")
        if y.ndim > 1:
            y = y.argmax(axis=-1)
        if y.min() < 0:
            raise DataError(f"{source}: 'y' contains negative class ids. Labels must be 0..N-1.")
    return Dataset(x=x, y=y, source=source)


def check_fits(data: Dataset, input_shape: tuple[int | None, ...], model_label: str) -> Dataset:
    """The data must have the model's per-sample shape; say exactly how it differs."""
    expected = tuple(input_shape[1:])
    got = tuple(data.x.shape[1:])
    if got != expected:
        hint = ""
        if len(got) == len(expected) and got[:-1] == expected[:-1]:
            hint = (
                f" The channel count differs ({got[-1]} vs {expected[-1]}): convert the images (e.g. to grayscale/RGB)."
            )
        elif len(got) + 1 == len(expected) and expected[-1] == 1 and got == expected[:-1]:
            hint = " Add the channel axis: x = x[..., None]."
        raise DataError(
            f"{data.source}: samples have shape {got} but {model_label} takes {expected} (batch excluded).{hint} "
            "Give data shaped like the model input."
        )
    y = data.y
    return Dataset(x=data.x.astype(np.float32, copy=False), y=y, source=data.source)


def check_labels(data: Dataset, num_classes: int | None) -> None:
    if data.y is not None and num_classes and int(data.y.max()) >= num_classes:
        raise DataError(
            f"{data.source}: labels go up to {int(data.y.max())} but the model has {num_classes} outputs. "
            "Labels must be 0..N-1 for an N-class model."
        )


def split(
    n: int,
    section: DataSection,
    calibration_samples: int,
    hold_out_validation: bool = True,
    early_stopping_fraction: float = EARLY_STOPPING_FRACTION,
) -> Splits:
    """Seeded, non-overlapping validation / calibration / early-stopping / training indices (see module doc).

    With a separate validation set (`--val-data`) nothing is held out for validation here. The validation
    and calibration samples do not depend on `early_stopping_fraction`.
    """
    if n < 2 and hold_out_validation:
        raise DataError(f"Only {n} sample given: edgebuild needs at least 2 (one to calibrate, one to validate).")
    order = np.random.default_rng(section.seed).permutation(n)
    n_val = 0
    if hold_out_validation:
        n_val = min(max(1, math.ceil(n * section.validation_fraction)), section.max_validation_samples, n - 1)
    rest = order[n_val:]
    n_cal = min(calibration_samples, len(rest))
    pool = rest[n_cal:]
    n_es = 0
    if len(pool) >= MIN_EARLY_STOPPING_POOL and early_stopping_fraction > 0:
        n_es = min(math.ceil(len(pool) * early_stopping_fraction), section.max_validation_samples)
    return Splits(
        validation=np.sort(order[:n_val]), calibration=rest[:n_cal], training=pool[n_es:], early_stopping=pool[:n_es]
    )


def random_calibration(input_shape: tuple[int, ...], count: int, seed: int) -> np.ndarray:
    """Uniform noise in [0, 1) for `--calibration random` smoke tests only."""
    return np.random.default_rng(seed).random((count, *input_shape[1:]), dtype=np.float32)


def _load_image_folder(path: Path, input_shape: tuple[int | None, ...], image_range: str) -> Dataset:
    from PIL import Image

    height, width, channels = input_shape[1], input_shape[2], input_shape[3] if len(input_shape) > 3 else 1
    if channels not in (1, 3) or height is None or width is None:
        raise DataError(f"Image folder {path}: the model input {input_shape} is not an HxWx1 or HxWx3 image.")
    classes = sorted(p for p in path.iterdir() if p.is_dir())
    if not classes:
        raise DataError(f"Image folder {path} has no class sub-folders. Lay it out as {path}/<class>/<image>.png.")
    images, labels = [], []
    for label, folder in enumerate(classes):
        for file in sorted(folder.iterdir()):
            if file.suffix.lower() not in IMAGE_SUFFIXES:
                continue
            try:
                with Image.open(file) as img:
                    resized = img.convert("L" if channels == 1 else "RGB").resize(
                        (width, height), Image.Resampling.BILINEAR
                    )
                    pixels = np.asarray(resized, dtype=np.float32)
            except OSError as exc:
                raise DataError(f"Cannot read image {file}: {exc}. Remove or replace the file.") from None
            images.append(pixels[..., None] if channels == 1 else pixels)
            labels.append(label)
    if not images:
        raise DataError(f"Image folder {path} has class folders but no images ({', '.join(sorted(IMAGE_SUFFIXES))}).")
    x = np.stack(images)
    if image_range == "0-1":
        x = x / 255.0
    elif image_range == "-1-1":
        x = x / 127.5 - 1.0
    return _checked(Dataset(x=x.astype(np.float32), y=np.asarray(labels, dtype=np.int64), source=str(path)))


# In-memory data (the Python API): arrays, (x, y) tuples, dicts of named arrays, tf.data.Dataset.

LABEL_KEYS = ("y", "label", "labels")


def dataset_from_object(
    obj: object, source: str, input_names: tuple[str, ...] = (), input_rank: int | None = None
) -> Dataset:
    """In-memory data as a checked `Dataset` (the same checks as an .npz), without importing TensorFlow.

    Accepts a NumPy array (inputs only), an `(x,)` / `(x, y)` tuple or list, a dict (`{"x": ..., "y": ...}`,
    or `{input_name: ..., "y": ...}` naming the model's input), or a `tf.data.Dataset` of such elements,
    batched or not. `input_names` (the model's input names) and `input_rank` (its rank, batch included)
    are used when known to pick the input out of a dict and to tell a batched dataset from an unbatched one.
    """
    if _is_tf_dataset(obj):
        x, y = _from_tf_dataset(obj, source, input_names, input_rank)
    else:
        x_obj, y_obj = _split_element(obj, source, input_names)
        y = None if y_obj is None else _as_array(y_obj, source, "y")
        if isinstance(x_obj, dict):  # a multi-input model's arrays by name; checked against the model at build
            named = {name: _as_array(v, source, name) for name, v in x_obj.items()}
            for name, array in named.items():
                _checked(Dataset(x=array, y=None, source=f"{source} (input '{name}')"))
            first = next(iter(named.values()))
            return Dataset(x=first, y=_checked(Dataset(x=first, y=y, source=source)).y, source=source, named=named)
        x = _as_array(x_obj, source, "x")
    return _checked(Dataset(x=x, y=y, source=source))


def write_npz(path: Path, data: Dataset) -> Path:
    """Write `x` (and `y`) as an .npz that `load_dataset` reads back identically.

    The archive is byte-for-byte deterministic (fixed timestamps, stored entries), so the same arrays give
    the same file hash, and the build cache recognizes them across calls and sessions.
    """
    import zipfile

    arrays = dict(data.named) if data.named is not None else {"x": data.x}
    if data.y is not None:
        arrays["y"] = data.y
    path = Path(path)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
        for name, array in arrays.items():
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            with archive.open(info, "w", force_zip64=True) as handle:
                np.lib.format.write_array(handle, np.ascontiguousarray(array), allow_pickle=False)
    return path


def _is_tf_dataset(obj: object) -> bool:
    """A tf.data.Dataset, recognized without importing TensorFlow."""
    return (
        hasattr(obj, "element_spec")
        and hasattr(obj, "as_numpy_iterator")
        and any(cls.__module__.startswith("tensorflow") for cls in type(obj).__mro__)
    )


def _split_element(obj: object, source: str, input_names: tuple[str, ...]) -> tuple[object, object | None]:
    """(x, y) out of one data object or dataset element; y may be None."""
    if isinstance(obj, dict):
        labels = [k for k in obj if k in LABEL_KEYS]
        if len(labels) > 1:
            raise DataError(f"{source} has several label entries ({', '.join(labels)}); give exactly one, named 'y'.")
        y = obj[labels[0]] if labels else None
        inputs = {k: v for k, v in obj.items() if k not in LABEL_KEYS}
        if "x" in inputs and len(inputs) > 1:
            raise DataError(
                f"{source} has 'x' and also {', '.join(sorted(k for k in inputs if k != 'x'))}: "
                "give the inputs as 'x' only, or one entry per model input name."
            )
        if len(inputs) == 1:
            ((name, x),) = inputs.items()
            if name != "x" and input_names and name not in input_names:
                raise DataError(
                    f"{source} names an input '{name}', but the model's input is "
                    f"'{', '.join(input_names)}'. Name the entry after the input, or 'x'."
                )
            return x, y
        if not inputs:
            raise DataError(
                f"{source} has no inputs (keys: {', '.join(map(str, obj)) or 'none'}). "
                "Give {'x': inputs, 'y': labels}."
            )
        if input_names and len(inputs) != len(input_names):
            raise DataError(
                f"{source} has arrays for {len(inputs)} inputs ({', '.join(map(str, inputs))}) but the model takes "
                f"{len(input_names)} ({', '.join(input_names)}). Give one array per model input, named after it "
                "(or 'x' for a single-input model), plus 'y' for labels."
            )
        return _named_inputs(inputs, input_names), y
    if isinstance(obj, (tuple, list)) and not _is_numeric_sequence(obj):
        if len(input_names) > 1 and len(obj) in (1, 2, 3) and isinstance(obj[0], (tuple, list)):
            # ([x0, x1, ...], y) as Keras' fit takes a multi-input model's data: inputs in model order
            arrays = dict(zip(input_names, obj[0], strict=False))
            return _named_inputs(arrays, input_names), (obj[1] if len(obj) > 1 else None)
        if len(obj) == 1:
            return obj[0], None
        if len(obj) in (2, 3):  # (x, y) or Keras' (x, y, sample_weight)
            return obj[0], obj[1]
        raise DataError(f"{source} is a sequence of {len(obj)} items; give x, (x,) or (x, y).")
    return obj, None


def _named_inputs(inputs: dict[str, Any], input_names: tuple[str, ...]) -> dict[str, Any]:
    """A multi-input model's arrays by name, in model order when the names are known (the build checks them)."""
    if input_names and set(inputs) == set(input_names):
        return {name: inputs[name] for name in input_names}
    return {str(k): v for k, v in inputs.items()}


def _is_numeric_sequence(obj: tuple[Any, ...] | list[Any]) -> bool:
    """A plain nested list of numbers (an array written as a list), not an (x, y) pair."""
    return bool(obj) and all(isinstance(v, (int, float, bool, np.number)) for v in obj)


def _as_array(value: object, source: str, what: str) -> np.ndarray:
    if isinstance(value, np.ndarray):
        return value
    if hasattr(value, "numpy"):  # an eager tf.Tensor or a Keras 3 tensor
        value = value.numpy()
    try:
        array = np.asarray(value)
    except (ValueError, TypeError) as exc:
        raise DataError(
            f"{source}: '{what}' cannot be read as one array: ragged or mixed shapes "
            f"({str(exc).splitlines()[0]}). Give one NumPy array of samples with equal shapes."
        ) from None
    if array.dtype == object:
        raise DataError(
            f"{source}: '{what}' is a ragged or non-numeric sequence ({type(value).__name__}). "
            "Give one NumPy array of samples with equal shapes."
        )
    return array


def _from_tf_dataset(
    dataset: object, source: str, input_names: tuple[str, ...], input_rank: int | None
) -> tuple[np.ndarray, np.ndarray | None]:
    """Every element of a finite tf.data.Dataset, batched or not, as (x, y) arrays."""
    cardinality = int(dataset.cardinality())  # type: ignore[attr-defined]
    if cardinality == -1:  # tf.data.INFINITE_CARDINALITY
        raise DataError(f"{source} is an infinite tf.data.Dataset (it repeats). Pass dataset.take(N) instead.")
    xs: list[np.ndarray] = []
    ys: list[np.ndarray] = []
    batched: bool | None = None
    for element in dataset.as_numpy_iterator():  # type: ignore[attr-defined]
        x, y = _split_element(element, source, input_names)
        if isinstance(x, dict):
            from edgebuild.errors import UnsupportedError

            raise UnsupportedError(
                f"{source} is a tf.data.Dataset of several inputs ({', '.join(x)}). For a multi-input model pass "
                "the arrays themselves: {'<input name>': array, ..., 'y': labels}, or an .npz file."
            )
        x = _as_array(x, source, "x")
        if batched is None:
            batched = _looks_batched(dataset, x, input_rank)
        xs.append(x if batched else x[None])
        if y is not None:
            y = _as_array(y, source, "y")
            ys.append(y if batched else y[None])
    if not xs:
        raise DataError(f"{source} holds no samples (the tf.data.Dataset is empty).")
    if ys and len(ys) != len(xs):
        raise DataError(f"{source}: some elements have labels and some do not. Give labels for every element.")
    try:
        x_all = np.concatenate(xs)
        y_all = np.concatenate(ys) if ys else None
    except ValueError as exc:
        raise DataError(f"{source}: elements have different shapes ({exc}). Resize them to the model input.") from None
    return x_all, y_all


def _looks_batched(dataset: object, x: np.ndarray, input_rank: int | None) -> bool:
    """Batched elements have the model's rank (batch included); without a model, a None first dim says batched."""
    if input_rank is not None:
        return x.ndim == input_rank
    spec = dataset.element_spec  # type: ignore[attr-defined]
    while isinstance(spec, (tuple, list)):
        spec = spec[0]
    if isinstance(spec, dict):
        spec = spec.get("x", next(iter(spec.values())))
    shape = getattr(spec, "shape", None)
    return shape is not None and len(shape) > 0 and shape[0] is None
