"""Hart scheduling, the virtual clock and inter-hart signalling."""
