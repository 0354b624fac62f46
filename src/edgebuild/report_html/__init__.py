"""OUT/report.html: the whole build in one self-contained page for a browser, a phone or paper.

No network and no JavaScript: the charts are SVG drawn here (edgebuild.report_charts) and the styles
are inline, so the file opens offline, from a CI artifact or an e-mail attachment, and its tables read
the same with scripts off. A Content-Security-Policy forbids the page any request at all.

Everything is read from the targets' report.json (plus each target's model.tflite for the size
breakdown). Every section is optional: what a report does not have is simply not drawn, so older
reports and reports with new sections (e.g. `firmware`) both render.

The package: markup (HTML and number helpers), numbers (values read from a report, shared with the tests
and edgebuild.compare), page (the document, load_reports, write_report_html) and a module per section:
summary, checks, sizes, layers (accuracy), latency, memory, compilers, training (and pruning), firmware.
"""

from __future__ import annotations

from edgebuild.report_html.latency import DEVICE_COLOR, HOST_COLOR, latency_rows
from edgebuild.report_html.layers import per_layer_errors
from edgebuild.report_html.markup import CSP, kib
from edgebuild.report_html.memory import budget_rows
from edgebuild.report_html.numbers import (
    accuracy_value,
    arena_bytes,
    budget_block,
    first_p50,
    flash_bytes,
    target_passed,
)
from edgebuild.report_html.page import STYLE, load_reports, render_report_html, write_report_html
from edgebuild.report_html.sizes import size_breakdown
from edgebuild.report_html.summary import summary_row, targets_chart
from edgebuild.report_html.training import Series, training_blocks, training_series

__all__ = [
    "CSP",
    "DEVICE_COLOR",
    "HOST_COLOR",
    "STYLE",
    "Series",
    "accuracy_value",
    "arena_bytes",
    "budget_block",
    "budget_rows",
    "first_p50",
    "flash_bytes",
    "kib",
    "latency_rows",
    "load_reports",
    "per_layer_errors",
    "render_report_html",
    "size_breakdown",
    "summary_row",
    "target_passed",
    "targets_chart",
    "training_blocks",
    "training_series",
    "write_report_html",
]
