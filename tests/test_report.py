"""raysearch report: the Pareto front, reading a run directory back without Ray, the files it
writes, and (slow) a real search whose best.yaml re-trains to the same numbers."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

import optuna
import pytest
import torch
import yaml
from optuna.trial import TrialState

from raysearch.commands.report import report
from raysearch.reporting.run_report import pareto_front
from raysearch.rundir.results import OPTUNA_STATE, best_trial, load_run
from trainables.status import Status

EPS = 0.3
M, EPOCHS = 10, 4  # batches per epoch, epochs: the PGD-10 budget is 11 * 10 * 4 = 440
PNG_FILES = ("pareto.png", "schedules.png")


# ---------------------------------------------------------------------------- Pareto front


def test_pareto_front_on_a_hand_made_set() -> None:
    points = [
        (0.5, 100), (0.5, 100),  # duplicates: neither dominates the other, both on the front
        (0.6, 200), (0.4, 50),
        (0.4, 100),  # tie in cost with (0.5, 100) but less accurate: dominated
        (0.6, 300),  # tie in accuracy with (0.6, 200) but dearer: dominated
        (math.nan, 10), (0.7, math.nan),  # unmeasured: never on the front
        (0.3, 50),  # tie in cost with (0.4, 50): dominated
    ]
    assert pareto_front(points) == [True, True, True, True, False, False, False, False, False]
    assert pareto_front([]) == []
    assert pareto_front([(0.1, 5)]) == [True]


# ---------------------------------------------------------------------------- a run by hand


def _history(trial_id: str, ks: list[int], robust: list[float], final: str, **last: Any) -> list[dict[str, Any]]:
    records, backprops = [], 0
    for epoch, (k, acc) in enumerate(zip(ks, robust, strict=True), start=1):
        backprops += (k + 1) * M
        objective = (1 - acc) + 0.1 * backprops / (11 * M * EPOCHS)
        records.append({"epoch": epoch, "k": k, "alpha": EPS / 4 if k else 0.0, "backprops": backprops,
                        "forwards": backprops, "train_seconds": 0.1 * epoch, "eval_seconds": 0.01, "train_loss": 1.0,
                        "train_acc": 0.5, "clean_acc": min(1.0, acc + 0.4), "robust_acc": acc, "fgsm_acc": acc + 0.05,
                        "grad_magnitude": 1.0, "objective": objective, "best_robust_acc": max(robust[:epoch]),
                        "status": "running", "lr": 0.1, "trial_id": trial_id, "training_iteration": epoch})
    records[-1]["status"] = final
    records[-1].update(last)
    return records


# trial id -> (config keys the search set, history or None, Optuna state, error)
FAKE_TRIALS: dict[str, tuple[dict[str, Any], list[dict[str, Any]] | None, TrialState]] = {
    "pgd10": ({"method": "pgd", "k": 10, "schedule": "constant"},
              _history("pgd10", [10] * 4, [0.2, 0.3, 0.35, 0.40], "completed"), TrialState.COMPLETE),
    "amata": ({"method": "pgd", "schedule": "amata", "amata.k_min": 2, "amata.k_max": 10, "amata.shape": "linear",
               "amata.tau": 2.5 * EPS}, _history("amata", [2, 4, 6, 8], [0.2, 0.3, 0.4, 0.42], "completed"),
              TrialState.COMPLETE),
    "fgsm": ({"method": "fgsm_rs", "k": 1, "schedule": "constant", "alpha": 0.36},
             _history("fgsm", [1] * 4, [0.2, 0.25, 0.3, 0.30], "completed"), TrialState.COMPLETE),
    "atta": ({"method": "atta", "k": 2, "schedule": "constant"},
             _history("atta", [2] * 4, [0.2, 0.3, 0.4, 0.41], "completed"), TrialState.COMPLETE),
    "atta2": ({"method": "atta", "k": 2, "schedule": "constant", "atta.reset_every": 3},
              _history("atta2", [2] * 4, [0.2, 0.3, 0.4, 0.41], "completed"), TrialState.COMPLETE),
    "pruned": ({"method": "pgd", "k": 3, "schedule": "constant"},
               _history("pruned", [3], [0.1], "running"), TrialState.PRUNED),
    "diverged": ({"method": "free", "k": 7, "schedule": "constant", "loss": "ce"},
                 _history("diverged", [7, 7], [0.1, 0.1], "diverged", objective=10.0, train_loss=math.nan),
                 TrialState.COMPLETE),
    "co": ({"method": "fgsm_rs", "k": 1, "schedule": "constant", "alpha": 0.45},
           _history("co", [1] * 3, [0.3, 0.35, 0.05], "catastrophic_overfitting"), TrialState.COMPLETE),
    "failed": ({"method": "pgd", "k": 5, "schedule": "constant"}, None, TrialState.FAIL),
}
WARM_STARTS = {"pgd10": "PGD-10", "amata": "Amata-2-10 (linear)"}  # the searcher marks them trial.warm_start
EXPECTED_STATUS = {"pgd10": "completed", "amata": "completed", "fgsm": "completed", "atta": "completed",
                   "atta2": "completed", "pruned": "pruned", "diverged": "diverged", "co": "catastrophic_overfitting",
                   "failed": "failed"}


def make_fake_run(root: Path, name: str = "fake") -> Path:
    """A run directory in the layout raysearch search leaves (no checkpoints, no Tune state)."""
    run_dir = root / name
    run_dir.mkdir(parents=True)
    experiment = {"name": "demo", "dataset": "digits", "model": "small_cnn", "epochs": EPOCHS, "batch_size": 128,
                  "epsilon": EPS, "eval": {"examples": 100},
                  "search": {"space": "all", "samples": len(FAKE_TRIALS), "cpus_per_trial": 1},
                  "raysearch_version": "0.1.0"}
    (run_dir / "experiment.yaml").write_text(yaml.safe_dump(experiment, sort_keys=False))
    base = {"dataset": "digits", "model": "small_cnn", "epochs": EPOCHS, "batch_size": 128, "epsilon": EPS,
            "eval.examples": 100, "data_root": str(root / "data")}
    storage = f"sqlite:///{run_dir / 'optuna.db'}"
    study = optuna.create_study(study_name=name, storage=storage)
    for trial_id, (params, history, state) in FAKE_TRIALS.items():
        folder = run_dir / f"trial_{trial_id}"
        folder.mkdir()
        controls = {"trial.family": "x", **({"trial.warm_start": WARM_STARTS[trial_id]} if trial_id in WARM_STARTS else {})}
        (folder / "params.json").write_text(json.dumps({**base, **controls, **params}))
        lines = [json.dumps({**r, "config": {**base, **params}}) for r in history or []]
        (folder / "result.json").write_text("".join(line + "\n" for line in lines))
        if history is None:
            (folder / "error.txt").write_text("Traceback ...\nRuntimeError: the trainable crashed twice\n")
        value = history[-1]["objective"] if history and state == TrialState.COMPLETE else None
        intermediate = {r["backprops"]: r["objective"] for r in history or []}
        study.add_trial(optuna.trial.create_trial(state=state, value=value, intermediate_values=intermediate,
                                                  user_attrs={"ray_trial_id": trial_id}))
    return run_dir


@pytest.fixture
def fake_run(tmp_path: Path) -> Path:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return make_fake_run(tmp_path)


def test_load_run_reads_statuses_budget_and_optuna_states(fake_run: Path) -> None:
    run = load_run(fake_run)
    by_id = {t.trial_id: t for t in run.trials}
    assert {tid: t.status.value for tid, t in by_id.items()} == EXPECTED_STATUS
    assert run.study_name == "fake" and run.mismatches == []
    for trial in run.trials:
        assert trial.optuna_state == OPTUNA_STATE[trial.status]
    assert run.batches_per_epoch == M and run.reference_backprops == 11 * M * EPOCHS
    assert by_id["pgd10"].warm_start == "PGD-10"
    assert by_id["amata"].warm_start == "Amata-2-10 (linear)"
    assert by_id["failed"].error.startswith("RuntimeError")
    assert [r["epoch"] for r in by_id["amata"].history] == [1, 2, 3, 4]
    assert "config" not in by_id["amata"].metrics
    assert best_trial(run.trials).trial_id == "atta"  # lowest objective among completed trials


def test_a_status_that_disagrees_with_the_study_is_reported(fake_run: Path) -> None:
    result = fake_run / "trial_pruned" / "result.json"
    lines = result.read_text().splitlines()
    last = json.loads(lines[-1])
    last["status"] = "completed"  # the study says PRUNED
    result.write_text("\n".join([*lines[:-1], json.dumps(last)]) + "\n")
    run = load_run(fake_run)
    assert run.mismatches == ["trial pruned: status completed but Optuna state PRUNED"]


def test_load_run_rejects_a_folder_without_trials(tmp_path: Path) -> None:
    from trainables.registry import ConfigError

    with pytest.raises(ConfigError, match="no trials"):
        load_run(tmp_path)


def _png_size(path: Path) -> tuple[int, int]:
    import matplotlib.image

    image = matplotlib.image.imread(str(path))
    return image.shape[1], image.shape[0]


def test_report_writes_every_file(fake_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from raysearch.rundir.experiment import load_experiment

    result = report(fake_run)
    for name in ("trials.csv", "pareto.png", "schedules.png", "report.md", "best.yaml"):
        assert (fake_run / name).is_file(), name
    for name in PNG_FILES:
        width, height = _png_size(fake_run / name)
        assert width >= 600 and height >= 400, (name, width, height)
    with (fake_run / "trials.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(FAKE_TRIALS)
    assert {r["trial_id"]: r["status"] for r in rows} == EXPECTED_STATUS
    assert rows[0]["trial_id"] == "atta"  # best first
    on_pareto = {r["trial_id"] for r in rows if r["on_pareto"] == "True"}
    # fgsm (30%, 80 bp), atta and its duplicate atta2 (41%, 120 bp), amata (42%, 240 bp);
    # PGD-10 (40%, 440 bp) is dominated; stopped trials are not candidates.
    assert on_pareto == {"fgsm", "atta", "atta2", "amata"}
    assert set(result.pareto) == on_pareto
    by_id = {r["trial_id"]: r for r in rows}
    assert by_id["amata"]["amata.k_max"] == "10" and by_id["pgd10"]["amata.k_max"] == ""
    assert by_id["atta2"]["atta.reset_every"] == "3" and by_id["fgsm"]["alpha"] == "0.36"
    assert by_id["amata"]["warm_start"] == "Amata-2-10 (linear)" and by_id["fgsm"]["warm_start"] == ""
    assert by_id["pgd10"]["backprops_vs_pgd10"] == "1.0"
    assert by_id["diverged"]["loss"] == "ce" and by_id["pgd10"]["loss"] == "ce"

    experiment = load_experiment(fake_run / "best.yaml")
    assert experiment.name == "fake-best"
    assert experiment.train["method"] == "atta" and experiment.train["k"] == 2
    assert experiment.train["eval.examples"] == 100 and not any(k.startswith("search") for k in experiment.train)

    md = (fake_run / "report.md").read_text()
    assert "## Headline" in md and "## Pareto front" in md and "![" in md and "pareto.png" in md
    assert "beside PGD-10, one seed each (a reading, not a claim): robust accuracy +1.0 points, 0.27× its backprops" in md
    assert "beside Amata-2-10 (linear), one seed each (a reading, not a claim): robust accuracy -1.0 points, 0.50× its backprops" in md
    assert "Not run yet: `raysearch evaluate" in md
    pgd = next(c for c in result.comparisons if c["against"] == "PGD-10")
    assert pgd["robust_points"] == pytest.approx(1.0) and pgd["compute_ratio"] == pytest.approx(120 / 440)
    out = capsys.readouterr().out
    assert "raysearch report: fake" in out and "Best recipe" in out


def test_best_yaml_holds_the_recipe_the_confirmation_chose(fake_run: Path) -> None:
    """The search's best on one seed is ATTA; a confirmation that picked the FGSM recipe over its
    seeds records ``chosen_trial``: best.yaml and the report's re-run line follow that choice."""
    (fake_run / "search_summary.json").write_text(json.dumps({"state": "finished", "chosen_trial": "fgsm",
                                                              "confirm_state": "finished"}))
    result = report(fake_run, progress=False)
    assert result.best is not None and result.best.trial_id == "atta"  # the search's own ranking is unchanged
    text = (fake_run / "best.yaml").read_text()
    assert text.startswith("# Confirmed pick (chosen on the validation split over the confirmation's seeds) of run "
                           "fake: trial fgsm (completed), FGSM-RS")
    from raysearch.rundir.experiment import load_experiment

    experiment = load_experiment(fake_run / "best.yaml")
    assert experiment.train["method"] == "fgsm_rs" and experiment.train["alpha"] == 0.36
    assert "Re-run FGSM-RS" in (fake_run / "report.md").read_text()
    # a choice the run does not hold (or none) leaves the search's best
    (fake_run / "search_summary.json").write_text(json.dumps({"state": "finished", "chosen_trial": "gone"}))
    report(fake_run, progress=False)
    assert (fake_run / "best.yaml").read_text().startswith("# Best recipe of run fake: trial atta (completed)")


