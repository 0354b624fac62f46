"""Arm Vela (PyPI `ethos-u-vela`): compile an int8 `.tflite` for an Ethos-U microNPU.

Vela replaces every run of NPU-supported operators with one `ethos-u` custom
operator and leaves the rest for TFLite Micro on the Cortex-M. It writes
`<stem>_vela.tflite` and `<stem>_summary_<system_config>.csv` into
`--output-dir`, and prints a "Network summary" to stdout.

What Vela 5.2.0 does, checked by running it:
- Without `--config` it reads its bundled `Arm/vela.ini`; without `--system-config`
  / `--memory-mode` it picks per accelerator family (and warns):
  Ethos-U55 -> Ethos_U55_High_End_Embedded + Shared_Sram,
  Ethos-U65 -> Ethos_U65_Client_Server + Dedicated_Sram_384KB,
  Ethos-U85 -> Ethos_U85_SYS_DRAM_Mid + Dedicated_Sram_384KB.
  The CSV records what was used, so the report always names the real choice.
- The summary CSV has memory in KiB (`sram_memory_used`, `dram_memory_used`,
  `on_chip_flash_memory_used`, `off_chip_flash_memory_used`), `nn_macs`,
  `cycles_total` (and per memory), `inference_time` in seconds at `core_clock`.
  It has no CPU/NPU operator counts: those are only in stdout
  ("CPU operators = 0 (0.0%)", "NPU operators = 32 (100.0%)"), counted over Vela's
  internal lowered operators (a SOFTMAX becomes ~27 NPU operations, and the
  number changes with --verbose-operators), so the report's `npu_ops` / `cpu_ops`
  count TFLite operators instead, read back from the input and output models.
- Errors (unknown system config, unreadable input) end in a Python traceback whose
  last line carries Vela's message, with exit code 1.
"""

from __future__ import annotations

import csv
import re
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, get_args

from edgebuild.errors import ArtifactError, ExternalToolError, ProfileError
from edgebuild.process import run_tool, tail
from edgebuild.profiles.schema import VelaAccelerator

if TYPE_CHECKING:
    from edgebuild.artifact import TfliteArtifact

ACCELERATORS: tuple[str, ...] = get_args(VelaAccelerator)
"""`vela --accelerator-config` choices in Vela 5.2.0 (`vela --help`); the profile schema's `vela.accelerator`."""

BUILTIN_SYSTEM_CONFIGS = (
    "Ethos_U55_Deep_Embedded",
    "Ethos_U55_High_End_Embedded",
    "Ethos_U65_Embedded",
    "Ethos_U65_Mid_End",
    "Ethos_U65_High_End",
    "Ethos_U65_Client_Server",
    "Ethos_U85_SYS_Flash_Low",
    "Ethos_U85_SYS_Flash_High",
    "Ethos_U85_SYS_DRAM_Low",
    "Ethos_U85_SYS_DRAM_Mid",
    "Ethos_U85_SYS_DRAM_High",
)
"""System configurations in Vela 5.2.0's bundled Arm/vela.ini (`vela --list-configs Arm/vela.ini`)."""

BUILTIN_MEMORY_MODES = (
    "Sram_Only",
    "Shared_Sram",
    "Dedicated_Sram",
    "Dedicated_Sram_256KB",
    "Dedicated_Sram_384KB",
    "Dedicated_Sram_512KB",
)
"""Memory modes in the same file. Shared_Sram needs weights in flash/DRAM; U55 cannot use Dedicated_Sram."""

INSTALL_HINT = "Install it with `pip install ethos-u-vela==5.2.0` (edgebuild depends on it)."
CUSTOM_OP = "ethos-u"
_KIB = 1024


def find_vela(python: str | Path | None = None, path: str | None = None) -> str | None:
    """The `vela` script beside the running interpreter (its venv), else on PATH; None if neither."""
    beside = Path(python or sys.executable).parent / "vela"
    if beside.is_file():
        return str(beside)
    return shutil.which("vela", path=path)


def vela_command(
    vela: str,
    tflite_path: Path,
    out_dir: Path,
    accelerator: str,
    system_config: str | None,
    memory_mode: str | None,
    config_file: Path | str | None,
    ignore_ops: Sequence[str] = (),
) -> list[str]:
    argv = [vela, str(tflite_path), "--accelerator-config", accelerator, "--output-dir", str(out_dir)]
    if config_file is not None:
        argv += ["--config", str(config_file)]
    if system_config:
        argv += ["--system-config", system_config]
    if memory_mode:
        argv += ["--memory-mode", memory_mode]
    if ignore_ops:
        argv += ["--ignore-ops", ",".join(ignore_ops)]
    return argv


