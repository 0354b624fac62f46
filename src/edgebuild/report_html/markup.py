"""Small HTML and number-formatting helpers shared by the report.html sections."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from html import escape
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from typing_extensions import TypeIs


CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'"


# ---------------------------------------------------------------- small formatting helpers


def _e(value: Any) -> str:
    return escape(str(value))


def kib(n: float | None) -> str:
    return "-" if n is None else f"{n / 1024:,.1f} KiB"


def _bytes(n: float | None) -> str:
    return "-" if n is None else f"{int(n):,} B"


def _size_fmt(n: float) -> str:
    """Bar labels: bytes below 1 KiB, KiB above."""
    return f"{n:,.0f} B" if n < 1024 else f"{n / 1024:,.1f} KiB"


def _ms(v: float | None) -> str:
    return "-" if v is None else f"{v:.3f} ms"


def _pct(v: float | None, digits: int = 1) -> str:
    return "-" if v is None else f"{100 * v:.{digits}f}%"


def _num(v: Any) -> TypeIs[int | float]:
    """A finite number (NaN and infinity are not drawn or formatted as numbers)."""
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _cell(text: str, value: Any = None, field: str | None = None, cls: str = "") -> str:
    """A table cell; with `field` it carries the exact report.json value (`data-value`) for machines."""
    attrs = f' class="{cls}"' if cls else ""
    if field is not None:
        attrs += f' data-field="{_e(field)}" data-value="{_e(json.dumps(value))}"'
    return f"<td{attrs}>{text}</td>"


def _table(headers: Iterable[str], rows: Iterable[str], cls: str = "", attrs: str = "") -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    return (
        f'<div class="scroll"><table class="{cls}"{attrs}><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table></div>"
    )


def _status(passed: bool | None, text_pass: str = "pass", text_fail: str = "FAIL") -> str:
    if passed is None:
        return '<span class="badge muted">-</span>'
    return f'<span class="badge pass">{text_pass}</span>' if passed else f'<span class="badge fail">{text_fail}</span>'


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _kv(values: dict[str, Any], depth: int = 0) -> str:
    rows = []
    for key, value in values.items():
        if isinstance(value, dict) and depth < 2:
            text = _kv(value, depth + 1)
        elif isinstance(value, (dict, list)):
            text = f"<code>{_e(json.dumps(value, default=str)[:400])}</code>"
        elif isinstance(value, float):
            text = f"{value:.6g}"
        elif isinstance(value, int) and not isinstance(value, bool):
            text = f"{value:,}"
        else:
            text = _e(value)
        rows.append(f"<dt>{_e(key)}</dt><dd>{text}</dd>")
    return f'<dl class="kv">{"".join(rows)}</dl>'


def _fmt(value: Any, unit: str = "", none: str = "-") -> str:
    if value is None:
        return none
    if _num(value):
        return f"{value:.4g}{' ' + unit if unit else ''}"
    return _e(value)
