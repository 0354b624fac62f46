"""Hardware compilers after conversion: edgetpu_compiler when installed, Arm Vela for Ethos-U."""

from __future__ import annotations

from pathlib import Path

from edgebuild.profiles import Profile


def run_compilers(profile: Profile, artifact_path: Path, work_dir: Path) -> dict:
    compiled: dict = {}
    if profile.edgetpu.compile:
        from edgebuild.compilers.edgetpu import compile_edgetpu, edgetpu_status

        status = edgetpu_status(profile.edgetpu.compiler)
        compiled["edgetpu"] = (compile_edgetpu(artifact_path, work_dir, status["compiler"], profile.edgetpu.min_runtime)
                               if status["available"] else status)
    if profile.vela.accelerator:
        from edgebuild.compilers.vela import compile_vela

        vela = profile.vela
        compiled["vela"] = compile_vela(artifact_path, work_dir, vela.accelerator, vela.system_config, vela.memory_mode,
                                        Path(vela.config_file) if vela.config_file else None)
    return compiled


def compile_note(compiled: dict) -> str:
    """The progress line's note for the compile stage."""
    notes = []
    edgetpu = compiled.get("edgetpu")
    if edgetpu is not None:
        notes.append(f"edgetpu: {edgetpu.get('ops_mapped_edgetpu')}/{edgetpu.get('total_ops')} ops mapped"
                     if edgetpu.get("available", True) else "edgetpu_compiler not installed: own rule check only")
    vela = compiled.get("vela")
    if vela is not None:
        notes.append(f"vela: {vela.get('npu_ops')} NPU / {vela.get('cpu_ops')} CPU ops, "
                     f"SRAM {vela.get('sram_bytes', 0):,} B, ~{vela.get('inference_time_ms', 0):.3f} ms")
    return "; ".join(notes)


def add_compiler_checks(validation: dict, compiled: dict, profile: Profile) -> None:
    """The real compiler's verdict, when it ran: fewer ops mapped than the profile requires fails the build."""
    edgetpu = compiled.get("edgetpu")
    if edgetpu is not None and edgetpu.get("available", True) and edgetpu.get("mapped_fraction") is not None:
        need = profile.edgetpu.min_mapped_fraction
        got = edgetpu["mapped_fraction"]
        validation["checks"].append({
            "name": "edgetpu_compiler", "passed": got >= need,
            "summary": f"{edgetpu['ops_mapped_edgetpu']} of {edgetpu['total_ops']} ops mapped to the Edge TPU "
                       f"({100 * got:.0f}%, required {100 * need:.0f}%)"})
        validation["passed"] = all(c["passed"] for c in validation["checks"])
