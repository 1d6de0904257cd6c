"""One training run: data, models, attacks, methods, schedules, cost, evaluation, checkpoints,
the Tune trainables and Ray Train workers; the registries.

Usable without Ray: Ray is imported only by the modules that report to Tune, when they run.
Nothing here imports :mod:`raysearch` (SPEC §1).
"""
