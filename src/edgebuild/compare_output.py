"""`edgebuild compare` results as text (a terminal or a CI log), Markdown (a pull-request comment, the GitHub
Actions step summary), JUnit XML (each target one test case) and JSON."""

from __future__ import annotations

import json
from xml.etree import ElementTree as ET

from edgebuild.compare import OK, REGRESSED, Comparison, TargetDiff

HEADERS = ("Target", "Metric", "Base", "New", "Change", "Limit", "Result")


def _cells(diff: TargetDiff) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = [
        (
            diff.target,
            r.metric,
            r.base,
            r.new,
            r.change,
            r.limit,
            r.status + (f" ({r.note})" if r.note and r.status != OK else ""),
        )
        for r in diff.rows
    ]
    if diff.ops_added or diff.ops_removed:
        rows.append((diff.target, "ops", "", _ops(diff), "", "", "changed"))
    for c in diff.checks_changed:
        rows.append(
            (
                diff.target,
                f"check: {c['check']}",
                c["base"],
                c["new"],
                "",
                "",
                "REGRESSED" if c["new"] == "FAIL" else "changed",
            )
        )
    if not diff.rows and diff.status != "compared":
        rows.append((diff.target, "target", "", "", "", "", diff.status + (" - REGRESSED" if diff.regressed else "")))
    return rows


def _ops(diff: TargetDiff) -> str:
    parts = [f"+{op} x{n}" for op, n in diff.ops_added.items()] + [f"-{op} x{n}" for op, n in diff.ops_removed.items()]
    return ", ".join(parts)


def _verdict(comparison: Comparison) -> str:
    regressions = comparison.regressions
    if regressions:
        return f"{len(regressions)} regression(s) in {sum(t.regressed for t in comparison.targets)} target(s)"
    return f"no regressions in {len(comparison.targets)} target(s)"


def to_text(comparison: Comparison) -> str:
    rows = [HEADERS] + [cell for diff in comparison.targets for cell in _cells(diff)]
    widths = [min(max(len(r[i]) for r in rows), 60) for i in range(len(HEADERS))]
    lines = [f"edgebuild compare: {comparison.base} -> {comparison.new}", ""]
    for i, row in enumerate(rows):
        lines.append("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
        if i == 0:
            lines.append("  ".join("-" * w for w in widths))
    notes = [f"{t.target}: {n}" for t in comparison.targets for n in t.notes]
    if notes:
        lines += ["", "Notes:"] + [f"  {n}" for n in notes]
    lines += ["", ("REGRESSED: " if comparison.regressions else "OK: ") + _verdict(comparison)]
    lines += [f"  - {r}" for r in comparison.regressions]
    return "\n".join(lines) + "\n"


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def to_markdown(comparison: Comparison) -> str:
    verdict = _verdict(comparison)
    lines = [
        f"## edgebuild compare: {'**REGRESSED**, ' if comparison.regressions else ''}{verdict}",
        "",
        f"`{_md(comparison.base)}` (base) -> `{_md(comparison.new)}` (new). Thresholds: "
        + ", ".join(
            f"{k.removeprefix('max_').replace('_', ' ')} {v}" for k, v in comparison.thresholds.describe().items()
        )
        + ".",
        "",
    ]
    if comparison.regressions:
        lines += ["### Regressions", ""] + [f"- {_md(r)}" for r in comparison.regressions] + [""]
    lines += ["| " + " | ".join(HEADERS) + " |", "|" + "---|" * len(HEADERS)]
    for diff in comparison.targets:
        for row in _cells(diff):
            cells = [_md(c) for c in row]
            if cells[-1].startswith(REGRESSED):
                cells[-1] = f"**{cells[-1]}**"
            lines.append("| " + " | ".join(cells) + " |")
    notes = [f"{t.target}: {n}" for t in comparison.targets for n in t.notes]
    if notes:
        lines += ["", "Notes:", ""] + [f"- {_md(n)}" for n in notes]
    return "\n".join(lines) + "\n"


def to_junit(comparison: Comparison) -> str:
    """One <testsuite>, one <testcase> per target; a <failure> lists that target's regressions."""
    failures = sum(t.regressed for t in comparison.targets)
    suites = ET.Element(
        "testsuites", name="edgebuild compare", tests=str(len(comparison.targets)), failures=str(failures), errors="0"
    )
    suite = ET.SubElement(
        suites,
        "testsuite",
        name="edgebuild compare",
        tests=str(len(comparison.targets)),
        failures=str(failures),
        errors="0",
        skipped="0",
        time="0",
    )
    props = ET.SubElement(suite, "properties")
    ET.SubElement(props, "property", name="base", value=comparison.base)
    ET.SubElement(props, "property", name="new", value=comparison.new)
    for key, value in comparison.thresholds.describe().items():
        ET.SubElement(props, "property", name=key, value=value)
    for diff in comparison.targets:
        case = ET.SubElement(suite, "testcase", classname="edgebuild.compare", name=diff.target, time="0")
        if diff.regressed:
            failure = ET.SubElement(
                case,
                "failure",
                type="regression",
                message=f"{len(diff.regressions)} regression(s): " + "; ".join(diff.regressions),
            )
            failure.text = "\n".join(diff.regressions)
        out = ET.SubElement(case, "system-out")
        out.text = "\n".join("  ".join(c for c in row[1:] if c) for row in _cells(diff)) + (
            "\n" + "\n".join(diff.notes) if diff.notes else ""
        )
    ET.indent(suites)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"


def to_json(comparison: Comparison) -> str:
    return json.dumps(comparison.to_dict(), indent=2) + "\n"
