"""Benchmarks: each script writes experiments/results/<name>.json, summarised in BENCHMARKS.md."""
