"""``raysearch evaluate``: the final robustness evaluation on the *test* split (SPEC §6).

A target is a run directory (its ``top`` trials by objective, each with the weights that count
in its newest checkpoint) or one checkpoint: a ``best.pt`` / ``state.pt`` file (``state.pt``:
its final weights) or a folder holding them (a Tune ``checkpoint_*`` folder, a trial folder,
the output folder of ``raysearch train``). Which weights of a folder count is the training
config's ``checkpoint`` rule (:mod:`trainables.weights`): the final ones under ``last`` (the
default), ``best.pt`` under ``best`` or for a run stopped for catastrophic overfitting.
The training config comes from the state's ``config`` key, the trial's ``params.json`` or
``raysearch train``'s ``config.yaml``.

Evaluation runs in fp32, like the in-loop evaluation during training, so the search selects
on the metric reported here. Every model is attacked on the test split (never the validation split the search selected
on) with the attacks asked for, all in fp32 with the model in eval mode:

- ``pgd50x10``: PGD-50 with 10 random restarts, α = ε/4 (Madry et al.; the in-loop PGD-10 uses
  the same step size); the general form is ``pgdSTEPS[xRESTARTS]``;
- ``cw20``: PGD-20 on the Carlini-Wagner margin loss, α = ε/4, 1 restart (``cwSTEPS[xRESTARTS]``);
- ``autoattack``: AutoAttack standard (APGD-CE and APGD-T with 100 iterations, FAB-T, Square
  with 5000 queries; Croce & Hein, 2020) through the authors' own package ``pyautoattack``,
  when installed (``pip install 'raysearch[autoattack]'``); else skipped with that message.
  The warnings of its own checks (randomized defense, probabilities instead of logits, zero
  gradients, Square stronger than the gradient attacks) are listed next to ours.

Clean, FGSM and PGD-10 accuracy and PGD-10 at ε/2 and 2ε are always measured for the
gradient-masking checks (:func:`sanity_checks`, pure functions in the style of auto-attack's
``checks.py``): a stronger attack never leaves more accuracy, robust ≤ FGSM ≤ clean, and
accuracy falls as ε grows. ``evaluation.csv`` and ``evaluation.md`` go into the run directory
(or beside the checkpoint); ``raysearch report`` then includes ``evaluation.md``.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import sys
import time
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from raysearch.rundir.records import BEST_FILE, STATE_FILE
from raysearch.rundir.results import write_csv
from trainables.evaluation import (
    STEP_FRACTION,
    Attack,
    attack_accuracy,
    attack_pattern,
    parse_attacks,
)
from trainables.registry import ConfigError
from trainables.weights import rule_of, scored_file

if TYPE_CHECKING:  # torch loads when an evaluation runs, not when raysearch is imported
    import torch
    from torch import nn

LossFn = Callable[["torch.Tensor", "torch.Tensor"], "torch.Tensor"]

DEFAULT_ATTACKS = ("pgd50x10", "cw20", "autoattack")
EVALUATION_CSV, EVALUATION_MD = "evaluation.csv", "evaluation.md"
AUTOATTACK_MISSING = ("AutoAttack skipped: pyautoattack (Croce & Hein's own package) is not installed "
                      "(install raysearch[autoattack], i.e. pip install 'raysearch[autoattack]')")


# ---------------------------------------------------------------------------- attacks


def autoattack_available() -> bool:
    return importlib.util.find_spec("pyautoattack") is not None


def autoattack_accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, epsilon: float, num_classes: int,
                        seed: int = 0, batch_size: int = 500) -> tuple[float, list[str]]:
    """Accuracy under AutoAttack standard (ℓ∞; APGD-CE and APGD-T with 100 iterations, FAB-T,
    Square with 5000 queries) through Croce & Hein's own package ``pyautoattack``, and the
    warnings its own checks raised (``checks.py``: randomized or dynamic defenses,
    probabilities instead of logits, too few classes, zero gradients, Square stronger than
    the gradient attacks)."""
    import logging

    from pyautoattack import AutoAttack

    class _Flags(logging.Handler):
        def __init__(self) -> None:
            super().__init__(logging.WARNING)
            self.messages: list[str] = []

        def emit(self, record: logging.LogRecord) -> None:
            self.messages.append(record.getMessage())

    log = logging.getLogger("auto-attack")
    flags = _Flags()
    log.addHandler(flags)
    previous = log.propagate
    log.propagate = False  # its progress lines are ours to print or not
    try:
        model.eval()
        device = str(x.device)
        attack = AutoAttack(model, norm="Linf", eps=epsilon, version="standard", device=device, seed=seed)
        _, y_adv = attack.run_standard_evaluation(x, y, batch_size=batch_size)
    finally:
        log.removeHandler(flags)
        log.propagate = previous
    robust = (y_adv.to(y.device) == y).float().mean().item()
    return robust, [f"AutoAttack's own check: {m}" for m in dict.fromkeys(flags.messages)]


# ---------------------------------------------------------------------------- sanity checks


def check_more_steps(weaker: float, stronger: float, weaker_name: str = "PGD-10",
                     stronger_name: str = "PGD-50x10", tolerance: float = 0.0) -> list[str]:
    """A stronger attack (more steps, restarts) must not leave more accuracy than a weaker one."""
    if stronger > weaker + tolerance:
        return [f"{stronger_name} accuracy {stronger:.4f} is above {weaker_name} accuracy {weaker:.4f}: "
                "more attack steps made the attack weaker, a sign of gradient masking or a bad step size"]
    return []


def check_order(clean: float, fgsm: float, robust: float, tolerance: float = 0.0) -> list[str]:
    """robust ≤ FGSM ≤ clean: an iterative attack is at least as strong as one step, which is at
    least as strong as none."""
    found = []
    if robust > fgsm + tolerance:
        found.append(f"PGD accuracy {robust:.4f} is above FGSM accuracy {fgsm:.4f}: the iterative attack is "
                     "weaker than a single step, a sign of gradient masking")
    if fgsm > clean + tolerance:
        found.append(f"FGSM accuracy {fgsm:.4f} is above clean accuracy {clean:.4f}: the attack helps the model, "
                     "a sign of gradient masking (or label leaking)")
    return found


def check_epsilon(accuracy_by_epsilon: Mapping[float, float], tolerance: float = 0.0) -> list[str]:
    """Accuracy must not rise as ε grows (ε = 0: clean accuracy)."""
    found = []
    pairs = sorted(accuracy_by_epsilon.items())
    for (eps_a, acc_a), (eps_b, acc_b) in zip(pairs, pairs[1:], strict=False):
        if acc_b > acc_a + tolerance:
            found.append(f"accuracy rises from {acc_a:.4f} at ε = {eps_a:.4g} to {acc_b:.4f} at ε = {eps_b:.4g}: "
                         "a larger threat radius should never help the model (gradient masking?)")
    return found


def sanity_checks(row: Mapping[str, Any], epsilon: float) -> list[str]:
    """All checks that ``row`` (one model's accuracies by attack name) allows."""
    from raysearch.rundir.records import finite

    def get(key: str) -> float:
        return finite(row.get(key))

    found: list[str] = []
    clean, fgsm, pgd10 = get("clean"), get("fgsm"), get("pgd10")
    if not any(math.isnan(v) for v in (clean, fgsm, pgd10)):
        found += check_order(clean, fgsm, pgd10)
    for name in row:
        match = attack_pattern().match(str(name))
        if match and match.group(1) == "pgd" and name != "pgd10" and not math.isnan(get(name)):
            if int(match.group(2)) >= 10 and not math.isnan(pgd10):
                found += check_more_steps(pgd10, get(name), "PGD-10", name.upper())
    sweep = {0.0: clean, epsilon / 2: get("pgd10@0.5eps"), epsilon: pgd10, min(2 * epsilon, 1.0): get("pgd10@2eps")}
    sweep = {e: a for e, a in sweep.items() if not math.isnan(a)}
    if len(sweep) > 1:
        found += check_epsilon(sweep)
    return found


# ---------------------------------------------------------------------------- targets


@dataclass
class Model:
    """One model to evaluate: its label, weights file, training config and in-loop numbers."""

    label: str
    weights: Path
    config: dict[str, Any]
    recipe: str = ""
    val_robust_acc: float = math.nan
    state_key: str | None = None  # for a state.pt file: which weights in it
    checkpoint: str = ""  # which weights these are: last, best (the rule's pick), or the file named


def _config_near(folder: Path) -> dict[str, Any] | None:
    """The training config of the checkpoint in ``folder``: the trial's params.json (this folder
    or its parent), raysearch train's config.yaml, else the ``config`` of a state.pt (last: a
    state with ATTA/ATAS memories can be large, so it is memory-mapped)."""
    for candidate in (folder / "params.json", folder.parent / "params.json"):
        if candidate.exists():
            try:
                return dict(json.loads(candidate.read_text()))
            except (ValueError, UnicodeDecodeError):
                raise ConfigError("target", str(candidate), "is not a readable params.json") from None
    config_yaml = folder / "config.yaml"
    if config_yaml.exists():
        try:
            data = yaml.safe_load(config_yaml.read_text()) or {}
        except (yaml.YAMLError, UnicodeDecodeError):
            raise ConfigError("target", str(config_yaml), "is not readable YAML") from None
        return {k: v for k, v in data.items() if k not in ("name", "raysearch_version")}
    state = folder / STATE_FILE
    if state.exists():
        import pickle

        import torch

        try:
            return dict(torch.load(state, map_location="cpu", weights_only=True, mmap=True)["config"])
        except (RuntimeError, pickle.UnpicklingError, EOFError, ValueError, OSError, KeyError, TypeError) as err:
            first = (str(err).splitlines() or [type(err).__name__])[0][:160]
            raise ConfigError("checkpoint", str(state), f"is not a readable raysearch run state ({first})") from None
    return None


def _state_status(folder: Path) -> str:
    """The status a run's ``state.pt`` in ``folder`` ended with ("" when unreadable)."""
    import torch

    try:
        return str(torch.load(folder / STATE_FILE, map_location="cpu", weights_only=True, mmap=True)["status"])
    except Exception:
        return ""


def _weights_in(path: Path, config: Mapping[str, Any] | None = None,
                status: str | None = None) -> tuple[Path, Path, str | None, str]:
    """(folder, weights file, key of the weights in it, which weights: last / best / file) of a
    checkpoint file (as named), or of a folder or a trial folder's newest checkpoint: the
    weights that count under the training config's ``checkpoint`` rule (``config``: the
    trial's; else the one beside the checkpoint) for a run that ended with ``status`` (else
    the state's own)."""
    from raysearch.rundir.records import latest_checkpoint

    if path.is_file():
        return path.parent, path, "model" if path.name == STATE_FILE else None, "file"
    has_weights = (path / BEST_FILE).exists() or (path / STATE_FILE).exists()
    folder = path if has_weights else (latest_checkpoint(path) or path)  # a trial folder: newest
    if not ((folder / BEST_FILE).exists() or (folder / STATE_FILE).exists()):
        raise ConfigError("target", str(path), f"holds no {BEST_FILE} or {STATE_FILE} checkpoint")
    rule = rule_of(config if config is not None else (_config_near(folder) or {}))
    if status is None and rule != "best" and (folder / STATE_FILE).exists():
        status = _state_status(folder)
    weights, key = scored_file(folder, rule, status or "")
    return folder, weights, key, "best" if weights.name == BEST_FILE or key == "best_model" else "last"


def _checkpoint_model(path: Path) -> Model:
    from trainables.labels import describe
    from trainables.trial import split_trial_config

    folder, weights, state_key, which = _weights_in(path)
    config = _config_near(folder)
    if config is None:
        raise ConfigError("target", str(path), "has no training config beside it (state.pt, params.json or "
                                               "config.yaml)")
    config, _ = split_trial_config(config)
    trial = next((p for p in (folder, *folder.parents) if p.name.startswith("trial_")), None)
    label = trial.name.removeprefix("trial_") if trial else folder.name
    return Model(label, weights, config, describe(config), state_key=state_key, checkpoint=which)


def _is_run_dir(path: Path) -> bool:
    return path.is_dir() and ((path / "experiment.yaml").exists() or any(path.glob("*/params.json")))


def resolve_target(target: str | os.PathLike[str], top: int = 3) -> tuple[list[Model], Path]:
    """The models of ``target`` and the folder the evaluation files go to."""
    from raysearch.rundir.results import load_run, metric, ranked
    from trainables.labels import describe

    path = Path(target).expanduser()
    if not path.exists():
        raise ConfigError("target", str(target), "no such run directory or checkpoint")
    if _is_run_dir(path):
        run = load_run(path)
        models: list[Model] = []
        for trial in ranked(run.trials):
            if len(models) == top:
                break
            if trial.checkpoint is None:
                continue
            _, weights, state_key, which = _weights_in(trial.checkpoint, trial.config, trial.status.value)
            # robust_acc follows the same rule (trainables.weights); older runs: the best seen
            val = metric(trial, "robust_acc_best" if which == "best" else "robust_acc_last")
            models.append(Model(trial.trial_id, weights, trial.config, describe(trial.config),
                                val if math.isfinite(val) else metric(trial, "best_robust_acc"), state_key, which))
        if not models:
            raise ConfigError("target", str(target), "has no trial with a checkpoint to evaluate")
        return models, run.run_dir
    return [_checkpoint_model(path)], path.parent if path.is_file() else path


def _load_weights(model: Model) -> dict[str, torch.Tensor]:
    import pickle

    import torch

    try:
        state = torch.load(model.weights, map_location="cpu", weights_only=True, mmap=True)
    except (RuntimeError, pickle.UnpicklingError, EOFError, ValueError, OSError) as err:
        first = (str(err).splitlines() or [type(err).__name__])[0][:160]
        raise ConfigError("checkpoint", str(model.weights), f"is not a readable torch checkpoint ({first})") from None
    if not isinstance(state, dict):
        raise ConfigError("checkpoint", str(model.weights), "does not hold a state dict")
    if model.state_key is None:
        return state
    weights = state.get(model.state_key, state.get("model"))
    if not isinstance(weights, dict):
        raise ConfigError("checkpoint", str(model.weights), f"holds no model weights (no {model.state_key!r} entry)")
    return weights


# ---------------------------------------------------------------------------- evaluate


@dataclass
class EvaluationResult:
    """One row per model (accuracy by attack name, plus label, recipe, examples, seconds),
    gradient-masking warnings, attacks skipped (with why) and the files written."""

    target: str
    rows: list[dict[str, Any]]
    warnings: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    csv_path: Path | None = None
    md_path: Path | None = None


def _evaluate_model(model: Model, attacks: Sequence[Attack], device: torch.device, examples: int | None,
                    seed: int, log: Callable[[str], None],
                    datasets: dict[tuple[Any, ...], Any]) -> tuple[dict[str, Any], list[str], list[str]]:
    """(the model's row, attacks skipped with why, AutoAttack's own check warnings)."""
    import torch

    from trainables.config import parse_config
    from trainables.data import load_dataset, materialize
    from trainables.evaluation import evaluate_accuracy
    from trainables.models import build_model

    cfg = parse_config(model.config)
    key = (cfg.dataset, cfg.data_root, cfg.download, cfg.synthetic_size, cfg.image_size)
    if key not in datasets:  # the top trials of a run share their data: load it once
        datasets[key] = load_dataset(*key)
    data = datasets[key]
    test = materialize(data.test, examples)  # None: all
    x, y = test.images().to(device), test.y.to(device)
    net = build_model(cfg.model, data.num_classes, data.input_shape, data.mean, data.std)
    try:
        net.load_state_dict(_load_weights(model))
    except RuntimeError as err:  # another model's weights, or none at all
        first = " ".join(str(err).split())[:160]
        raise ConfigError("checkpoint", str(model.weights), f"does not hold weights of a {cfg.model} ({first})") from None
    net.to(device).eval().requires_grad_(False)
    eps = cfg.epsilon
    torch.manual_seed(seed)
    start = time.perf_counter()
    row: dict[str, Any] = {"model": model.label, "recipe": model.recipe, "weights": str(model.weights),
                           "examples": len(x), "epsilon": eps}
    base = evaluate_accuracy(net, x, y, eps, 10, STEP_FRACTION * eps)
    row.update(clean=base.clean_acc, fgsm=base.fgsm_acc, pgd10=base.robust_acc)
    for name, radius in (("pgd10@0.5eps", eps / 2), ("pgd10@2eps", min(2 * eps, 1.0))):
        row[name] = evaluate_accuracy(net, x, y, radius, 10, STEP_FRACTION * radius, fgsm=False).robust_acc
    skipped: list[str] = []
    notes: list[str] = []
    for attack in attacks:
        t0 = time.perf_counter()
        if attack.kind == "autoattack":
            if not autoattack_available():
                skipped.append(AUTOATTACK_MISSING)
                row[attack.name] = math.nan
                continue
            row[attack.name], flags = autoattack_accuracy(net, x, y, eps, data.num_classes, seed)
            notes += flags
        else:
            row[attack.name] = attack_accuracy(net, x, y, eps, attack)
        log(f"[evaluate] {model.label}: {attack.name} {row[attack.name]:.4f} ({time.perf_counter() - t0:.1f} s)")
    row["val_robust_acc"] = model.val_robust_acc
    row["checkpoint"] = model.checkpoint
    row["seconds"] = time.perf_counter() - start
    return row, skipped, notes


def evaluate(target: str | os.PathLike[str], top: int = 3, attacks: str | Iterable[str] = DEFAULT_ATTACKS,
             device: str | torch.device | None = None, examples: int | None = None, seed: int = 0,
             progress: bool = True) -> EvaluationResult:
    """Attack the ``top`` trials of a run directory, or one checkpoint, on the test split.

    Args:
        target: a run directory, a ``best.pt``/``state.pt`` file or a folder holding one.
        top: how many trials of a run directory, best objective first.
        attacks: names (``pgd50x10``, ``cw20``, ``autoattack``; ``pgdSTEPS[xRESTARTS]``,
            ``cwSTEPS[xRESTARTS]``) as a list or a comma-separated string.
        device: ``cuda``, ``cpu`` ...; None: a GPU when there is one.
        examples: evaluate the first N test examples only (None: the whole test split).
        seed: seeds the attacks' random starts.
        progress: print a line per attack and the table.

    Writes ``evaluation.csv`` and ``evaluation.md`` into the run directory (or beside the
    checkpoint). Raises :class:`ConfigError` on a bad target, attack name or count.
    """

    from trainables.devices import resolve_device

    parsed = parse_attacks(attacks)
    if top < 1:
        raise ConfigError("top", top, "must be >= 1")
    if examples is not None and examples < 1:
        raise ConfigError("examples", examples, "must be >= 1 (or omitted: the whole test split)")
    dev = resolve_device(device or "auto")
    models, out_dir = resolve_target(target, top)

    def log(line: str) -> None:
        if progress:
            print(line, file=sys.stderr, flush=True)

    rows, found, skipped = [], [], []
    datasets: dict[tuple[Any, ...], Any] = {}
    for model in models:
        row, why, notes = _evaluate_model(model, parsed, dev, examples, seed, log, datasets)
        problems = sanity_checks(row, row["epsilon"]) + notes
        row["warnings"] = len(problems)
        rows.append(row)
        found += [f"{model.label}: {p}" for p in problems]
        skipped += [w for w in why if w not in skipped]
    for problem in found:
        warnings.warn(problem, RuntimeWarning, stacklevel=2)
    csv_path, md_path = out_dir / EVALUATION_CSV, out_dir / EVALUATION_MD
    result = EvaluationResult(str(target), rows, found, skipped, csv_path, md_path)
    write_csv(rows, csv_path)
    md_path.write_text(_markdown(result, parsed, dev))
    if progress:
        print(_text_table(result, parsed), flush=True)
    return result


# ---------------------------------------------------------------------------- output


def _columns(attacks: Sequence[Attack]) -> list[str]:
    names = ["clean", "fgsm", "pgd10"] + [a.name for a in attacks if a.name not in ("clean", "fgsm", "pgd10")]
    return names + ["pgd10@0.5eps", "pgd10@2eps"]


def _cell(value: Any) -> str:
    return "–" if not isinstance(value, (int, float)) or math.isnan(value) else f"{100 * value:.1f}%"


def _markdown(result: EvaluationResult, attacks: Sequence[Attack], device: torch.device) -> str:
    rows = result.rows
    eps = rows[0]["epsilon"] if rows else math.nan
    columns = _columns(attacks)
    lines = ["# raysearch evaluation", "",
             f"Test split ({rows[0]['examples'] if rows else 0} examples), ℓ∞ ε = {eps:.4g}, fp32 on {device.type}, "
             "model in eval mode. Accuracy under each attack (lower is a stronger attack):", "",
             "| model | recipe | " + " | ".join(columns) + " | validation robust (in-loop) |",
             "|---|---|" + "---:|" * (len(columns) + 1)]
    for row in rows:
        lines.append(f"| {row['model']} | {row['recipe']} | " + " | ".join(_cell(row.get(c)) for c in columns)
                     + f" | {_cell(row.get('val_robust_acc'))} |")
    lines += ["", "Attacks:", ""]
    lines += [f"- `{a.name}`: {a.describe(eps)}" for a in attacks]
    lines += ["- `fgsm`, `pgd10`: FGSM (step ε) and PGD-10 (α = ε/4, 1 restart) as in training's in-loop "
              "evaluation; `pgd10@0.5eps`, `pgd10@2eps`: PGD-10 at ε/2 and 2ε, for the checks below", ""]
    if result.skipped:
        lines += [f"Skipped: {s}" for s in result.skipped] + [""]
    lines += ["## Gradient-masking checks", ""]
    if result.warnings:
        lines += [f"- ⚠ {w}" for w in result.warnings]
    else:
        lines.append("All passed: more steps never raised accuracy, PGD ≤ FGSM ≤ clean, and accuracy fell as ε grew.")
    return "\n".join(lines) + "\n"


def _text_table(result: EvaluationResult, attacks: Sequence[Attack]) -> str:
    columns = _columns(attacks)
    header = f"{'model':<12} " + " ".join(f"{c:>12}" for c in columns)
    lines = [f"raysearch evaluate {result.target} (test split)", header]
    for row in result.rows:
        lines.append(f"{row['model']:<12} " + " ".join(f"{_cell(row.get(c)):>12}" for c in columns))
    lines += [f"skipped: {s}" for s in result.skipped]
    lines += [f"warning: {w}" for w in result.warnings]
    lines.append(f"written: {result.csv_path}, {result.md_path}")
    return "\n".join(lines)


__all__ = ["DEFAULT_ATTACKS", "Attack", "EvaluationResult", "attack_accuracy", "autoattack_accuracy",
           "check_epsilon", "check_more_steps", "check_order", "evaluate", "parse_attacks", "resolve_target",
           "sanity_checks"]
