"""`edgebuild compare` on real builds: an identical rebuild passes, a bigger artifact fails with exit 8 and
names the regression, and the CI outputs (Markdown, JUnit XML) say the same."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest

from edgebuild.cli.main import main

pytestmark = pytest.mark.tf


def _build(model: Path, data: Path, out: Path, *args: str) -> Path:
    code = main(["build", str(model), "--data", str(data), "--out", str(out), "--set", "benchmark.runs=20", *args])
    assert code == 0
    return out


def test_identical_rebuild_passes(digits_build: Path, keras2_cnn, digits_data, tmp_path: Path, capsys) -> None:
    # the same command again (restored from the build cache: what CI sees when nothing changed)
    again = _build(keras2_cnn.paths["savedmodel"], digits_data.npz, tmp_path / "again", "--target", "all")
    capsys.readouterr()
    assert main(["compare", str(digits_build), str(again)]) == 0
    out = capsys.readouterr().out
    assert "OK: no regressions in 4 target(s)" in out and "REGRESSED" not in out

    # built from scratch: the artifact, accuracy, arena and flash are the same bytes; latency is measured
    # again on a shared machine, so it gets a wide allowance here (its own test is in tests/unit)
    fresh = _build(keras2_cnn.paths["savedmodel"], digits_data.npz, tmp_path / "fresh", "--target", "mcu", "--no-cache")
    capsys.readouterr()
    assert (
        main(
            [
                "compare",
                str(digits_build),
                str(fresh),
                "-t",
                "mcu",
                "--max-latency-increase",
                "300%",
                "--format",
                "json",
            ]
        )
        == 0
    )
    rows = {r["metric"]: r for r in json.loads(capsys.readouterr().out)["targets"][0]["rows"]}
    for metric in ("size", "top-1", "agreement with float", "tensor arena", "flash (model array)"):
        assert rows[metric]["status"] == "ok" and rows[metric]["base"] == rows[metric]["new"], metric


def test_bigger_artifact_fails_with_exit_8_and_names_it(
    digits_build: Path, keras2_cnn, digits_data, tmp_path: Path, capsys
) -> None:
    # the mobile target converted without float16 quantization: a float32 artifact, about 1.7x the bytes
    bigger = _build(
        keras2_cnn.paths["savedmodel"],
        digits_data.npz,
        tmp_path / "bigger",
        "--target",
        "mobile",
        "--set",
        "quantization.scheme=none",
    )
    capsys.readouterr()
    junit = tmp_path / "compare.xml"
    code = main(["compare", str(digits_build), str(bigger), "--format", "md", "--junit", str(junit)])
    captured = capsys.readouterr()
    assert code == 8
    err = captured.err.replace("\n", " ")
    assert "mobile: size" in err
    # the other targets are missing from NEW: each one is named too
    assert all(f"{t}: target missing" in err for t in ("edgetpu", "ethos-u55", "mcu"))
    md = captured.out
    assert md.startswith("## edgebuild compare: **REGRESSED**")
    size_row = next(line for line in md.splitlines() if line.startswith("| mobile | size |"))
    assert size_row.endswith("| **REGRESSED** |")
    cases = {c.get("name"): c for c in ET.parse(junit).getroot().iter("testcase")}
    assert set(cases) == {"edgetpu", "ethos-u55", "mcu", "mobile"}
    assert "size" in cases["mobile"].find("failure").get("message")

    # compared target by target, with thresholds that allow it, it passes (latency: another model, and a
    # shared machine)
    assert (
        main(
            [
                "compare",
                str(digits_build / "mobile"),
                str(bigger / "mobile"),
                "--max-size-increase",
                "100%",
                "--max-latency-increase",
                "1000%",
            ]
        )
        == 0
    )


def test_edited_report_fails_on_arena_and_a_failed_check(digits_build: Path, tmp_path: Path, capsys) -> None:
    edited = tmp_path / "edited"
    shutil.copytree(digits_build, edited)
    path = edited / "mcu" / "report.json"
    report = json.loads(path.read_text())
    report["validation"]["arena"]["recommended_bytes"] += 4096
    report["validation"]["checks"][0]["passed"] = False
    path.write_text(json.dumps(report))
    capsys.readouterr()
    assert main(["compare", str(digits_build), str(edited)]) == 8
    err = capsys.readouterr().err.replace("\n", " ")
    assert "mcu: tensor arena, check 'op rules (mcu)'" in err
