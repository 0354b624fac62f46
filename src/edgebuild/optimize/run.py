"""One optimize run end to end: resolve, search, then write the front (json, md, chart) and best/<target>/."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

from edgebuild.errors import UsageError
from edgebuild.executors import Executor
from edgebuild.optimize import pareto
from edgebuild.optimize.measure import HOST_LIKE, Budgets
from edgebuild.optimize.search import Search, Trial, copy_best

_BUDGET_KEYS = ("flash", "ram", "latency_ms")


def parse_budgets(items: list[str], max_drop: float | None) -> Budgets:
    """`--budget ram=256KiB --budget flash=1MiB --budget latency_ms=50` -> Budgets."""
    from edgebuild.profiles.schema import _parse_bytes

    values: dict[str, float | int | None] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or key not in _BUDGET_KEYS:
            raise UsageError(f"--budget {item!r}: use KEY=VALUE with KEY one of {', '.join(_BUDGET_KEYS)}.")
        try:
            values[key] = float(value) if key == "latency_ms" else int(_parse_bytes(value))  # type: ignore[call-overload]
        except ValueError:
            raise UsageError(f"--budget {item!r}: {value!r} is not a size such as 262144, 256KiB or 1MiB.") from None
    return Budgets(values.get("flash"), values.get("ram"), values.get("latency_ms"), max_drop)  # type: ignore[arg-type]


def parse_duration(text: str | None) -> float | None:
    """'2h', '30m', '90s' or seconds."""
    if text is None:
        return None
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([hms]?)\s*", text)
    if not match:
        raise UsageError(f"--time-budget {text!r}: use e.g. 2h, 30m, 90s or seconds.")
    return float(match.group(1)) * {"h": 3600, "m": 60, "s": 1, "": 1}[match.group(2)]


def optimize(
    model: Path,
    target: str,
    data: Path | None,
    out: Path,
    budgets: Budgets,
    executor: Executor,
    *,
    overrides: tuple[str, ...] = (),
    trials: int | None = None,
    time_budget_s: float | None = None,
    progress: Callable[[str], None] = print,
) -> tuple[Search, Trial | None]:
    from edgebuild.profiles import resolve

    profile = resolve(target, (*overrides, *budgets.overrides()))
    clock = None
    if budgets.latency_ms is not None and profile.name not in HOST_LIKE and not profile.vela.accelerator:
        if not profile.mcu.firmware:
            raise UsageError(
                f"--budget latency_ms for '{profile.name}' needs the target's own latency: this target measures "
                "none (host latency does not stand for a microcontroller). Use mcu.firmware=true (QEMU instructions) "
                "or drop the latency budget."
            )
        from edgebuild.firmware.boards import load_board

        clock = float(load_board(profile.mcu.board).systick_hz)
    search = Search(
        model,
        target,
        data,
        out / "optimize",
        profile,
        overrides,
        budgets,
        executor,
        trials,
        time_budget_s,
        clock,
        progress,
    )
    best = search.run()
    write_outputs(search, best)
    return search, best


def write_outputs(search: Search, best: Trial | None) -> None:
    final = [t for t in search.final() if t.metrics is not None]
    on_front = pareto.front([(t.key, t.metrics) for t in final if t.metrics is not None])
    rows = []
    for t in search.tried:
        row = t.row()
        row["on_front"] = t.key in on_front
        row["chosen"] = best is not None and t is best
        rows.append(row)
    source = next((t.metrics.latency_source for t in final if t.metrics), "none")
    out = search.out
    out.mkdir(parents=True, exist_ok=True)
    summary = {
        "target": search.profile.name,
        "budgets": {
            "flash": search.budgets.flash,
            "ram": search.budgets.ram,
            "latency_ms": search.budgets.latency_ms,
            "max_drop_points": search.budgets.max_drop,
        },
        "latency_source": source,
        "chosen": best.candidate.name if best else None,
        "best_folder": f"best/{search.profile.name}" if best else None,
        "executor": search.executor.name,
        "candidates": rows,
    }
    (out / "front.json").write_text(json.dumps(summary, indent=2) + "\n")
    (out / "front.md").write_text(f"# edgebuild optimize: {search.profile.name}\n\n" + pareto.markdown(rows, source))
    pareto.chart(rows, out / "front.png")
    if best is not None:
        copy_best(search, best)
