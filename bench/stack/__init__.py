"""Pieces of the whole-stack benchmarks (bench/fanout.py): load, clients, measuring, reporting."""
