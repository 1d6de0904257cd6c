"""ASHA on the attack-compute axis (SPEC §8).

ASHA (Li et al., "A System for Massively Parallel Hyperparameter Tuning", MLSys 2020) stops
a trial at a rung when its metric is not in the top 1/η of the trials that reached that
rung. Ray's :class:`~ray.tune.schedulers.ASHAScheduler` reads the rung position from any
monotone result key (``time_attr``). raysearch uses the cumulative ``backprops`` by default,
so a cheap FGSM-RS trial and a PGD-10 trial are compared after the *same attack compute*
rather than after the same number of epochs; ``time_attr: epoch`` gives the classic ASHA.

Units: ``grace_period`` is in epochs. For ``backprops`` it becomes the backprops the costliest
configuration in the space spends in that many epochs, ``grace_period * max_t / epochs``,
where ``max_t = (K_max + 1) * batches_per_epoch * epochs`` is the largest budget any trial
can spend (the caller computes it from the space and the data). ``max_t`` must not be below
a real trial's budget: ASHA stops any trial whose ``time_attr`` reaches ``max_t``.

No Tune ``Stopper`` for catastrophic overfitting or divergence: the trainable detects both
itself, reports its final ``status`` and returns, keeping its best checkpoint. A stopper
would be a second copy of that rule, reading the same metrics one result later.
ASHA's rung state is not part of Tune's experiment checkpoint (Ray 2.60 does not save the
scheduler), so after ``--resume`` the rungs refill from the results that arrive afterwards.
"""

from __future__ import annotations

import math

from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, TrialScheduler

from raysearch.experiment import SearchConfig
from raysearch.objective import METRIC, MODE


def time_budget(time_attr: str, *, epochs: int, max_t: int) -> int:
    """ASHA's ``max_t`` on the chosen axis: ``epochs`` for epoch, ``max_t`` backprops otherwise."""
    return epochs if time_attr == "epoch" else max(1, int(max_t))


def grace_t(search: SearchConfig, *, epochs: int, max_t: int) -> int:
    """The grace period on the chosen axis (see the module docstring), at most the budget."""
    budget = time_budget(search.time_attr, epochs=epochs, max_t=max_t)
    if search.time_attr == "epoch":
        grace = math.ceil(search.grace_period)
    else:
        grace = math.ceil(search.grace_period * budget / epochs)
    return max(1, min(grace, budget))


def make_scheduler(search: SearchConfig, *, epochs: int, max_t: int) -> TrialScheduler:
    """ASHA reading the trade-off ``objective`` (also for pareto studies: a rung needs one
    number), or FIFO (no early stopping) for ``scheduler: none``."""
    if search.scheduler == "none":
        return FIFOScheduler()
    return ASHAScheduler(
        time_attr=search.time_attr,  # the result key ASHA reads
        metric=METRIC,
        mode=MODE,
        max_t=time_budget(search.time_attr, epochs=epochs, max_t=max_t),
        grace_period=grace_t(search, epochs=epochs, max_t=max_t),
        reduction_factor=search.reduction_factor,
    )
