"""Side-by-side benchmarks: dense, DST (tfprune) and tfmot GMP (own process) -> BENCHMARKS.md.

`python -m bench.run` trains and records, `python -m bench.report` makes tables and the plot.
"""
