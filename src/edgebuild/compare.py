"""`edgebuild compare BASE NEW`: what changed between two builds, and whether it is a regression.

BASE and NEW are build folders (OUT/, holding <target>/report.json), one target's folder, or report.json
files. Targets are matched by name. Per target it compares size, accuracy (top-1 and agreement, or SNR for
non-classifiers: the metric the accuracy gate used), latency (only numbers measured on the same host or the
same device, with a noise allowance from the measured spread), tensor arena, flash, the ops in the graph
and every check's status. A change beyond a threshold is a regression; any regression makes the command
exit 8 with each one named (docs/ci.md). No TensorFlow is imported here.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgebuild.errors import GateFailed, UsageError
from edgebuild.report_html import arena_bytes, budget_block

if TYPE_CHECKING:
    from typing_extensions import TypeIs

OK, REGRESSED, IMPROVED, CHANGED, SKIPPED = "ok", "REGRESSED", "improved", "changed", "not compared"


class Regressed(GateFailed):
    """At least one target regressed beyond a threshold (exit 8, like a failed gate)."""

    title = "regression"


# ------------------------------------------------------------------------------------------- thresholds

_SIZE_UNITS = {"": 1, "b": 1, "kb": 1000, "kib": 1024, "mb": 1000**2, "mib": 1024**2}
_TIME_UNITS = {"ms": 1.0, "us": 1e-3, "s": 1000.0}


@dataclass(frozen=True)
class Limit:
    """How much a number may grow: a fraction of the base (`5%`), an absolute amount (`2KiB`, `0.1ms`), or both
    (`5%+1KiB`: the larger allowance wins)."""

    relative: float | None = None
    absolute: float | None = None
    text: str = ""

    def allowance(self, base: float) -> float:
        allowed = [self.relative * abs(base)] if self.relative is not None else []
        allowed += [self.absolute] if self.absolute is not None else []
        return max(allowed) if allowed else 0.0

    @classmethod
    def parse(cls, text: str | float, kind: str = "bytes") -> Limit:
        """`5%`, `0`, `2048`, `2KiB`, `0.5ms`, `5%+1KiB` (kind `bytes`, `ms` or `count`)."""
        raw = str(text).strip()
        relative = absolute = None
        for part in filter(None, (p.strip() for p in raw.replace(" ", "").split("+"))):
            if part.endswith("%"):
                relative = _number(part[:-1], raw) / 100
                continue
            match = re.fullmatch(r"([0-9]*\.?[0-9]+(?:e-?[0-9]+)?)([a-zA-Z]*)", part)
            if match is None:
                raise UsageError(f"threshold {raw!r}: expected a percentage (5%) or an amount (2KiB, 0.5ms, 100)")
            value, unit = float(match.group(1)), match.group(2).lower()
            units = _TIME_UNITS if kind == "ms" else _SIZE_UNITS if kind == "bytes" else {"": 1}
            if kind == "ms" and unit == "":
                unit = "ms"
            if unit not in units:
                raise UsageError(
                    f"threshold {raw!r}: unknown unit {match.group(2)!r} (use one of "
                    f"{', '.join(u or 'no unit' for u in units)}, or a percentage)"
                )
            absolute = value * units[unit]
        if relative is None and absolute is None:
            raise UsageError(f"threshold {raw!r} is empty")
        return cls(relative, absolute, raw)


def _number(text: str, whole: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise UsageError(f"threshold {whole!r}: {text!r} is not a number") from None
    if value < 0:
        raise UsageError(f"threshold {whole!r} is negative")
    return value


@dataclass(frozen=True)
class Thresholds:
    size: Limit = Limit(0.05, None, "5%")
    accuracy_drop: float = 0.5  # percentage points of top-1 or agreement
    snr_drop: float = 3.0  # dB of the worst output's SNR (models gated on SNR)
    latency: Limit = Limit(0.10, None, "10%")
    arena: Limit = Limit(0.05, None, "5%")
    flash: Limit = Limit(0.05, None, "5%")

    KEYS = (
        "max_size_increase",
        "max_accuracy_drop",
        "max_snr_drop",
        "max_latency_increase",
        "max_arena_increase",
        "max_flash_increase",
    )

    @classmethod
    def build(cls, *layers: dict[str, Any] | None) -> Thresholds:
        """Later layers win: e.g. build(profile_table, config_file_table, flags)."""
        values: dict[str, Any] = {}
        for layer in layers:
            for key, value in (layer or {}).items():
                if value is None:
                    continue
                if key not in cls.KEYS:
                    raise UsageError(f"unknown compare threshold {key!r} (known: {', '.join(cls.KEYS)})")
                values[key] = value
        d = cls()
        return cls(
            size=Limit.parse(values["max_size_increase"]) if "max_size_increase" in values else d.size,
            accuracy_drop=_points(values.get("max_accuracy_drop", d.accuracy_drop), "max_accuracy_drop"),
            snr_drop=_points(values.get("max_snr_drop", d.snr_drop), "max_snr_drop"),
            latency=Limit.parse(values["max_latency_increase"], "ms")
            if "max_latency_increase" in values
            else d.latency,
            arena=Limit.parse(values["max_arena_increase"]) if "max_arena_increase" in values else d.arena,
            flash=Limit.parse(values["max_flash_increase"]) if "max_flash_increase" in values else d.flash,
        )

    def describe(self) -> dict[str, str]:
        return {
            "max_size_increase": self.size.text,
            "max_accuracy_drop": f"{self.accuracy_drop:g} points",
            "max_snr_drop": f"{self.snr_drop:g} dB",
            "max_latency_increase": self.latency.text,
            "max_arena_increase": self.arena.text,
            "max_flash_increase": self.flash.text,
        }


def _points(value: Any, key: str) -> float:
    text = str(value).strip().removesuffix("points").removesuffix("dB").removesuffix("pp").strip()
    return _number(text, f"{key}={value}")


def config_table(path: Path) -> dict[str, Any]:
    """The `[compare]` table of a TOML file (or `[tool.edgebuild.compare]` of a pyproject.toml)."""
    import tomllib

    try:
        data = tomllib.loads(Path(path).read_text())
    except FileNotFoundError:
        raise UsageError(f"--config {path}: no such file") from None
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"--config {path}: not valid TOML ({exc})") from None
    table = data.get("compare", data.get("tool", {}).get("edgebuild", {}).get("compare"))
    if not isinstance(table, dict):
        raise UsageError(f"--config {path} has no [compare] (or [tool.edgebuild.compare]) table")
    return {k.replace("-", "_"): v for k, v in table.items()}


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


def _d(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _is_num(value: Any) -> TypeIs[int | float]:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _pct_change(base: float, new: float) -> str:
    if base == 0:
        return "+0" if new == 0 else f"{new - base:+,.4g}"
    return f"{100 * (new - base) / base:+.1f}%"


def _bytes(n: float) -> str:
    return f"{int(n):,} B"


def _growth_row(
    diff: TargetDiff,
    metric: str,
    base: Any,
    new: Any,
    limit: Limit,
    fmt: Callable[[float], str] = _bytes,
    *,
    noise: float = 0.0,
    note: str = "",
) -> None:
    """A number that should not grow: regression when new > base + allowance (+ noise)."""
    if not _is_num(base) or not _is_num(new):
        return
    allowed = limit.allowance(base) + noise
    delta = new - base
    status = REGRESSED if delta > allowed + 1e-12 else IMPROVED if delta < -max(noise, 1e-12) else OK
    limit_text = f"+{limit.text}" + (f" + noise {fmt(noise)}" if noise else "")
    diff.rows.append(
        Row(metric, fmt(base), fmt(new), _pct_change(base, new), limit_text, status, note, (float(base), float(new)))
    )


def _size(diff: TargetDiff, base: dict[str, Any], new: dict[str, Any], th: Thresholds) -> None:
    _growth_row(
        diff, "size", _d(base.get("artifact")).get("size_bytes"), _d(new.get("artifact")).get("size_bytes"), th.size
    )


def _accuracy(diff: TargetDiff, base: dict[str, Any], new: dict[str, Any], th: Thresholds) -> None:
    a = _d(_d(base.get("validation")).get("accuracy"))
    b = _d(_d(new.get("validation")).get("accuracy"))
    if not a or not b:
        if a or b:
            diff.notes.append("accuracy measured in only one of the builds: not compared")
        return
    note = "" if a.get("samples") == b.get("samples") else f"on {a.get('samples')} vs {b.get('samples')} samples"
    metric = b.get("metric") or a.get("metric")
    for key, label in (("artifact_top1", "top-1"), ("agreement", "agreement with float")):
        if _is_num(a.get(key)) and _is_num(b.get(key)) and metric != "snr":
            x, y = 100 * a[key], 100 * b[key]
            drop = x - y
            status = REGRESSED if drop > th.accuracy_drop + 1e-9 else IMPROVED if drop < -1e-9 else OK
            diff.rows.append(
                Row(
                    label,
                    f"{x:.2f}%",
                    f"{y:.2f}%",
                    f"{y - x:+.2f} points",
                    f"-{th.accuracy_drop:g} points",
                    status,
                    note,
                    (x, y),
                )
            )
    x, y = a.get("min_snr_db", "absent"), b.get("min_snr_db", "absent")
    if x != "absent" and y != "absent":
        bx = float("inf") if x is None else float(x)  # null = identical outputs
        by = float("inf") if y is None else float(y)
        gated = metric == "snr"
        drop = bx - by if bx != by else 0.0
        if drop == 0:
            status = OK
        elif not gated:
            status = CHANGED  # shown, not judged: the accuracy gate of a classifier is top-1
        else:
            status = REGRESSED if drop > th.snr_drop else IMPROVED if drop < 0 else OK
        change = (
            "0 dB"
            if drop == 0
            else ("worse" if drop == float("inf") else "better" if drop == float("-inf") else f"{-drop:+.1f} dB")
        )
        diff.rows.append(
            Row(
                "worst output SNR",
                _snr(x),
                _snr(y),
                change,
                f"-{th.snr_drop:g} dB" if gated else "info (gate metric is top-1)",
                status,
                note,
                (x, y),
            )
        )


def _snr(value: Any) -> str:
    return "identical" if value is None else f"{float(value):.1f} dB"


def _host_identity(benchmark: dict[str, Any]) -> tuple[Any, ...]:
    host, runtime = _d(benchmark.get("host")), _d(benchmark.get("runtime"))
    return (host.get("cpu"), host.get("machine"), host.get("cores"), runtime.get("name"), runtime.get("version"))


def _device_identity(device: dict[str, Any]) -> tuple[Any, ...]:
    info = _d(device.get("device"))
    runtime = info.get("runtime")
    runtime = (runtime.get("name"), runtime.get("version")) if isinstance(runtime, dict) else runtime
    return (info.get("cpu"), info.get("machine"), info.get("cores"), info.get("url"), str(runtime))


def _ms(value: float) -> str:
    return f"{value:.4f} ms"


def _latency(diff: TargetDiff, base: dict[str, Any], new: dict[str, Any], th: Thresholds) -> None:
    a, b = _d(base.get("benchmark")), _d(new.get("benchmark"))
    pairs = [("host", a, b, _host_identity(a), _host_identity(b))]
    da, db = _d(a.get("device")), _d(b.get("device"))
    if da.get("threads") or db.get("threads"):
        pairs.append(("device", da, db, _device_identity(da), _device_identity(db)))
    for where, x, y, ix, iy in pairs:
        tx, ty = _d(x.get("threads")), _d(y.get("threads"))
        common = [t for t in tx if t in ty]
        if not common:
            if tx or ty:
                diff.notes.append(
                    f"{where} latency measured in only one build (or with other thread counts): not compared"
                )
            continue
        for threads in common:
            sx, sy = _d(tx[threads]), _d(ty[threads])
            metric = f"{where} p50 latency ({threads} thread{'s' if str(threads) != '1' else ''})"
            px, py = sx.get("p50_ms", sx.get("mean_ms")), sy.get("p50_ms", sy.get("mean_ms"))
            if not _is_num(px) or not _is_num(py):
                continue
            if ix != iy:
                who = "hosts" if where == "host" else "devices"
                diff.rows.append(
                    Row(
                        metric,
                        _ms(px),
                        _ms(py),
                        _pct_change(px, py),
                        "-",
                        SKIPPED,
                        f"measured on different {who} ({_who(ix)} vs {_who(iy)})",
                        (px, py),
                    )
                )
                continue
            noise = max(_spread(sx), _spread(sy))
            _growth_row(diff, metric, px, py, th.latency, _ms, noise=noise, note=f"{where}: {_who(ix)}")
    cost_a = _d(_d(_d(base.get("firmware")).get("device")).get("instructions_per_inference")).get("median")
    cost_b = _d(_d(_d(new.get("firmware")).get("device")).get("instructions_per_inference")).get("median")
    _growth_row(
        diff,
        "instructions per inference (QEMU)",
        cost_a,
        cost_b,
        th.latency,
        lambda v: f"{int(v):,}",
        note="counted on the emulated device: exact, no noise",
    )
    va, vb = _d(_d(base.get("compile")).get("vela")), _d(_d(new.get("compile")).get("vela"))
    if va.get("accelerator") == vb.get("accelerator"):
        _growth_row(
            diff,
            "NPU cycles (Vela estimate)",
            va.get("cycles_total"),
            vb.get("cycles_total"),
            th.latency,
            lambda v: f"{int(v):,}",
            note=str(vb.get("accelerator") or ""),
        )


def _spread(stats: dict[str, Any]) -> float:
    """The noise allowance of one measurement: p90 - p50 (half the runs lie that far above the median or less)."""
    p50, p90 = stats.get("p50_ms"), stats.get("p90_ms")
    return max(float(p90) - float(p50), 0.0) if _is_num(p50) and _is_num(p90) else 0.0


def _who(identity: tuple[Any, ...]) -> str:
    return " ".join(str(p) for p in identity if p not in (None, "", "None")) or "unknown"


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


def _state(passed: bool | None) -> str:
    return "absent" if passed is None else "pass" if passed else "FAIL"
