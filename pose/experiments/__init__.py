"""Experiments built from the library: the PSA comparison, the demo, benchmarks."""
