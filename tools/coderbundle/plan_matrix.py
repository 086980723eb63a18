"""The choices developers make, as plan cases: every option of every parameter, pairwise where it matters.

``plantest`` plans the defaults and the presets; this module adds what people
pick in the workspace form.  The parameters come from the first plan itself
(every ``coder_parameter`` data source the template and its modules read,
``prior_state`` of ``terraform show -json``), so a new parameter or option is
covered without a change here:

* a parameter with options: each option; a ``bool``: ``true`` and ``false``;
  a number with a validated range: its minimum and maximum; the free-text
  parameters of ``SAMPLES`` (a Git repository, dotfiles): unset and set;
* the parameters of ``PAIRWISE`` (the AI agent, the repository, dotfiles,
  Cursor) are combined pairwise (every pair of their values in at least one
  case, greedy; a free-text one pairs as unset/set and its samples take turns
  among the "set" cases); every other parameter takes its values in turn
  across those cases, so each of its options is planned at least once;
* every start case with a new AI agent is planned on stop as well.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

__all__ = ["PAIRWISE", "SAMPLES", "Factor", "choice_rows", "factors", "pairwise"]

# Free-text parameters and the values a developer types: unset ("") is always one of them.
SAMPLES: dict[str, tuple[str, ...]] = {
    "repo_url": ("https://gitlab.example.com/team/app.git", "git@gitlab.example.com:team/app.git"),
    "dotfiles_uri": ("https://gitlab.example.com/alice/dotfiles.git",),
    "dotfiles_branch": ("main",),
}
# Parameters whose combinations change which modules run and how they wait for each other.
PAIRWISE = ("ai_agent", "repo_url", "dotfiles_uri", "cursor")


@dataclass(frozen=True)
class Factor:
    """One parameter and the values the matrix gives it."""

    name: str
    values: tuple[str, ...]


def _walk(module: dict[str, Any]) -> list[dict[str, Any]]:
    found = list(module.get("resources", []))
    for child in module.get("child_modules", []):
        found += _walk(child)
    return found


def _values(res: dict[str, Any]) -> tuple[str, ...]:
    values = res.get("values") or {}
    name = str(values.get("name", ""))
    if options := values.get("option"):
        return tuple(str(o["value"]) for o in options)
    if values.get("type") == "bool":
        return ("true", "false")
    if name in SAMPLES:
        return ("", *SAMPLES[name])
    for rule in values.get("validation") or []:
        if values.get("type") == "number" and not rule.get("min_disabled") and not rule.get("max_disabled"):
            return (str(rule["min"]), str(rule["max"]))
    return ()


def factors(plan: dict[str, Any]) -> list[Factor]:
    """Every parameter the planned template reads, with the values to plan it with."""
    root = plan.get("prior_state", {}).get("values", {}).get("root_module", {})
    found: dict[str, Factor] = {}
    for res in _walk(root):
        if res.get("mode") == "data" and res.get("type") == "coder_parameter":
            name = str((res.get("values") or {}).get("name", ""))
            if name and (values := _values(res)):
                found.setdefault(name, Factor(name, values))
    return [found[n] for n in sorted(found)]


def _gain(uncovered: set[tuple[str, str, str, str]], row: dict[str, str], name: str, value: str) -> int:
    """How many uncovered pairs ``name=value`` would cover beside the row's values."""
    return sum((k, v, name, value) in uncovered or (name, value, k, v) in uncovered for k, v in row.items())


def pairwise(factors: list[Factor]) -> list[dict[str, str]]:
    """Rows in which every pair of values of two factors occurs at least once (greedy, stable)."""
    uncovered = {
        (a.name, x, b.name, y)
        for a, b in itertools.combinations(factors, 2)
        for x in a.values
        for y in b.values
    }
    rows: list[dict[str, str]] = []
    if len(factors) == 1:
        return [{factors[0].name: v} for v in factors[0].values]
    while uncovered:
        first = min(uncovered)
        row = {first[0]: first[1], first[2]: first[3]}
        for factor in factors:
            if factor.name not in row:
                gains = {v: _gain(uncovered, row, factor.name, v) for v in factor.values}
                row[factor.name] = max(factor.values, key=gains.__getitem__)
        uncovered -= {(a, row[a], b, row[b]) for a, b in itertools.permutations(row, 2)}
        rows.append(row)
    return rows


def choice_rows(found: list[Factor]) -> list[dict[str, str]]:
    """Parameter values for the start cases: PAIRWISE factors pairwise, the rest in turn."""
    key = [f for f in found if f.name in PAIRWISE]
    rest = [f for f in found if f.name not in PAIRWISE]
    # A free-text parameter pairs as unset/set; its other samples take turns among the "set" rows.
    rows = pairwise([Factor(f.name, f.values[:2]) if f.name in SAMPLES else f for f in key]) if key else []
    for factor in key:
        if factor.name in SAMPLES and len(factor.values) > 2:
            set_rows = [row for row in rows if row[factor.name] == factor.values[1]]
            for i, row in enumerate(set_rows):
                row[factor.name] = factor.values[1 + i % (len(factor.values) - 1)]
    needed = max((len(f.values) for f in rest), default=0)
    while len(rows) < needed:
        rows.append({})
    for i, row in enumerate(rows):
        for factor in rest:
            row[factor.name] = factor.values[i % len(factor.values)]
    return rows
