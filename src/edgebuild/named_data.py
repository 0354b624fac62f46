"""`--data` for any model: one array for a single-input model, one named array per input otherwise.

A multi-input model's .npz holds its arrays named after the model's inputs (`image=..., side=...`) or
numbered in model input order (`x0=..., x1=...`), plus optional labels `y`. Arrays are matched by name,
so the order they were saved in does not matter; everything is checked (presence, shape, dtype, sample
count) before any conversion starts, and a problem names the input, what it expects, the file and the fix.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from edgebuild.data import Dataset, _checked, check_fits, load_dataset
from edgebuild.errors import DataError

if TYPE_CHECKING:
    from edgebuild.artifact import TfliteArtifact
    from edgebuild.model import InputSpec


def load_model_data(
    path: Path, inputs: list[InputSpec], image_range: str, model_label: str, numbered: bool = True
) -> Dataset:
    """`path` read and checked against the model's inputs (all of them); `numbered`: accept x0, x1, ..."""
    if len(inputs) == 1:
        shape = inputs[0].shape
        return check_fits(load_dataset(path, shape, image_range), shape, model_label)
    if not path.exists():
        raise DataError(f"Data {path} does not exist. {_save_hint(path, inputs)}")
    if path.is_dir() or path.suffix.lower() != ".npz":
        raise DataError(
            f"{model_label} takes {len(inputs)} inputs ({_describe_all(inputs)}), so its data must be an .npz "
            f"with one array per input; {path} is {'a folder' if path.is_dir() else 'a ' + path.suffix + ' file'}. "
            f"{_save_hint(path, inputs)}"
        )
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
    except (ValueError, OSError) as exc:
        raise DataError(f"Cannot read {path}: {exc}. Write it again with numpy.savez.") from None
    y = arrays.pop("y", None)
    named = _match_inputs(arrays, inputs, path, model_label, numbered)
    for spec in inputs:
        named[spec.name] = _fit(named[spec.name], spec, path, model_label)
    counts = {name: len(a) for name, a in named.items()}
    if len(set(counts.values())) > 1:
        raise DataError(
            f"{path}: the inputs have different sample counts ({', '.join(f'{k} {v}' for k, v in counts.items())}). "
            "Every input array needs one row per sample, in the same order."
        )
    first = named[inputs[0].name]
    for name, array in named.items():  # the single-input checks (empty, NaN, labels) on every array
        _checked(Dataset(x=array, y=y if name == inputs[0].name else None, source=f"{path} (input '{name}')"))
    checked = _checked(Dataset(x=first, y=y, source=str(path)))
    return Dataset(x=first, y=checked.y, source=str(path), named=named)


def _match_inputs(
    arrays: dict[str, np.ndarray], inputs: list[InputSpec], path: Path, model_label: str, allow_numbered: bool
) -> dict[str, np.ndarray]:
    """Arrays by input name: named after the inputs, or x0, x1, ... in model input order."""
    names = [spec.name for spec in inputs]
    numbered = [f"x{i}" for i in range(len(inputs))]
    by_name = [n for n in names if n in arrays]
    by_number = [n for n in numbered if n in arrays]
    if by_number and not allow_numbered and set(names) != set(numbered):
        raise DataError(
            f"{path} numbers its arrays ({', '.join(by_number)}), but {model_label} is a converted model whose "
            f"input order need not be the original model's (the converter may sort them by name). Name each "
            f"array after its input instead: {', '.join(names)}. {_save_hint(path, inputs, numbered=False)}"
        )
    if by_name and by_number and set(names) != set(numbered):
        raise DataError(
            f"{path} mixes arrays named after inputs ({', '.join(by_name)}) with numbered ones "
            f"({', '.join(by_number)}). {_save_hint(path, inputs)}"
        )
    keys = names if len(by_name) >= len(by_number) else numbered
    missing = [(k, spec) for k, spec in zip(keys, inputs, strict=True) if k not in arrays]
    unknown = sorted(set(arrays) - set(keys))
    if missing:
        key, spec = missing[0]
        extra = f" Its arrays: {', '.join(sorted(arrays)) or 'none but the labels'}."
        raise DataError(
            f"{path} has no array '{key}' for input '{spec.name}' of {model_label}, which takes "
            f"{_describe(spec)} per sample.{extra} {_save_hint(path, inputs)}"
        )
    if unknown:
        raise DataError(
            f"{path} has array(s) {', '.join(repr(u) for u in unknown)} that match no input of {model_label} "
            f"({_describe_all(inputs)}). {_save_hint(path, inputs)}"
        )
    return {spec.name: arrays[key] for key, spec in zip(keys, inputs, strict=True)}


