"""A target's compilers section."""

from __future__ import annotations

from typing import Any

from edgebuild import report_charts as charts
from edgebuild.report_html.markup import _dict, _e, _list, _num, _pct, _status, _table, kib


def _compilers(target: str, report: dict[str, Any]) -> str:
    compiled = _dict(report.get("compile"))
    out = []
    edgetpu = _dict(compiled.get("edgetpu"))
    if edgetpu:
        if edgetpu.get("available") is False:
            rules = _dict(edgetpu.get("rules"))
            text = _e(edgetpu.get("message", "edgetpu_compiler not available"))
            if rules:
                text += (
                    f" edgebuild's rules: {rules.get('mapped_ops')} of {rules.get('total_ops')} ops "
                    f"({_pct(rules.get('mapped_ops_fraction'))}) and {_pct(rules.get('mapped_macs_fraction'))} "
                    "of MACs map to the Edge TPU."
                )
            out.append(f"<p><strong>Edge TPU</strong>: {text}</p>")
            if _num(rules.get("mapped_ops")) and _num(rules.get("total_ops")):
                parts = [
                    ("Edge TPU (rules)", float(rules["mapped_ops"])),
                    ("CPU (rules)", float(rules["total_ops"] - rules["mapped_ops"])),
                ]
                out.append(
                    charts.stacked(
                        f"{target}:edgetpu-split",
                        parts,
                        "Ops on the Edge TPU vs the CPU by edgebuild's rules (an estimate: the compiler was not run).",
                        lambda v: f"{v:g} ops",
                    )
                )
        else:
            out.append(
                f"<p><strong>Edge TPU</strong> (edgetpu_compiler {_e(edgetpu.get('compiler_version'))}): "
                f"{edgetpu.get('ops_mapped_edgetpu')} of {edgetpu.get('total_ops')} ops mapped, on-chip "
                f"memory {kib(edgetpu.get('on_chip_memory_bytes'))}, off-chip "
                f"{kib(edgetpu.get('off_chip_memory_bytes'))}.</p>"
            )
            per_op = [r for r in _list(edgetpu.get("per_op")) if isinstance(r, dict)]
            if per_op:
                rows = [
                    f'<tr><td>{_e(r.get("op"))}</td><td class="num">{_e(r.get("count"))}</td>'
                    f"<td>{_status(r.get('mapped'), 'Edge TPU', 'CPU')}</td><td>{_e(r.get('status', ''))}</td></tr>"
                    for r in per_op
                ]
                out.append(_table(["Op", "Count", "Runs on", "Compiler's note"], rows, "edgetpu-ops"))
            by_op = _dict(edgetpu.get("by_op"))
            if by_op:
                parts = [
                    ("Edge TPU", float(sum(v.get("edgetpu", 0) for v in by_op.values()))),
                    ("CPU", float(sum(v.get("cpu", 0) for v in by_op.values()))),
                ]
                out.append(
                    charts.stacked(
                        f"{target}:edgetpu-split", parts, "Ops on the Edge TPU vs the CPU.", lambda v: f"{v:g} ops"
                    )
                )
    vela = _dict(compiled.get("vela"))
    if vela:
        out.append(
            f"<p><strong>Arm Vela</strong> ({_e(vela.get('accelerator'))}, {_e(vela.get('system_config'))}, "
            f"{_e(vela.get('memory_mode'))}): {vela.get('npu_ops')} ops on the NPU, {vela.get('cpu_ops')} on the "
            f"CPU; SRAM {kib(vela.get('sram_bytes'))}, off-chip flash {kib(vela.get('off_chip_flash_bytes'))}, "
            f"{vela.get('macs', 0):,} MACs, {vela.get('cycles_total', 0):,} cycles (estimate).</p>"
        )
        per_op = [r for r in _list(vela.get("per_op")) if isinstance(r, dict)]
        if per_op:
            rows = [
                f'<tr><td>{_e(r.get("op"))}</td><td class="num">{_e(r.get("count"))}</td>'
                f'<td class="num">{_e(r.get("npu"))}</td><td class="num">{_e(r.get("cpu"))}</td></tr>'
                for r in per_op
            ]
            out.append(_table(["Op", "Count", "NPU", "CPU"], rows, "vela-ops"))
            parts = [
                ("NPU", float(sum(r.get("npu", 0) or 0 for r in per_op))),
                ("CPU", float(sum(r.get("cpu", 0) or 0 for r in per_op))),
            ]
            out.append(
                charts.stacked(
                    f"{target}:vela-split", parts, "Ops on the Ethos-U NPU vs the CPU (Vela).", lambda v: f"{v:g} ops"
                )
            )
    return ("<h3>Compilers</h3>" + "".join(out)) if out else ""
