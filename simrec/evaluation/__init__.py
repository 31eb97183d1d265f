"""Offline evaluation: temporal split, metrics, the comparison of models, report, tuning.

``simrec evaluate`` and ``simrec tune`` (simrec/cli.py) are the entry points; the
protocol is documented in docs/evaluation.md.
"""
