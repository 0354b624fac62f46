"""`edgebuild compare BASE NEW`: what changed between two builds, and whether it is a regression.

BASE and NEW are build folders (OUT/, holding <target>/report.json), one target's folder, or report.json
files. Targets are matched by name. Per target it compares size, accuracy (top-1 and agreement, or SNR for
non-classifiers: the metric the accuracy gate used), latency (only numbers measured on the same host or the
same device, with a noise allowance from the measured spread), tensor arena, flash, the ops in the graph
and every check's status. A change beyond a threshold is a regression; any regression makes the command
exit 8 with each one named (docs/ci.md). No TensorFlow is imported here.

The package: thresholds (Limit, Thresholds, config_table), result (the statuses, Row, TargetDiff,
Comparison, Regressed), builds (load_build, compare_builds, compare_target) and the per-metric comparisons:
quality (accuracy, latency), footprint (size, memory, ops, checks) on the helpers of values.
"""

from __future__ import annotations

from edgebuild.compare.builds import compare_builds, compare_target, load_build
from edgebuild.compare.result import CHANGED, IMPROVED, OK, REGRESSED, SKIPPED, Comparison, Regressed, Row, TargetDiff
from edgebuild.compare.thresholds import Limit, Thresholds, config_table

__all__ = [
    "CHANGED",
    "IMPROVED",
    "OK",
    "REGRESSED",
    "SKIPPED",
    "Comparison",
    "Limit",
    "Regressed",
    "Row",
    "TargetDiff",
    "Thresholds",
    "compare_builds",
    "compare_target",
    "config_table",
    "load_build",
]
