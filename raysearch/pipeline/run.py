"""A whole search as one call: plan → launch → collect (→ confirm), in one Ray session.

Three roles, kept apart as Ray Tune intends: :class:`~raysearch.tuning.searcher.OptunaSearcher`
decides *what* to try (multivariate TPE, the papers' defaults first), the scheduler
(:mod:`raysearch.tuning.scheduler`: ASHA over complete low-fidelity runs, wrapped so the
defaults finish and the budget holds) decides *whether a trial goes on*, and the trainable
(:func:`trainables.tune.functions.tune_trainable`) trains and reports.

The run directory ``<storage>/<name>`` holds Ray Tune's experiment state, the Optuna study
(``optuna.db``), one TensorBoard log directory and ``experiment.yaml`` (the resolved
experiment and the raysearch version), so ``search(resume=run_dir)`` needs nothing else.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from raysearch.pipeline.collect import collect
from raysearch.pipeline.launch import launch
from raysearch.pipeline.plan import SearchPlan, check_disk, plan
from raysearch.rundir.outcomes import SearchResult
from raysearch.rundir.results import finished_runs
from raysearch.rundir.storage import is_uri


def search(experiment: str | Path = "demo", overrides: Iterable[str] = (), samples: int | None = None,
           gpus_per_trial: float | None = None, cpus_per_trial: float | None = None, address: str | None = None,
           storage: str | None = None, name: str | None = None, resume: str | Path | None = None,
           time_attr: str | None = None, progress: bool = True, *, trainable: str | None = None,
           model: Any = None, dataset: Any = None, confirm: bool = True,
           study_storage: str | None = None, callbacks: Iterable[Any] = ()) -> SearchResult:
    """Search an experiment's space on Ray Tune; return every trial and what it cost.

    Args:
        experiment: a YAML file or a built-in experiment name (``demo``).
        overrides: ``KEY=VALUE`` strings (``--set``); ``search.*`` keys reach the search section.
        samples, gpus_per_trial, cpus_per_trial, time_attr: override the experiment's search.
        address: join a running Ray cluster (``"auto"``) instead of starting a local one.
        storage: parent of the run directory (default ``runs``; a shared path or cloud URI).
        name: run name (default ``<experiment>-<YYYYmmdd-HHMMSS>``).
        resume: a run directory to continue; every other argument is read from its
            ``experiment.yaml``. Finished trials are kept, unfinished ones continue from their
            last checkpoint, failed ones stay failed.
        progress: print a line per finished trial and the summary.
        trainable: ``"module:function"`` of the Tune trainable (tests use a stand-in).
        model, dataset: the user's own, as callables (``(num_classes, input_shape) -> nn.Module``,
            ``(root) -> dict``) or ``"pkg.module:callable"`` paths.
        confirm: run the confirmation stage when the experiment asks for it.
        study_storage: the Optuna study's storage URL (``search.study_storage``); with
            ``resume``, the URL with its password (run files hold it masked).
        callbacks: more Ray Tune callbacks for the search stage (``raysearch bench`` times the
            driver with one); a resumed search runs without them.

    Raises:
        ConfigError: bad input, before Ray or any training starts.

    Example::

        >>> import raysearch
        >>> result = raysearch.search("demo", ["search.samples=8"])  # doctest: +SKIP
        >>> result.best.config["method"], result.summary["search_cost_runs"]  # doctest: +SKIP
    """
    the_plan = plan(experiment, overrides, samples=samples, gpus_per_trial=gpus_per_trial,
                    cpus_per_trial=cpus_per_trial, address=address, storage=storage, name=name, resume=resume,
                    time_attr=time_attr, trainable=trainable, model=model, dataset=dataset,
                    study_storage=study_storage)
    the_plan.callbacks = tuple(callbacks)
    warning = check_disk(the_plan)
    if warning and progress:
        print(warning, flush=True)
    from raysearch.tuning.resources import ray_session

    with ray_session(the_plan.address, the_plan.available):
        result = collect(the_plan, launch(the_plan, progress), progress)
        if confirm:
            confirm_stage(the_plan, result, progress)
    if progress:
        from raysearch.reporting.text import search_summary_text

        print(search_summary_text(result, the_plan.experiment), flush=True)
    return result


def confirm_stage(plan: SearchPlan, result: SearchResult, progress: bool) -> None:
    """Run the confirmation stage when the experiment asks for it and the search finished."""
    conf = plan.experiment.search.confirm
    if not conf.top or result.interrupted or is_uri(result.run_dir) or not finished_runs(result.trials):
        return
    from raysearch.pipeline.confirmation import run_confirmation
    from raysearch.rundir.summary import read_summary

    result.confirmation = run_confirmation(result.run_dir, conf.top, conf.seeds, plan=plan, progress=progress)
    result.interrupted = result.confirmation.interrupted
    result.summary = read_summary(result.run_dir)
