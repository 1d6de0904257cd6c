"""Where a search's Optuna study lives: its storage URL and name, checked before Ray starts."""

from __future__ import annotations

from raysearch.rundir.experiment import Experiment
from raysearch.rundir.storage import is_uri


def study_place(exp: Experiment, run_dir: str, run_name: str, resume: bool, given: str | None) -> tuple[str | None, str]:
    """(storage URL, study name) of the search (None, "" for a population-based search, which
    has no Optuna study). A resumed run finds them in its summary (0.2's runs: ``optuna.db``,
    the study named after the run); a URL given again (``--study-storage``) supplies the
    password the run files do not hold."""
    from raysearch.rundir.study_store import (
        check_study_storage,
        own_study,
        remember,
        study_name,
        study_url,
    )

    if given:
        remember(given)
    if exp.search.population_based:  # PBT and PB2 schedule without Optuna: no study to keep
        return None, ""
    if resume:
        from raysearch.rundir.summary import read_summary

        summary = read_summary(run_dir) if not is_uri(run_dir) else {}
        url = summary.get("study_storage") or (exp.search.study_storage and study_url(exp.search.study_storage, run_dir))
        name = summary.get("study_name") or run_name
        if not url and not is_uri(run_dir):
            url = study_url(None, run_dir)
        url = own_study(url, run_dir) if url and not is_uri(run_dir) else url
    else:
        url = study_url(exp.search.study_storage, run_dir) if exp.search.study_storage or not is_uri(run_dir) else None
        name = study_name(exp.name, run_name)
    if url and exp.search.study_storage:
        check_study_storage(url)
    return url, name
