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

import numpy as np

from edgebuild.errors import DataError
from edgebuild.profiles.schema import DataSection

EARLY_STOPPING_FRACTION = 0.15
MIN_EARLY_STOPPING_POOL = 40  # fewer samples left after calibration: no early-stopping split, all train
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp"}


@dataclass(frozen=True)
class Dataset:
    x: np.ndarray
    y: np.ndarray | None
    source: str


@dataclass(frozen=True)
class Splits:
    validation: np.ndarray  # sample indices
    calibration: np.ndarray
    training: np.ndarray
    early_stopping: np.ndarray = field(default_factory=lambda: np.empty((0,), np.int64))

    def describe(self) -> dict[str, int]:
        return {"validation": len(self.validation), "calibration": len(self.calibration),
                "early_stopping": len(self.early_stopping), "training": len(self.training)}


def load_dataset(path: Path, input_shape: tuple[int, ...] | None = None, image_range: str = "0-255") -> Dataset:
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
            hint = f" The channel count differs ({got[-1]} vs {expected[-1]}): convert the images (e.g. to grayscale/RGB)."
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


def split(n: int, section: DataSection, calibration_samples: int, hold_out_validation: bool = True,
          early_stopping_fraction: float = EARLY_STOPPING_FRACTION) -> Splits:
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
    return Splits(validation=np.sort(order[:n_val]), calibration=rest[:n_cal], training=pool[n_es:],
                  early_stopping=pool[:n_es])


def random_calibration(input_shape: tuple[int, ...], count: int, seed: int) -> np.ndarray:
    """Uniform noise in [0, 1) for `--calibration random` smoke tests only."""
    return np.random.default_rng(seed).random((count, *input_shape[1:]), dtype=np.float32)


def _load_image_folder(path: Path, input_shape: tuple[int, ...], image_range: str) -> Dataset:
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
                    img = img.convert("L" if channels == 1 else "RGB").resize((width, height), Image.BILINEAR)
                    pixels = np.asarray(img, dtype=np.float32)
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
