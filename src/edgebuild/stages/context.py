"""What stages share: build-wide inputs (loaded once) and one target's working state.

Targets build in parallel threads, so everything computed once for the whole
build (float baseline, reference outputs) is guarded by one lock, and Ctrl-C is
an event every stage checks at its boundary.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from edgebuild.artifact import parse_artifact
from edgebuild.data import Dataset, Splits, random_calibration, split
from edgebuild.model import fixed_shape
from edgebuild.profiles import Profile
from edgebuild.samples import Samples, take

if TYPE_CHECKING:
    from edgebuild.model import LoadedModel

EXCLUSIVE_STAGES = {"benchmark"}  # host latency is only meaningful with the CPU to itself


class Progress(Protocol):
    def stage_started(self, target: str, stage: str) -> None: ...
    def stage_finished(self, target: str, stage: str, seconds: float, note: str = "") -> None: ...
    def message(self, text: str) -> None: ...


class SilentProgress:
    def stage_started(self, target: str, stage: str) -> None:
        pass

    def stage_finished(self, target: str, stage: str, seconds: float, note: str = "") -> None:
        pass

    def message(self, text: str) -> None:
        pass


class BuildCancelled(KeyboardInterrupt):
    """Raised in a worker at a stage boundary after Ctrl-C in the main thread."""


class CpuGate:
    """Stages share the CPU; a host benchmark gets it alone, so parallel targets do not skew latencies.

    A writer-preferring readers/writer lock: while a benchmark waits, no new stage starts.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._active = 0
        self._exclusive = False
        self._waiting_exclusive = 0

    @contextmanager
    def shared(self) -> Iterator[None]:
        with self._cond:
            self._cond.wait_for(lambda: not self._exclusive and self._waiting_exclusive == 0)
            self._active += 1
        try:
            yield
        finally:
            with self._cond:
                self._active -= 1
                self._cond.notify_all()

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        with self._cond:
            self._waiting_exclusive += 1
            self._cond.wait_for(lambda: not self._exclusive and self._active == 0)
            self._waiting_exclusive -= 1
            self._exclusive = True
        try:
            yield
        finally:
            with self._cond:
                self._exclusive = False
                self._cond.notify_all()


@dataclass
class SharedInputs:
    """Everything every target of one build reuses: the loaded model, data, reference outputs, float baseline."""

    model: LoadedModel
    model_sha256: str
    dataset: Dataset | None
    val_dataset: Dataset | None = None
    float_reference: dict[str, Any] | None = None  # size and weight bytes of the plain float32 conversion
    float_blob: bytes | None = None
    float_latency: dict[tuple[int, int], float] = field(default_factory=dict)  # (threads, runs) -> p50 ms
    reference_cache: dict[str, list[np.ndarray]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    cancelled: threading.Event = field(default_factory=threading.Event)
    cpu: CpuGate = field(default_factory=CpuGate)
    running: dict[str, tuple[str, float]] = field(default_factory=dict)  # target -> (stage, monotonic start)

    def reference_outputs(self, x: Samples, key: str) -> list[np.ndarray]:
        """Float model outputs on x, computed once per build (targets usually validate on the same samples)."""
        with self.lock:
            if key not in self.reference_cache:
                self.reference_cache[key] = self.model.predict(x)
            return self.reference_cache[key]

    def float_baseline(self, batch: int) -> dict[str, Any]:
        """Size and weight bytes of a plain float32 conversion of the same model (converted once per build)."""
        from edgebuild.converters import convert
        from edgebuild.profiles.schema import QuantizationSection

        with self.lock:
            if self.float_reference is None:
                blob = convert(self.model.export(batch), None, QuantizationSection(scheme="none"), None)
                weights = parse_artifact(blob).weight_dtypes()
                self.float_reference = {"size_bytes": len(blob), "weight_bytes": sum(weights.values())}
                self.float_blob = blob
            return self.float_reference


@dataclass
class TargetContext:
    """One target's build in progress: its profile, folder, samples and stage timings."""

    profile: Profile
    shared: SharedInputs
    work_dir: Path
    progress: Progress
    splits: Splits | None = None
    calibration: Samples | None = None  # one array per input (by name) for a multi-input model
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def target(self) -> str:
        return self.profile.name

    @contextmanager
    def stage(self, name: str) -> Iterator[list[str]]:
        """Time one stage and print its line; the yielded list takes an optional note for that line."""
        if self.shared.cancelled.is_set():
            raise BuildCancelled()
        note: list[str] = []
        gate = self.shared.cpu.exclusive() if name in EXCLUSIVE_STAGES else self.shared.cpu.shared()
        self.shared.running[self.target] = (name, time.monotonic())  # the watchdog reads it (gate wait included)
        try:
            with gate:
                self.progress.stage_started(self.target, name)
                started = time.perf_counter()
                yield note
                self.timings[name] = round(time.perf_counter() - started, 4)
        finally:
            self.shared.running.pop(self.target, None)
        self.progress.stage_finished(self.target, name, self.timings[name], note[0] if note else "")

    def choose_samples(self) -> None:
        """Seeded splits of --data, and the calibration samples when the scheme needs them."""
        quant, shared = self.profile.quantization, self.shared
        if shared.dataset is not None:
            self.splits = split(
                len(shared.dataset.x),
                self.profile.data,
                quant.calibration_samples,
                hold_out_validation=shared.val_dataset is None,
            )
        if not quant.needs_calibration:
            return
        if self.splits is not None and shared.dataset is not None and len(self.splits.calibration) > 0:
            self.calibration = take(shared.dataset.inputs, self.splits.calibration)
        elif shared.model.multi_input:
            self.calibration = {
                spec.name: random_calibration(fixed_shape(spec.shape, 1), quant.calibration_samples, seed)
                for seed, spec in enumerate(shared.model.inputs, start=self.profile.data.seed)
            }
        else:
            shape = shared.model.fixed_input_shape(1)
            self.calibration = random_calibration(shape, quant.calibration_samples, self.profile.data.seed)

    def validation_samples(self) -> tuple[Samples, np.ndarray | None, str] | None:
        """(x, y, cache key) of the validation samples: `--val-data`, else the held-out split of `--data`."""
        shared = self.shared
        if shared.val_dataset is not None:
            limit = self.profile.data.max_validation_samples
            val = shared.val_dataset
            y = val.y[:limit] if val.y is not None else None
            return take(val.inputs, slice(0, limit)), y, f"val-data/{limit}"
        if shared.dataset is None or self.splits is None or len(self.splits.validation) == 0:
            return None
        indices = self.splits.validation
        y = shared.dataset.y[indices] if shared.dataset.y is not None else None
        return take(shared.dataset.inputs, indices), y, ",".join(map(str, indices[:8])) + f"/{len(indices)}"

    def data_block(self) -> dict[str, Any]:
        """The report's `data` block: sources, sample counts and the split."""
        shared = self.shared
        block: dict[str, Any] = {"source": shared.dataset.source if shared.dataset else None}
        if shared.val_dataset is not None:
            block["validation_source"] = shared.val_dataset.source
        if shared.dataset is not None:
            block["samples"] = len(shared.dataset.x)
            block["labels"] = shared.dataset.y is not None
        if self.splits is not None:
            block["splits"] = self.splits.describe()
        if self.calibration is not None:
            block["calibration"] = (
                "random noise (--calibration random): NOT representative" if shared.dataset is None else "data"
            )
        return block
