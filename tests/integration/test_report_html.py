"""OUT/report.html opened in a real browser: headless Chromium from Debian's `chromium` package, driven by
Playwright's Python API (Playwright's own browser download cannot be reached here, so it is pointed at
Debian's binary). The page must show report.json's numbers, draw every chart, log no errors and make no
request at all. A missing browser fails these tests with the command that installs it: never a silent skip.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
from pathlib import Path

import pytest

from edgebuild.artifact import read_artifact
from edgebuild.report_html import render_report_html, write_report_html

pytestmark = pytest.mark.tf

ROOT = Path(__file__).resolve().parents[2]
# Written under build/ (a test run never changes tracked files); `cp build/report-screenshot.png docs/` refreshes
# the README's picture.
SCREENSHOT = ROOT / "build" / "report-screenshot.png"


def _chromium() -> str:
    path = os.environ.get("EDGEBUILD_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.fail(
            "Debian's chromium is not installed, so report.html cannot be tested in a browser: run "
            "`make install` (scripts/install-native-tools.sh installs it) or `sudo apt-get install -y "
            "chromium`, or point EDGEBUILD_CHROMIUM at a Chromium binary."
        )
    return path


@pytest.fixture(scope="module")
def browser():
    executable = _chromium()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("playwright is not installed: pip install -e '.[test]'")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        yield browser
        browser.close()


class Opened:
    """A page with everything it logged and requested."""

    def __init__(self, browser, path: Path, **context_args) -> None:
        self.context = browser.new_context(**context_args)
        self.page = self.context.new_page()
        self.console: list[tuple[str, str]] = []
        self.errors: list[str] = []
        self.requests: list[str] = []
        self.page.on("console", lambda m: self.console.append((m.type, m.text)))
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.url = path.resolve().as_uri()
        self.page.goto(self.url, wait_until="load")

    def close(self) -> None:
        self.context.close()


@pytest.fixture(scope="module", params=["test-build", "make-demo"])
def built(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The session's digits build, and `make demo`'s build/demo when there is one (its report.html rewritten
    by the code under test, in a copy)."""
    if request.param == "test-build":
        return request.getfixturevalue("digits_build")
    demo = ROOT / "build" / "demo"
    if not any(demo.glob("*/report.json")):
        pytest.skip("no build/demo: run `make demo` to test its report.html too")
    copy_dir = tmp_path_factory.mktemp("demo") / "demo"
    shutil.copytree(demo, copy_dir, ignore=shutil.ignore_patterns("firmware", "c", ".*"))
    write_report_html(copy_dir)
    return copy_dir


@pytest.fixture(scope="module")
def opened(browser, built: Path):
    page = Opened(browser, built / "report.html", viewport={"width": 1000, "height": 1300})
    page.out = built
    yield page
    page.close()


def _reports(out: Path) -> dict[str, dict]:
    return {p.parent.name: json.loads(p.read_text()) for p in sorted(out.glob("*/report.json"))}


def _marks(page, chart_id: str) -> int:
    return page.locator(f'figure[data-chart="{chart_id}"] svg .mark').count()


def test_the_build_writes_report_html(built: Path) -> None:
    html = (built / "report.html").read_text()
    assert html.startswith("<!DOCTYPE html>")
    assert "<script" not in html  # nothing needs JavaScript
    assert (
        "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "")
        and "https://" not in html.split("<body>")[0]
    )  # no stylesheet, font or script from anywhere
    if built.name == "out":  # the test build (build/demo's summary.md may predate report.html)
        assert "[report.html](report.html)" in (built / "summary.md").read_text()


