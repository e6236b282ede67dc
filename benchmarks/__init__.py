"""Benchmarks (``make bench``). Figures are recorded in docs/benchmarks.md with the machine and date."""
