"""`edgebuild compare` on report.json files written here: thresholds, what counts as a regression, outputs."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest

from edgebuild.cli.main import main
from edgebuild.compare import IMPROVED, OK, REGRESSED, SKIPPED, Limit, Thresholds, compare_builds, config_table
from edgebuild.compare_output import to_junit, to_markdown
from edgebuild.errors import UsageError

HOST = {"cpu": "AMD EPYC", "machine": "x86_64", "cores": 2}


def _report(
    target: str = "mcu",
    size: int = 11072,
    top1: float = 0.975,
    p50: float = 0.0430,
    arena: int = 12464,
    snr: float | None = 39.4,
    metric: str = "top1",
) -> dict:
    accuracy = {"samples": 120, "metric": metric, "agreement": 1.0, "min_snr_db": snr}
    if metric == "top1":
        accuracy.update(reference_top1=0.975, artifact_top1=top1, drop_points=100 * (0.975 - top1))
    return {
        "schema_version": 1,
        "target": target,
        "artifact": {"size_bytes": size, "ops": {"CONV_2D": 2, "FULLY_CONNECTED": 1}},
        "validation": {
            "passed": True,
            "accuracy": accuracy,
            "arena": {"proven_bytes": arena - 1136, "recommended_bytes": arena},
            "checks": [
                {"name": "op rules (mcu)", "passed": True, "summary": "0 error(s)"},
                {"name": "accuracy vs float", "passed": True, "summary": "top-1 97.5%"},
                {
                    "name": "budgets",
                    "passed": True,
                    "summary": "fits",
                    "flash": {"used_bytes": 11088, "budget_bytes": 1 << 20, "scope": "model array"},
                    "ram": {"used_bytes": arena, "budget_bytes": 1 << 18, "scope": "tensor arena"},
                },
            ],
        },
        "benchmark": {
            "host": dict(HOST),
            "runtime": {"name": "ai-edge-litert", "version": "2.3.0"},
            "threads": {
                "1": {
                    "p50_ms": p50,
                    "p90_ms": p50 * 1.05,
                    "p99_ms": p50 * 1.5,
                    "min_ms": p50 * 0.9,
                    "max_ms": p50 * 2,
                    "mean_ms": p50 * 1.02,
                }
            },
        },
        "flash": {"model_array_bytes": 11088},
    }


def _statuses(diff) -> dict[str, str]:
    return {row.metric: row.status for row in diff.rows}


def test_identical_builds_have_no_regression() -> None:
    base = {"mcu": _report(), "mobile": _report("mobile", size=18000)}
    result = compare_builds(base, copy.deepcopy(base))
    assert result.regressions == []
    assert set(_statuses(result.targets[0]).values()) == {OK}
    assert [t.target for t in result.targets] == ["mcu", "mobile"]


@pytest.mark.parametrize(
    ("text", "kind", "base", "allowed"),
    [
        ("5%", "bytes", 1000, 50),
        ("2KiB", "bytes", 1000, 2048),
        ("100", "bytes", 1000, 100),
        ("5%+1KiB", "bytes", 1000, 1024),
        ("5% + 1KiB", "bytes", 100000, 5000),
        ("0", "bytes", 1000, 0),
        ("10%", "ms", 2.0, 0.2),
        ("0.5ms", "ms", 2.0, 0.5),
        ("300us", "ms", 2.0, 0.3),
        ("0.5", "ms", 2.0, 0.5),
    ],
)
def test_limits(text: str, kind: str, base: float, allowed: float) -> None:
    assert Limit.parse(text, kind).allowance(base) == pytest.approx(allowed)


@pytest.mark.parametrize("text", ["", "five", "5 parsecs", "-5%", "5%%"])
def test_bad_limits_are_usage_errors(text: str) -> None:
    with pytest.raises(UsageError):
        Limit.parse(text)


def test_size_growth_beyond_the_threshold_is_named() -> None:
    result = compare_builds({"mcu": _report()}, {"mcu": _report(size=11072 + 1000)})  # +9%
    assert _statuses(result.targets[0])["size"] == REGRESSED
    assert any(r.startswith("mcu: size 11,072 B -> 12,072 B (+9.0%") for r in result.regressions)
    assert result.short() == "mcu: size"
    loose = compare_builds(
        {"mcu": _report()}, {"mcu": _report(size=12072)}, Thresholds.build({"max_size_increase": "10%"})
    )
    assert loose.regressions == []
    smaller = compare_builds({"mcu": _report()}, {"mcu": _report(size=9000)})
    assert _statuses(smaller.targets[0])["size"] == IMPROVED and smaller.regressions == []


def test_accuracy_drop_in_points() -> None:
    result = compare_builds({"mcu": _report(top1=0.975)}, {"mcu": _report(top1=0.965)})  # -1.0 point
    assert _statuses(result.targets[0])["top-1"] == REGRESSED
    within = compare_builds({"mcu": _report(top1=0.975)}, {"mcu": _report(top1=0.970)})  # -0.5 point: the limit
    assert within.regressions == []
    assert (
        compare_builds(
            {"mcu": _report(top1=0.975)}, {"mcu": _report(top1=0.965)}, Thresholds.build({"max_accuracy_drop": 1.5})
        ).regressions
        == []
    )


def test_snr_is_judged_only_where_it_is_the_gate_metric() -> None:
    classifier = compare_builds({"mcu": _report(snr=40.0)}, {"mcu": _report(snr=20.0)})
    assert classifier.regressions == []  # a classifier is gated on top-1; the SNR change is shown
    regressor = compare_builds({"m": _report(snr=40.0, metric="snr")}, {"m": _report(snr=30.0, metric="snr")})
    assert _statuses(regressor.targets[0])["worst output SNR"] == REGRESSED
    exact = compare_builds({"m": _report(snr=None, metric="snr")}, {"m": _report(snr=50.0, metric="snr")})
    assert _statuses(exact.targets[0])["worst output SNR"] == REGRESSED  # identical outputs before, not now
    assert (
        compare_builds({"m": _report(snr=40.0, metric="snr")}, {"m": _report(snr=38.0, metric="snr")}).regressions == []
    )


def test_latency_has_a_noise_allowance_and_compares_only_the_same_host() -> None:
    base = _report(p50=0.100)  # p90 - p50 = 0.005 ms of noise
    assert compare_builds({"mcu": base}, {"mcu": _report(p50=0.114)}).regressions == []  # 10% + noise
    slow = compare_builds({"mcu": base}, {"mcu": _report(p50=0.130)})
    assert _statuses(slow.targets[0])["host p50 latency (1 thread)"] == REGRESSED
    other_host = _report(p50=0.300)
    other_host["benchmark"]["host"]["cpu"] = "Intel Xeon"
    result = compare_builds({"mcu": base}, {"mcu": other_host})
    row = next(r for r in result.targets[0].rows if r.metric.startswith("host p50"))
    assert row.status == SKIPPED and "different hosts" in row.note and result.regressions == []


def test_device_latency_and_exact_instruction_counts() -> None:
    base, new = _report(), _report()
    for report, p50, instructions in ((base, 1.0, 1_600_000), (new, 1.5, 1_900_000)):
        report["benchmark"]["device"] = {
            "device": {"cpu": "Cortex-A53", "url": "ssh://pi"},
            "threads": {"1": {"p50_ms": p50, "p90_ms": p50 * 1.02}},
        }
        report["firmware"] = {
            "status": "ok",
            "device": {"arena_used_bytes": 10420, "instructions_per_inference": {"median": instructions}},
        }
    statuses = _statuses(compare_builds({"mcu": base}, {"mcu": new}).targets[0])
    assert statuses["device p50 latency (1 thread)"] == REGRESSED
    assert statuses["instructions per inference (QEMU)"] == REGRESSED
    assert statuses["arena used on device"] == OK


def test_arena_flash_ops_and_checks() -> None:
    new = _report(arena=12464 + 2000)
    new["artifact"]["ops"] = {"CONV_2D": 3, "ADD": 1}
    new["validation"]["checks"][1].update(passed=False, summary="top-1 90% vs float 97.5%")
    result = compare_builds({"mcu": _report()}, {"mcu": new})
    diff = result.targets[0]
    assert _statuses(diff)["tensor arena"] == REGRESSED
    assert diff.ops_added == {"CONV_2D": 1, "ADD": 1} and diff.ops_removed == {"FULLY_CONNECTED": 1}
    assert diff.checks_changed == [
        {"check": "accuracy vs float", "base": "pass", "new": "FAIL", "summary": "top-1 90% vs float 97.5%"}
    ]
    assert "check 'accuracy vs float'" in result.short() and "tensor arena" in result.short()


def test_flash_is_compared_like_with_like() -> None:
    firmware = _report()
    firmware["firmware"] = {"status": "ok", "flash": {"total_bytes": 144996, "total_bytes_without_samples": 134748}}
    firmware["validation"]["checks"][2]["flash"] = {
        "used_bytes": 134748,
        "budget_bytes": 1 << 20,
        "scope": "firmware image",
    }
    result = compare_builds({"mcu": _report()}, {"mcu": firmware})
    statuses = _statuses(result.targets[0])
    assert statuses["flash (model array)"] == OK  # the model array is in both
    assert "flash (firmware image)" not in statuses  # only NEW linked a firmware: nothing to compare it with
    assert any("flash (firmware image)" in n for n in result.targets[0].notes)
    assert result.regressions == []
    bigger = copy.deepcopy(firmware)
    bigger["validation"]["checks"][2]["flash"]["used_bytes"] = 160000
    assert (
        _statuses(compare_builds({"mcu": firmware}, {"mcu": bigger}).targets[0])["flash (firmware image)"] == REGRESSED
    )


def test_a_target_missing_from_new_is_a_regression_and_a_new_one_is_not() -> None:
    result = compare_builds(
        {"mcu": _report(), "mobile": _report("mobile")}, {"mobile": _report("mobile"), "edgetpu": _report("edgetpu")}
    )
    assert result.short() == "mcu: target missing"
    assert [t.status for t in result.targets] == ["missing in NEW", "compared", "new in NEW"]
    with pytest.raises(UsageError):
        compare_builds({"mcu": _report()}, {"mcu": _report()}, targets=["nope"])


def test_thresholds_from_a_compare_table_and_flags_win(tmp_path: Path) -> None:
    (tmp_path / "ci.toml").write_text('[compare]\nmax-size-increase = "20%"\nmax_accuracy_drop = 2\n')
    (tmp_path / "pyproject.toml").write_text('[tool.edgebuild.compare]\nmax_latency_increase = "0.2ms"\n')
    table = config_table(tmp_path / "ci.toml")
    assert Thresholds.build(table).size.text == "20%" and Thresholds.build(table).accuracy_drop == 2
    assert Thresholds.build(table, {"max_size_increase": "1%"}).size.text == "1%"
    assert Thresholds.build(config_table(tmp_path / "pyproject.toml")).latency.absolute == pytest.approx(0.2)
    with pytest.raises(UsageError, match="unknown compare threshold"):
        Thresholds.build({"max_speed": "1%"})
    (tmp_path / "empty.toml").write_text("[other]\n")
    with pytest.raises(UsageError, match=r"no \[compare\]"):
        config_table(tmp_path / "empty.toml")


def test_markdown_and_junit() -> None:
    result = compare_builds(
        {"mcu": _report(), "mobile": _report("mobile")}, {"mcu": _report(size=20000), "mobile": _report("mobile")}
    )
    md = to_markdown(result)
    assert md.startswith("## edgebuild compare: **REGRESSED**, 1 regression(s) in 1 target(s)")
    assert "| mcu | size | 11,072 B | 20,000 B | +80.6% | +5% | **REGRESSED** |" in md
    suite = ET.fromstring(to_junit(result)).find("testsuite")
    assert suite.get("tests") == "2" and suite.get("failures") == "1"
    cases = {c.get("name"): c for c in suite.findall("testcase")}
    assert cases["mcu"].find("failure").get("message").startswith("1 regression(s): size 11,072 B -> 20,000 B")
    assert cases["mobile"].find("failure") is None


def _write_build(root: Path, reports: dict[str, dict]) -> Path:
    for target, report in reports.items():
        (root / target).mkdir(parents=True, exist_ok=True)
        (root / target / "report.json").write_text(json.dumps(report))
    return root


def test_cli_exit_codes_outputs_and_step_summary(tmp_path: Path, capsys, monkeypatch) -> None:
    base = _write_build(tmp_path / "base", {"mcu": _report(), "mobile": _report("mobile")})
    same = _write_build(tmp_path / "same", {"mcu": _report(), "mobile": _report("mobile")})
    worse = _write_build(tmp_path / "worse", {"mcu": _report(top1=0.95), "mobile": _report("mobile", size=30000)})
    summary = tmp_path / "step-summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))

    assert main(["compare", str(base), str(same)]) == 0
    assert "OK: no regressions in 2 target(s)" in capsys.readouterr().out

    junit = tmp_path / "reports" / "compare.xml"
    assert main(["compare", str(base), str(worse), "--format", "md", "--junit", str(junit)]) == 8
    captured = capsys.readouterr()
    assert captured.out.startswith("## edgebuild compare: **REGRESSED**, 2 regression(s)")
    assert "regression: 2 regression(s) beyond the thresholds: mcu: top-1; mobile: size" in captured.err.replace(
        "\n", " "
    )
    cases = {c.get("name"): c for c in ET.parse(junit).getroot().iter("testcase")}
    assert set(cases) == {"mcu", "mobile"} and all(c.find("failure") is not None for c in cases.values())
    step = summary.read_text()
    assert step.count("## edgebuild compare") == 2 and "**REGRESSED**" in step  # appended once per run

    # one report.json against another, thresholds loosened by flags
    assert (
        main(
            [
                "compare",
                str(base / "mcu" / "report.json"),
                str(worse / "mcu" / "report.json"),
                "--max-accuracy-drop",
                "3",
                "--format",
                "json",
            ]
        )
        == 0
    )
    assert json.loads(capsys.readouterr().out)["regressed"] is False

    assert main(["compare", str(base), str(tmp_path / "nowhere")]) == 2
    assert "no such build folder" in capsys.readouterr().err.replace("\n", " ")
    assert main(["compare", str(base), str(same), "--max-size-increase", "lots"]) == 2
    assert main(["compare", str(base), str(same), "--format", "yaml"]) == 2
