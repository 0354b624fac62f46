"""Board profiles: data files (`targets/boards/<name>.toml`) that say how to build and run firmware.

A board names its CPU (compiler flags and the CMSIS device header the TFLM library is built with), its
memory map (the linker script is written from it), the board-support files the project copies
(`src/edgebuild/firmware/boards/<support>/`), the SysTick clock, and how QEMU runs it (if it can).
Unknown keys are errors that name the file and the key, like target profiles.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import tomllib

from edgebuild.errors import ProfileError

if TYPE_CHECKING:
    from edgebuild.firmware.tflm_library import Flavor

_UNITS = {"": 1, "b": 1, "kib": 1024, "mib": 1024**2, "kb": 1000, "mb": 1000**2}

_TOP_KEYS = {
    "name",
    "description",
    "cpu",
    "arch_flags",
    "cmsis_device",
    "cpu_define",
    "support",
    "device_irqs",
    "memory",
    "clock",
    "qemu",
    "probe",
}
_MEMORY_KEYS = {"flash_origin", "flash_length", "ram_origin", "ram_length", "stack", "heap"}
_CLOCK_KEYS = {"systick_hz"}
_QEMU_KEYS = {"machine", "args"}
_PROBE_KEYS = {"pyocd_target"}


@dataclass(frozen=True)
class Board:
    name: str
    description: str
    cpu: str
    arch_flags: tuple[str, ...]
    cmsis_device: str
    cpu_define: str
    support: str
    device_irqs: int
    flash_origin: int
    flash_length: int
    ram_origin: int
    ram_length: int
    stack_bytes: int
    heap_bytes: int
    systick_hz: int
    qemu_machine: str | None
    qemu_args: tuple[str, ...]
    pyocd_target: str | None  # `pyocd list --targets` name, for `edgebuild flash`
    source: str  # the file it was read from

    @property
    def support_dir(self) -> Path:
        return Path(__file__).resolve().parent / "boards" / self.support

    def in_flash(self, address: int) -> bool:
        return self.flash_origin <= address < self.flash_origin + self.flash_length

    def in_ram(self, address: int) -> bool:
        return self.ram_origin <= address < self.ram_origin + self.ram_length

    def flavor(self, kernels: str = "cmsis-nn") -> Flavor:
        """The TFLM library flavor for this board's CPU."""
        from edgebuild.firmware.tflm_library import cortex_m_flavor

        return cortex_m_flavor(self.cpu, self.arch_flags, self.cmsis_device, self.cpu_define, kernels)

    def linker_script(self) -> str:
        template = (self.support_dir / "board.ld.in").read_text(encoding="utf-8")
        values = {
            "BOARD": self.name,
            "CPU": self.cpu,
            "FLASH_ORIGIN": f"0x{self.flash_origin:08X}",
            "FLASH_LENGTH": str(self.flash_length),
            "RAM_ORIGIN": f"0x{self.ram_origin:08X}",
            "RAM_LENGTH": str(self.ram_length),
            "STACK": str(self.stack_bytes),
            "HEAP": str(self.heap_bytes),
        }
        for key, value in values.items():
            template = template.replace(f"@{key}@", value)
        return template

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "cpu": self.cpu,
            "qemu_machine": self.qemu_machine,
            "flash": {"origin": self.flash_origin, "length": self.flash_length},
            "ram": {"origin": self.ram_origin, "length": self.ram_length},
            "stack_bytes": self.stack_bytes,
            "heap_bytes": self.heap_bytes,
            "systick_hz": self.systick_hz,
        }


def builtin_boards() -> list[str]:
    root = resources.files("edgebuild.targets").joinpath("boards")
    return sorted(p.name[:-5] for p in root.iterdir() if p.name.endswith(".toml"))


