"""The report's two figures: robust accuracy against backprops with the Pareto front
(``pareto.png``), and K(t) and α(t) of the best trials and the paper defaults
(``schedules.png``). matplotlib with the Agg backend; nothing is shown on screen."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from raysearch.rundir.records import TrialRecord, finite
from raysearch.rundir.results import RunInfo, best_trial, metric, ranked
from trainables.labels import describe
from trainables.status import Status

FIGSIZE, DPI = (8.0, 5.0), 120
STATUS_STYLE = {  # status -> (color, marker, label)
    "completed": ("tab:blue", "o", "completed"),
    "pruned": ("tab:gray", "x", "pruned (stopped early by ASHA)"),
    "catastrophic_overfitting": ("tab:orange", "D", "catastrophic overfitting"),
    "diverged": ("tab:red", "v", "diverged"),
    "failed": ("black", "X", "failed"),
    "running": ("tab:purple", ".", "unfinished"),
}



def _eval_label(run: RunInfo) -> str:
    from trainables.config import parse_config

    try:
        steps = parse_config(run.trials[0].config).eval.steps
    except Exception:
        steps = 10
    return f"robust accuracy (PGD-{steps}, validation split)"


def _title(run: RunInfo, what: str) -> str:
    e = run.experiment
    eps = run.epsilon
    eps_text = f"{eps * 255:.0f}/255" if abs(eps * 255 - round(eps * 255)) < 1e-6 and eps < 0.2 else f"{eps:g}"
    return f"{run.name}: {what}\n{e.get('dataset', '?')}, {e.get('model', '?')}, ε = {eps_text}, {run.epochs} epochs"


def label_offsets(ax: Any, anchors: list[tuple[float, float]], texts: list[str], font_points: float = 8.0
                  ) -> list[tuple[float, float, str]]:
    """Offsets (points) for labels at ``anchors`` so that no two label boxes overlap: each label
    points into the axes, away from the nearest edges, and tries rows above and below its
    point (nearest first) until its box is clear of the labels already placed."""
    fig = ax.figure
    scale = fig.dpi / 72.0  # points -> pixels
    placed: list[tuple[float, float, float, float]] = []
    out: dict[int, tuple[float, float, str]] = {}
    for i in sorted(range(len(anchors)), key=lambda j: -anchors[j][1]):
        (x, y), text = anchors[i], texts[i]
        px, py = ax.transData.transform((x, y))
        xa, ya = ax.transAxes.inverted().transform((px, py))
        dx = 12 if xa < 0.65 else -12
        ha = "left" if dx > 0 else "right"
        width, height = 0.6 * font_points * len(text) * scale, 1.4 * font_points * scale
        direction = 1 if ya < 0.75 else -1
        for step in range(12):
            dy = direction * 14 + (step // 2 + (step % 2)) * 13 * (1 if step % 2 else -1) * direction
            left = px + dx * scale - (width if ha == "right" else 0)
            bottom = py + dy * scale - height / 2
            box = (left, bottom, left + width, bottom + height)
            if not any(box[0] < b[2] and b[0] < box[2] and box[1] < b[3] and b[1] < box[3] for b in placed):
                break
        placed.append(box)
        out[i] = (dx, dy, ha)
    return [out[i] for i in range(len(anchors))]


def plot_pareto(run: RunInfo, path: Path, flags: list[bool]) -> None:
    """Robust accuracy vs backprops of every trial, the front, the defaults and the PGD-10 budget."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=FIGSIZE, dpi=DPI)
    points = [(t, metric(t, "backprops"), metric(t, "robust_acc")) for t in run.trials]
    points = [(t, x, y) for t, x, y in points if x > 0 and not math.isnan(y)]
    xs_all = [x for _, x, _ in points] + ([run.reference_backprops] if run.reference_backprops else [])
    _pareto_points(ax, run, points, flags, xs_all)
    log = _cost_axis(ax, xs_all)
    _pareto_labels(ax, run, points)
    if run.reference_backprops:
        _budget_axis(ax, run.reference_backprops, log)
    ax.set_xlabel("training cost: backprops (cumulative backward passes)")
    ax.set_ylabel(_eval_label(run))
    ax.set_title(_title(run, "robustness vs. training compute"), fontsize=10)
    ax.grid(True, which="both", alpha=0.25)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7, loc="best", framealpha=0.85)
    else:
        ax.text(0.5, 0.5, "no trial reported a result", ha="center", va="center", transform=ax.transAxes)
    fig.tight_layout()
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    plt.close(fig)


