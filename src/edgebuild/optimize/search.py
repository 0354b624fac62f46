"""The search: cheap PTQ builds first, early rejection, successive halving for trained candidates.

Every trial is an ordinary build task on the executor (so cached: a rerun or a wider space reuses what was
built). Budgets the build can check itself (flash, RAM, accuracy drop) go into its profile; latency is
checked here from the target's own numbers (`measure.metrics`).
"""

from __future__ import annotations

import math
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from edgebuild.executors import BuildTask, Executor, TaskOutcome
from edgebuild.executors.task import write_outcome
from edgebuild.optimize.measure import Budgets, Metrics, metrics
from edgebuild.optimize.space import Candidate, Measured, candidates, lower_bounds
from edgebuild.partials import move_into_place
from edgebuild.profiles.schema import Profile


@dataclass
class Trial:
    candidate: Candidate
    fidelity: float
    key: str
    status: str = "pending"
    metrics: Metrics | None = None

    def row(self) -> dict[str, Any]:
        return {
            "candidate": self.candidate.name,
            "settings": asdict(self.candidate),
            "fidelity": self.fidelity,
            "folder": self.key,
            "status": self.status,
            "metrics": asdict(self.metrics) if self.metrics else None,
        }


@dataclass
class Search:
    """One optimize run: the inputs, the executor, and everything tried so far."""

    model: Path
    target: str
    data: Path | None
    out: Path  # OUT/optimize
    profile: Profile
    overrides: tuple[str, ...]
    budgets: Budgets
    executor: Executor
    trials_cap: int | None = None
    time_budget_s: float | None = None
    board_clock_hz: float | None = None
    progress: Callable[[str], None] = print
    tried: list[Trial] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)

    def time_left(self) -> float | None:
        if self.time_budget_s is None:
            return None
        return self.time_budget_s - (time.monotonic() - self.started)

    def run(self) -> Trial | None:
        """Search the space; return the chosen final trial (None if no candidate meets the budgets)."""
        space = candidates(self.profile)
        cheap = [c for c in space if not c.trains]
        trained = [c for c in space if c.trains]
        self._run_round(cheap, 1.0)
        bases = {t.candidate.precision: t.metrics for t in self.tried if t.metrics is not None}
        survivors = [c for c in trained if not self._reject(c, bases)]
        if self.trials_cap is not None:
            room = max(0, self.trials_cap - len(cheap))
            for c in survivors[room:]:
                self.tried.append(Trial(c, 1.0, "", status=f"not tried: --trials {self.trials_cap} reached"))
            survivors = survivors[:room]
        rungs = sorted(set(self.profile.optimize.fidelities) | {1.0})
        for i, fidelity in enumerate(rungs):
            if not survivors:
                break
            left = self.time_left()
            if left is not None and left <= 0:
                for c in survivors:
                    self.tried.append(Trial(c, fidelity, "", status="not tried: --time-budget spent"))
                break
            done = self._run_round(survivors, fidelity)
            if i < len(rungs) - 1:
                survivors = self._halve(done)
        return self.best()

    def final(self) -> list[Trial]:
        return [t for t in self.tried if t.fidelity == 1.0]

    def best(self) -> Trial | None:
        fits = [t for t in self.final() if t.metrics is not None and t.metrics.meets(self.budgets)]
        return min(fits, key=lambda t: (t.metrics.size_bytes, -(t.metrics.accuracy or 0))) if fits else None  # type: ignore[union-attr]

    def _reject(self, c: Candidate, bases: dict[str, Metrics]) -> bool:
        """Refuse before training a candidate whose optimistic size or RAM already breaks a hard budget."""
        base = bases.get(c.precision)
        if base is None:
            return False
        size, arena = lower_bounds(c, Measured(base.size_bytes, base.arena_bytes))
        flash = size + (base.flash_bytes - base.size_bytes)  # runtime and kernels do not shrink with the model
        ram = arena + ((base.ram_bytes or 0) - (base.arena_bytes or 0)) if arena is not None else None
        reason = None
        if self.budgets.flash is not None and flash > self.budgets.flash:
            reason = f"flash at least {flash:,} B > budget {self.budgets.flash:,} B"
        elif self.budgets.ram is not None and ram is not None and ram > self.budgets.ram:
            reason = f"RAM at least {ram:,} B > budget {self.budgets.ram:,} B"
        if reason is None:
            return False
        self.tried.append(
            Trial(c, 1.0, "", status=f"rejected before training: {reason} (estimated from the PTQ build)")
        )
        self.progress(f"  rejected {c.name}: {reason}")
        return True

    def _halve(self, done: list[Trial]) -> list[Candidate]:
        """Keep the best 1/eta by accuracy among those whose size and RAM (fixed by the structure) fit."""
        fitting = [t for t in done if t.metrics is not None and not self._breaks_hard_budget(t.metrics)]
        fitting.sort(key=lambda t: (-(t.metrics.accuracy or 0), t.metrics.size_bytes))  # type: ignore[union-attr]
        keep = max(1, math.ceil(len(done) / self.profile.optimize.eta)) if fitting else 0
        return [t.candidate for t in fitting[:keep]]

    def _breaks_hard_budget(self, m: Metrics) -> bool:
        return (self.budgets.flash is not None and m.flash_bytes > self.budgets.flash) or (
            self.budgets.ram is not None and m.ram_bytes is not None and m.ram_bytes > self.budgets.ram
        )

    def _run_round(self, round_candidates: list[Candidate], fidelity: float) -> list[Trial]:
        trials, tasks = [], []
        for c in round_candidates:
            suffix = "" if fidelity == 1.0 else f"@{round(fidelity * 100)}pct"
            key = f"candidates/{c.name}{suffix}/{self.profile.name}"
            trials.append(Trial(c, fidelity, key))
            settings = (*self.overrides, *self.budgets.overrides(), *c.overrides(self.profile, fidelity))
            tasks.append(BuildTask(key, self.model, self.target, self.data, settings, gates=False))
        by_key = {t.key: t for t in trials}

        def finished(outcome: TaskOutcome) -> None:
            trial = by_key[outcome.key]
            if outcome.files:
                write_outcome(outcome, self.out / outcome.key)
            if outcome.report is not None:
                trial.metrics = metrics(outcome.report, self.board_clock_hz)
                trial.status = (
                    "meets budgets"
                    if trial.metrics.meets(self.budgets)
                    else "misses: " + "; ".join(trial.metrics.failed or ("latency over budget",))
                )
            else:
                trial.status = f"failed: {outcome.error[1] if outcome.error else 'no report'}"
            self.tried.append(trial)
            self._report_progress(trial, outcome)

        self.executor.run(tasks, self.out, finished)
        return trials

    def _report_progress(self, trial: Trial, outcome: TaskOutcome) -> None:
        best = self.best()
        left = self.time_left()
        done = len([t for t in self.tried if t.metrics or t.status.startswith("failed")])
        parts = [
            f"[{done} done] {trial.key.split('/')[1]}",
            f"{trial.metrics.size_bytes:,} B" if trial.metrics else "",
            trial.status.split(";")[0],
            "(cached)" if outcome.cached else "",
            f"| best so far: {best.candidate.name} ({best.metrics.size_bytes:,} B)" if best and best.metrics else "",
            f"| time left {left / 60:.0f} min" if left is not None else "",
        ]
        self.progress(" ".join(p for p in parts if p))


def copy_best(search: Search, best: Trial) -> Path:
    """OUT/optimize/best/<target>/: the chosen candidate's full build folder (its validation included)."""
    dest = search.out / "best" / search.profile.name
    tmp = dest.parent / f".{dest.name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(search.out / best.key, tmp)
    move_into_place(tmp, dest)
    return dest
