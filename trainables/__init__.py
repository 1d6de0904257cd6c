"""What a training run is made of: its config, the registries, status, the schedule's plan,
devices and which weights count (the floor), and the data, models, attacks, schedules and
methods it is built from.

Above them, the rooms by role (bottom first):

- ``evaluation/``: accuracy under attack, the attacks by name, the monitors, the objective;
- ``training/``: the run itself (engine, its parts, cost, checkpoints, memory estimate);
- ``trials/``: what a trial's process knows and reports (setup, fidelity levels, reports);
- ``distributed/``: one run on several Ray Train workers;
- ``tune/``: the Ray Tune function trainables (search trial, confirmation, PBT member).

Usable without Ray: Ray is imported only by the modules that report to Tune, when they run.
Nothing here imports :mod:`raysearch` (SPEC §1). 0.2's flat module paths still import for one
release (:mod:`trainables.moved`).
"""

from trainables import moved

moved.install()
