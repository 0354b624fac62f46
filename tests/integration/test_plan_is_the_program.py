"""`edgebuild plan` prints exactly the stages a build runs, in the order it runs them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edgebuild.pipeline import BuildRequest, build, plan_build
from edgebuild.profiles import builtin_names

pytestmark = pytest.mark.tf

COMBINATIONS = [
    (),
    ("benchmark.enabled=false",),
    ("validation.enabled=false",),
    ("budget.flash=2MiB", "mcu.c_array=true"),
    ("pruning.kind=structured", "pruning.ratio=0.25", "training.epochs=1"),
    ("quantization.method=qat", "quantization.scheme=int8", "training.epochs=1"),
]


@pytest.mark.parametrize("overrides", COMBINATIONS, ids=lambda o: " ".join(o) or "defaults")
def test_every_stage_the_plan_names_runs_in_that_order(overrides, keras2_cnn, digits_data, tmp_path: Path) -> None:
    targets = tuple(builtin_names()) if not overrides else ("mcu",)  # every profile once; combinations on the richest
    request = BuildRequest(
        model=keras2_cnn.paths["keras"],
        targets=targets,
        data=digits_data.npz,
        out=tmp_path,
        use_cache=False,
        gates=False,
        overrides=("benchmark.runs=3", "quantization.calibration_samples=20", *overrides),
    )
    planned = {p.target: [s.name for s in p.stages] for p in plan_build(request)}
    results = build(request)
    for result in results:
        assert result.error is None, str(result.error)
        report = json.loads((tmp_path / result.target / "report.json").read_text())
        # the report stage writes report.json, so its own timing is the one not inside it
        assert [*report["timings_s"], "report"] == planned[result.target], result.target
