"""Performance harness (not tests): ``python -m bench.run --quick`` or ``python -m bench.run``.

See ``docs/performance.md`` for the method, the figures and what bounds each of them.
"""
