"""In-memory models and arrays written to a temporary folder, read back as the CLI reads files."""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edgebuild.api.forms import _is_path
from edgebuild.api.results import TargetBuild
from edgebuild.errors import EdgebuildError, ModelError, UsageError

if TYPE_CHECKING:
    from edgebuild.api import ArtifactLike, DataLike, ModelLike

_TEMP_PREFIX = "edgebuild-api-"


# ---------------------------------------------------------------------------------------------- inputs


class _Inputs:
    """Turns in-memory models, data and artifacts into files in one temporary folder, removed on exit.

    Also rewrites that folder's paths in error messages and reports into labels the user recognizes.
    """

    def __init__(self) -> None:
        self.root: Path | None = None
        self.model_label: str | None = None
        self.model_name: str = "model"
        self.artifact_label: str | None = None
        self._keras: Any = None
        self._input_names: tuple[str, ...] = ()
        self._input_rank: int | None = None
        self._labels: dict[str, str] = {}

    def __enter__(self) -> _Inputs:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)

    def _dir(self) -> Path:
        if self.root is None:
            self.root = Path(tempfile.mkdtemp(prefix=_TEMP_PREFIX))
        return self.root

    # The model: a path as is; a Keras model saved as a deterministic .keras archive.
    def model(self, model: ModelLike) -> Path:
        if _is_path(model):
            return Path(model)
        flavor = _keras_flavor(model)
        if flavor is None:
            raise UsageError(
                f"model must be a path (SavedModel folder, .keras or .h5) or a Keras model; got "
                f"{type(model).__module__}.{type(model).__name__}."
            )
        if not getattr(model, "built", True):
            raise ModelError(
                f"The {flavor} model '{getattr(model, 'name', '?')}' is not built yet (it has no input "
                "shape). Call it on a batch once, or give it an Input layer, before building."
            )
        self._keras = model
        self.model_name = _safe_name(getattr(model, "name", "") or "model")
        self.model_label = f"in-memory {flavor} model '{self.model_name}'"
        self._input_names, self._input_rank = _keras_inputs(model)
        folder = self._dir() / "model"
        folder.mkdir()
        path = folder / f"{self.model_name}.keras"
        try:
            keras_model: Any = model
            keras_model.save(path)
        except Exception as exc:  # subclassed models without get_config(), unserializable objects
            from edgebuild.model import _first_line

            fallback = self._export_savedmodel(ModelError(str(exc)))
            if fallback is None:
                raise ModelError(f"Cannot save the {self.model_label} for the build: {_first_line(exc)}.") from None
            return fallback
        _normalize_keras_archive(path)
        self._labels["model"] = self.model_label
        return path

    def savedmodel_fallback(self, exc: ModelError) -> Path | None:
        """An in-memory model whose .keras does not load back (unregistered custom layers): a SavedModel instead."""
        if self._keras is None or "Cannot load" not in str(exc):
            return None
        return self._export_savedmodel(exc)

    def _export_savedmodel(self, exc: ModelError) -> Path | None:
        if self._keras is None:
            return None
        from edgebuild._tf import tf

        folder = self._dir() / "model" / f"{self.model_name}_savedmodel"
        shutil.rmtree(folder, ignore_errors=True)
        try:
            if hasattr(self._keras, "export") and _keras_flavor(self._keras) == "keras3":
                self._keras.export(str(folder), verbose=False)
            else:
                tf().saved_model.save(self._keras, str(folder))
        except Exception:
            return None
        self._labels["model"] = self.model_label or "in-memory model"
        return folder

    # Data: a path as is; anything else as a deterministic .npz.
    def data(self, data: DataLike | None, what: str) -> Path | None:
        if data is None:
            return None
        if _is_path(data):
            return Path(data)
        from edgebuild.data import dataset_from_object, write_npz

        label = _data_label(data, what)
        dataset = dataset_from_object(data, label, self._input_names, self._input_rank)
        path = write_npz(self._dir() / f"{what}.npz", dataset)
        self._labels[f"{what}.npz"] = label
        return path

    # Artifacts: a path as is; bytes written to a file; a TargetBuild's artifact.
    def artifact(self, tflite: ArtifactLike) -> Path:
        if isinstance(tflite, TargetBuild):
            if tflite.artifact_path is None:
                raise UsageError(f"Target '{tflite.target}' has no artifact (it failed: {tflite.error}).")
            return tflite.artifact_path
        if isinstance(tflite, (bytes, bytearray, memoryview)):
            path = self._dir() / "model.tflite"
            path.write_bytes(bytes(tflite))
            self.artifact_label = f"tflite bytes ({len(path.read_bytes()):,} bytes)"
            self._labels["model.tflite"] = self.artifact_label
            return path
        if _is_path(tflite):
            return Path(tflite)
        raise UsageError(f"Expected a .tflite path, its bytes or a TargetBuild; got {type(tflite).__name__}.")

    # Temporary paths -> labels, in messages and reports.
    def _pattern(self) -> re.Pattern[str] | None:
        if not self._labels:
            return None
        temp = re.escape(str(Path(tempfile.gettempdir())))
        return re.compile(
            temp + "/" + re.escape(_TEMP_PREFIX) + r"[A-Za-z0-9_]+/(model/[A-Za-z0-9_.-]+|"
            r"data\.npz|val_data\.npz|model\.tflite)"
        )

    def relabel(self, text: str) -> str:
        pattern = self._pattern()
        if pattern is None:
            return text

        def label(match: re.Match[str]) -> str:
            name = match.group(1)
            return self._labels.get("model" if name.startswith("model/") else name, name)

        return pattern.sub(label, text)

    def relabel_error(self, exc: EdgebuildError) -> EdgebuildError:
        text = str(exc)
        new = self.relabel(text)
        if new != text:
            exc.args = (new, *exc.args[1:])
        return exc

    def relabel_report(self, folder: Path, report: dict[str, Any]) -> dict[str, Any]:
        if self._pattern() is None:
            return report
        for name in ("report.json", "report.md"):
            self.relabel_file(folder / name)
        relabeled: dict[str, Any] = json.loads(self.relabel(json.dumps(report)))
        return relabeled

    def relabel_file(self, path: Path) -> None:
        if self._pattern() is None or not path.is_file():
            return
        text = path.read_text()
        new = self.relabel(text)
        if new != text:
            tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            tmp.write_text(new)
            tmp.replace(path)


