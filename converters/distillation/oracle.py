"""The teacher as an oracle: more inputs than the labelled set, each labelled by the teacher's soft outputs.

Distillation needs no labels, so every training step shows the student the
batch's inputs *and* `copies` augmented views of each (fresh random draws
every step), and the frozen teacher labels every view. Unlabelled inputs
(`--unlabelled`) join the training inputs without a label (soft term only)
and are augmented alike.

Augmentations by input kind (`kind = "auto"` picks from the input shape):
- "image" (N, H, W, C) with H, W >= 8: random shift (up to `shift` of the
  side) and rotation (up to `rotation` degrees) in one bilinear transform
  (edges repeated), plus Gaussian noise;
- "sequence" (N, T, C), or (N, T, 1, C) / (N, 1, T, C): a random time shift
  (up to `shift` of T, edges repeated) plus noise;
- "vector" (anything else): noise only;
- all kinds: mixup of a `mixup` share of the views with another view of the
  batch (weight ~ Beta(0.4, 0.4)), labelled by the teacher on the mixed input.
Noise has `noise` times the training inputs' standard deviation.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from edgebuild.errors import DataError, ProfileError

AUGMENT_KINDS = ("auto", "none", "image", "sequence", "vector")
MIXUP_BETA = 0.4


@dataclass(frozen=True)
class Augmentation:
    kind: str = "auto"  # one of AUGMENT_KINDS; "auto" is resolved against the input shape
    copies: int = 1  # augmented views of each input per step
    shift: float = 0.1  # largest shift, share of the side (images) or of the time axis (sequences)
    rotation: float = 10.0  # largest rotation in degrees (images)
    noise: float = 0.05  # Gaussian noise std, share of the training inputs' std
    mixup: float = 0.5  # share of the views mixed with another view

    def __post_init__(self) -> None:
        if self.kind not in AUGMENT_KINDS:
            raise ProfileError(f"augmentation {self.kind!r} is not known; choose one of {', '.join(AUGMENT_KINDS)}.")
        if (
            self.copies < 0
            or not (0 <= self.shift < 1)
            or self.rotation < 0
            or self.noise < 0
            or not (0 <= self.mixup <= 1)
        ):
            raise ProfileError(f"augmentation settings out of range: {self}.")

    @property
    def active(self) -> bool:
        return self.kind != "none" and self.copies > 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) if self.active else {"kind": "none", "copies": 0}


def resolve(spec: Any, input_shape: tuple) -> Augmentation:
    """An `Augmentation` for `spec` (None/"auto"/a kind/an Augmentation) and the model's input shape."""
    aug = spec if isinstance(spec, Augmentation) else Augmentation(kind="auto" if spec is None else str(spec))
    if aug.kind == "none":
        return replace(aug, copies=0)
    if aug.kind != "auto":
        if aug.kind == "image" and len(input_shape) != 4:
            raise ProfileError(f"augmentation 'image' needs (N, H, W, C) inputs; the model takes {input_shape}.")
        if aug.kind == "sequence" and _time_axis(input_shape) is None:
            raise ProfileError(f"augmentation 'sequence' needs (N, T, C) inputs; the model takes {input_shape}.")
        return aug
    dims = [int(d) if d is not None else 0 for d in input_shape[1:]]
    if len(dims) == 3 and min(dims[0], dims[1]) >= 8:
        return replace(aug, kind="image")
    if _time_axis(input_shape) is not None:
        return replace(aug, kind="sequence")
    return replace(aug, kind="vector")


def _time_axis(input_shape: tuple) -> int | None:
    dims = [int(d) if d is not None else 0 for d in input_shape[1:]]
    if len(dims) == 2 and dims[0] > 1:
        return 1
    if len(dims) == 3 and 1 in dims[:2] and max(dims[:2]) > 1:
        return 1 if dims[0] > 1 else 2
    return None


