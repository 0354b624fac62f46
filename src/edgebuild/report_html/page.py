"""The page: a section per target, the styles and the document; loading the reports and writing report.html."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from edgebuild.report_html.checks import _checks, _facts
from edgebuild.report_html.compilers import _compilers
from edgebuild.report_html.firmware import _firmware
from edgebuild.report_html.latency import _latency
from edgebuild.report_html.layers import _accuracy
from edgebuild.report_html.markup import CSP, _dict, _e, _list, _num, _status
from edgebuild.report_html.memory import _memory
from edgebuild.report_html.numbers import target_passed
from edgebuild.report_html.sizes import _size
from edgebuild.report_html.summary import _overview, targets_chart
from edgebuild.report_html.training import _pruning, _training


def _warnings(report: dict[str, Any]) -> str:
    warnings = [w for w in _list(report.get("warnings")) if w]
    if not warnings:
        return ""
    return '<h3>Warnings</h3><ul class="warnings">' + "".join(f"<li>{_e(w)}</li>" for w in warnings) + "</ul>"


def _timings(report: dict[str, Any]) -> str:
    timings = {k: v for k, v in _dict(report.get("timings_s")).items() if _num(v)}
    versions = _dict(report.get("versions"))
    parts = []
    if timings:
        parts.append("Stage timings: " + ", ".join(f"{_e(k)} {v:.2f} s" for k, v in timings.items()) + ".")
    if versions:
        parts.append(" ".join(f"{_e(k)} {_e(v)}" for k, v in versions.items() if k != "converter") + ".")
    cache = _dict(report.get("cache"))
    if cache.get("hit"):
        parts.append("Restored from the build cache.")
    return f'<p class="small">{" ".join(parts)}</p>' if parts else ""


def _target_section(target: str, report: dict[str, Any], out_root: Path | None) -> str:
    target_dir = out_root / target if out_root is not None else None
    files = [
        f
        for f in ("report.md", "report.json", _dict(report.get("artifact")).get("path", "model.tflite"))
        if target_dir is None or (target_dir / f).exists()
    ]
    links = " · ".join(f'<a href="{_e(target)}/{_e(f)}">{_e(f)}</a>' for f in files)
    parts = [
        f'<section class="target" id="t-{_e(target)}" data-target="{_e(target)}">',
        f"<h2>{_e(target)} {_status(target_passed(report), 'passed', 'FAILED')}</h2>",
        f"<p>{_e(report.get('description', ''))}</p>",
        f'<p class="links">{links}</p>' if links else "",
        _facts(report),
        _warnings(report),
        _checks(target, report),
        _size(target, report, target_dir),
        _accuracy(target, report),
        _latency(target, report),
        _memory(target, report),
        _compilers(target, report),
        _pruning(target, report),
        _training(target, report),
        _firmware(target, report),
        _timings(report),
        "</section>",
    ]
    return "".join(p for p in parts if p)


STYLE = """
:root{--fg:#1b1b1b;--muted:#666;--line:#ddd;--pass:#2e7d32;--fail:#c62828;--bg:#fff}
*{box-sizing:border-box}
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--fg);background:var(--bg);
  margin:0 auto;max-width:1000px;padding:12px 16px 40px}
