"""A small real search on digits: contract metrics, ASHA pruning told to Optuna as PRUNED,
warm start first, and one TensorBoard run per trial with grouped scalars and HParams."""

from __future__ import annotations

import glob
import os
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from raysearch.tuning.tensorboard import SCALARS, run_folder

pytestmark = pytest.mark.slow

CONTRACT_METRICS = ("epoch", "k", "alpha", "backprops", "forwards", "train_seconds", "eval_seconds", "train_loss",
                    "train_acc", "clean_acc", "robust_acc", "fgsm_acc", "grad_magnitude", "objective",
                    "best_robust_acc", "status")
SAMPLES = 7
EPOCHS = 4
OVERRIDES = [f"epochs={EPOCHS}", "eval.examples=200", "search.space=baselines", "search.time_attr=backprops",
             "search.grace_period=0.25", "search.reduction_factor=2", "search.max_concurrent=2",
             "search.confirm.top=0", "search.reference=true"]  # PGD-10 warm-started: the reuse test reuses it


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory, shared_ray: None):
    from raysearch.commands.search import search

    # baselines on the backprops axis with rungs every doubling from a quarter of PGD-10's
    # epoch (grace 0.25, rf 2): even FGSM-RS (2 backprops per batch) meets two rungs.
    return search("demo", OVERRIDES, samples=SAMPLES, storage=str(tmp_path_factory.mktemp("runs")), name="e2e",
                  progress=False)


def test_every_trial_reported_the_contract_metrics(run) -> None:
    assert len(run.trials) == SAMPLES
    for trial in run.trials:
        missing = [m for m in CONTRACT_METRICS if m not in trial.metrics]
        assert not missing, (trial.trial_id, missing)
        assert trial.status.value in ("completed", "pruned", "diverged", "catastrophic_overfitting")
        assert os.path.isdir(trial.path)
    assert run.best_config is not None and run.best_metrics["status"] == "completed"
    assert run.wall_seconds > 0 and run.trial_seconds_sum > 0 and 0 < run.search_overhead <= 1


def test_asha_stopped_trials_are_pruned_in_the_study(run) -> None:
    study = optuna.load_study(study_name="demo-e2e", storage=f"sqlite:///{run.run_dir}/optuna.db")
    by_ray_id = {t.user_attrs["ray_trial_id"]: t for t in study.trials}
    assert set(by_ray_id) == {t.trial_id for t in run.trials}
    pruned = [t for t in run.trials if t.status.value == "pruned"]
    assert pruned, "ASHA stopped no trial"
    for trial in run.trials:
        frozen = by_ray_id[trial.trial_id]
        expected = TrialState.PRUNED if trial.status.value == "pruned" else TrialState.COMPLETE
        assert frozen.state == expected, trial.trial_id
        # one intermediate value per epoch, keyed by the scheduler's time axis (backprops)
        assert max(frozen.intermediate_values) == trial.metrics["backprops"]
        assert len(frozen.intermediate_values) == trial.metrics["epoch"]
        if trial.status.value == "pruned":
            assert trial.metrics["epoch"] < EPOCHS


def test_warm_start_points_ran_first(run) -> None:
    study = optuna.load_study(study_name="demo-e2e", storage=f"sqlite:///{run.run_dir}/optuna.db")
    first = min(study.trials, key=lambda t: t.number)
    assert first.params == {"method": "pgd", "k": 10, "attack_bn": "train"}
    assert [t.warm_start for t in run.warm_start] == ["PGD-10"]


def test_tensorboard_has_one_run_per_trial_with_scalars_and_hparams(run) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData

    root = Path(run.run_dir, "tensorboard")
    assert len([p for p in root.iterdir() if p.is_dir()]) == len(run.trials)
    for trial in run.trials:
        folder = run_folder(root, trial.trial_id)
        assert folder is not None and folder.name[:3].rstrip("-").isdigit()  # NN-<id>-<label>: sortable
        assert glob.glob(str(folder / "events.out.tfevents.*"))
        events = EventAccumulator(str(folder))
        events.Reload()
        tags = set(events.Tags()["scalars"])
        for tag in ("accuracy/clean", "accuracy/robust", "accuracy/fgsm", "accuracy/train", "schedule/k",
                    "schedule/alpha", "mplus/grad_magnitude", "cost/backprops", "cost/forwards",
                    "cost/train_seconds", "objective/objective"):
            assert tag in tags, (trial.trial_id, tag)
        steps = [s.step for s in events.Scalars("cost/backprops")]
        assert steps == list(range(1, trial.metrics["epoch"] + 1))
        content = events.PluginTagToContent("hparams")
        start = HParamsPluginData.FromString(content["_hparams_/session_start_info"]).session_start_info
        assert start.hparams["method"].string_value == trial.config["method"]
        assert start.hparams["status"].string_value == trial.status.value
        assert "_hparams_/session_end_info" in content
    assert set(SCALARS.values()) >= {"accuracy/robust", "objective/objective"}


def test_a_second_search_reuses_the_finished_default_and_does_not_pay_for_it(run, shared_ray: None) -> None:
    from raysearch.commands.search import search

    storage = str(Path(run.run_dir).parent)
    again = search("demo", [*OVERRIDES, "search.seed=1"], samples=2, storage=storage, name="again",
                   progress=False)
    (default,) = run.warm_start
    assert again.summary["reused"] == [{"label": "PGD-10", "from": default.path}]
    (reused,) = [t for t in again.trials if t.stage == "reused"]
    assert reused.metrics["robust_acc"] == default.metrics["robust_acc"]
    assert Path(reused.path).parent == Path(again.run_dir, "reused")  # copied: the run directory stays whole
    ran = [t for t in again.trials if t.stage != "reused"]
    assert len(ran) == 2 and not any(t.warm_start for t in ran)  # the two samples are both drawn
    assert default.spent_backprops == EPOCHS * run.summary["batches_per_epoch"] * 11  # PGD-10: 11 per batch
    assert again.summary["search_backprops"] == sum(t.spent_backprops for t in ran)  # the default costs nothing