def compile_vela(
    tflite_path: Path,
    out_dir: Path,
    accelerator: str = "ethos-u55-128",
    system_config: str | None = None,
    memory_mode: str | None = None,
    config_file: Path | None = None,
    timeout_s: float = 300,
    ignore_ops: Sequence[str] = (),
) -> dict[str, Any]:
    """Run Vela on an int8 `.tflite`; write `model_vela.tflite`, `model_vela_summary.csv`, `model_vela.log`.

    Returns the summary CSV's numbers (bytes, not KiB), operator counts read back
    from the models, Vela's own operator counts and warnings, and the files written.
    `ignore_ops` (TFLite builtin names, e.g. "SOFTMAX") are left on the CPU
    (Vela's `--ignore-ops`).
    """
    if accelerator not in ACCELERATORS:
        raise ProfileError(
            f"vela.accelerator = '{accelerator}' is not an Ethos-U configuration Vela knows. "
            f"Choose one of: {', '.join(ACCELERATORS)}."
        )
    tflite_path, out_dir = Path(tflite_path), Path(out_dir)
    if not tflite_path.is_file():
        raise ExternalToolError(f"Vela input {tflite_path} does not exist.")
    if config_file is not None and Path(config_file).is_file():
        config_file = Path(config_file).resolve()  # else Vela resolves it under its config_files/ (e.g. "Arm/vela.ini")
    _read(tflite_path)  # a clear ArtifactError for a file that is not a .tflite, before Vela's traceback
    vela = find_vela()
    if vela is None:
        raise ExternalToolError(f"Arm Vela (`vela`) was not found beside {sys.executable} or on PATH. {INSTALL_HINT}")
    out_dir.mkdir(parents=True, exist_ok=True)
    work = out_dir / ".vela-work"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    try:
        argv = vela_command(
            vela,
            tflite_path.resolve(),
            work.resolve(),
            accelerator,
            system_config,
            memory_mode,
            config_file,
            ignore_ops,
        )
        run = run_tool(argv, timeout_s, "Vela", cwd=work)
        (out_dir / "model_vela.log").write_text(run.output)
        if run.returncode != 0:
            raise ExternalToolError(_failure_message(tflite_path, accelerator, run.output, out_dir, argv))
        produced = work / f"{tflite_path.stem}_vela.tflite"
        summaries = sorted(work.glob(f"{tflite_path.stem}_summary_*.csv"))
        if not produced.is_file() or not summaries:
            raise ExternalToolError(
                f"Vela exited 0 but did not write {produced.name} and its summary CSV. It said:\n{tail(run.output)}"
            )
        model = produced.replace(out_dir / "model_vela.tflite")
        summary = summaries[0].replace(out_dir / "model_vela_summary.csv")
    finally:
        shutil.rmtree(work, ignore_errors=True)

    result = parse_summary_csv(summary)
    result.update(_operator_split(tflite_path, model))
    result.update(parse_vela_stdout(run.stdout))
    result.update(
        {
            "accelerator_config": accelerator,
            "vela_version": _vela_version(),
            "command": argv,
            "seconds": run.seconds,
            "files": {"model": model.name, "summary_csv": summary.name, "log": "model_vela.log"},
        }
    )
    return result


_SUMMARY_INT = {
    "batch_size": "batch_size",
    "macs": "nn_macs",
    "cycles_total": "cycles_total",
    "cycles_npu": "cycles_npu",
    "passes_before_fusing": "passes_before_fusing",
    "passes_after_fusing": "passes_after_fusing",
    "original_weights_bytes": "total_original_weights",
    "npu_encoded_weights_bytes": "total_npu_encoded_weights",
}
_SUMMARY_KIB = {
    "sram_bytes": "sram_memory_used",
    "dram_bytes": "dram_memory_used",
    "on_chip_flash_bytes": "on_chip_flash_memory_used",
    "off_chip_flash_bytes": "off_chip_flash_memory_used",
}