def _keras_flavor(model: object) -> str | None:
    """'tf_keras' or 'keras3' for Keras models (by their class hierarchy, without importing either)."""
    for cls in type(model).__mro__:
        root = cls.__module__.split(".")[0]
        if root == "tf_keras" and cls.__name__ == "Model":
            return "tf_keras"
        if root == "keras" and cls.__name__ == "Model":
            return "keras3"
    return None


def _keras_inputs(model: Any) -> tuple[tuple[str, ...], int | None]:
    try:
        inputs = list(model.inputs or [])
    except (AttributeError, ValueError):
        return (), None
    names = tuple(str(getattr(t, "name", "")).split(":")[0] for t in inputs)
    rank = len(inputs[0].shape) if len(inputs) == 1 else None
    return names, rank


def _safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name).strip(".") or "model"


def _normalize_keras_archive(path: Path) -> None:
    """Make a saved .keras byte-for-byte deterministic: fixed entry timestamps, no `date_saved`.

    The weights inside are already deterministic; only the save time differs between two saves of the
    same model. With it gone, the same weights hash the same and the build cache can recognize them.
    """
    entries = []
    with zipfile.ZipFile(path) as archive:
        for info in archive.infolist():
            data = archive.read(info.filename)
            if info.filename == "metadata.json":
                metadata = json.loads(data)
                metadata.pop("date_saved", None)
                data = json.dumps(metadata).encode()
            entries.append((info.filename, info.compress_type, data))
    tmp = path.with_name(path.name + ".tmp")
    with zipfile.ZipFile(tmp, "w") as archive:
        for name, compression, data in entries:
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = compression
            archive.writestr(info, data)
    tmp.replace(path)


def _data_label(data: object, what: str) -> str:
    """How error messages and reports name in-memory data: `data=ndarray float32 (597, 32, 32, 1)`."""
    if isinstance(data, np.ndarray):
        return f"{what}=ndarray {data.dtype} {tuple(data.shape)}"
    if isinstance(data, dict):
        return f"{what}=dict({', '.join(map(str, data))})"
    if isinstance(data, (tuple, list)):
        shapes = ", ".join(
            f"{getattr(v, 'dtype', type(v).__name__)} {tuple(getattr(v, 'shape', ()))}" for v in data[:3]
        )
        return f"{what}=({shapes})"
    return f"{what}={type(data).__name__}"
