"""report.md: the build report for people, a summary they paste into a pull request."""

from __future__ import annotations

from typing import Any

from edgebuild.firmware.render import markdown_lines as firmware_markdown
from edgebuild.quant_debug.render import layers_markdown
from edgebuild.report import first_p50, kib


def render_markdown(report: dict[str, Any]) -> str:
    """A summary a person pastes into a pull request."""
    art = report["artifact"]
    lines = [f"# edgebuild report: `{report['target']}`", "", report.get("description", ""), ""]
    status = report.get("validation", {}).get("passed")
    lines.append(f"**Status:** {'PASSED' if status in (True, None) else 'FAILED'}")
    lines.append("")
    lines += ["| | |", "|---|---|"]
    lines.append(f"| Model | `{report['model']['path']}` ({report['model']['format']}) |")
    size_text = kib(art["size_bytes"])
    float_ref = report.get("float_reference") or {}
    if float_ref.get("size_bytes"):
        size_text += (
            f" ({art['size_bytes'] / float_ref['size_bytes']:.2f}x the float32 model, {kib(float_ref['size_bytes'])})"
        )
    lines.append(f"| Artifact | `{art['path']}`, {size_text} |")
    for io_name in ("inputs", "outputs"):
        for t in art[io_name]:
            quant = (
                f", scale {t['scale']:.6g}, zero point {t['zero_point']}" if isinstance(t.get("scale"), float) else ""
            )
            lines.append(f"| {io_name[:-1].capitalize()} `{t['name']}` | {t['dtype']} {t['shape']}{quant} |")
    lines.append(f"| Ops | {', '.join(f'{k} x{v}' for k, v in art['ops'].items())} |")
    lines.append(f"| MACs | {art['macs']:,} |")
    lines.append(f"| Weights | {', '.join(f'{k}: {kib(v)}' for k, v in art['weight_bytes_by_dtype'].items())} |")
    for note in (report.get("quantization") or {}).get("notes", []):
        lines.append(f"| Quantization | {note} |")
    lines += _pruning_md(report)
    lines += _training_md(report.get("training"))
    lines += _compile_md(report.get("compile"))
    lines += _validation_md(report.get("validation"))
    lines += layers_markdown(report.get("layers"))  # issue 15: per-layer quantization error
    lines += _benchmark_md(report.get("benchmark"))
    lines += _device_benchmark_md((report.get("benchmark") or {}).get("device"))
    lines += firmware_markdown(report.get("firmware"))
    if report.get("warnings"):
        lines += ["", "## Warnings", ""] + [f"- {w}" for w in report["warnings"]]
    timings = ", ".join(f"{k} {v:.2f} s" for k, v in report["timings_s"].items())
    lines += [
        "",
        f"Stage timings: {timings}. edgebuild {report['versions']['edgebuild']}, "
        f"TensorFlow {report['versions'].get('tensorflow', '?')}, "
        f"LiteRT {report['versions'].get('ai-edge-litert', '?')}.",
        "",
    ]
    return "\n".join(lines)


def _pruning_md(report: dict[str, Any]) -> list[str]:
    lines = []
    pruning = report.get("pruning")
    if pruning:
        before, after = pruning["before"], pruning["after"]
        art_before = pruning.get("artifact_before") or {}
        p50_after = first_p50(report.get("benchmark"))
        acc = pruning.get("accuracy") or {}
        lines += [
            "",
            f"## Structured pruning ({pruning['ratio']:.0%} by {pruning['criterion']}, recovered by "
            f"{pruning.get('recovery')})",
            "",
            "| | before | after | ratio |",
            "|---|---|---|---|",
            f"| parameters | {before['params']:,} | {after['params']:,} | {pruning['param_reduction']:.2f}x |",
            f"| MACs | {before['macs']:,} | {after['macs']:,} | {pruning['mac_reduction']:.2f}x |",
        ]
        if art_before.get("size_bytes"):
            size_after = report["artifact"]["size_bytes"]
            lines.append(
                f"| .tflite | {kib(art_before['size_bytes'])} | {kib(size_after)} | "
                f"{art_before['size_bytes'] / size_after:.2f}x |"
            )
        if art_before.get("p50_ms") and p50_after:
            lines.append(
                f"| p50 latency (this host) | {art_before['p50_ms']:.3f} ms | {p50_after:.3f} ms | "
                f"{art_before['p50_ms'] / p50_after:.2f}x |"
            )
        if acc:
            lines.append(
                f"| float top-1 | {acc.get('original')}% | {acc.get('recovered')}% "
                f"(right after pruning: {acc.get('pruned')}%) | |"
            )
        channels = pruning.get("channels") or {}
        if channels:
            lines += [
                "",
                "Channels per layer: " + ", ".join(f"`{name}` {c[0]} -> {c[1]}" for name, c in channels.items()),
            ]
    for kind in ("sparsity", "distillation"):
        block = report.get(kind)
        if block:
            details = {k: v for k, v in block.items() if not isinstance(v, (dict, list))}
            lines += ["", f"## {kind.capitalize()}", "", ", ".join(f"{k}: {v}" for k, v in details.items())]
    return lines