def parse_summary_csv(path: Path) -> dict[str, Any]:
    """Vela's `<stem>_summary_<system>.csv` (one row) as typed numbers; memory in bytes.

    `accelerator` is Vela's spelling (Ethos_U55_128); `inference_time_ms` is
    Vela's estimate at `core_clock_hz`; `raw` keeps every column as written.
    """
    try:
        with open(path, newline="") as handle:
            rows = list(csv.DictReader(handle))
    except OSError as exc:
        raise ExternalToolError(f"Cannot read Vela's summary {path}: {exc.strerror}.") from None
    if len(rows) != 1:
        raise ExternalToolError(f"Vela's summary {path} has {len(rows)} data rows; expected exactly one.")
    row = rows[0]
    try:
        out: dict[str, Any] = {
            "accelerator": row["accelerator_configuration"],
            "system_config": row["system_config"],
            "memory_mode": row["memory_mode"],
            "core_clock_hz": float(row["core_clock"]),
            "weights_storage_area": row["weights_storage_area"],
            "feature_map_storage_area": row["feature_map_storage_area"],
            "inference_time_ms": float(row["inference_time"]) * 1000.0,
            "inferences_per_second": float(row["inferences_per_second"]),
        }
        for key, column in _SUMMARY_KIB.items():
            out[key] = round(float(row[column]) * _KIB)
        for key, column in _SUMMARY_INT.items():
            out[key] = int(float(row[column]))
    except (KeyError, ValueError) as exc:
        raise ExternalToolError(
            f"Vela's summary {path} lacks or garbles column {exc}: is this Vela 5.2? Columns: {', '.join(row)}"
        ) from None
    out["raw"] = dict(row)
    return out


_OPERATORS = re.compile(r"^(CPU|NPU) operators = (\d+)", re.M)
_WARNING = re.compile(r"^Warning: (.+?)\s*$", re.M)


def parse_vela_stdout(stdout: str) -> dict[str, Any]:
    """Vela's own operator counts (its internal operators) and its warnings, from stdout."""
    counts = {kind: int(n) for kind, n in _OPERATORS.findall(stdout)}
    return {
        "vela_npu_operators": counts.get("NPU"),
        "vela_cpu_operators": counts.get("CPU"),
        "warnings": _WARNING.findall(stdout),
    }


def _operator_split(source: Path, compiled: Path) -> dict[str, Any]:
    """TFLite operators of the input that run on the NPU vs stay on the CPU, per op type.

    Vela keeps CPU operators as they are and replaces NPU ones by `ethos-u`, so
    the CPU share of each type is what remains in the output model.
    """
    try:
        before = _read(source).op_counts()
        after = _read(compiled)
    except ArtifactError as exc:
        raise ExternalToolError(f"Cannot read the models around Vela: {exc}") from None
    left = {name: n for name, n in after.op_counts().items() if name != CUSTOM_OP}
    per_op: list[dict[str, Any]] = []
    for name, total in before.items():
        cpu = min(left.get(name, 0), total)
        per_op.append({"op": name, "count": total, "npu": total - cpu, "cpu": cpu})
    cpu_ops = sum(row["cpu"] for row in per_op)
    total = sum(before.values())
    return {
        "npu_ops": total - cpu_ops,
        "cpu_ops": cpu_ops,
        "npu_fraction": round((total - cpu_ops) / total, 4) if total else None,
        "ethos_u_custom_ops": after.op_counts().get(CUSTOM_OP, 0),
        "per_op": per_op,
    }


def _failure_message(source: Path, accelerator: str, output: str, out_dir: Path, argv: list[str]) -> str:
    message = _vela_error(output)
    hint = ""
    if "config" in message.lower() or "mem_area" in message:
        hint = (
            f"\nVela's bundled Arm/vela.ini defines system configs {', '.join(BUILTIN_SYSTEM_CONFIGS)} "
            f"and memory modes {', '.join(BUILTIN_MEMORY_MODES)} (Ethos-U55 has no DRAM: use Shared_Sram "
            "or Sram_Only); others need their own --config file (vela.config_file)."
        )
    quoted = "" if message != "no output" and _TRACEBACK_LAST.match(_last_line(output)) else f"\n{tail(output, 8)}"
    return (
        f"Vela could not compile {source} for {accelerator}: {message}{hint}{quoted}\n"
        f"Full output: {out_dir / 'model_vela.log'}. Command: {' '.join(argv)}"
    )


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ""


def _read(path: Path) -> TfliteArtifact:
    from edgebuild.artifact import read_artifact

    return read_artifact(path)


_TRACEBACK_LAST = re.compile(r"^(?:[\w.]+(?:Error|Exception)): (.+)$")


def _vela_error(output: str) -> str:
    """Vela's message from its traceback's last line, without the exception class and quotes."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    for line in reversed(lines):
        match = _TRACEBACK_LAST.match(line)
        if match:
            return match.group(1).strip("'\"")
    return lines[-1] if lines else "no output"


def _vela_version() -> str | None:
    try:
        from importlib.metadata import version

        return version("ethos-u-vela")
    except Exception:  # not installed as a distribution (a PATH-only vela)
        return None
