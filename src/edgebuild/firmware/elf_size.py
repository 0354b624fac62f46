"""Flash and RAM of a linked firmware image, measured from the ELF and attributed with the linker map.

Totals come from `arm-none-eabi-size -A` (every allocated section with its address): flash is every
section placed in the board's flash region plus the load image of `.data`; RAM is `.data`, `.bss`
(the tensor arena lives there), the heap and the stack. The linker map (`-Wl,-Map`) lists every input
section with its size and the object (or archive member) it came from, which splits the flash into the
model array, the TFLite Micro runtime, its kernels, the application, the embedded validation samples and
the C/C++ libraries; whatever the map does not attribute (alignment) is `padding`, so the parts always
add up to the total.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

from edgebuild.errors import ExternalToolError
from edgebuild.firmware.boards import Board
from edgebuild.process import run_tool

ARENA_SYMBOL = "g_edgebuild_arena"
FLASH_PARTS = (
    "model_array",
    "tflm_runtime",
    "tflm_kernels",
    "application",
    "validation_samples",
    "c_cpp_libraries",
    "padding",
)
_LIBC = re.compile(r"lib(c|m|g|gcc|stdc\+\+|supc\+\+|nosys|c_nano|stdc\+\+_nano)\.a\b|crt\w*\.o$")
_KERNEL_MEMBER = (
    "tensorflow__lite__micro__kernels__",
    "signal__",
    "third_party__cmsis_nn__",
    "tensorflow__lite__kernels__",
)
_APP_OBJECTS = ("edgebuild_runner", "startup", "semihost", "platform_cortex_m", "main")


def section_sizes(elf: Path, size_tool: str = "arm-none-eabi-size") -> dict[str, dict[str, int]]:
    """{section: {"size", "addr"}} from `size -A` (allocated and non-allocated alike)."""
    tool = shutil.which(size_tool)
    if tool is None:
        raise ExternalToolError(f"{size_tool} not found (Debian: binutils-arm-none-eabi, part of gcc-arm-none-eabi).")
    res = run_tool([tool, "-A", "-d", str(elf)], 60, size_tool)
    if res.returncode != 0:
        raise ExternalToolError(f"{size_tool} -A {elf} failed (exit {res.returncode}): {res.stderr.strip()}")
    sections: dict[str, dict[str, int]] = {}
    for line in res.stdout.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[1].isdigit() and parts[2].isdigit() and parts[0] != "Total":
            sections[parts[0]] = {"size": int(parts[1]), "addr": int(parts[2])}
    if not sections:
        raise ExternalToolError(f"Unexpected output from {size_tool} -A {elf}:\n{res.stdout}")
    return sections


def berkeley_sizes(elf: Path, size_tool: str = "arm-none-eabi-size") -> dict[str, int]:
    """text, data, bss as `size` (Berkeley format) prints them."""
    res = run_tool([shutil.which(size_tool) or size_tool, str(elf)], 60, size_tool)
    if res.returncode != 0:
        raise ExternalToolError(f"{size_tool} {elf} failed (exit {res.returncode}): {res.stderr.strip()}")
    text, data, bss = (int(v) for v in res.stdout.splitlines()[1].split()[:3])
    return {"text": text, "data": data, "bss": bss}


def parse_map(map_text: str) -> list[tuple[str, str, int, int, str]]:
    """(output section, input section, address, size, origin file) for every input section of the memory map."""
    start = map_text.find("Linker script and memory map")
    lines = map_text[start:].splitlines() if start >= 0 else []
    entries: list[tuple[str, str, int, int, str]] = []
    out_section = ""
    pending: str | None = None
    inp = re.compile(r"^ (\S+)(?:\s+0x([0-9a-fA-F]+)\s+0x([0-9a-fA-F]+)(?:\s+(.+))?)?\s*$")
    cont = re.compile(r"^\s+0x([0-9a-fA-F]+)\s+0x([0-9a-fA-F]+)(?:\s+(.+))?$")
    for line in lines[1:]:
        if not line.strip():
            continue
        if pending is not None:
            m = cont.match(line)
            name, pending = pending, None
            if m:
                entries.append(
                    (out_section, name, int(m.group(1), 16), int(m.group(2), 16), (m.group(3) or "").strip())
                )
                continue
        if not line.startswith(" "):
            token = line.split()[0]
            if token.startswith("."):
                out_section = token
            continue
        m = inp.match(line)
        if m is None:
            continue
        name = m.group(1)
        if (name.startswith("*") and name != "*fill*") or name.startswith(("KEEP(", "SORT(", "0x")):
            continue
        if m.group(3) is None:
            pending = name
            continue
        entries.append((out_section, name, int(m.group(2), 16), int(m.group(3), 16), (m.group(4) or "").strip()))
    return entries


def _attributed(
    entries: list[tuple[str, str, int, int, str]], section: str, start: int, size: int
) -> list[tuple[int, str, str]]:
    """(bytes, input section, origin) of one output section, counting each address once.

    Merged string sections (.str1.4) overlap in the map (their sizes are before merging), so bytes are
    attributed by address range, in address order: an input section gets only what no earlier one covered.
    """
    end = start + size
    covered = start
    result = []
    for _, name, addr, length, origin in sorted((e for e in entries if e[0] == section), key=lambda e: (e[2], -e[3])):
        lo, hi = max(addr, covered), min(addr + length, end)
        if hi > lo:
            result.append((hi - lo, name, origin))
            covered = hi
    return result


def classify(origin: str, input_section: str) -> str:
    """Which part of the firmware an input section belongs to, from the object or archive member it came from."""
    if input_section == "*fill*" or not origin:
        return "padding"
    member = re.search(r"\(([^()]+)\)\s*$", origin)
    if "libtflm.a" in origin and member:
        name = member.group(1)
        return "tflm_kernels" if name.startswith(_KERNEL_MEMBER) else "tflm_runtime"
    if _LIBC.search(origin):
        return "c_cpp_libraries"
    base = Path(origin.split("(")[0]).name
    if base.startswith("model_data"):
        return "model_array"
    if base.startswith("samples"):
        return "validation_samples"
    if base.startswith(_APP_OBJECTS):
        return "application"
    if member:  # another archive's member (a user library)
        return "application"
    return "padding" if base.startswith("linker stubs") else "application"


def measure_elf(elf: Path, board: Board, map_file: Path | None = None) -> dict[str, Any]:
    """Flash and RAM of `elf` for `board`, with the breakdown from `map_file` when given."""
    sections = section_sizes(elf)
    berkeley = berkeley_sizes(elf)
    flash_sections: dict[str, int] = {}
    ram_sections: dict[str, int] = {}
    for name, info in sections.items():
        if info["size"] == 0 or name.startswith((".debug", ".comment", ".ARM.attributes")):
            continue
        if board.in_flash(info["addr"]):
            flash_sections[name] = info["size"]
        elif board.in_ram(info["addr"]):
            ram_sections[name] = info["size"]
            if name == ".data":  # initial values are stored in flash and copied at reset
                flash_sections[".data"] = info["size"]
    flash_total = sum(flash_sections.values())
    ram_total = sum(ram_sections.values())
    flash: dict[str, Any] = {
        "total_bytes": flash_total,
        "sections": flash_sections,
        "text_bytes": sum(v for k, v in flash_sections.items() if k not in (".rodata", ".data")),
        "rodata_bytes": flash_sections.get(".rodata", 0),
        "data_bytes": flash_sections.get(".data", 0),
    }
    ram: dict[str, Any] = {
        "total_bytes": ram_total,
        "sections": ram_sections,
        "data_bytes": ram_sections.get(".data", 0),
        "bss_bytes": ram_sections.get(".bss", 0),
        "heap_bytes": ram_sections.get(".heap", 0),
        "stack_bytes": ram_sections.get(".stack", 0),
    }
    if map_file is not None and Path(map_file).is_file():
        entries = parse_map(Path(map_file).read_text(errors="replace"))
        parts = dict.fromkeys(FLASH_PARTS, 0)
        ram_parts: dict[str, int] = {}
        arena = 0
        for name in flash_sections:
            for size, input_section, origin in _attributed(
                entries, name, sections[name]["addr"], sections[name]["size"]
            ):
                parts[classify(origin, input_section)] += size
        for name in (".data", ".bss"):
            if name not in ram_sections:
                continue
            for size, input_section, origin in _attributed(
                entries, name, sections[name]["addr"], sections[name]["size"]
            ):
                part = classify(origin, input_section)
                if ARENA_SYMBOL in input_section:
                    arena += size
                    part = "tensor_arena"
                ram_parts[part] = ram_parts.get(part, 0) + size
        parts["padding"] += flash_total - sum(parts.values())  # alignment the map does not list as *fill*
        flash["breakdown"] = parts
        flash["total_bytes_without_samples"] = flash_total - parts["validation_samples"]
        ram_parts["heap"] = ram["heap_bytes"]
        ram_parts["stack"] = ram["stack_bytes"]
        ram_parts["padding"] = ram_parts.get("padding", 0) + ram_total - sum(ram_parts.values())
        ram["breakdown"] = ram_parts
        ram["arena_bytes"] = arena
    flash["model_array_bytes"] = flash.get("breakdown", {}).get("model_array")
    return {
        "tool": "arm-none-eabi-size -A (totals), linker map (breakdown)",
        "flash": flash,
        "ram": ram,
        "berkeley": berkeley,
    }
