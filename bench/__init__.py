"""The benchmarks of ``make bench`` (see ``bench/run.py`` and ``docs/performance.md``)."""