def load_board(name_or_path: str | Path) -> Board:
    """A built-in board by name (`mps2-an386`) or a board TOML file by path."""
    text_path = Path(name_or_path)
    if text_path.suffix == ".toml" and text_path.is_file():
        source, text = str(text_path), text_path.read_text(encoding="utf-8")
    else:
        resource = resources.files("edgebuild.targets") / "boards" / f"{name_or_path}.toml"
        if not resource.is_file():
            raise ProfileError(
                f"Unknown board '{name_or_path}'. Built-in boards: {', '.join(builtin_boards())}; "
                "or give the path of a board .toml file (see targets/boards/mps2-an386.toml)."
            )
        source, text = f"targets/boards/{name_or_path}.toml", resource.read_text(encoding="utf-8")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(f"{source}: not valid TOML: {exc}") from None
    return _parse(data, source)


def _parse(data: dict[str, Any], source: str) -> Board:
    _no_unknown(data, _TOP_KEYS, source, "")
    memory, clock, qemu = data.get("memory", {}), data.get("clock", {}), data.get("qemu", {})
    probe = data.get("probe", {})
    _no_unknown(memory, _MEMORY_KEYS, source, "memory.")
    _no_unknown(clock, _CLOCK_KEYS, source, "clock.")
    _no_unknown(qemu, _QEMU_KEYS, source, "qemu.")
    _no_unknown(probe, _PROBE_KEYS, source, "probe.")

    def need(table: dict[str, Any], key: str, prefix: str = "") -> object:
        if key not in table:
            raise ProfileError(f"{source}: missing key '{prefix}{key}'.")
        return table[key]

    def string_list(value: object, key: str) -> tuple[str, ...]:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ProfileError(f"{source}: '{key}' must be a list of strings.")
        return tuple(value)

    return Board(
        name=str(need(data, "name")),
        description=str(data.get("description", "")),
        cpu=str(need(data, "cpu")),
        arch_flags=string_list(need(data, "arch_flags"), "arch_flags"),
        cmsis_device=str(need(data, "cmsis_device")),
        cpu_define=str(need(data, "cpu_define")),
        support=str(data.get("support", "cortex-m-semihosting")),
        device_irqs=int(data.get("device_irqs", 32)),
        flash_origin=_size(need(memory, "flash_origin", "memory."), source, "memory.flash_origin", allow_zero=True),
        flash_length=_size(need(memory, "flash_length", "memory."), source, "memory.flash_length"),
        ram_origin=_size(need(memory, "ram_origin", "memory."), source, "memory.ram_origin", allow_zero=True),
        ram_length=_size(need(memory, "ram_length", "memory."), source, "memory.ram_length"),
        stack_bytes=_size(memory.get("stack", "16KiB"), source, "memory.stack"),
        heap_bytes=_size(memory.get("heap", "16KiB"), source, "memory.heap", allow_zero=True),
        systick_hz=_size(need(clock, "systick_hz", "clock."), source, "clock.systick_hz"),
        qemu_machine=str(qemu["machine"]) if "machine" in qemu else None,
        qemu_args=string_list(qemu.get("args", []), "qemu.args"),
        pyocd_target=str(probe["pyocd_target"]) if "pyocd_target" in probe else None,
        source=source,
    )


def _no_unknown(table: dict[str, Any], allowed: set[str], source: str, prefix: str) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise ProfileError(
            f"{source}: unknown key '{prefix}{unknown[0]}'. Valid keys here: "
            f"{', '.join(prefix + k for k in sorted(allowed))}."
        )


def _size(value: object, source: str, key: str, allow_zero: bool = False) -> int:
    if isinstance(value, bool):
        raise ProfileError(f"{source}: '{key}' must be a number of bytes or a size like \"64KiB\".")
    if isinstance(value, int):
        number = value
    elif isinstance(value, str):
        match = re.fullmatch(r"\s*(\d+)\s*([A-Za-z]*)\s*", value.replace("_", ""))
        unit = match.group(2).lower() if match else ""
        if match is None or unit not in _UNITS:
            raise ProfileError(f'{source}: \'{key}\' = {value!r} is not a size such as 65536, "64KiB" or "4MiB".')
        number = int(match.group(1)) * _UNITS[unit]
    else:
        raise ProfileError(f"{source}: '{key}' must be a number of bytes or a size like \"64KiB\".")
    if number < 0 or (number == 0 and not allow_zero):
        raise ProfileError(f"{source}: '{key}' must be positive, got {value!r}.")
    return number
