"""Hardware compilers after conversion: edgetpu_compiler when installed, Arm Vela for Ethos-U."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgebuild.profiles import Profile
from edgebuild.validation import add_check


@dataclass(frozen=True)
class Compilation:
    """The compile stage's result: what each hardware compiler reported (None: it was not run).

    The blocks are report.json's `compile.edgetpu` and `compile.vela` as the compilers' parsers return them
    (see docs/report-schema.md); later stages read them (emit takes Vela's model and SRAM plan).
    """

    edgetpu: dict[str, Any] | None = None
    vela: dict[str, Any] | None = None

    def report(self) -> dict[str, Any]:
        """report.json's `compile` block: one entry per compiler that ran (empty when none did)."""
        return {name: block for name, block in (("edgetpu", self.edgetpu), ("vela", self.vela)) if block is not None}

    def note(self) -> str:
        """The progress line's note for the compile stage."""
        notes = []
        edgetpu = self.edgetpu
        if edgetpu is not None:
            rules = edgetpu.get("rules") or {}
            notes.append(
                f"edgetpu: {edgetpu.get('ops_mapped_edgetpu')}/{edgetpu.get('total_ops')} ops mapped"
                if edgetpu.get("available", True)
                else f"edgetpu_compiler not installed: own rules map {rules.get('mapped_ops')}/"
                f"{rules.get('total_ops')} ops"
            )
        vela = self.vela
        if vela is not None:
            notes.append(
                f"vela: {vela.get('npu_ops')} NPU / {vela.get('cpu_ops')} CPU ops, "
                f"SRAM {vela.get('sram_bytes', 0):,} B, ~{vela.get('inference_time_ms', 0):.3f} ms"
            )
        return "; ".join(notes)


def run_compilers(profile: Profile, artifact_path: Path, work_dir: Path) -> Compilation:
    edgetpu = vela_block = None
    if profile.edgetpu.compile:
        from edgebuild.compilers.edgetpu import compile_edgetpu, edgetpu_status

        status = edgetpu_status(profile.edgetpu.compiler)
        if status["available"]:
            edgetpu = compile_edgetpu(artifact_path, work_dir, status["compiler"], profile.edgetpu.min_runtime)
        else:  # no compiler: edgebuild's own rules estimate how far its mapping would reach
            edgetpu = {**status, "rules": rules_mapping(artifact_path, profile.edgetpu.min_runtime)}
    vela = profile.vela
    if vela.accelerator:
        from edgebuild.compilers.vela import compile_vela

        vela_block = compile_vela(
            artifact_path,
            work_dir,
            vela.accelerator,
            vela.system_config,
            vela.memory_mode,
            Path(vela.config_file) if vela.config_file else None,
        )
    return Compilation(edgetpu=edgetpu, vela=vela_block)


def rules_mapping(artifact_path: Path, runtime: int) -> dict[str, Any]:
    """The mapping edgebuild's Edge TPU rules predict: where it stops, and the share of ops and MACs before that."""
    from edgebuild.artifact import read_artifact
    from edgebuild.checks.edgetpu import check

    extra = check(read_artifact(artifact_path), runtime).extra
    keys = (
        "first_unsupported",
        "mapped_ops",
        "total_ops",
        "mapped_ops_fraction",
        "mapped_macs",
        "total_macs",
        "mapped_macs_fraction",
        "edgetpu_runtime",
    )
    return {key: extra[key] for key in keys}


def add_compiler_checks(validation: dict[str, Any], compiled: Compilation, profile: Profile) -> None:
    """Gate on `edgetpu.min_mapped_fraction`: fewer ops mapped to the Edge TPU than required fails the build.

    The share of ops mapped is the real compiler's when it ran; without the compiler it is the share
    edgebuild's own Edge TPU rules predict (ops before the first one the compiler cannot map). The check
    says which number it used.
    """
    if compiled.vela is not None:
        from edgebuild.stages.npu_ops import reconcile

        reconcile(validation, compiled.vela)
    edgetpu = compiled.edgetpu
    if edgetpu is None:
        return
    need = profile.edgetpu.min_mapped_fraction
    if edgetpu.get("available", True) and edgetpu.get("mapped_fraction") is not None:
        got = edgetpu["mapped_fraction"]
        add_check(
            validation,
            {
                "name": "edgetpu_compiler",
                "passed": got >= need,
                "source": "edgetpu_compiler",
                "mapped_fraction": got,
                "min_mapped_fraction": need,
                "summary": f"{edgetpu['ops_mapped_edgetpu']} of {edgetpu['total_ops']} ops mapped to the Edge TPU "
                f"by edgetpu_compiler {edgetpu.get('compiler_version') or ''}".rstrip()
                + f" ({_pct(got)}, required {_pct(need)})",
            },
        )
    elif edgetpu.get("available") is False and edgetpu.get("rules"):
        rules = edgetpu["rules"]
        got = rules["mapped_ops_fraction"]
        first = rules.get("first_unsupported")
        stops = f"; mapping stops at op #{first['index']} ({first['op']})" if first else ""
        add_check(
            validation,
            {
                "name": "edgetpu mapped fraction",
                "passed": got >= need,
                "source": "edgebuild rules",
                "mapped_fraction": got,
                "min_mapped_fraction": need,
                "summary": f"{rules['mapped_ops']} of {rules['total_ops']} ops map to the Edge TPU by edgebuild's own "
                f"rules ({_pct(got)}, required {_pct(need)}; edgetpu_compiler not installed, so this is the "
                f"rules' estimate, not the compiler's count){stops}",
            },
        )


def _pct(fraction: float) -> str:
    return f"{100 * fraction:.1f}%"