def make_augmenter(aug: Augmentation, input_shape: tuple, data_std: float) -> Any:
    """A TF function x -> (views, mixed count): `aug.copies` augmented views of every input of the batch."""
    from edgebuild._tf import tf

    tensorflow = tf()
    sigma = float(aug.noise * data_std)
    dims = tuple(int(d) for d in input_shape[1:])

    def image(v: Any) -> Any:
        n = tensorflow.shape(v)[0]
        h, w = float(dims[0]), float(dims[1])
        theta = tensorflow.random.uniform([n], -1.0, 1.0) * (aug.rotation * math.pi / 180.0)
        dx = tensorflow.random.uniform([n], -1.0, 1.0) * (aug.shift * w)
        dy = tensorflow.random.uniform([n], -1.0, 1.0) * (aug.shift * h)
        cx, cy = (w - 1) / 2.0, (h - 1) / 2.0
        c, s = tensorflow.cos(theta), tensorflow.sin(theta)
        zeros = tensorflow.zeros_like(c)
        transforms = tensorflow.stack(
            [c, -s, cx - c * cx + s * cy - dx, s, c, cy - s * cx - c * cy - dy, zeros, zeros], axis=1
        )
        return tensorflow.raw_ops.ImageProjectiveTransformV3(
            images=v,
            transforms=transforms,
            output_shape=tensorflow.constant(dims[:2], tensorflow.int32),
            fill_value=0.0,
            interpolation="BILINEAR",
            fill_mode="NEAREST",
        )

    axis = _time_axis(input_shape) or 1

    def sequence(v: Any) -> Any:
        length = dims[axis - 1]
        flat = tensorflow.reshape(v, [-1, length, int(np.prod(dims)) // length])
        n, most = tensorflow.shape(flat)[0], max(1, round(aug.shift * length))
        shift = tensorflow.random.uniform([n], -most, most + 1, dtype=tensorflow.int32)
        index = tensorflow.clip_by_value(tensorflow.range(length)[None, :] - shift[:, None], 0, length - 1)
        return tensorflow.reshape(tensorflow.gather(flat, index, batch_dims=1), tensorflow.shape(v))

    def augment(x: Any) -> tuple[Any, Any]:
        v = tensorflow.concat([x] * aug.copies, axis=0) if aug.copies > 1 else x
        if aug.kind == "image":
            v = image(v)
        elif aug.kind == "sequence":
            v = sequence(v)
        if sigma > 0:
            v = v + tensorflow.random.normal(tensorflow.shape(v), stddev=sigma)
        mixed = tensorflow.constant(0.0)
        if aug.mixup > 0:
            n = tensorflow.shape(v)[0]
            g1 = tensorflow.random.gamma([n], MIXUP_BETA)
            g2 = tensorflow.random.gamma([n], MIXUP_BETA)
            chosen = tensorflow.random.uniform([n]) < aug.mixup
            lam = tensorflow.where(chosen, g1 / tensorflow.maximum(g1 + g2, 1e-12), tensorflow.ones([n]))
            lam = tensorflow.reshape(lam, [-1] + [1] * len(dims))
            v = lam * v + (1.0 - lam) * tensorflow.gather(v, tensorflow.random.shuffle(tensorflow.range(n)))
            mixed = tensorflow.reduce_sum(tensorflow.cast(chosen, tensorflow.float32))
        return v, mixed

    return augment


def load_unlabelled(path: Any, input_shape: tuple, image_range: str = "0-255") -> np.ndarray:
    """`--unlabelled`: inputs from an .npz ('x'; any 'y' ignored), .npy or a folder of images (flat or in
    class sub-folders), in the model's input shape."""
    from edgebuild.data import IMAGE_SUFFIXES, Dataset, check_fits, load_dataset

    path = Path(path)
    if path.is_dir() and not any(p.is_dir() for p in path.iterdir()):
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise DataError(f"Unlabelled folder {path} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))}).")
        data = Dataset(x=_read_images(files, input_shape, image_range), y=None, source=str(path))
    else:
        data = load_dataset(path, input_shape, image_range)
    return check_fits(data, input_shape, "the teacher").x


def _read_images(files: list[Path], input_shape: tuple, image_range: str) -> np.ndarray:
    from PIL import Image

    if len(input_shape) != 4 or input_shape[3] not in (1, 3):
        raise DataError(f"A folder of images needs an HxWx1 or HxWx3 model input; the model takes {input_shape}.")
    height, width, channels = int(input_shape[1]), int(input_shape[2]), int(input_shape[3])
    images = []
    for file in files:
        try:
            with Image.open(file) as img:
                mode = "L" if channels == 1 else "RGB"
                resized = img.convert(mode).resize((width, height), Image.Resampling.BILINEAR)
                pixels = np.asarray(resized, dtype=np.float32)
        except OSError as exc:
            raise DataError(f"Cannot read image {file}: {exc}. Remove or replace the file.") from None
        images.append(pixels[..., None] if channels == 1 else pixels)
    x = np.stack(images)
    return x / 255.0 if image_range == "0-1" else x / 127.5 - 1.0 if image_range == "-1-1" else x
