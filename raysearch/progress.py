"""What a search prints: a line per finished trial, a heartbeat at most every 30 s (CI-log
friendly; Ray's own table reprints every few seconds and is silenced), and the final summary
against the PGD-10 budget and the paper defaults."""

from __future__ import annotations

import contextlib
import math
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from raysearch.experiment import Experiment
    from raysearch.search import SearchResult

# the metrics the progress lines and the summary show
SUMMARY_METRICS = ("objective", "robust_acc", "clean_acc", "backprops", "epoch")


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def progress_callback(total: int) -> Any:
    from ray.tune import Callback

    from raysearch.tensorboard import trial_status

    class ProgressLines(Callback):
        """One line per finished trial and a heartbeat at most every 30 s: CI-log friendly
        (Ray's own table reprints every few seconds, so it is silenced with verbose=0)."""

        def __init__(self) -> None:
            self.last_beat = 0.0
            self.best: float | None = None

        def on_trial_result(self, iteration: int, trials: list[Any], trial: Any, result: dict[str, Any],
                            **info: Any) -> None:
            with contextlib.suppress(Exception):  # Tune would fail the trial for our print
                self._beat(trials, result)

        def _beat(self, trials: list[Any], result: dict[str, Any]) -> None:
            objective = result.get("objective")
            if isinstance(objective, (int, float)) and math.isfinite(objective):
                self.best = objective if self.best is None else min(self.best, objective)
            now = time.monotonic()
            if now - self.last_beat >= 30:
                self.last_beat = now
                running = sum(t.status == "RUNNING" for t in trials)
                ended = sum(t.status in ("TERMINATED", "ERROR") for t in trials)
                best = f"{self.best:.4f}" if self.best is not None else "-"
                print(f"[search] {ended}/{total} trials ended, {running} running; best epoch objective so far {best}",
                      flush=True)

        def _line(self, trial: Any, failed: bool) -> None:
            result = trial.last_result or {}
            params = ", ".join(f"{k}={_fmt(v)}" for k, v in (trial.evaluated_params or {}).items()
                               if not str(k).startswith("search.") or k == "search.space")
            metrics = " ".join(f"{k}={_fmt(result[k])}" for k in SUMMARY_METRICS if k in result)
            print(f"[search] trial {trial.trial_id} {trial_status(trial, failed)}: {metrics} | {params}", flush=True)

        def on_trial_complete(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
            with contextlib.suppress(Exception):  # Tune would fail the trial for our print
                self._line(trial, failed=False)

        def on_trial_error(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
            with contextlib.suppress(Exception):
                self._line(trial, failed=True)

    return ProgressLines()


# ---------------------------------------------------------------------------- the search


def summary_text(result: SearchResult, experiment: Experiment) -> str:
    def describe(row: dict[str, Any]) -> str:
        m = row["metrics"]
        ratio = m.get("backprops", 0) / result.reference_backprops if result.reference_backprops else math.nan
        return (f"objective {m.get('objective', math.nan):.4f}, robust acc {m.get('robust_acc', math.nan):.3f}, "
                f"clean acc {m.get('clean_acc', math.nan):.3f}, backprops {m.get('backprops', 0)} "
                f"({ratio:.2f}x PGD-10)")

    counts: dict[str, int] = {}
    for row in result.trials:
        counts[row["status"]] = counts.get(row["status"], 0) + 1
    lines = [f"raysearch search {experiment.name}: {len(result.trials)} trials ("
             + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) + ")"]
    if result.best_metrics is not None and result.best_config is not None:
        best_row = next(r for r in result.trials if r["metrics"] is result.best_metrics)
        lines.append(f"best trial {best_row['trial_id']}: {describe(best_row)}")
        changed = {k: v for k, v in result.best_config.items() if experiment.train.get(k) != v
                   and k not in ("data_root",)}
        lines.append("  config: " + ", ".join(f"{k}={_fmt(v)}" for k, v in sorted(changed.items())))
    for row in result.warm_start:
        lines.append(f"warm start {row['warm_start']} [{row['status']}]: {describe(row)}")
    lines.append(f"reference PGD-10 budget: {result.reference_backprops} backprops "
                 f"({experiment.train_config.epochs} epochs)")
    lines.append(f"wall {result.wall_seconds:.1f} s (start-up {result.startup_seconds:.1f} s), trial time "
                 f"{result.trial_seconds_sum:.1f} s on {result.concurrency} slot(s): "
                 f"{result.search_overhead:.0%} of slot time inside trials")
    lines.append(f"run directory: {result.run_dir}")
    lines.append(f"TensorBoard:   tensorboard --logdir {result.tensorboard_dir}")
    return "\n".join(lines)
