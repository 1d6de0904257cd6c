"""The final robustness evaluation on the *test* split (SPEC §6): every model of a target
attacked with the attacks asked for, checked for gradient masking, and written as
``evaluation.csv`` and ``evaluation.md``.

Evaluation runs in fp32 with the model in eval mode, like the in-loop evaluation during
training, so the search selects on the metric reported here. Clean, FGSM and PGD-10 accuracy
and PGD-10 at ε/2 and 2ε are always measured for the checks of
:mod:`raysearch.pipeline.masking_checks`. AutoAttack standard runs through Croce & Hein's own
package ``pyautoattack`` when it is installed, else it is skipped with :data:`AUTOATTACK_MISSING`.
What to attack is :mod:`raysearch.pipeline.targets`'s; the Markdown is
:mod:`raysearch.reporting.evaluation_text`'s.
"""

from __future__ import annotations

import importlib.util
import math
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from raysearch.pipeline.masking_checks import sanity_checks
from raysearch.pipeline.targets import Model, load_weights, resolve_target
from raysearch.reporting.evaluation_text import evaluation_markdown
from raysearch.rundir.outcomes import EvaluationResult
from raysearch.rundir.results import write_csv
from trainables.evaluation.accuracy import attack_accuracy
from trainables.evaluation.attack_names import STEP_FRACTION, Attack
from trainables.registry import ConfigError

if TYPE_CHECKING:  # torch loads when an evaluation runs, not when raysearch is imported
    import os

    import torch
    from torch import nn

DEFAULT_ATTACKS = ("pgd50x10", "cw20", "autoattack")
EVALUATION_CSV, EVALUATION_MD = "evaluation.csv", "evaluation.md"
AUTOATTACK_MISSING = ("AutoAttack skipped: pyautoattack (Croce & Hein's own package) is not installed "
                      "(install raysearch[autoattack], i.e. pip install 'raysearch[autoattack]')")


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


def _network(model: Model, device: torch.device, examples: int | None,
             datasets: dict[tuple[Any, ...], Any]) -> tuple[nn.Module, torch.Tensor, torch.Tensor, Any, float]:
    """(the model with its weights in eval mode, test images, labels, the dataset, ε)."""
    from trainables.config import parse_config
    from trainables.data import load_dataset, materialize
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
        net.load_state_dict(load_weights(model))
    except RuntimeError as err:  # another model's weights, or none at all
        first = " ".join(str(err).split())[:160]
        raise ConfigError("checkpoint", str(model.weights), f"does not hold weights of a {cfg.model} ({first})") from None
    net.to(device).eval().requires_grad_(False)
    return net, x, y, data, cfg.epsilon


def evaluate_model(model: Model, attacks: Sequence[Attack], device: torch.device, examples: int | None,
                   seed: int, log: Callable[[str], None],
                   datasets: dict[tuple[Any, ...], Any]) -> tuple[dict[str, Any], list[str], list[str]]:
    """(the model's row, attacks skipped with why, AutoAttack's own check warnings)."""
    import torch

    from trainables.evaluation.accuracy import evaluate_accuracy

    net, x, y, data, eps = _network(model, device, examples, datasets)
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


def evaluate_models(target: str | os.PathLike[str], attacks: Sequence[Attack], device: torch.device, top: int = 3,
                    examples: int | None = None, seed: int = 0,
                    log: Callable[[str], None] = lambda line: None) -> EvaluationResult:
    """Attack the models of ``target`` (:func:`~raysearch.pipeline.targets.resolve_target`) on
    the test split and run the gradient-masking checks on each; writes nothing (the result
    names the files :func:`write_evaluation` writes). ``log``: one line per attack."""
    models, out_dir = resolve_target(target, top)
    rows, found, skipped = [], [], []
    datasets: dict[tuple[Any, ...], Any] = {}
    for model in models:
        row, why, notes = evaluate_model(model, attacks, device, examples, seed, log, datasets)
        problems = sanity_checks(row, row["epsilon"]) + notes
        row["warnings"] = len(problems)
        rows.append(row)
        found += [f"{model.label}: {p}" for p in problems]
        skipped += [w for w in why if w not in skipped]
    return EvaluationResult(str(target), rows, found, skipped, out_dir / EVALUATION_CSV, out_dir / EVALUATION_MD)


def write_evaluation(result: EvaluationResult, attacks: Sequence[Attack], device: torch.device) -> None:
    """``evaluation.csv`` (one row per model) and ``evaluation.md`` where the result names them."""
    assert result.csv_path is not None and result.md_path is not None
    write_csv(result.rows, result.csv_path)
    result.md_path.write_text(evaluation_markdown(result, attacks, device))


__all__ = ["AUTOATTACK_MISSING", "DEFAULT_ATTACKS", "EVALUATION_CSV", "EVALUATION_MD", "autoattack_accuracy",
           "autoattack_available", "evaluate_model", "evaluate_models", "write_evaluation"]
