"""What a comparison found: a row per metric, a `TargetDiff` per target, the `Comparison`; `Regressed`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from edgebuild.compare.thresholds import Thresholds
from edgebuild.errors import GateFailed

OK, REGRESSED, IMPROVED, CHANGED, SKIPPED = "ok", "REGRESSED", "improved", "changed", "not compared"


class Regressed(GateFailed):
    """At least one target regressed beyond a threshold (exit 8, like a failed gate)."""

    title = "regression"


# ------------------------------------------------------------------------------------------- comparing


@dataclass
class Row:
    metric: str
    base: str
    new: str
    change: str
    limit: str
    status: str
    note: str = ""
    values: tuple[float | None, float | None] = (None, None)  # the raw numbers compared (for json/tests)


@dataclass
class TargetDiff:
    target: str
    rows: list[Row] = field(default_factory=list)
    ops_added: dict[str, int] = field(default_factory=dict)
    ops_removed: dict[str, int] = field(default_factory=dict)
    checks_changed: list[dict[str, Any]] = field(default_factory=list)
    regressions: list[str] = field(default_factory=list)
    regressed_metrics: list[str] = field(default_factory=list)  # short names, for one-line messages
    notes: list[str] = field(default_factory=list)
    status: str = "compared"  # or "missing in NEW", "new in NEW"

    @property
    def regressed(self) -> bool:
        return bool(self.regressions)


@dataclass
class Comparison:
    base: str
    new: str
    thresholds: Thresholds
    targets: list[TargetDiff]

    @property
    def regressions(self) -> list[str]:
        return [f"{t.target}: {r}" for t in self.targets for r in t.regressions]

    def short(self) -> str:
        """One line naming every regression: `mcu: size, top-1; mobile: host p50 latency (1 thread)`."""
        return "; ".join(f"{t.target}: {', '.join(t.regressed_metrics)}" for t in self.targets if t.regressed)

    def to_dict(self) -> dict[str, Any]:
        return {
            "base": self.base,
            "new": self.new,
            "thresholds": self.thresholds.describe(),
            "regressed": bool(self.regressions),
            "regressions": self.regressions,
            "targets": [
                {
                    "target": t.target,
                    "status": t.status,
                    "regressions": t.regressions,
                    "notes": t.notes,
                    "ops_added": t.ops_added,
                    "ops_removed": t.ops_removed,
                    "checks_changed": t.checks_changed,
                    "rows": [
                        {
                            "metric": r.metric,
                            "base": r.values[0],
                            "new": r.values[1],
                            "change": r.change,
                            "limit": r.limit,
                            "status": r.status,
                            "note": r.note,
                        }
                        for r in t.rows
                    ],
                }
                for t in self.targets
            ],
        }