def test_report_includes_the_evaluation_when_present(fake_run: Path) -> None:
    (fake_run / "evaluation.md").write_text("# raysearch evaluation\n\n| model | pgd50x10 |\n|---|---:|\n| atta | 33.0% |\n")
    result = report(fake_run, progress=False)
    md = (fake_run / "report.md").read_text()
    assert "## Final evaluation (test split)" in md and "| atta | 33.0% |" in md and "(evaluation.md)" in md
    assert "evaluation.md" in result.files


# ---------------------------------------------------------------------------- a real search (slow)



@pytest.mark.slow
def test_report_on_a_real_search(tiny_search_run: dict[str, Any]) -> None:
    run_dir = tiny_search_run["run_dir"]
    result = report(run_dir, progress=False)
    for name in ("trials.csv", "pareto.png", "schedules.png", "report.md", "best.yaml"):
        assert (run_dir / name).is_file(), name
    for name in PNG_FILES:
        assert _png_size(run_dir / name)[0] >= 600
    with (run_dir / "trials.csv").open() as f:
        rows = list(csv.DictReader(f))
    expected = {tid: status for tid, (status, _) in tiny_search_run["trials"].items()}
    assert {r["trial_id"]: r["status"] for r in rows} == expected
    assert result.warnings == []  # every status agrees with the Optuna study
    assert "PGD-10" in {r["warm_start"] for r in rows}