def _training_md(training: dict[str, Any] | None) -> list[str]:
    if not training:
        return []
    lines = [
        "",
        "## Training",
        "",
        f"{training.get('pass', 'training').upper()}: {training['epochs_run']} of {training['epochs_limit']} epochs, "
        f"best epoch {training['best_epoch']}"
        + (f", stopped early ({training.get('stop_reason')})" if training.get("stopped_early") else "")
        + f", {training.get('seconds', 0):.1f} s.",
    ]
    comparison = training.get("comparison")
    if comparison and "reference_top1" in comparison.get("qat", {}):
        lines += [
            "",
            "| Model | top-1 | agreement with float |",
            "|---|---|---|",
            f"| float | {100 * comparison['qat']['reference_top1']:.2f}% | - |",
        ]
        for name in ("ptq", "qat"):
            c = comparison[name]
            lines.append(f"| {name.upper()} int8 | {100 * c['artifact_top1']:.2f}% | {100 * c['agreement']:.1f}% |")
    return lines


def _compile_md(compiled: dict[str, Any] | None) -> list[str]:
    if not compiled:
        return []
    lines = ["", "## Compilers", ""]
    edgetpu = compiled.get("edgetpu")
    if edgetpu is not None:
        if edgetpu.get("available") is False:
            lines.append(f"- Edge TPU: {edgetpu['message']}")
        else:
            lines.append(
                f"- Edge TPU (edgetpu_compiler {edgetpu.get('compiler_version')}): {edgetpu.get('ops_mapped_edgetpu')} "
                f"of {edgetpu.get('total_ops')} ops mapped; on-chip memory {kib(edgetpu.get('on_chip_memory_bytes'))}, "
                f"off-chip {kib(edgetpu.get('off_chip_memory_bytes'))}; `model_edgetpu.tflite`"
            )
    vela = compiled.get("vela")
    if vela is not None:
        lines.append(
            f"- Arm Vela ({vela.get('accelerator')}, {vela.get('system_config')}, {vela.get('memory_mode')}): "
            f"{vela.get('npu_ops')} NPU / {vela.get('cpu_ops')} CPU ops, SRAM {kib(vela.get('sram_bytes'))}, "
            f"off-chip flash {kib(vela.get('off_chip_flash_bytes'))}, {vela.get('macs', 0):,} MACs, "
            f"{vela.get('cycles_total', 0):,} cycles (~{vela.get('inference_time_ms', 0):.3f} ms estimated); "
            "`model_vela.tflite` (the C array is made from it)"
        )
    return lines


def _validation_md(validation: dict[str, Any] | None) -> list[str]:
    if not validation:
        return []
    lines = ["", "## Validation", "", "| Check | Result | Details |", "|---|---|---|"]
    for check in validation.get("checks", []):
        lines.append(f"| {check['name']} | {'pass' if check['passed'] else '**FAIL**'} | {check.get('summary', '')} |")
    failed_findings = [
        f for c in validation.get("checks", []) for f in c.get("findings", []) if f.get("severity") == "error"
    ]
    if failed_findings:
        lines += ["", "### Findings to fix", ""]
        for f in failed_findings[:30]:
            where = f"op #{f['op_index']} {f['op']}" if f.get("op") else "model"
            lines.append(f"- **{where}**: {f['message']} Fix: {f['fix']}")
    return lines