h1,h2,p,li,nav,figcaption{overflow-wrap:anywhere}
h1{font-size:1.5em;margin:.4em 0}h2{font-size:1.25em;margin:1.6em 0 .3em;border-bottom:2px solid var(--line)}
h3{font-size:1.05em;margin:1.2em 0 .3em}h4{font-size:.95em;margin:.8em 0 .2em}
nav{font-size:.9em;margin:.5em 0 1em}nav a{margin-right:.8em}
.scroll{overflow-x:auto;-webkit-overflow-scrolling:touch;margin:.4em 0}
table{border-collapse:collapse;min-width:50%;font-size:.9em}
th,td{border-bottom:1px solid var(--line);padding:4px 8px;text-align:left;vertical-align:top}
thead th{background:#f5f5f5;white-space:nowrap}td.num{text-align:right;white-space:nowrap}
.badge{display:inline-block;padding:0 .5em;border-radius:3px;font-size:.8em;font-weight:600;color:#fff}
.badge.pass{background:var(--pass)}.badge.fail{background:var(--fail)}.badge.muted{background:#9e9e9e}
.fail{color:var(--fail)}.small{font-size:.8em;color:var(--muted)}
figure.chart{margin:.6em 0 1em;max-width:760px}figure.chart figcaption{font-size:.85em;color:var(--muted)}
svg.chart-svg{display:block;height:auto}svg .value{fill:#333}
dl.kv{display:grid;grid-template-columns:max-content 1fr;gap:0 .8em;margin:.3em 0;font-size:.9em}
dl.kv dt{color:var(--muted)}dl.kv dd{margin:0;overflow-wrap:anywhere}
ul.findings li.error{color:var(--fail)}code{font-size:.9em;overflow-wrap:anywhere}
details summary{cursor:pointer;color:var(--muted);font-size:.9em}
@media (max-width:600px){body{font-size:14px;padding:8px}th,td{padding:3px 5px}}
@media print{nav,.links{display:none}body{max-width:none;font-size:11pt}section.target{break-before:page}
  figure.chart{break-inside:avoid}details>*{display:block}a{color:inherit;text-decoration:none}}
"""


def render_report_html(
    reports: dict[str, dict[str, Any]], out_root: Path | None = None, title: str | None = None
) -> str:
    """The page for the given reports (target -> report.json content); out_root locates the artifacts."""
    reports = {t: r for t, r in reports.items() if isinstance(r, dict)}
    first = next(iter(reports.values()), {})
    model = _dict(first.get("model"))
    heading = title or f"edgebuild report: {Path(str(model.get('path') or 'build')).name}"
    failed = [t for t, r in reports.items() if not target_passed(r)]
    status = (
        f"{len(reports)} target(s), all passed"
        if not failed
        else f'{len(reports)} target(s); <span class="fail">failed: {_e(", ".join(failed))}</span>'
    )
    nav = " ".join(f'<a href="#t-{_e(t)}">{_e(t)}</a>' for t in reports)
    version = _dict(first.get("versions")).get("edgebuild", "")
    body = [
        f"<h1>{_e(heading)}</h1>",
        (
            f"<p>{status}. Model <code>{_e(model.get('path', '-'))}</code> ({_e(model.get('format', '?'))}), built by "
            f"edgebuild {_e(version)}; data <code>{_e(_dict(first.get('data')).get('source', '-'))}"
            "</code>. Sizes in bytes (KiB = 1024 B); latency measured on the build host unless labelled device.</p>"
        ),
        f'<nav>Targets: {nav} · <a href="summary.md">summary.md</a></nav>' if reports else "",
        '<h2 id="overview">Overview</h2>',
        _overview(reports),
        targets_chart(reports),
        *(_target_section(t, r, out_root) for t, r in reports.items()),
    ]
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(heading)}</title><style>{STYLE}</style></head><body>"
        + "".join(p for p in body if p)
        + "</body></html>\n"
    )


def load_reports(out_root: Path) -> dict[str, dict[str, Any]]:
    """target -> report.json of every target folder in a build folder, in name order."""
    reports = {}
    for path in sorted(Path(out_root).glob("*/report.json")):
        try:
            reports[path.parent.name] = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
    return reports


def write_report_html(out_root: Path, reports: dict[str, dict[str, Any]] | None = None) -> Path:
    """Write OUT/report.html (atomically) from the given reports, or from the report.json files in out_root."""
    out_root = Path(out_root)
    reports = load_reports(out_root) if reports is None else reports
    path = out_root / "report.html"
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(render_report_html(reports, out_root), encoding="utf-8")
    tmp.replace(path)
    return path
