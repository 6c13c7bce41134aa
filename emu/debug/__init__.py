"""Breakpoint-level debugging: the GDB remote stub."""
