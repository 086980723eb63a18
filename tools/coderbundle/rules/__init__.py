"""The Coder-aware rule set.  Every rule has a stable ID documented in docs/rules.md.

A rule is a function ``(model) -> Iterable[Problem]`` registered with
``@rule(ID)``; ``check_template`` runs them all.  Rules read the parsed block
tree (``coderbundle.hcl``) of one rendered template.  The rules live in the
modules of this package by topic; importing the package registers them all.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from coderbundle.findings import Problem

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator, Mapping

    from coderbundle.hcl import Block
    from coderbundle.render import RenderedTemplate

__all__ = ["RULES", "Model", "check_template", "rule"]

RULES: dict[str, Callable[[Model], Iterable[Problem]]] = {}


@dataclass
class Model:
    """One rendered template as the rules see it."""

    rendered: RenderedTemplate
    files: Mapping[str, Block]
    versions: Mapping[str, Any]

    def top(self, block_type: str, first_label: str | None = None) -> Iterator[Block]:
        """Top-level blocks of one type (and first label), across all files."""
        for root in self.files.values():
            for block in root.children(block_type):
                if first_label is None or (block.labels and block.labels[0] == first_label):
                    yield block

    def problem(self, block: Block | None, rule_id: str, message: str, line: int = 0) -> Problem:
        """A problem located at ``block`` (or the template's README when None)."""
        if block is None:
            return Problem(str(self.rendered.path / "README.md"), line, rule_id, message)
        return Problem(block.file, line or block.line, rule_id, message)


def rule(rule_id: str) -> Callable[[Callable[[Model], Iterable[Problem]]], Any]:
    """Register a rule under its stable ID."""

    def register(func: Callable[[Model], Iterable[Problem]]) -> Any:
        RULES[rule_id] = func
        return func

    return register


def check_template(
    rendered: RenderedTemplate, files: Mapping[str, Block], versions: Mapping[str, Any]
) -> list[Problem]:
    """Run every rule on one rendered template."""
    model = Model(rendered, files, versions)
    return [p for func in RULES.values() for p in func(model)]


def line_of(block: Block, name: str) -> int:
    """The line of attribute ``name``, or of the block when it is absent."""
    attr = block.attributes.get(name)
    return attr.line if attr else block.line


# Importing the rule modules registers their rules (order = report order).
from coderbundle.rules import workspace, ui, variables, references, readme, image  # noqa: E402, F401, I001
