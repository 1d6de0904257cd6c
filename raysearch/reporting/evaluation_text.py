"""The evaluation as people read it: ``evaluation.md`` (accuracy under each attack, what each
attack is, what was skipped, the gradient-masking checks) and the table printed by
``raysearch evaluate``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

    from raysearch.rundir.outcomes import EvaluationResult
    from trainables.evaluation.attack_names import Attack


def _columns(attacks: Sequence[Attack]) -> list[str]:
    names = ["clean", "fgsm", "pgd10"] + [a.name for a in attacks if a.name not in ("clean", "fgsm", "pgd10")]
    return names + ["pgd10@0.5eps", "pgd10@2eps"]


def _cell(value: Any) -> str:
    return "–" if not isinstance(value, (int, float)) or math.isnan(value) else f"{100 * value:.1f}%"


def evaluation_markdown(result: EvaluationResult, attacks: Sequence[Attack], device: torch.device) -> str:
    """The text of ``evaluation.md``."""
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


def evaluation_table(result: EvaluationResult, attacks: Sequence[Attack]) -> str:
    """The terminal table: one line per model, then what was skipped, the warnings and the files."""
    columns = _columns(attacks)
    header = f"{'model':<12} " + " ".join(f"{c:>12}" for c in columns)
    lines = [f"raysearch evaluate {result.target} (test split)", header]
    for row in result.rows:
        lines.append(f"{row['model']:<12} " + " ".join(f"{_cell(row.get(c)):>12}" for c in columns))
    lines += [f"skipped: {s}" for s in result.skipped]
    lines += [f"warning: {w}" for w in result.warnings]
    lines.append(f"written: {result.csv_path}, {result.md_path}")
    return "\n".join(lines)


__all__ = ["evaluation_markdown", "evaluation_table"]
