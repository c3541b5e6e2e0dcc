"""Benchmark suites (a package so that its conftest is imported as benchmarks.conftest and does not
shadow tests/conftest.py when both folders are collected in one pytest run)."""
