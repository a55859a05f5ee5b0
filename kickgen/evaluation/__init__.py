"""Measuring kickgen.

``kickgen eval`` (quality): :mod:`~kickgen.evaluation.quality` runs the parts, imported one way:
``inputs`` → ``benchmark`` → ``reconstruction``, ``generation`` → ``report``; set statistics in
``metrics``. ``kickgen bench`` (speed): :mod:`~kickgen.evaluation.bench` schedules what
``bench_measures`` and ``bench_reference`` measure; ``bench_report`` writes BENCHMARKS.md.
"""
