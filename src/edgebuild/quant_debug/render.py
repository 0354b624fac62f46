"""The per-layer table for people: report.md's section and `edgebuild debug-quant`'s output (no TensorFlow)."""

from __future__ import annotations

from typing import Any

HEADERS = ["#", "op", "tensor", "shape", "scale", "added SNR", "SNR", "channel SNR", "RMSE (steps)", "cosine"]


def short_name(tensor: str) -> str:
    """The first of the fused TensorFlow op names the converter joins with ';' (the layer's own op)."""
    return tensor.split(";")[0]


def _db(value: Any) -> str:
    return "exact" if value is None else f"{value:.1f} dB"


def _num(value: Any, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}g}"


def rows(block: dict[str, Any]) -> list[list[str]]:
    out = []
    for row in block.get("top", []):
        out.append(
            [
                str(row.get("rank", "")),
                row["op"],
                short_name(row["tensor"]),
                "x".join(str(d) for d in row.get("shape", [])),
                _num(row.get("scale"), 4),
                _db(row.get("added_snr_db")),
                _db(row.get("snr_db")),
                _db(row.get("channel_snr_db")),
                _num(row.get("rmse_steps")),
                _num(row.get("cosine"), 4),
            ]
        )
    return out


def verdict(block: dict[str, Any]) -> str:
    worst = block.get("worst")
    if not worst:
        return "No quantized layer could be measured."
    added = worst.get("added_snr_db")
    name = f"{worst['op']} `{short_name(worst['tensor'])}`"
    if added is not None and added < 20.0:
        why = "; ".join(worst.get("reasons") or []) or "no single cause could be told from the numbers"
        return f"{name} adds the most error: its output is {added:.1f} dB from the float op on the same inputs. {why}."
    return (
        f"No layer stands out: the worst, {name}, adds error at {_db(added)} SNR against the float op on the "
        "same inputs."
    )


def layers_markdown(block: dict[str, Any] | None) -> list[str]:
    """report.md's per-layer section (after Validation); empty without a `layers` block."""
    if not block:
        return []
    if "error" in block:
        return [
            "",
            "## Per-layer quantization error",
            "",
            f"Not measured: {block['error']['type']}: {block['error']['message']}",
        ]
    lines = ["", "## Per-layer quantization error", "", verdict(block), ""]
    lines += ["| " + " | ".join(HEADERS) + " | why |", "|" + "---|" * (len(HEADERS) + 1)]
    for row, raw in zip(rows(block), block.get("top", []), strict=True):
        why = "; ".join(raw.get("reasons") or [])
        lines.append("| " + " | ".join(row) + f" | {why} |")
    lines += ["", _explain(block)]
    selective = block.get("selective")
    if selective:
        lines += ["", "### Selective precision", "", *_selective_lines(selective)]
    calibration = block.get("calibration_sweep")
    if calibration:
        lines += ["", "### Calibration samples", "", *_sweep_lines(calibration)]
    for note in block.get("notes", []):
        lines.append(f"\n> {note}")
    return lines


def _explain(block: dict[str, Any]) -> str:
    seconds = block.get("seconds", {})
    return (
        f"{block.get('samples')} validation samples, calibration on {block.get('calibration_samples')}. "
        "Added SNR: each op's output against the float op run on the same quantized inputs (the TFLite "
        "debugger's layer-wise model), the lower of the whole tensor's and the median channel's: the rank. "
        "SNR, channel SNR (median over channels), RMSE (in the tensor's quantization steps) and cosine: the "
        "artifact's tensor against the float model's, everything upstream included. "
        + (f"Took {sum(seconds.values()):.2f} s." if seconds else "")
    )


def _selective_lines(sel: dict[str, Any]) -> list[str]:
    lines = []
    if sel.get("applied"):
        kept = sel.get("kept", [])
        lines.append(
            f"Kept {len(kept)} op(s) ({sel.get('weighted_layers', 0)} with weights) at higher precision "
            f"with {sel.get('engine', 'ai-edge-quantizer')}; the artifact is the mixed-precision model."
        )
        lines += ["", "| tensor | op | precision | why |", "|---|---|---|---|"]
        lines += [f"| `{short_name(k['tensor'])}` | {k['op']} | {k['precision']} | {k['why']} |" for k in kept]
        cost = sel.get("cost") or {}
        if cost:
            lines += [
                "",
                f"Accuracy: {sel.get('before', '?')} with all int8; {sel.get('accuracy', '?')} now. "
                f"Cost: {cost['size_bytes']:,} bytes vs {cost['int8_size_bytes']:,} "
                f"({cost['size_ratio']:.2f}x); host p50 {cost['p50_ms']:.4f} ms vs {cost['int8_p50_ms']:.4f} ms"
                + (f" ({cost['latency_ratio']:.2f}x)" if cost.get("latency_ratio") else "")
                + f", {cost['latency_scope']}"
                + (
                    f"; TFLite Micro arena {cost['arena_bytes']:,} bytes vs {cost['int8_arena_bytes']:,} "
                    f"({cost['arena_ratio']:.2f}x)"
                    if cost.get("arena_bytes")
                    else ""
                )
                + ".",
            ]
    if sel.get("cpu_fallback"):
        fb = sel["cpu_fallback"]
        lines.append(
            f"Would keep {', '.join(f'`{short_name(n)}`' for n in sel.get('would_keep', []))}: "
            f"{sel.get('would_reach')}. On the CPU: {len(fb['ops'])} ops from #{fb['first_op_index']} "
            f"({fb['first_op']}), {fb['macs']:,} MACs ({100 * fb['macs_fraction']:.0f}%)."
        )
    if sel.get("note"):
        lines.append(sel["note"])
    for warning in sel.get("warnings", []):
        lines.append(f"**Warning:** {warning}")
    return lines


def _sweep_lines(sweep: dict[str, Any]) -> list[str]:
    lines = ["| calibration samples | accuracy |", "|---|---|"]
    lines += [f"| {p['samples']} | {p['accuracy']} |" for p in sweep.get("points", [])]
    if sweep.get("note"):
        lines += ["", sweep["note"]]
    return lines


def layers_text(block: dict[str, Any]) -> str:
    """The same table as plain text for a terminal."""
    table = [[*HEADERS, "why"]] + [
        [*r, "; ".join(raw.get("reasons") or [])] for r, raw in zip(rows(block), block.get("top", []), strict=True)
    ]
    widths = [max(len(r[i]) for r in table) for i in range(len(HEADERS))]
    out = [verdict(block).replace("`", ""), ""]
    for r in table:
        out.append("  ".join(c.ljust(w) for c, w in zip(r[:-1], widths, strict=True)) + ("  " + r[-1] if r[-1] else ""))
    out += ["", _explain(block)]
    if block.get("selective"):
        out += ["", "Selective precision:"] + [line.replace("`", "") for line in _selective_lines(block["selective"])]
    if block.get("calibration_sweep"):
        out += ["", "Calibration samples:"] + [
            line for line in _sweep_lines(block["calibration_sweep"]) if not line.startswith("|---")
        ]
    out += [f"note: {n}" for n in block.get("notes", [])]
    return "\n".join(out)
