"""`edgebuild optimize` on the digits CNN: a flash budget that excludes some candidates, real builds throughout.

The chosen build must meet the budgets as re-measured from its own report, and be the smallest of the
candidates whose reports meet them; best/<target>/ is that candidate's full build.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytestmark = [pytest.mark.tf, pytest.mark.slow]

FLASH_BUDGET = 11_400  # the int8 PTQ build's model array fits (about 11.1 kB); int16x8 PTQ (about 11.7 kB) does not
MAX_DROP = 3.0
SETTINGS = (
    "mcu.firmware=false",
    "benchmark.enabled=false",
    "layers.enabled=false",
    "optimize.pruning_ratios=[0.0, 0.5]",
    'optimize.precisions=["int8", "int16x8"]',
    "optimize.fidelities=[0.5, 1.0]",
    "training.recovery_epochs=6",
)


@pytest.fixture(scope="module")
def optimized(keras2_cnn, digits_data, tmp_path_factory: pytest.TempPathFactory):
    from edgebuild.executors import make_executor
    from edgebuild.optimize.run import optimize, parse_budgets

    out = tmp_path_factory.mktemp("optimize")
    lines: list[str] = []
    executor = make_executor("local", workers=2)
    try:
        search, best = optimize(
            keras2_cnn.paths["keras"],
            "mcu",
            digits_data.npz,
            out,
            parse_budgets([f"flash={FLASH_BUDGET}"], MAX_DROP),
            executor,
            overrides=SETTINGS,
            progress=lines.append,
        )
    finally:
        executor.close()
    return out / "optimize", search, best, lines


def _meets(report: dict) -> bool:
    """Re-measured from the report itself: flash use, accuracy drop, and every gate of the build."""
    budgets = next(c for c in report["validation"]["checks"] if c["name"] == "budgets")
    accuracy = report["validation"]["accuracy"]
    return (
        budgets["flash"]["used_bytes"] <= FLASH_BUDGET
        and accuracy["drop_points"] <= MAX_DROP
        and report["validation"]["passed"]
    )


def test_optimize_chooses_the_smallest_candidate_meeting_the_budgets(optimized):
    root, _search, best, lines = optimized
    summary = json.loads((root / "front.json").read_text())
    finals = [c for c in summary["candidates"] if c["fidelity"] == 1.0 and c["metrics"] is not None]
    reports = {c["candidate"]: json.loads((root / c["folder"] / "report.json").read_text()) for c in finals}

    # The budget excludes some built candidates and admits others.
    meeting = {name: r for name, r in reports.items() if _meets(r)}
    assert meeting and len(meeting) < len(reports), {n: _meets(r) for n, r in reports.items()}
    assert "int16x8-ptq" in reports and "int16x8-ptq" not in meeting  # over the flash budget
    # Successive halving ran: the pruned candidates were first built at half the training epochs.
    assert any(c["fidelity"] == 0.5 for c in summary["candidates"])

    assert best is not None and summary["chosen"] == best.candidate.name
    chosen = reports[best.candidate.name]
    assert _meets(chosen)
    assert chosen["artifact"]["size_bytes"] == min(r["artifact"]["size_bytes"] for r in meeting.values())

    best_dir = root / "best" / "mcu"
    assert (best_dir / "model.tflite").read_bytes() == (root / best.key / "model.tflite").read_bytes()
    assert json.loads((best_dir / "report.json").read_text())["validation"]["passed"]
    assert (root / "front.png").stat().st_size > 10_000 and "(chosen)" in (root / "front.md").read_text()
    assert any(c["on_front"] for c in summary["candidates"])
    assert summary["latency_source"].startswith("none")  # mcu without firmware: no target latency, and it says so
    assert any("best so far" in line for line in lines)


def test_latency_budget_without_a_target_latency_is_refused_before_any_build(tmp_path: Path, digits_data):
    from edgebuild.errors import UsageError
    from edgebuild.executors import make_executor
    from edgebuild.optimize.run import optimize, parse_budgets

    executor = make_executor("local", workers=1)
    with pytest.raises(UsageError, match="latency_ms"):
        optimize(
            tmp_path / "m.keras",
            "mcu",
            digits_data.npz,
            tmp_path,
            parse_budgets(["latency_ms=5"], None),
            executor,
            overrides=("mcu.firmware=false",),
        )
    executor.close()
    assert not (tmp_path / "optimize").exists()
