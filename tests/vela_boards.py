"""A board's own Vela system config, for tests that point vela.config_file at a file of their own."""

BOARD_INI_TEMPLATE = """[System_Config.My_Board]
core_clock={clock}
axi0_port=Sram
axi1_port=OffChipFlash
Sram_clock_scale=1.0
Sram_burst_length=32
Sram_read_latency=32
Sram_write_latency=32
OffChipFlash_clock_scale=0.125
OffChipFlash_burst_length=128
OffChipFlash_read_latency=64
OffChipFlash_write_latency=64

[Memory_Mode.Shared_Sram]
const_mem_area=Axi1
arena_mem_area=Axi0
cache_mem_area=Axi0
"""


def board_ini(clock: str) -> str:
    """The config with `core_clock` set: a number Vela accepts (400e6) or text it refuses (fast)."""
    return BOARD_INI_TEMPLATE.format(clock=clock)
