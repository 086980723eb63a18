"""Provider schemas: load them, and walk a resource or data block against its schema.

The data (``data/coder.json``, ``data/kubernetes.json``) is written by
``scripts/gen_schemas.py``; see ``schemagen_common.py`` there for the node
format.  ``coderbundle.schema`` is the public entry point.
"""

from __future__ import annotations

import difflib
import functools
import json
from dataclasses import dataclass
from importlib import resources
from typing import Any

from coderbundle import hcl
from coderbundle.findings import Problem

__all__ = [
    "Provider",
    "check_resource",
    "is_expression",
    "load_providers",
    "read_data",
    "show",
    "suggest",
    "type_matches",
]

_RESOURCE_META_ATTRS = frozenset({"count", "for_each", "depends_on", "provider"})
_RESOURCE_META_BLOCKS = frozenset({"lifecycle", "provisioner", "connection"})


@dataclass(frozen=True)
class Provider:
    """One provider's schema: node table plus resource and data source entry points."""

    name: str
    version: str
    nodes: tuple[dict[str, Any], ...]
    resources: dict[str, int]
    data: dict[str, int]
    known: frozenset[str]  # every resource/data type name the provider has

    @property
    def label(self) -> str:
        """``coder/coder 2.18.0``."""
        return f"{self.name} {self.version}"


def read_data(name: str) -> dict[str, Any]:
    """One data file of the package, parsed."""
    text = (resources.files("coderbundle") / "data" / name).read_text(encoding="utf-8")
    data: dict[str, Any] = json.loads(text)
    return data


@functools.cache
def load_providers() -> dict[str, Provider]:
    """Type prefix (``coder_``, ``kubernetes_``) -> Provider, read once per process."""
    out: dict[str, Provider] = {}
    for prefix, file in (("coder_", "coder.json"), ("kubernetes_", "kubernetes.json")):
        raw = read_data(file)
        known = frozenset(raw["all_resources"]) | frozenset(raw["all_data"])
        nodes = tuple(raw["nodes"])
        out[prefix] = Provider(raw["provider"], raw["version"], nodes, raw["resources"], raw["data"], known)
    return out


def is_expression(value: Any) -> bool:
    """True for an expression or an interpolated string (its type is unknown offline)."""
    if isinstance(value, str):
        quoted = len(value) >= 2 and value[0] == value[-1] == '"'
        return "${" in value or not quoted
    return False


def _number_ok(value: Any) -> bool:
    if isinstance(value, str):
        try:
            float(str(hcl.literal(value)))
        except ValueError:
            return False
        return True
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _scalar_ok(value: Any, kind: str) -> bool:
    if kind == "string":
        return not isinstance(value, (list, dict))
    if kind == "bool":
        return isinstance(value, bool) or hcl.literal(value) in {"true", "false"}
    if kind == "number":
        return _number_ok(value)
    return True


def type_matches(value: Any, tf_type: str) -> bool:
    """Whether a literal converts to ``tf_type`` as Terraform converts it; expressions pass."""
    if value is None or is_expression(value):
        return True
    kind, _, inner = tf_type.partition("(")
    if kind in {"list", "set", "tuple"}:
        elem = inner.removesuffix(")")
        if not isinstance(value, list):
            return False
        return elem not in {"string", "number", "bool"} or all(type_matches(v, elem) for v in value)
    if kind in {"map", "object"}:
        return isinstance(value, dict)
    return _scalar_ok(value, kind)


def suggest(name: str, candidates: Any) -> str:
    """``; did you mean "x"?`` for the closest candidate, or ``""``."""
    close = difflib.get_close_matches(name, sorted(candidates), n=1, cutoff=0.7)
    return f'; did you mean "{close[0]}"?' if close else ""


def show(value: Any) -> str:
    """A literal as it reads in the template, shortened for a one-line message."""
    text = value if isinstance(value, str) else json.dumps(value)
    return text if len(text) <= 40 else text[:37] + "..."


