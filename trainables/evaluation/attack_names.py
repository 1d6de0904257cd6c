"""Evaluation attacks by name: ``pgd50x10``, ``cw20``, ``autoattack`` (SPEC §6), parsed and
described without torch, so a bad name is one line before anything heavy is imported."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from trainables.registry import ConfigError

_ATTACK = re.compile(r"^(pgd|cw)(\d+)(?:x(\d+))?$")
STEP_FRACTION = 0.25  # α = ε/4 for every PGD and CW evaluation attack, as in the in-loop PGD-10


@dataclass(frozen=True)
class Attack:
    """One evaluation attack: ``kind`` pgd (cross-entropy), cw (CW margin) or autoattack."""

    name: str
    kind: str
    steps: int = 0
    restarts: int = 1

    def describe(self, epsilon: float) -> str:
        if self.kind == "autoattack":
            return "AutoAttack standard (APGD-CE, APGD-T, FAB-T, Square; Croce & Hein's own package)"
        loss = "cross-entropy" if self.kind == "pgd" else "CW margin loss"
        return (f"{self.kind.upper()}-{self.steps}, {self.restarts} restart{'s' if self.restarts > 1 else ''}, "
                f"α = ε/4 = {STEP_FRACTION * epsilon:.4g}, random start, {loss}")


def attack_pattern() -> re.Pattern[str]:
    """``pgdSTEPS[xRESTARTS]`` / ``cwSTEPS[xRESTARTS]`` (groups: kind, steps, restarts)."""
    return _ATTACK


def parse_attacks(names: str | Iterable[str], allow_autoattack: bool = True) -> list[Attack]:
    """``"pgd50x10,cw20,autoattack"`` (or a list) -> attacks; ConfigError names a bad one."""
    if isinstance(names, str):
        names = names.split(",")
    attacks = []
    for raw in names:
        name = raw.strip().lower()
        if not name:
            continue
        if name == "autoattack" and allow_autoattack:
            attacks.append(Attack(name, "autoattack"))
            continue
        match = _ATTACK.match(name)
        if not match or int(match.group(2)) < 1 or (match.group(3) is not None and int(match.group(3)) < 1):
            allowed = "pgdSTEPS[xRESTARTS] (e.g. pgd50x10), cwSTEPS[xRESTARTS] (e.g. cw20)"
            allowed += " and autoattack" if allow_autoattack else ""
            raise ConfigError("attacks", raw, f"choose from {allowed}, comma-separated")
        attacks.append(Attack(name, match.group(1), int(match.group(2)), int(match.group(3) or 1)))
    if not attacks:
        raise ConfigError("attacks", ",".join(names), "name at least one attack")
    return attacks
