"""Benchmarks: run with `python -m bench ...`; they print tables, they never assert speed."""