def test_summary_table_equals_report_json(opened: Opened) -> None:
    reports = _reports(opened.out)
    rows = opened.page.locator("table#summary tbody tr")
    assert rows.count() == len(reports) == 4
    for target, report in reports.items():
        row = opened.page.locator(f'table#summary tr[data-target="{target}"]')
        cells = {
            row.locator("td[data-field]").nth(i).get_attribute("data-field"): row.locator("td[data-field]").nth(i)
            for i in range(row.locator("td[data-field]").count())
        }
        value = {name: json.loads(cell.get_attribute("data-value")) for name, cell in cells.items()}
        accuracy = report["validation"]["accuracy"]
        first_threads = next(iter(report["benchmark"]["threads"].values()))
        budgets = next((c for c in report["validation"]["checks"] if c["name"] == "budgets"), None)
        assert value["size_bytes"] == report["artifact"]["size_bytes"]
        assert value["vs_float32"] == report["artifact"]["size_bytes"] / report["float_reference"]["size_bytes"]
        assert value["artifact_top1"] == accuracy["artifact_top1"]
        assert value["reference_top1"] == accuracy["reference_top1"]
        assert value["p50_ms"] == first_threads["p50_ms"]
        assert value["arena_bytes"] == (report["validation"].get("arena") or {}).get("recommended_bytes")
        assert value["flash_bytes"] == (budgets["flash"]["used_bytes"] if budgets else None)
        assert value["passed"] == report["validation"]["passed"] is True
        # and what a person reads is the same number
        assert cells["size_bytes"].inner_text() == f"{report['artifact']['size_bytes'] / 1024:,.1f} KiB"
        assert cells["artifact_top1"].inner_text() == f"{100 * accuracy['artifact_top1']:.2f}%"
        assert cells["p50_ms"].inner_text() == f"{first_threads['p50_ms']:.3f} ms"


def test_every_check_and_latency_row_is_shown(opened: Opened) -> None:
    for target, report in _reports(opened.out).items():
        table = opened.page.locator(f'table.checks[data-target="{target}"]')
        shown = [
            (
                table.locator("tbody tr").nth(i).get_attribute("data-check"),
                json.loads(
                    table.locator("tbody tr").nth(i).locator("td[data-field=passed]").get_attribute("data-value")
                ),
            )
            for i in range(table.locator("tbody tr").count())
        ]
        assert shown == [(c["name"], c["passed"]) for c in report["validation"]["checks"]]
        latency = opened.page.locator(f'table.latency[data-target="{target}"]')
        for i, (threads, stats) in enumerate(report["benchmark"]["threads"].items()):
            row = latency.locator("tbody tr").nth(i)
            assert row.locator("th").inner_text().startswith("host:")  # host numbers say so
            assert row.locator("th").inner_text().endswith(f"{threads} thr")
            for key in ("p50_ms", "p90_ms", "p99_ms", "max_ms"):
                assert json.loads(row.locator(f'td[data-field="{key}"]').get_attribute("data-value")) == stats[key]


def _size_marks(out: Path, target: str) -> int:
    """Op types whose constant data the artifact holds, plus the non-constant rest of the file."""
    art = read_artifact(out / target / "model.tflite")
    ops = {op.name for op in art.ops if any(i >= 0 and art.tensors[i].is_constant for i in op.inputs)}
    return len(ops) + 1


def test_every_chart_rendered_with_the_right_number_of_marks(opened: Opened) -> None:
    page, out = opened.page, opened.out
    reports = _reports(out)
    expected = {"targets": len(reports)}
    for target, report in reports.items():
        art = read_artifact(out / target / "model.tflite")
        expected[f"{target}:size-by-op"] = _size_marks(out, target)
        expected[f"{target}:largest-tensors"] = min(10, sum(t.is_constant for t in art.tensors))
        expected[f"{target}:latency"] = len(report["benchmark"]["threads"])
        firmware = report.get("firmware") or {}
        if "budgets" in [c["name"] for c in report["validation"]["checks"]]:
            # flash and RAM against the profile's budgets, and the arena the firmware used on the device
            expected[f"{target}:budgets"] = 2 + ("arena_used_bytes" in (firmware.get("device") or {}))
        if (firmware.get("flash") or {}).get("breakdown"):
            expected[f"{target}:firmware-flash"] = len(firmware["flash"]["breakdown"])
        per_op = ((firmware.get("device") or {}).get("instructions_per_inference") or {}).get("per_op")
        if per_op:
            expected[f"{target}:firmware-instructions"] = len(per_op)
    expected["ethos-u55:vela-split"] = 2  # NPU and CPU
    expected["edgetpu:edgetpu-split"] = 2  # Edge TPU and CPU (by the rules without the compiler)

    figures = page.locator("figure.chart")
    drawn = {
        figures.nth(i).get_attribute("data-chart"): int(figures.nth(i).get_attribute("data-marks"))
        for i in range(figures.count())
    }
    assert expected.items() <= drawn.items(), f"missing or wrong charts: {set(expected.items()) - set(drawn.items())}"
    for chart_id, marks in drawn.items():
        assert marks > 0
        assert _marks(page, chart_id) == marks, chart_id
        box = page.locator(f'figure[data-chart="{chart_id}"] svg').bounding_box()
        assert box and box["width"] > 100 and box["height"] > 20, chart_id
    # every mark has a visible area (a bar of zero width or a point of no radius would not be seen)
    empty = page.evaluate("""() => [...document.querySelectorAll('svg .mark')]
        .filter(m => { const b = m.getBBox(); return !(b.width > 0 || b.height > 0); }).length""")
    assert empty == 0