def _pareto_points(ax: Any, run: RunInfo, points: list[tuple[TrialRecord, float, float]], flags: list[bool],
                   xs_all: list[float]) -> None:
    """The trials by status, the front as a step line and the PGD-10 budget as a vertical line."""
    for status, (color, marker, label) in STATUS_STYLE.items():
        group = [(x, y) for t, x, y in points if t.status.value == status]
        if group:
            xs, ys = zip(*group, strict=True)
            ax.scatter(xs, ys, c=color, marker=marker, s=36, alpha=0.85, label=f"{label} ({len(group)})", zorder=3)
    on_front = {t.trial_id for t, on in zip(run.trials, flags, strict=True) if on}
    front = sorted((x, y) for t, x, y in points if t.trial_id in on_front)
    if front:
        fx, fy = zip(*front, strict=True)
        right = max(xs_all) * 1.05
        ax.step([*fx, right], [*fy, fy[-1]], where="post", color="tab:green", lw=1.8, zorder=2,
                label="Pareto front (completed trials)")
        ax.scatter(fx, fy, s=110, facecolors="none", edgecolors="tab:green", lw=1.5, zorder=4)
    if run.reference_backprops:
        ax.axvline(run.reference_backprops, color="dimgray", ls="--", lw=1.2, zorder=1,
                   label=f"PGD-10 budget: 11·M·epochs = {run.reference_backprops:,} backprops")


def _cost_axis(ax: Any, xs_all: list[float]) -> bool:
    """Plain numbers on the cost axis, log-scaled when the costs span more than 10×; whether it is."""
    from matplotlib.ticker import FuncFormatter, LogLocator, PercentFormatter

    plain = FuncFormatter(lambda v, _: f"{v:,.0f}" if v >= 1 else f"{v:g}")
    log = bool(xs_all) and max(xs_all) / max(min(xs_all), 1) > 10
    if log:
        ax.set_xscale("log")
        ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        ax.xaxis.set_minor_formatter(FuncFormatter(lambda v, _: ""))
    ax.xaxis.set_major_formatter(plain)
    ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    ax.autoscale_view()
    return log


def _pareto_labels(ax: Any, run: RunInfo, points: list[tuple[TrialRecord, float, float]]) -> None:
    """The paper defaults as labelled stars and the best trial circled."""
    labelled = [t for t, _, _ in points if t.warm_start]
    texts = [(t.warm_start or "") + ("" if t.status == Status.COMPLETED else f" [{t.status.value}]") for t in labelled]
    anchors = [(metric(t, "backprops"), metric(t, "robust_acc")) for t in labelled]
    for i, ((x, y), text, (dx, dy, ha)) in enumerate(zip(anchors, texts, label_offsets(ax, anchors, texts),
                                                        strict=True)):
        ax.scatter([x], [y], marker="*", s=220, facecolors="gold", edgecolors="black", lw=0.8, zorder=5,
                   label="paper default (warm start)" if i == 0 else None)
        ax.annotate(text, (x, y), xytext=(dx, dy), textcoords="offset points", fontsize=8, ha=ha,
                    arrowprops={"arrowstyle": "-", "color": "0.4", "lw": 0.7})
    best = best_trial(run.trials)
    if best is not None and not math.isnan(metric(best, "robust_acc")):
        ax.scatter([metric(best, "backprops")], [metric(best, "robust_acc")], s=340, facecolors="none",
                   edgecolors="crimson", lw=2, zorder=6,
                   label=f"best (lowest objective): {describe(best.config)}, trial {best.trial_id}")


def _budget_axis(ax: Any, ref: int, log: bool) -> None:
    """A top axis in fractions of the PGD-10 budget."""
    from matplotlib.ticker import FuncFormatter, LogLocator

    def to_fraction(b: Any) -> Any:
        return b / ref

    def to_backprops(r: Any) -> Any:
        return r * ref

    top = ax.secondary_xaxis("top", functions=(to_fraction, to_backprops))
    if log:
        top.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    top.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}×"))
    top.xaxis.set_minor_formatter(FuncFormatter(lambda v, _: ""))
    top.set_xlabel("fraction of the PGD-10 budget", fontsize=8)


def _schedule_trials(run: RunInfo, top: int = 3) -> list[tuple[TrialRecord, int | None]]:
    """(trial, rank or None) for the ``top`` completed trials and then the paper defaults."""
    best = [t for t in ranked(run.trials) if t.status == Status.COMPLETED][:top]
    chosen: list[tuple[TrialRecord, int | None]] = [(t, i + 1) for i, t in enumerate(best)]
    chosen += [(t, None) for t in run.trials if t.warm_start and t not in best]
    return [(t, rank) for t, rank in chosen if t.history]


