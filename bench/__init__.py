"""Benchmarks: scripts run as modules from the repository root (``python -m bench.bench_api --quick``); each saves
JSON under bench/results/ with the machine and its load at start and end (bench.harness)."""