def test_no_console_errors_and_no_network_requests(opened: Opened) -> None:
    assert opened.errors == []
    assert [m for m in opened.console if m[0] in ("error", "warning")] == []
    assert opened.requests == [opened.url]  # the file itself, nothing else


def test_readable_without_javascript_and_on_a_phone(browser, built: Path) -> None:
    phone = Opened(
        browser,
        built / "report.html",
        java_script_enabled=False,
        viewport={"width": 390, "height": 844},
        device_scale_factor=2,
        is_mobile=True,
    )
    try:
        assert phone.page.locator("table#summary tbody tr").count() == 4
        assert phone.page.locator("table#summary").is_visible()
        # the page itself never scrolls sideways: wide tables scroll inside their own box
        width = phone.page.evaluate("() => document.documentElement.scrollWidth")
        assert width <= 390, f"page is {width}px wide on a 390px screen"
        assert phone.requests == [phone.url]
    finally:
        phone.close()


def test_screenshot_for_the_readme(opened: Opened, digits_build: Path) -> None:
    if opened.out != digits_build:
        return  # one screenshot, of the build every run has
    SCREENSHOT.parent.mkdir(exist_ok=True)
    opened.page.screenshot(path=str(SCREENSHOT), clip={"x": 0, "y": 0, "width": 1000, "height": 1300})
    assert SCREENSHOT.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# --------------------------------------------------------------------------- optional sections

FIRMWARE = {  # the shape the firmware stage writes (trimmed from a real mps2-an386 run of the digits CNN)
    "status": "ok",
    "board": {"name": "mps2-an386", "cpu": "cortex-m4"},
    "kernels": "cmsis-nn",
    "declared_arena_bytes": 12464,
    "checks": [
        {"name": "firmware runs on QEMU", "passed": True, "summary": "ran 10 sample(s)"},
        {"name": "device outputs vs LiteRT reference", "passed": True, "summary": "max 0 step(s)"},
    ],
    "flash": {
        "total_bytes": 144996,
        "total_bytes_without_samples": 134748,
        "breakdown": {
            "model_array": 11072,
            "tflm_runtime": 20493,
            "tflm_kernels": 58846,
            "application": 5746,
            "validation_samples": 10248,
            "c_cpp_libraries": 38359,
            "padding": 232,
        },
    },
    "ram": {
        "total_bytes": 53360,
        "data_bytes": 2496,
        "bss_bytes": 18096,
        "heap_bytes": 16384,
        "stack_bytes": 16384,
        "breakdown": {
            "application": 5564,
            "c_cpp_libraries": 2533,
            "padding": 19,
            "tensor_arena": 12464,
            "tflm_runtime": 12,
            "heap": 16384,
            "stack": 16384,
        },
    },
    "device": {
        "arena_size_bytes": 12464,
        "arena_used_bytes": 10420,
        "instructions_per_inference": {
            "median": 1607528,
            "min": 1607448,
            "max": 1607608,
            "per_op": [
                {"op": "CONV_2D", "count": 2, "instructions": 1471211},
                {"op": "MAX_POOL_2D", "count": 2, "instructions": 118318},
                {"op": "RESHAPE", "count": 1, "instructions": 520},
                {"op": "FULLY_CONNECTED", "count": 1, "instructions": 11800},
                {"op": "SOFTMAX", "count": 1, "instructions": 5480},
            ],
        },
    },
}