def reference_schedule(run: RunInfo, values: dict[str, Any]) -> tuple[list[int], list[float]] | None:
    """K(t) and α(t)/ε per epoch of a schedule that does not depend on the training (Amata's),
    with the run's epochs and ε: drawn beside a population's learned schedules."""
    from trainables.config import parse_config
    from trainables.training.run_parts import make_schedule

    try:
        cfg = parse_config({**{k: v for k, v in run.experiment.items() if k != "data_root"}, **values})
        schedule = make_schedule(cfg)
        plans = [schedule.plan(t) for t in range(cfg.epochs)]
    except Exception:  # an experiment this raysearch cannot parse: no reference line
        return None
    return [p.k for p in plans], [(p.alpha or math.nan) / cfg.epsilon for p in plans]


def plot_schedules(run: RunInfo, path: Path, top: int = 3) -> None:
    """K(t) per epoch (and α(t)/ε when it varies) of the top trials and the paper defaults."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    chosen = _schedule_trials(run, top)
    eps = run.epsilon
    alphas = {t.trial_id: [finite(r.get("alpha")) / eps for r in t.history] for t, _ in chosen}
    varies = any(max(a) - min(a) > 1e-3 for a in alphas.values() if a and not any(map(math.isnan, a)))
    fig, axes = plt.subplots(2 if varies else 1, 1, figsize=FIGSIZE, dpi=DPI, sharex=True, squeeze=False,
                             gridspec_kw={"height_ratios": [3, 2]} if varies else None)
    k_ax = axes[0][0]
    colors = plt.get_cmap("tab10")
    for i, (trial, rank) in enumerate(chosen):
        epochs = [r.get("epoch", j + 1) for j, r in enumerate(trial.history)]
        ks = [finite(r.get("k")) for r in trial.history]
        label = ("" if rank is None else f"#{rank} ") + f"{trial.trial_id}: {describe(trial.config)}"
        if trial.warm_start:
            label += f" — {trial.warm_start}"
        if trial.status != Status.COMPLETED:
            label += f" [{trial.status.value}]"
        # Schedules often coincide (every M+ trial steps 0, 1, 1, 2, ...): distinct markers and
        # thinner lines drawn later keep the earlier ones visible underneath.
        style = {"color": colors(i % 10), "marker": "os^Dv<>P"[i % 8], "ms": 6 - 0.4 * i,
                 "lw": max(0.8, 2.6 - 0.3 * i), "alpha": 0.9,
                 "ls": "--" if trial.warm_start else "-"}
        k_ax.plot(epochs, ks, label=label, **style)
        if varies:
            axes[1][0].plot(epochs, alphas[trial.trial_id], **style)
    if any(t.population for t, _ in chosen):  # learned schedules next to the hand-designed Amata
        import search_spaces

        point = search_spaces.warm_starts("amata", eps)[0]
        amata = reference_schedule(run, point.config)
        if amata is not None:
            amata_k, ratios = amata
            k_ax.plot(range(1, len(amata_k) + 1), amata_k, color="0.45", ls=":", lw=1.6, label=f"{point.label}, the paper default (reference)")
            if varies:
                axes[1][0].plot(range(1, len(ratios) + 1), ratios, color="0.45", ls=":", lw=1.6)
    k_ax.set_ylabel("K (attack backprops / batch)" if not varies else "K per batch")
    k_ax.yaxis.get_major_locator().set_params(integer=True)
    k_ax.grid(True, alpha=0.25)
    if varies:
        axes[1][0].set_ylabel("step size α / ε")
        axes[1][0].grid(True, alpha=0.25)
    axes[-1][0].set_xlabel("epoch")
    axes[-1][0].xaxis.get_major_locator().set_params(integer=True)
    k_ax.set_title(_title(run, f"attack schedules of the top {top} trials and the paper defaults"), fontsize=10)
    if not chosen:
        k_ax.text(0.5, 0.5, "no trial reported an epoch", ha="center", va="center", transform=k_ax.transAxes)
    handles, labels = k_ax.get_legend_handles_labels()
    rows = math.ceil(len(labels) / 2)
    if labels:  # below the axes: the lines stay visible
        fig.legend(handles, labels, loc="lower center", ncol=2, fontsize=7, frameon=False)
    fig.tight_layout(rect=(0, min(0.4, 0.035 * rows + 0.01), 1, 1))
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    plt.close(fig)
