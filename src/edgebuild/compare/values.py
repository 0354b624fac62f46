"""Small helpers of the per-metric comparisons: report blocks, numbers, formatting, identities."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from edgebuild.compare.result import IMPROVED, OK, REGRESSED, Row, TargetDiff
from edgebuild.compare.thresholds import Limit

if TYPE_CHECKING:
    from typing_extensions import TypeIs


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


def _spread(stats: dict[str, Any]) -> float:
    """The noise allowance of one measurement: p90 - p50 (half the runs lie that far above the median or less)."""
    p50, p90 = stats.get("p50_ms"), stats.get("p90_ms")
    return max(float(p90) - float(p50), 0.0) if _is_num(p50) and _is_num(p90) else 0.0


def _who(identity: tuple[Any, ...]) -> str:
    return " ".join(str(p) for p in identity if p not in (None, "", "None")) or "unknown"


def _state(passed: bool | None) -> str:
    return "absent" if passed is None else "pass" if passed else "FAIL"
