"""Benchmarks: scripts that print their figures, run from the repository root as `python -m bench.NAME`."""
