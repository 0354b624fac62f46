"""Reading two builds and comparing them target by target."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from edgebuild.compare.footprint import _checks, _memory, _ops, _size
from edgebuild.compare.quality import _accuracy, _latency
from edgebuild.compare.result import REGRESSED, Comparison, TargetDiff
from edgebuild.compare.thresholds import Thresholds
from edgebuild.errors import UsageError

# ------------------------------------------------------------------------------------------- loading


def load_build(path: Path) -> dict[str, dict[str, Any]]:
    """target -> report of a build folder, a target folder or a report.json file."""
    path = Path(path)
    if path.is_file():
        files = [path]
    elif (path / "report.json").is_file():
        files = [path / "report.json"]
    elif path.is_dir():
        files = sorted(path.glob("*/report.json"))
    else:
        raise UsageError(f"{path}: no such build folder or report.json")
    if not files:
        raise UsageError(f"{path}: no <target>/report.json inside (is it an edgebuild --out folder?)")
    reports = {}
    for file in files:
        try:
            report = json.loads(file.read_text())
        except (OSError, ValueError) as exc:
            raise UsageError(f"{file}: not a readable report.json ({exc})") from None
        if not isinstance(report, dict) or "artifact" not in report:
            raise UsageError(f"{file}: not an edgebuild report.json (no `artifact` block)")
        reports[str(report.get("target") or file.parent.name)] = report
    return reports


def compare_builds(
    base: dict[str, dict[str, Any]],
    new: dict[str, dict[str, Any]],
    thresholds: Thresholds | None = None,
    *,
    base_label: str = "BASE",
    new_label: str = "NEW",
    targets: list[str] | None = None,
) -> Comparison:
    thresholds = thresholds or Thresholds()
    names = list(dict.fromkeys([*base, *new]))
    if targets:
        unknown = [t for t in targets if t not in names]
        if unknown:
            raise UsageError(f"--target {', '.join(unknown)}: not in either build (targets: {', '.join(names)})")
        names = [n for n in names if n in targets]
    diffs = []
    for name in names:
        if name not in new:
            diffs.append(
                TargetDiff(
                    name,
                    status="missing in NEW",
                    regressed_metrics=["target missing"],
                    regressions=[f"target missing from {new_label} (its build failed or was not run)"],
                )
            )
        elif name not in base:
            diffs.append(TargetDiff(name, status="new in NEW", notes=[f"new target, not in {base_label}"]))
        else:
            diffs.append(compare_target(name, base[name], new[name], thresholds))
    return Comparison(base_label, new_label, thresholds, diffs)


def compare_target(name: str, base: dict[str, Any], new: dict[str, Any], th: Thresholds) -> TargetDiff:
    diff = TargetDiff(name)
    _size(diff, base, new, th)
    _accuracy(diff, base, new, th)
    _latency(diff, base, new, th)
    _memory(diff, base, new, th)
    for row in diff.rows:
        if row.status == REGRESSED:
            diff.regressions.append(f"{row.metric} {row.base} -> {row.new} ({row.change}; limit {row.limit})")
            diff.regressed_metrics.append(row.metric)
    _ops(diff, base, new)
    _checks(diff, base, new)
    return diff
