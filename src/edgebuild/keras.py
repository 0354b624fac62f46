"""Edge cost during training: a Keras callback that builds the current weights for edge targets.

```python
from edgebuild.keras import BudgetCallback

budget = BudgetCallback(targets=["mcu"], every=2, data=(x_val, y_val))
history = model.fit(x, y, epochs=10, callbacks=[budget])
history.history["mcu_size_bytes"], history.history["mcu_arena_bytes"], history.history["mcu_agreement"]
```

Every `every` epochs the callback runs `edgebuild.build` on the model as it is (same pipeline, profiles
and numbers as a real build; host benchmark and firmware off by default) and writes into the epoch's
Keras logs, so `History`, TensorBoard and CSVLogger see them, per target `t`:

- `t_size_bytes`: the artifact's size.
- `t_arena_bytes`: the TFLite Micro tensor arena it needs (recommended: proven by running, plus margin;
  targets with `validation.tflm`, e.g. mcu).
- `t_agreement`: top-1 agreement of the quantized artifact with the float model on the validation
  samples of `data` (the int8 agreement for integer targets), 0..1.
- `t_within_budget`: 1.0 or 0.0 against the profile's flash and RAM budgets (targets that have them).
- `edgebuild_seconds`: what the measurement cost (all targets together).

Epochs in between log NaN for these keys, so every History list has one entry per epoch. Flash and
arena are fixed by the architecture, not by the weights: when a target is over its flash or RAM budget,
training cannot fix it, so the callback stops training (`model.stop_training = True`; turn it off with
`stop_on_budget=False`) and says why in `stop_reason`.

Overhead (docs/api.md): one build per call, whatever the epoch's length: 4.6-5.9 s wall (1.9 s of CPU in
the training process) for the digits CNN on the mcu target with tf_keras, about 9 s with Keras 3, on a
shared 2-core host; the first call also starts the TFLite Micro worker. `every` bounds it, and each call's
time is logged as `edgebuild_seconds`. Works with tf_keras (Keras 2) and Keras 3 models. In a script, keep
the training under `if __name__ == "__main__":` (the TFLite Micro worker process imports the script).
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from edgebuild.api import BuildResult

__all__ = ["BudgetCallback"]

_DEFAULT_OVERRIDES = {"benchmark.enabled": False, "mcu.firmware": False}


def _default_hook(method: Any) -> Any:
    method._is_default = True  # Keras 3: hooks left at their default never block async dispatch
    return method


class BudgetCallback:
    """Log size, TFLite Micro arena and quantized agreement of the current weights, every `every` epochs.

    A Keras callback for tf_keras (Keras 2) and Keras 3 models alike: it implements the callback
    protocol both `fit` loops call, so it does not depend on which Keras is imported.

    Args:
        targets: target name(s) or profile `.toml` path(s), as for `edgebuild.build`.
        every: measure after every N-th epoch (1 = each epoch).
        data: validation/calibration data as for `edgebuild.build` (path, array, (x, y), dict,
            tf.data.Dataset); integer targets need it. Labels make `agreement` comparable to accuracy.
        overrides: profile overrides on top of the callback's defaults (host benchmark and firmware off).
        stop_on_budget: stop training when a flash/RAM budget is exceeded (it can never be met).
        out: keep the latest measurement's build here (default: a temporary folder, removed at the end).
        jobs: targets built in parallel (default: as `edgebuild.build`).
        verbose: 1 prints one line per measurement, 0 is silent.

    Attributes:
        measurements: one dict per measured epoch (`epoch`, `seconds` and the logged values).
        seconds: time of each call, in seconds.
        stop_reason: why training was stopped, or None.
        last_result: the `BuildResult` of the latest measurement.
    """

    def __init__(
        self,
        targets: str | os.PathLike[str] | Sequence[str | os.PathLike[str]] = ("mcu",),
        every: int = 1,
        data: Any = None,
        *,
        overrides: Mapping[str, Any] | Sequence[str] | None = None,
        stop_on_budget: bool = True,
        out: str | os.PathLike[str] | None = None,
        jobs: int | None = None,
        verbose: int = 1,
    ) -> None:
        from edgebuild.errors import UsageError

        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise UsageError(f"every must be a whole number of epochs >= 1; got {every!r}.")
        self.targets: tuple[str, ...] = (
            (str(targets),) if isinstance(targets, (str, os.PathLike)) else tuple(map(str, targets))
        )
        if not self.targets:
            raise UsageError("BudgetCallback needs at least one target, e.g. targets=['mcu'].")
        self.every = every
        self.data = data
        self.overrides = overrides
        self.stop_on_budget = stop_on_budget
        self.out = Path(out) if out is not None else None
        self.jobs = jobs
        self.verbose = verbose
        self.measurements: list[dict[str, Any]] = []
        self.seconds: list[float] = []
        self.stop_reason: str | None = None
        self.last_result: BuildResult | None = None
        self.model: Any = None
        self.params: dict[str, Any] = {}
        self._workdir: Path | None = None
        self._data_path: Path | None = None
        self._settings: list[str] = []
        # tf_keras's CallbackList reads these
        self._supports_tf_logs = False
        self._chief_worker_only = None

    # -- the Keras callback protocol ------------------------------------------------------------------

    def set_model(self, model: Any) -> None:
        """Keras hook: the model being trained."""
        self.model = model

    def set_params(self, params: dict[str, Any]) -> None:
        """Keras hook: the fit parameters (epochs, steps, verbose)."""
        self.params = params

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        """Check the targets and write the data once (errors surface before the first epoch trains)."""
        from edgebuild.api import resolve_profile
        from edgebuild.api.forms import _override_strings
        from edgebuild.errors import DataError

        self._settings = _override_strings(_DEFAULT_OVERRIDES) + _override_strings(self.overrides)
        for target in self.targets:
            profile = resolve_profile(target, self._settings)
            if profile.quantization.needs_calibration and self.data is None:
                raise DataError(
                    f"BudgetCallback: target '{profile.name}' quantizes to {profile.quantization.scheme} "
                    "and needs calibration data: pass data=(x, y) (or a path)."
                )
        self._workdir = Path(tempfile.mkdtemp(prefix="edgebuild-callback-"))
        self._data_path = self._write_data()

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        """Measure on every `every`-th epoch; NaN for this callback's keys otherwise."""
        if logs is None:
            logs = {}
        if (epoch + 1) % self.every:
            logs.update(dict.fromkeys(self._keys(), math.nan))
            return
        logs.update(self.measure(epoch))

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        """Remove the temporary data and build folder."""
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None

    @_default_hook
    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        """Keras hook: nothing to do here."""

    @_default_hook
    def on_batch_begin(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        """Keras hook: nothing to do here."""

    @_default_hook
    def on_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        """Keras hook: nothing to do here."""

    @_default_hook
    def on_train_batch_begin(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        """Keras hook: nothing to do here."""

    @_default_hook
    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        """Keras hook: nothing to do here."""

    @_default_hook
    def on_test_begin(self, logs: dict[str, Any] | None = None) -> None:
        """Keras hook: nothing to do here."""

    @_default_hook
    def on_test_end(self, logs: dict[str, Any] | None = None) -> None:
        """Keras hook: nothing to do here."""

    @_default_hook
    def on_test_batch_begin(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        """Keras hook: nothing to do here."""

    @_default_hook
    def on_test_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        """Keras hook: nothing to do here."""

    @_default_hook
    def on_predict_begin(self, logs: dict[str, Any] | None = None) -> None:
        """Keras hook: nothing to do here."""

    @_default_hook
    def on_predict_end(self, logs: dict[str, Any] | None = None) -> None:
        """Keras hook: nothing to do here."""

    @_default_hook
    def on_predict_batch_begin(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        """Keras hook: nothing to do here."""

    @_default_hook
    def on_predict_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        """Keras hook: nothing to do here."""

    def _implements_train_batch_hooks(self) -> bool:
        return False

    def _implements_test_batch_hooks(self) -> bool:
        return False

    def _implements_predict_batch_hooks(self) -> bool:
        return False

    # -- the measurement ------------------------------------------------------------------------------

    def measure(self, epoch: int | None = None) -> dict[str, float]:
        """Build the model's current weights for every target; return the values logged (also outside fit)."""
        from edgebuild.api import build

        if self._workdir is None:  # called outside fit
            self.on_train_begin()
        workdir = self._workdir
        assert workdir is not None  # set by on_train_begin
        started = time.perf_counter()
        result = build(
            self.model,
            self.targets,
            data=self._data_path,
            out=self.out or workdir / "out",
            overrides=self._settings,
            gates=False,
            cache=False,
            progress=False,
            jobs=self.jobs,
        )
        seconds = time.perf_counter() - started
        self.last_result = result
        self.seconds.append(seconds)
        values: dict[str, float] = {}
        over: list[str] = []
        for t in result:
            report = t.report
            validation = report.validation if report else None
            arena = validation.arena.recommended_bytes if validation and validation.arena else None
            agreement = validation.accuracy.agreement if validation and validation.accuracy else None
            budget = next((c for c in (validation.checks if validation else ()) if c.name == "budgets"), None)
            values[f"{t.target}_size_bytes"] = float(report.artifact.size_bytes) if report else math.nan
            values[f"{t.target}_arena_bytes"] = float(arena) if arena is not None else math.nan
            values[f"{t.target}_agreement"] = float(agreement) if agreement is not None else math.nan
            values[f"{t.target}_within_budget"] = math.nan if budget is None else float(budget.passed)
            if budget is not None and not budget.passed:
                over.append(f"{t.target}: {budget.summary}")
        values["edgebuild_seconds"] = seconds
        self.measurements.append({"epoch": epoch, "seconds": seconds, **values})
        if self.verbose:
            print(self._line(epoch, values, seconds), flush=True)
        if over and self.stop_on_budget and self.model is not None:
            self.stop_reason = (
                "over budget, which training cannot change (size and arena depend on the "
                "architecture, not the weights): " + "; ".join(over)
            )
            self.model.stop_training = True
            if self.verbose:
                print(f"BudgetCallback: stopping training: {self.stop_reason}", flush=True)
        return values

    def _keys(self) -> list[str]:
        return [
            f"{t}_{k}"
            for t in self._target_names()
            for k in ("size_bytes", "arena_bytes", "agreement", "within_budget")
        ] + ["edgebuild_seconds"]

    def _target_names(self) -> list[str]:
        if self.last_result is not None:
            return self.last_result.keys()
        from edgebuild.api import resolve_profile

        return [resolve_profile(t, self._settings).name for t in self.targets]

    def _write_data(self) -> Path | None:
        if self.data is None:
            return None
        if isinstance(self.data, (str, os.PathLike)):
            return Path(self.data)
        from edgebuild.api.inputs import _data_label, _keras_inputs
        from edgebuild.data import dataset_from_object, write_npz

        names, rank = _keras_inputs(self.model) if self.model is not None else ((), None)
        dataset = dataset_from_object(self.data, _data_label(self.data, "data"), names, rank)
        assert self._workdir is not None
        return write_npz(self._workdir / "data.npz", dataset)

    def _line(self, epoch: int | None, values: dict[str, float], seconds: float) -> str:
        parts = []
        for t in self._target_names():
            text = f"{t} {values[f'{t}_size_bytes'] / 1024:,.1f} KiB"
            if not math.isnan(values[f"{t}_arena_bytes"]):
                text += f", arena {values[f'{t}_arena_bytes'] / 1024:,.1f} KiB"
            if not math.isnan(values[f"{t}_agreement"]):
                text += f", agreement {100 * values[f'{t}_agreement']:.1f}%"
            if values[f"{t}_within_budget"] == 0.0:
                text += ", OVER BUDGET"
            parts.append(text)
        where = f"epoch {epoch + 1}: " if epoch is not None else ""
        return f"BudgetCallback {where}" + "; ".join(parts) + f" ({seconds:.1f} s)"
