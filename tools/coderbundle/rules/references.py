"""Every reference to a resource, data source, variable, local or module resolves."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from coderbundle.hcl import Block, references
from coderbundle.rules import Model, rule

if TYPE_CHECKING:
    from collections.abc import Iterator

    from coderbundle.findings import Problem

# Names Terraform defines itself; never declared in a template.
_BUILTIN_ROOTS = {"count", "each", "self", "path", "terraform"}
_REFACTORING = {"moved", "removed", "import"}


def _declared(m: Model) -> set[str]:
    names: set[str] = set()
    for root in m.files.values():
        for b in root.blocks:
            if b.type == "resource" and len(b.labels) == 2:
                names.add(".".join(b.labels))
            elif b.type == "data" and len(b.labels) == 2:
                names.add("data." + ".".join(b.labels))
            elif b.type == "variable" and b.labels:
                names.add(f"var.{b.labels[0]}")
            elif b.type == "module" and b.labels:
                names.add(f"module.{b.labels[0]}")
            elif b.type == "locals":
                names.update(f"local.{k}" for k in b.attributes)
    return names


def _values(block: Block, skip: frozenset[str]) -> Iterator[tuple[Block, int, Any, frozenset[str]]]:
    """Every attribute value below ``block`` with the dynamic iterator names in scope."""
    for name, attr in block.attributes.items():
        if block.type == "lifecycle" and name == "ignore_changes":
            continue
        yield block, attr.line, attr.value, skip
    for child in block.blocks:
        inner = skip
        if child.type == "dynamic" and child.labels:
            iterator = child.get("iterator")
            inner = skip | {str(iterator).strip('"${}') if iterator else child.labels[0]}
        yield from _values(child, inner)


@rule("CB116")
def references_resolve(m: Model) -> Iterator[Problem]:
    """References to resources, data sources, variables, locals and modules resolve."""
    declared = _declared(m)
    for root in m.files.values():
        for top in root.blocks:
            if top.type in _REFACTORING:
                continue  # `moved`/`removed`/`import` name addresses that are gone or external
            for block, line, value, skip in _values(top, frozenset()):
                for ref in sorted(references(value)):
                    head = ref.split(".")[0]
                    if ref in declared or head in _BUILTIN_ROOTS or head in skip:
                        continue
                    msg = f"reference to undeclared {ref}; declare it or fix the name"
                    yield m.problem(block, "CB116", msg, line)
