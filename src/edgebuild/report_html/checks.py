"""A target's checks and its facts (model, artifact, versions)."""

from __future__ import annotations

from typing import Any

from edgebuild.report_html.markup import _bytes, _cell, _dict, _e, _kv, _list, _num, _status, _table, kib


def _checks(target: str, report: dict[str, Any]) -> str:
    checks = [c for c in _list(_dict(report.get("validation")).get("checks")) if isinstance(c, dict)]
    if not checks:
        return ""
    rows = []
    for check in checks:
        details = _check_details(check)
        rows.append(
            f'<tr data-check="{_e(check.get("name", ""))}"><th scope="row">{_e(check.get("name", ""))}</th>'
            + _cell(_status(check.get("passed")), check.get("passed"), "passed")
            + f"<td>{_e(check.get('summary', ''))}{details}</td></tr>"
        )
    return "<h3>Checks</h3>" + _table(["Check", "Result", "Details"], rows, "checks", f' data-target="{_e(target)}"')


def _check_details(check: dict[str, Any]) -> str:
    findings = [f for f in _list(check.get("findings")) if isinstance(f, dict)]
    details = {
        **_dict(check.get("details")),
        **{k: v for k, v in check.items() if k not in ("name", "passed", "summary", "findings", "details")},
    }
    details.pop("findings", None)
    if not findings and not details:
        return ""
    parts = []
    if findings:
        items = []
        for f in findings[:50]:
            where = f"op #{f.get('op_index')} {f.get('op')}" if f.get("op") else "model"
            fix = f" <em>Fix:</em> {_e(f['fix'])}" if f.get("fix") else ""
            items.append(
                f'<li class="{_e(f.get("severity", ""))}"><strong>{_e(where)}</strong> '
                f"({_e(f.get('severity', ''))}): {_e(f.get('message', ''))}{fix}</li>"
            )
        more = f"<li>... {len(findings) - 50} more in report.json</li>" if len(findings) > 50 else ""
        parts.append(f'<ul class="findings">{"".join(items)}{more}</ul>')
    if details:
        parts.append(_kv(details))
    open_attr = " open" if check.get("passed") is False else ""
    count = f"{len(findings)} finding(s), " if findings else ""
    return f"<details{open_attr}><summary>{count}details</summary>{''.join(parts)}</details>"


def _facts(report: dict[str, Any]) -> str:
    art = _dict(report.get("artifact"))
    model = _dict(report.get("model"))
    rows = []
    if model:
        rows.append(("Model", f"<code>{_e(model.get('path', ''))}</code> ({_e(model.get('format', ''))})"))
    if art:
        float_size = _dict(report.get("float_reference")).get("size_bytes")
        ratio = (
            f", {art['size_bytes'] / float_size:.2f}x the float32 model ({kib(float_size)})"
            if _num(float_size) and float_size and _num(art.get("size_bytes"))
            else ""
        )
        rows.append(("Artifact", f"<code>{_e(art.get('path', ''))}</code>, {_bytes(art.get('size_bytes'))}{ratio}"))
        for io in ("inputs", "outputs"):
            for t in _list(art.get(io)):
                if isinstance(t, dict):
                    quant = (
                        f", scale {t['scale']:.6g}, zero point {t['zero_point']}"
                        if isinstance(t.get("scale"), float)
                        else ""
                    )
                    rows.append(
                        (
                            f"{io[:-1].capitalize()} <code>{_e(t.get('name', ''))}</code>",
                            f"{_e(t.get('dtype'))} {_e(t.get('shape'))}{_e(quant)}",
                        )
                    )
        if art.get("ops"):
            rows.append(("Ops", _e(", ".join(f"{k} x{v}" for k, v in _dict(art.get("ops")).items()))))
        if _num(art.get("macs")):
            rows.append(("MACs", f"{art['macs']:,}"))
        if art.get("weight_bytes_by_dtype"):
            rows.append(("Weights", _e(", ".join(f"{k}: {kib(v)}" for k, v in art["weight_bytes_by_dtype"].items()))))
    for note in _list(_dict(report.get("quantization")).get("notes")):
        rows.append(("Quantization", _e(note)))
    if not rows:
        return ""
    body = "".join(f'<tr><th scope="row">{k}</th><td>{v}</td></tr>' for k, v in rows)
    return f'<div class="scroll"><table class="facts"><tbody>{body}</tbody></table></div>'
