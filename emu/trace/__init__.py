"""Tracing of cross-hart interactions on the virtual clock (events, profiles, exporters)."""
