"""Size, memory (arena, flash, RAM), the ops in the graph and every check's status compared."""

from __future__ import annotations

from typing import Any

from edgebuild.compare.result import TargetDiff
from edgebuild.compare.thresholds import Thresholds
from edgebuild.compare.values import _d, _growth_row, _is_num, _state
from edgebuild.report_html import arena_bytes, budget_block


def _size(diff: TargetDiff, base: dict[str, Any], new: dict[str, Any], th: Thresholds) -> None:
    _growth_row(
        diff, "size", _d(base.get("artifact")).get("size_bytes"), _d(new.get("artifact")).get("size_bytes"), th.size
    )


def _memory_figures(report: dict[str, Any]) -> dict[str, tuple[str, Any]]:
    """Every memory figure of a report by a name that includes its scope, so only like is compared with like:
    name -> (threshold kind, bytes). Flash of the model array exists in every mcu-like report; the budgets
    check measures the linked firmware instead when there is one (its `scope` says which)."""
    figures: dict[str, tuple[str, Any]] = {
        "tensor arena": ("arena", arena_bytes(report)),
        "flash (model array)": ("flash", _d(report.get("flash")).get("model_array_bytes")),
    }
    firmware = _d(report.get("firmware"))
    figures["arena used on device"] = ("arena", _d(firmware.get("device")).get("arena_used_bytes"))
    for kind in ("flash", "ram"):
        block = budget_block(report, kind)
        scope = block.get("scope") or ""
        if scope and scope not in ("model array", "tensor arena"):
            figures[f"{'flash' if kind == 'flash' else 'RAM'} ({scope})"] = (
                "flash" if kind == "flash" else "arena",
                block.get("used_bytes"),
            )
        elif kind == "flash" and not _is_num(figures["flash (model array)"][1]):
            figures["flash (model array)"] = ("flash", block.get("used_bytes"))
    fw_flash = _d(firmware.get("flash"))
    total = fw_flash.get("total_bytes_without_samples", fw_flash.get("total_bytes"))
    if _is_num(total) and "flash (firmware image)" not in figures:
        figures["flash (firmware image)"] = ("flash", total)
    return {k: v for k, v in figures.items() if _is_num(v[1])}


def _memory(diff: TargetDiff, base: dict[str, Any], new: dict[str, Any], th: Thresholds) -> None:
    fa, fb = _memory_figures(base), _memory_figures(new)
    for name, (kind, value) in fa.items():
        if name in fb:
            _growth_row(diff, name, value, fb[name][1], th.flash if kind == "flash" else th.arena)
    only = sorted(set(fa) ^ set(fb))
    if only:
        diff.notes.append(f"measured in only one build, not compared: {', '.join(only)}")


def _ops(diff: TargetDiff, base: dict[str, Any], new: dict[str, Any]) -> None:
    a, b = _d(_d(base.get("artifact")).get("ops")), _d(_d(new.get("artifact")).get("ops"))
    for op in sorted(set(a) | set(b)):
        delta = int(b.get(op, 0)) - int(a.get(op, 0))
        if delta > 0:
            diff.ops_added[op] = delta
        elif delta < 0:
            diff.ops_removed[op] = -delta


def _all_checks(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    checks = {str(c.get("name")): c for c in (_d(report.get("validation")).get("checks") or []) if isinstance(c, dict)}
    for c in _d(report.get("firmware")).get("checks") or []:
        if isinstance(c, dict):
            checks[f"firmware: {c.get('name')}"] = c
    return checks


def _checks(diff: TargetDiff, base: dict[str, Any], new: dict[str, Any]) -> None:
    a, b = _all_checks(base), _all_checks(new)
    for name in list(dict.fromkeys([*a, *b])):
        was = a[name].get("passed") if name in a else None
        now = b[name].get("passed") if name in b else None
        if was == now:
            continue
        entry = {
            "check": name,
            "base": _state(was),
            "new": _state(now),
            "summary": (b.get(name) or a.get(name) or {}).get("summary", ""),
        }
        diff.checks_changed.append(entry)
        if now is False:
            diff.regressed_metrics.append(f"check '{name}'")
            diff.regressions.append(f"check '{name}' {'now fails' if was else 'fails (new check)'}: {entry['summary']}")
