"""Firmware for microcontroller builds (placeholder docstring)."""