def _benchmark_md(benchmark: dict[str, Any] | None) -> list[str]:
    if not benchmark:
        return []
    host_only = benchmark.get("scope", "host") != "host"
    title = (
        "## Host latency (LiteRT on this machine, not the target device)"
        if host_only
        else "## Latency (LiteRT on this host)"
    )
    lines = ["", title, ""]
    if host_only:
        lines += [
            "This target's device is not a CPU like this host (an MCU, NPU or Edge TPU): these numbers only "
            "compare builds on this machine. Device-side costs are Vela's estimate, the device benchmark, or "
            "the firmware's own measurements where the report has them.",
            "",
        ]
    lines += ["| Threads | p50 ms | p90 ms | p99 ms | mean ms | runs |", "|---|---|---|---|---|---|"]
    for threads, r in benchmark.get("threads", {}).items():
        lines.append(
            f"| {threads} | {r['p50_ms']:.3f} | {r['p90_ms']:.3f} | {r['p99_ms']:.3f} "
            f"| {r['mean_ms']:.3f} | {r['runs']} |"
        )
    guard = benchmark.get("vs_float32") or {}
    if guard.get("ratio"):
        lines.append("")
        lines.append(
            f"vs the plain float32 model on this host: {guard['ratio']:.2f}x its p50 latency "
            f"({guard['float32_p50_ms']:.3f} ms, {guard['threads']} thread(s))"
            + (" — not a prediction for the device." if host_only else ".")
        )
    host = benchmark.get("host", {})
    if host:
        lines.append("")
        runtime = benchmark.get("runtime") or {}
        lines.append(
            f"Host: {host.get('cpu', '?')}, {host.get('cores', '?')} cores; "
            f"runtime {runtime.get('name', '?')} {runtime.get('version', '')}."
        )
    return lines


def _device_benchmark_md(device: dict[str, Any] | None) -> list[str]:
    if not device:
        return []
    if "error" in device:
        return [
            "",
            f"## Latency on the device ({device.get('url')})",
            "",
            f"**Failed** ({device['error']['type']}): {device['error']['message']}",
        ]
    info = device.get("device", {})
    if "instructions_per_inference" in device:
        cost = device["instructions_per_inference"]
        return [
            "",
            f"## Cost on the device ({info.get('url', '')}, {info.get('cpu')}, {info.get('kernels')} kernels)",
            "",
            f"{cost['median']:,} instructions per inference (min {cost['min']:,}, max {cost['max']:,}, "
            f"{device['runs']} runs); {device['unit']}. Firmware flash {device['flash_bytes']:,} bytes, RAM "
            f"{device['ram_bytes']:,} bytes, arena used {device['arena']['used_bytes']:,} of "
            f"{device['arena']['declared_bytes']:,} bytes.",
        ]
    lines = [
        "",
        f"## Latency on the device ({info.get('url', '')})",
        "",
        "| Threads | p50 ms | p90 ms | p99 ms | mean ms | runs | load ms |",
        "|---|---|---|---|---|---|---|",
    ]

    def ms(value: object) -> str:
        return f"{value:.3f}" if isinstance(value, (int, float)) else "n/a"

    for threads, r in device.get("threads", {}).items():
        lines.append(
            f"| {threads} | {ms(r.get('p50_ms'))} | {ms(r.get('p90_ms'))} | {ms(r.get('p99_ms'))} | "
            f"{ms(r.get('mean_ms'))} | {r.get('runs', 'n/a')} | {ms(r.get('load_ms'))} |"
        )
    runtime = info.get("runtime") or {}
    lines += [
        "",
        f"Device: {info.get('cpu', '?')} ({info.get('machine', '?')}, {info.get('cores', '?')} cores), "
        f"{info.get('os', '?')}, Python {info.get('python', '?')}, "
        f"{runtime.get('name', '?') if isinstance(runtime, dict) else runtime} "
        f"{runtime.get('version', '') if isinstance(runtime, dict) else ''}.",
    ]
    if "edgetpu" in device:
        lines.append(f"Edge TPU delegate: {device['edgetpu']}.")
    return lines
