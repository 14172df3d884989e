"""Models: the learning side (torch) and, under `runtime`, the device side (no torch)."""
