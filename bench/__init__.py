"""dorfbot's benchmarks, run with ``python -m bench`` from the repository root.

Not part of the test suite and never a CI gate: they print figures and write
``bench/results.json`` and ``bench/latency.png``.
"""
