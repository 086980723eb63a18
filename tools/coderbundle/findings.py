"""The finding type every check reports: rules, schema checks and the validate step.

It lives alone so data flows one way: ``validate`` runs ``rules`` and
``schema``, and all three import ``Problem`` from here; nothing imports
``validate`` back.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Problem"]


@dataclass(frozen=True, order=True)
class Problem:
    """One finding: which rule, where, and what to do."""

    file: str
    line: int
    rule: str
    message: str

    def __str__(self) -> str:
        """``file:line: RULE message``, the format editors and CI understand."""
        return f"{self.file}:{self.line}: {self.rule} {self.message}"