@pytest.mark.slow
def test_the_optuna_study_holds_every_trial_with_its_state(tiny_search_run: dict[str, Any]) -> None:
    run_dir = tiny_search_run["run_dir"]
    study = optuna.load_study(study_name="demo-tiny", storage=f"sqlite:///{run_dir / 'optuna.db'}")
    states = {t.user_attrs["ray_trial_id"]: t.state.name for t in study.trials}
    assert set(states) == set(tiny_search_run["trials"])
    for trial_id, (status, _) in tiny_search_run["trials"].items():
        assert states[trial_id] == OPTUNA_STATE[status], trial_id


@pytest.mark.slow
def test_best_yaml_retrains_to_the_reported_accuracy(tiny_search_run: dict[str, Any], tmp_path: Path) -> None:
    from raysearch.commands.train import train
    from raysearch.rundir.experiment import load_experiment

    run_dir = tiny_search_run["run_dir"]
    result = report(run_dir, progress=False)
    best = result.best
    assert best is not None and best.status == Status.COMPLETED
    assert load_experiment(run_dir / "best.yaml").name == "tiny-best"
    # CPU kernels reduce in a thread-count-dependent order: the recipe carries the trial's threads.
    assert load_experiment(run_dir / "best.yaml").train["threads"] == 1  # the demo's cpus_per_trial
    threads = torch.get_num_threads()
    torch.set_num_threads(2)  # not what the trial had: best.yaml must set it itself
    try:
        summary = train(run_dir / "best.yaml", out_dir=tmp_path / "retrain", progress=False).summary
    finally:
        torch.set_num_threads(threads)
    _, metrics = tiny_search_run["trials"][best.trial_id]
    assert summary["epochs"] == metrics["epoch"]
    assert summary["backprops"] == metrics["backprops"]
    assert summary["clean_acc"] == metrics["clean_acc"]
    assert summary["robust_acc"] == metrics["robust_acc"]


def test_pareto_labels_do_not_overlap() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from raysearch.reporting.plots import label_offsets

    fig, ax = plt.subplots(figsize=(8, 5), dpi=120)
    anchors = [(100.0, 0.80), (105.0, 0.805), (110.0, 0.80), (400.0, 0.5)]  # three cheap defaults in a clump
    ax.set_xlim(0, 500)
    ax.set_ylim(0.4, 0.9)
    texts = ["M+DEAT (gamma=1.01)", "ATAS (c=0.01, beta=0.5)", "Amata-2-10 (linear)", "PGD-10"]
    offsets = label_offsets(ax, anchors, texts)
    boxes = []
    for (x, y), text, (dx, dy, ha) in zip(anchors, texts, offsets, strict=True):
        annotation = ax.annotate(text, (x, y), xytext=(dx, dy), textcoords="offset points", fontsize=8, ha=ha)
        fig.canvas.draw()
        boxes.append(annotation.get_window_extent())
    plt.close(fig)
    for i, a in enumerate(boxes):
        for b in boxes[i + 1:]:
            assert not a.overlaps(b), (a, b)
