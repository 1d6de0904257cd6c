"""``raysearch search``: the search's Python API and command (SPEC §§8-11).

The stages live in :mod:`raysearch.pipeline` (plan → launch → collect → confirm); this module
is the public entry point, :func:`search`, and keeps 0.2's names importable.
"""

from __future__ import annotations

# Shims for one release: 0.2 code and run directories import these from here.
from raysearch.pipeline.collect import collect
from raysearch.pipeline.collect import search_cost as _search_cost
from raysearch.pipeline.inputs import abs_data_root, directions, problem_hash, shared_train
from raysearch.pipeline.launch import Launched, launch
from raysearch.pipeline.launch import init_ray as _init_ray
from raysearch.pipeline.launch import write_start as _write_start
from raysearch.pipeline.plan import CHECKPOINT_HEADROOM, SearchPlan, check_disk, plan
from raysearch.pipeline.reuse import Prior, find_reusable
from raysearch.pipeline.run import search
from raysearch.pipeline.stages import POPULATION_TRAINABLE, storage_failed
from raysearch.pipeline.study import study_place as _study
from raysearch.rundir.known import identity as _comparable
from raysearch.rundir.outcomes import SearchResult, search_overhead_fraction
from trainables.labels import REFERENCE_LABEL

__all__ = ["CHECKPOINT_HEADROOM", "Launched", "POPULATION_TRAINABLE", "Prior", "REFERENCE_LABEL", "SearchPlan",
           "SearchResult", "_comparable", "_init_ray", "_search_cost", "_study", "_write_start", "abs_data_root",
           "check_disk", "collect", "directions", "find_reusable", "launch", "plan", "problem_hash", "search",
           "search_overhead_fraction", "shared_train", "storage_failed"]
