"""Benchmarks that print numbers. Run from the repository root: `python -m bench.register`.
Each has a `--smoke` mode that CI runs to keep it working; smoke numbers mean nothing."""
