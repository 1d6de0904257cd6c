"""``raysearch evaluate``: the final robustness evaluation on the *test* split (SPEC §6).

A target is a run directory (its ``top`` trials by objective, each with the weights that count
in its newest checkpoint) or one checkpoint: a ``best.pt`` / ``state.pt`` file (``state.pt``:
its final weights) or a folder holding them (a Tune ``checkpoint_*`` folder, a trial folder,
the output folder of ``raysearch train``); :mod:`raysearch.pipeline.targets` finds them.

Every model is attacked on the test split (never the validation split the search selected
on) with the attacks asked for, all in fp32 with the model in eval mode
(:mod:`raysearch.pipeline.evaluation`):

- ``pgd50x10``: PGD-50 with 10 random restarts, α = ε/4 (Madry et al.; the in-loop PGD-10 uses
  the same step size); the general form is ``pgdSTEPS[xRESTARTS]``;
- ``cw20``: PGD-20 on the Carlini-Wagner margin loss, α = ε/4, 1 restart (``cwSTEPS[xRESTARTS]``);
- ``autoattack``: AutoAttack standard (APGD-CE and APGD-T with 100 iterations, FAB-T, Square
  with 5000 queries; Croce & Hein, 2020) through the authors' own package ``pyautoattack``,
  when installed (``pip install 'raysearch[autoattack]'``); else skipped with that message.
  The warnings of its own checks (randomized defense, probabilities instead of logits, zero
  gradients, Square stronger than the gradient attacks) are listed next to ours.

Clean, FGSM and PGD-10 accuracy and PGD-10 at ε/2 and 2ε are always measured for the
gradient-masking checks (:mod:`raysearch.pipeline.masking_checks`). ``evaluation.csv`` and
``evaluation.md`` go into the run directory (or beside the checkpoint); ``raysearch report``
then includes ``evaluation.md``. This module turns the arguments into that call and its result
into warnings and the terminal table.
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Iterable
from typing import TYPE_CHECKING

from raysearch.pipeline.evaluation import (
    AUTOATTACK_MISSING,
    DEFAULT_ATTACKS,
    EVALUATION_CSV,
    EVALUATION_MD,
    autoattack_accuracy,
    autoattack_available,
    evaluate_models,
    write_evaluation,
)
from raysearch.pipeline.masking_checks import (
    check_epsilon,
    check_more_steps,
    check_order,
    sanity_checks,
)
from raysearch.pipeline.targets import Model, resolve_target
from raysearch.reporting.evaluation_text import evaluation_table
from raysearch.rundir.outcomes import EvaluationResult
from trainables.evaluation.accuracy import attack_accuracy
from trainables.evaluation.attack_names import Attack, parse_attacks
from trainables.registry import ConfigError

if TYPE_CHECKING:
    import torch


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

    def log(line: str) -> None:
        if progress:
            print(line, file=sys.stderr, flush=True)

    result = evaluate_models(target, parsed, dev, top, examples, seed, log)
    for problem in result.warnings:
        warnings.warn(problem, RuntimeWarning, stacklevel=2)
    write_evaluation(result, parsed, dev)
    if progress:
        print(evaluation_table(result, parsed), flush=True)
    return result


__all__ = ["AUTOATTACK_MISSING", "DEFAULT_ATTACKS", "EVALUATION_CSV", "EVALUATION_MD", "Attack", "EvaluationResult",
           "Model", "attack_accuracy", "autoattack_accuracy", "autoattack_available", "check_epsilon",
           "check_more_steps", "check_order", "evaluate", "parse_attacks", "resolve_target", "sanity_checks"]
