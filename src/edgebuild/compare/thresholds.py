"""How much change is allowed: `Limit`, `Thresholds` and the `[compare]` table of a TOML file."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgebuild.errors import UsageError

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
