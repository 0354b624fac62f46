"""What a candidate's report says about it: the numbers the search compares, each named by its source."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

HOST_LIKE = {"mobile"}  # targets whose host LiteRT latency stands for the device's (same kernels, a CPU)


@dataclass(frozen=True)
class Budgets:
    flash: int | None = None
    ram: int | None = None
    latency_ms: float | None = None
    max_drop: float | None = None  # accuracy points against the float model

    def overrides(self) -> tuple[str, ...]:
        """The budgets the builds check themselves (flash, RAM, accuracy drop); latency is checked here."""
        out = []
        if self.flash is not None:
            out.append(f"budget.flash={self.flash}")
        if self.ram is not None:
            out.append(f"budget.ram={self.ram}")
        if self.max_drop is not None:
            out.append(f"validation.max_accuracy_drop={self.max_drop}")
        return tuple(out)


@dataclass(frozen=True)
class Metrics:
    size_bytes: int
    flash_bytes: int
    ram_bytes: int | None
    arena_bytes: int | None
    accuracy: float | None  # artifact top-1 (or agreement with the float model without labels), 0..1
    drop_points: float | None
    latency_ms: float | None
    latency_source: str
    passed: bool  # the build's own gates: op rules, accuracy drop, flash and RAM budgets
    failed: tuple[str, ...]

    def meets(self, budgets: Budgets) -> bool:
        if not self.passed:
            return False
        if budgets.latency_ms is not None:
            return self.latency_ms is not None and self.latency_ms <= budgets.latency_ms
        return True


def metrics(report: dict[str, Any], board_clock_hz: float | None = None) -> Metrics:
    validation = report.get("validation") or {}
    checks = validation.get("checks", [])
    budget: dict[str, Any] = next((c for c in checks if c.get("name") == "budgets"), {})
    accuracy = validation.get("accuracy") or {}
    arena = (validation.get("arena") or {}).get("recommended_bytes")
    size = int(report["artifact"]["size_bytes"])
    latency, source = _latency(report, board_clock_hz)
    top1 = accuracy.get("artifact_top1")
    return Metrics(
        size_bytes=size,
        flash_bytes=int((budget.get("flash") or {}).get("used_bytes") or size),
        ram_bytes=(budget.get("ram") or {}).get("used_bytes") or arena,
        arena_bytes=arena,
        accuracy=top1 if top1 is not None else accuracy.get("agreement"),
        drop_points=accuracy.get("drop_points"),
        latency_ms=latency,
        latency_source=source,
        passed=bool(validation.get("passed", True)),
        failed=tuple(c["summary"] for c in checks if not c.get("passed", True)),
    )


def _latency(report: dict[str, Any], board_clock_hz: float | None) -> tuple[float | None, str]:
    """The target's own latency where the build measured one; host LiteRT only for host-like targets."""
    vela = ((report.get("compile") or {}).get("vela")) or {}
    if vela.get("inference_time_ms") is not None:
        return float(vela["inference_time_ms"]), "Vela's performance estimate"
    instructions = _find(report.get("firmware") or {}, "instructions_per_inference")
    if instructions is not None:
        if board_clock_hz:
            ms = instructions["median"] / board_clock_hz * 1000.0
            return ms, f"QEMU instructions per inference at one instruction per cycle at {board_clock_hz / 1e6:g} MHz"
        return None, "QEMU instructions per inference (no board clock to convert)"
    benchmark = report.get("benchmark") or {}
    if report.get("target") in HOST_LIKE and benchmark.get("threads"):
        best = str(benchmark.get("best_threads") or next(iter(benchmark["threads"])))
        return float(benchmark["threads"][best]["p50_ms"]), "host LiteRT p50 (this machine's CPU)"
    return None, "none: the target's latency was not measured (mcu: mcu.firmware=true runs it on QEMU)"


def _find(tree: Any, key: str) -> Any:
    if isinstance(tree, dict):
        if key in tree:
            return tree[key]
        for value in tree.values():
            found = _find(value, key)
            if found is not None:
                return found
    return None