@dataclass
class _Checker:
    """Walks one resource or data block against its provider schema."""

    provider: Provider
    file: str
    problems: list[Problem]
    root_label: str

    def report(self, rule: str, line: int, message: str) -> None:
        self.problems.append(Problem(file=self.file, line=line, rule=rule, message=message))

    def node(self, node_id: int) -> dict[str, Any]:
        return self.provider.nodes[node_id]

    def where_else(self, root: int, name: str) -> str | None:
        """The shortest path below ``root`` whose block has ``name`` (breadth first)."""
        queue: list[tuple[int, str]] = [(root, "")]
        seen = {root}
        while queue:
            node_id, path = queue.pop(0)
            node = self.node(node_id)
            if path and (name in node.get("a", {}) or name in node.get("b", {})):
                return path
            for child, (child_id, _, _) in node.get("b", {}).items():
                if child_id not in seen:
                    seen.add(child_id)
                    queue.append((child_id, f"{path}.{child}" if path else child))
        return None

    def elsewhere(self, name: str) -> str:
        """``; it belongs in coder_app`` when other resource types have ``name`` at the top."""
        owners = [
            t
            for t, node_id in self.provider.resources.items()
            if name in self.node(node_id).get("a", {}) or name in self.node(node_id).get("b", {})
        ]
        return f"; it belongs in {' or '.join(sorted(owners)[:2])}, not here" if owners else ""

    def unknown(self, what: str, name: str, line: int, ctx: tuple[int, int, str]) -> None:
        node_id, root_id, where = ctx
        node = self.node(node_id)
        hint = suggest(name, [*node.get("a", {}), *node.get("b", {})])
        if not hint:
            below = self.where_else(node_id, name)
            above = None if below else self.where_else(root_id, name)
            if below:
                hint = f'; it belongs in the nested block "{below}"'
            elif above:
                hint = f'; it belongs in "{self.root_label}.{above}", not here'
            else:
                hint = self.elsewhere(name) or f"; remove it ({self.provider.label} has no such {what})"
        self.report("CS101", line, f'unknown {what} "{name}" in {where}{hint}')

    def attributes(self, block: hcl.Block, ctx: tuple[int, int, str], *, top: bool) -> None:
        node_id, _, where = ctx
        node = self.node(node_id)
        attrs, blocks = node.get("a", {}), node.get("b", {})
        for name, attr in block.attributes.items():
            if top and name in _RESOURCE_META_ATTRS:
                continue
            if name in attrs:
                if not type_matches(attr.value, attrs[name]):
                    msg = f'"{name}" in {where} must be {attrs[name]}, not {show(attr.value)}; fix the value'
                    self.report("CS106", attr.line, msg)
            elif name in blocks:
                msg = f'"{name}" in {where} is a block; write {name} {{ ... }} instead of {name} = ...'
                self.report("CS104", attr.line, msg)
            elif name in node.get("c", ()):
                msg = f'"{name}" in {where} is read-only (set by the provider); remove it'
                self.report("CS107", attr.line, msg)
                continue
            else:
                self.unknown("attribute", name, attr.line, ctx)
                continue
            if name in node.get("d", ()):
                msg = f'"{name}" in {where} is deprecated in {self.provider.label}; remove it'
                self.report("CS108", attr.line, msg)

    def body(self, block: hcl.Block, ctx: tuple[int, int, str], *, top: bool = False) -> None:
        node_id, root_id, where = ctx
        node = self.node(node_id)
        self.attributes(block, ctx, top=top)
        seen: dict[str, list[hcl.Block]] = {}
        dynamic: set[str] = set()
        for child in block.blocks:
            if top and child.type in _RESOURCE_META_BLOCKS:
                continue
            target = child.labels[0] if child.type == "dynamic" and child.labels else child.type
            content = child.child("content") if child.type == "dynamic" else child
            if target in node.get("b", {}):
                (
                    dynamic.add(target)
                    if child.type == "dynamic"
                    else seen.setdefault(target, []).append(child)
                )
                if content is not None:
                    child_ctx = (node["b"][target][0], root_id, f"{where}.{target}")
                    self.body(content, child_ctx)
                if target in node.get("d", ()):
                    msg = f'"{target}" in {where} is deprecated in {self.provider.label}; remove it'
                    self.report("CS108", child.line, msg)
            elif target in node.get("a", {}) or target in node.get("c", ()):
                kind = node.get("a", {}).get(target, "read-only")
                msg = (
                    f'"{target}" in {where} is an attribute ({kind}); write {target} = ... instead of a block'
                )
                self.report("CS103", child.line, msg)
            else:
                self.unknown("block", target, child.line, ctx)
        self.counts(block, node, where, seen, dynamic)

    def counts(
        self,
        block: hcl.Block,
        node: dict[str, Any],
        where: str,
        seen: dict[str, list[hcl.Block]],
        dynamic: set[str],
    ) -> None:
        for name, (_, min_items, max_items) in node.get("b", {}).items():
            found = seen.get(name, [])
            if min_items and not found and name not in dynamic:
                self.report("CS102", block.line, f'{where} needs a "{name}" block; add {name} {{ ... }}')
            if max_items and len(found) > max_items:
                msg = f'{where} allows at most {max_items} "{name}" block(s), found {len(found)}; merge them'
                self.report("CS105", found[max_items].line, msg)
        for name in node.get("r", ()):
            if name in node.get("a", {}) and name not in block.attributes:
                self.report("CS102", block.line, f'{where} needs the attribute "{name}"; add {name} = ...')
        for name in node.get("k", ()):
            if name not in block.attributes:
                msg = f'{where} needs "{name}" (the Kubernetes API requires it); add {name} = ...'
                self.report("CS109", block.line, msg)


def check_resource(block: hcl.Block, file: str, problems: list[Problem]) -> None:
    """Check one ``resource``/``data`` block of a coder_ or kubernetes_ type."""
    kind, tf_type = ("data", block.labels[0]) if block.type == "data" else ("resource", block.labels[0])
    provider = next((p for prefix, p in load_providers().items() if tf_type.startswith(prefix)), None)
    if provider is None:
        return
    table = provider.data if kind == "data" else provider.resources
    if tf_type not in table:
        if tf_type not in provider.known:
            hint = suggest(tf_type, table) or f"; {provider.label} has no such {kind} type"
            msg = f'unknown {kind} type "{tf_type}"{hint}'
            problems.append(Problem(file=file, line=block.line, rule="CS100", message=msg))
        return
    where = f"data.{tf_type}" if kind == "data" else tf_type
    root = table[tf_type]
    _Checker(provider, file, problems, where).body(block, (root, root, where), top=True)
