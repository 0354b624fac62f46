"""The standalone `edgebuild prune` (and `distill`) commands' library side: data in, model and report out."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from edgebuild.profiles.schema import (
    DataSection,
    DistillationSection,
    PruningSection,
    TrainingSection,
)

from .recovery import run_structured_pruning


def load_training_data(
    data_path: Any,
    input_shape: tuple,
    seed: int = 0,
    validation_fraction: float = 0.2,
    section: DataSection | None = None,
) -> tuple[
    tuple[np.ndarray, np.ndarray | None],
    tuple[np.ndarray, np.ndarray | None] | None,
    tuple[np.ndarray, np.ndarray | None],
]:
    """`--data` -> seeded, non-overlapping (train, early-stopping, validation) splits (labels may be None).

    `section` is the profile's `[data]` (seed, split sizes, `image_range` for image folders), as a build reads
    it; without one, `seed` and `validation_fraction` with the other defaults. The same rule as a build's
    split (`edgebuild.data.split`, no calibration samples): training passes watch the early-stopping split
    (None when the data is too small for one); the validation samples only measure the accuracy the report
    gives.
    """
    from edgebuild.data import check_fits, load_dataset, split

    if section is None:
        section = DataSection(seed=seed, validation_fraction=validation_fraction)
    data = check_fits(load_dataset(Path(data_path), input_shape, section.image_range), input_shape, "the model")
    splits = split(len(data.x), section, 0)
    y = data.y

    def take(idx: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        return data.x[idx], None if y is None else y[idx]

    held_out = take(splits.early_stopping) if len(splits.early_stopping) else None
    return take(splits.training), held_out, take(splits.validation)


def save_model(model: Any, out_dir: Any, report: dict[str, Any], report_name: str) -> dict[str, str]:
    """model.keras (tf_keras) + a JSON report into `out_dir`; returns the paths written."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model_path, report_path = out / "model.keras", out / report_name
    model.save(model_path)
    report_path.write_text(json.dumps(report, indent=2, default=str) + "\n")
    return {"model": str(model_path), "report": str(report_path)}


def prune_file(
    model_path: Any,
    data_path: Any,
    out_dir: Any,
    options: PruningSection,
    training: TrainingSection | None,
    distillation: DistillationSection | None = None,
    data: DataSection | None = None,
    progress: Any = None,
) -> dict[str, Any]:
    """`edgebuild prune`: load, prune, recover (fine-tune, or distill when asked or when the data has no
    labels), save `model.keras` and `pruning.json`; returns the report (with "files").

    `data` is the `[data]` section that loads and splits `data_path` and seeds training (default: defaults).
    """
    from edgebuild.model import load_model

    from ..qat import model_for_training

    data = data if data is not None else DataSection()
    loaded = load_model(Path(model_path))
    train, held_out, val = load_training_data(data_path, loaded.input_shape, section=data)
    model, bridge = model_for_training(loaded, train[0][:8])
    if train[1] is None and (distillation is None or not distillation.enabled):
        distillation = DistillationSection(enabled=True, alpha=0.0)  # no labels: learn from the original's outputs
    outcome = run_structured_pruning(
        model, train, held_out, options, training, distillation, data.seed, progress, evaluation=val
    )
    report = outcome.report()
    report["model"] = str(model_path)
    if bridge:
        report["bridge"] = bridge
    report["files"] = save_model(outcome.model, out_dir, report, "pruning.json")
    return report