def _with_optional_sections(report: dict) -> dict:
    report = copy.deepcopy(report)
    report["firmware"] = copy.deepcopy(FIRMWARE)
    report["quantization"] = {
        **report.get("quantization", {}),
        "per_layer": [
            {"layer": "conv2d", "snr_db": 41.2},
            {"layer": "conv2d_1", "snr_db": 35.0},
            {"layer": "dense", "snr_db": 30.5},
        ],
    }
    report["training"] = {
        "pass": "qat",
        "epochs_run": 4,
        "epochs_limit": 5,
        "best_epoch": 3,
        "seconds": 2.5,
        "history": [
            {
                "epoch": e,
                "loss": 1 / e,
                "accuracy": 0.8 + e / 50,
                "val_loss": 1.1 / e,
                "val_accuracy": 0.79 + e / 60,
                "lr": 1e-4,
            }
            for e in range(1, 5)
        ],
        "comparison": {"ptq": {"artifact_top1": 0.95}, "qat": {"artifact_top1": 0.97}},
    }
    report["pruning"] = {
        "ratio": 0.5,
        "criterion": "l1",
        "recovery": "fine-tune",
        "before": {"params": 8000, "macs": 270000},
        "after": {"params": 4000, "macs": 140000},
        "artifact_before": {"size_bytes": 20000},
        "accuracy": {"original": 97.5, "pruned": 80.0, "recovered": 96.0},
    }
    device_threads = {"1": {"p50_ms": 1.2, "p90_ms": 1.4, "p99_ms": 2.0, "mean_ms": 1.25, "min_ms": 1.1, "max_ms": 2.2}}
    report["benchmark"]["device"] = {
        "threads": device_threads,
        "device": {"cpu": "Cortex-A53", "machine": "aarch64", "url": "ssh://pi"},
    }
    return report


def test_optional_sections_are_drawn_when_present(browser, digits_build: Path, tmp_path: Path) -> None:
    """firmware, per-layer error, training curves, pruning, device latency: in no demo build yet, so injected."""
    out = tmp_path / "out"
    shutil.copytree(digits_build, out)
    mcu = _with_optional_sections(json.loads((out / "mcu" / "report.json").read_text()))
    (out / "mcu" / "report.json").write_text(json.dumps(mcu))
    write_report_html(out)
    page = Opened(browser, out / "report.html", viewport={"width": 1000, "height": 1300})
    try:
        expected = {
            "mcu:firmware-flash": len(FIRMWARE["flash"]["breakdown"]),
            "mcu:firmware-ram": len(FIRMWARE["ram"]["breakdown"]),
            "mcu:firmware-instructions": len(FIRMWARE["device"]["instructions_per_inference"]["per_op"]),
            "mcu:per-layer-error": 3,
            "mcu:training-0-loss": 2,
            "mcu:training-0-metrics": 2,
            "mcu:pruning": 4,
            "mcu:latency": len(mcu["benchmark"]["threads"]) + 1,
        }
        for chart_id, marks in expected.items():
            figure = page.page.locator(f'figure[data-chart="{chart_id}"]')
            assert figure.count() == 1, chart_id
            assert int(figure.get_attribute("data-marks")) == marks == _marks(page.page, chart_id), chart_id
        labels = page.page.locator('table.latency[data-target="mcu"] tbody th').all_inner_texts()
        assert labels[0].startswith("host:") and labels[-1].startswith("device: Cortex-A53")
        assert page.errors == [] and page.requests == [page.url]
    finally:
        page.close()


def test_a_report_with_almost_nothing_still_renders() -> None:
    html = render_report_html(
        {
            "bare": {"target": "bare", "artifact": {"size_bytes": 1000}},
            "odd": {
                "target": "odd",
                "artifact": {},
                "validation": {"checks": [{"name": "x"}]},
                "benchmark": {"threads": {"1": {}}},
                "firmware": {"status": "skipped", "note": "no tree"},
            },
        }
    )
    assert 'data-target="bare"' in html and "no tree" in html
