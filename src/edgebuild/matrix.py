"""`edgebuild build --matrix edgebuild.toml`: models x targets x variants, one file, on any executor.

```toml
[matrix]
models = ["models/kws.keras", { path = "models/vww", data = "vww.npz", name = "vww" }]
targets = ["mobile", "mcu"]
data = "digits.npz"                    # default data of every model
out = "build/matrix"                   # default: build/matrix beside this file
set = ["mcu.firmware=false"]           # overrides for every cell

[matrix.variants]                      # optional: one more axis, name -> overrides
io-int8 = ["quantization.io=int8"]
```

Each cell is an ordinary build written to OUT/<model>[/<variant>]/<target>/; relative paths are relative to
the file. Every cell is checked (profile, overrides, files) before any build starts.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import tomllib
from pydantic import BaseModel, ConfigDict, ValidationError

from edgebuild.errors import DataError, ModelError, ProfileError, UsageError
from edgebuild.executors import BuildTask, Executor, TaskOutcome
from edgebuild.executors.task import write_outcome


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MatrixModel(_Strict):
    path: str
    data: str | None = None
    name: str | None = None


class MatrixSection(_Strict):
    models: list[str | MatrixModel]
    targets: list[str]
    data: str | None = None
    out: str | None = None
    set: list[str] = []
    variants: dict[str, list[str]] = {}


class MatrixFile(_Strict):
    matrix: MatrixSection


def load_matrix(
    path: Path,
    *,
    gates: bool = True,
    use_cache: bool = True,
    cache_dir: Path | None = None,
    extra_overrides: tuple[str, ...] = (),
) -> tuple[list[BuildTask], Path]:
    """The cells of a matrix file as build tasks, and the output root; every cell is checked first."""
    from edgebuild.profiles import resolve

    if not path.is_file():
        raise UsageError(f"Matrix file {path} does not exist. Write an edgebuild.toml with a [matrix] table.")
    try:
        spec = MatrixFile.model_validate(tomllib.loads(path.read_text())).matrix
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(f"{path} is not valid TOML: {exc}.") from None
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise ProfileError(
            f"{path}: {problems}. A matrix needs [matrix] models = [...] and targets = [...] "
            "(optional data, out, set, [matrix.variants])."
        ) from None
    base = path.parent
    out = base / (spec.out or "build/matrix")
    variants = spec.variants or {"": []}
    tasks = []
    for entry in spec.models:
        model = MatrixModel(path=entry) if isinstance(entry, str) else entry
        model_path = base / model.path
        if not model_path.exists():
            raise ModelError(f"{path}: model {model_path} does not exist. Fix the path in [matrix] models.")
        data_ref = model.data or spec.data
        data_path = base / data_ref if data_ref else None
        if data_path is not None and not data_path.exists():
            raise DataError(f"{path}: data {data_path} does not exist. Fix [matrix] data (or the model's data).")
        name = model.name or (model_path.stem if model_path.is_file() else model_path.name)
        for variant, settings in variants.items():
            overrides = (*spec.set, *settings, *extra_overrides)
            for target in spec.targets:
                ref = target if not target.endswith(".toml") else str(base / target)
                profile = resolve(ref, overrides)
                key = "/".join(p for p in (name, variant, profile.name) if p)
                tasks.append(BuildTask(key, model_path, ref, data_path, overrides, gates, use_cache, cache_dir))
    keys = [t.key for t in tasks]
    if len(set(keys)) != len(keys):
        raise UsageError(f"{path}: two cells write the same folder; give the models distinct `name`s.")
    return tasks, out


def run_matrix(
    executor: Executor, tasks: list[BuildTask], out: Path, on_done: Callable[[TaskOutcome], None] | None = None
) -> list[TaskOutcome]:
    """Run every cell, write each as it arrives, then OUT/matrix.json (one row per cell)."""

    def written(outcome: TaskOutcome) -> None:
        if outcome.files:
            write_outcome(outcome, out / outcome.key)
        if on_done is not None:
            on_done(outcome)

    outcomes = executor.run(tasks, out, written)
    rows = [
        {
            "cell": o.key,
            "passed": o.error is None,
            "error": o.error[1] if o.error else None,
            "cached": o.cached,
            "seconds": round(o.seconds, 3),
            "worker": o.worker,
            "artifact_bytes": len(o.files.get("model.tflite", b"")) or None,
        }
        for o in outcomes
    ]
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / ".matrix.json.tmp"
    tmp.write_text(json.dumps({"executor": executor.name, "cells": rows}, indent=2) + "\n")
    tmp.replace(out / "matrix.json")
    return outcomes