def _fit(array: np.ndarray, spec: InputSpec, path: Path, model_label: str) -> np.ndarray:
    expected = tuple(spec.shape[1:])
    if tuple(array.shape[1:]) != expected or array.ndim == 0:
        raise DataError(
            f"{path}: the array for input '{spec.name}' has samples of shape {tuple(array.shape[1:])}, but "
            f"{model_label} takes {_describe(spec)} per sample there (batch excluded). Reshape that array to "
            f"(N, {', '.join(str(d) for d in expected)}) and save the file again."
        )
    if not (np.issubdtype(array.dtype, np.number) or array.dtype == np.bool_):
        raise DataError(
            f"{path}: the array for input '{spec.name}' has dtype {array.dtype}, not numbers. Store it as {spec.dtype}."
        )
    return array.astype(np.float32, copy=False) if spec.dtype.startswith("float") else array


def _describe(spec: InputSpec) -> str:
    return "(" + ", ".join(str(d) for d in spec.shape[1:]) + f") {spec.dtype}"


def _describe_all(inputs: list[InputSpec]) -> str:
    return ", ".join(f"'{s.name}' {_describe(s)}" for s in inputs)


def _save_hint(path: Path, inputs: list[InputSpec], numbered: bool = True) -> str:
    named = f"np.savez('{path.name}', {', '.join(f'{s.name}=...' for s in inputs)}, y=labels)"
    if not numbered:
        return f"Save it with {named}."
    by_number = ", ".join(f"x{i}=..." for i in range(len(inputs)))
    return f"Save it with {named} or np.savez('{path.name}', {by_number}, y=labels)."


def artifact_specs(artifact: TfliteArtifact) -> list[InputSpec]:
    """An artifact's inputs as data specs: signature names (x0, x1, ... where it has none), float data."""
    from edgebuild.model import InputSpec

    names = artifact.input_signature_names()
    return [
        InputSpec(name or f"x{i}", (None, *t.shape[1:]), "float32")
        for i, (name, t) in enumerate(zip(names, artifact.inputs, strict=True))
    ]


def load_artifact_data(data: object, artifact: TfliteArtifact, image_range: str, label: str) -> Dataset:
    """`--data` / `data=` for an existing .tflite (validate, bench): a path or an in-memory object, all inputs."""
    from edgebuild.data import dataset_from_object

    specs = artifact_specs(artifact)
    if isinstance(data, (str, Path)) or hasattr(data, "__fspath__"):
        has_names = all(artifact.input_signature_names())  # numbered arrays only where the artifact names none
        return load_model_data(Path(data), specs, image_range, label, numbered=not has_names)
    if len(specs) == 1:  # any single entry is the input, as before (no names to match)
        return check_fits(dataset_from_object(data, label, input_rank=len(specs[0].shape)), specs[0].shape, label)
    dataset = dataset_from_object(data, label, tuple(s.name for s in specs))
    named = dataset.named or {}
    missing = [s for s in specs if s.name not in named]
    if missing:
        raise DataError(
            f"{label} takes {len(specs)} inputs ({_describe_all(specs)}) but the data has no array for "
            f"'{missing[0].name}'. Pass a dict with one array per input name, plus 'y' for labels."
        )
    fitted = {s.name: _fit(named[s.name], s, Path(label), label) for s in specs}
    return Dataset(x=fitted[specs[0].name], y=dataset.y, source=dataset.source, named=fitted)
