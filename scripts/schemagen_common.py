"""Shared pieces of the schema generator: the node format and its interning.

A schema node is a dict with short keys, kept small because the checker loads
the data files at validate time:

``a``  attributes a user may set: name -> Terraform type (``string``,
       ``number``, ``bool``, ``list(string)``, ``map(string)``, ...)
``b``  nested blocks: name -> ``[node id, min_items, max_items]`` (0 = no max)
``r``  required attribute and block names
``c``  read-only (computed) attribute names: setting one is an error
``d``  deprecated attribute and block names
``k``  attributes the Kubernetes API requires though the provider schema does not

Identical nodes are stored once (``Interner``): the pod spec inside a
Deployment, a StatefulSet and a Pod is one node.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Interner", "Node", "dump_json"]


@dataclass
class Node:
    """One block's schema before interning."""

    attrs: dict[str, str] = field(default_factory=dict)
    blocks: dict[str, tuple[int, int, int]] = field(default_factory=dict)
    required: set[str] = field(default_factory=set)
    computed: set[str] = field(default_factory=set)
    deprecated: set[str] = field(default_factory=set)
    api_required: set[str] = field(default_factory=set)

    def to_json(self) -> dict[str, Any]:
        """The compact form, empty keys left out, names sorted."""
        out: dict[str, Any] = {}
        if self.attrs:
            out["a"] = dict(sorted(self.attrs.items()))
        if self.blocks:
            out["b"] = {k: list(v) for k, v in sorted(self.blocks.items())}
        sets = (
            ("r", self.required),
            ("c", self.computed),
            ("d", self.deprecated),
            ("k", self.api_required),
        )
        for key, names in sets:
            if names:
                out[key] = sorted(names)
        return out


@dataclass
class Interner:
    """A table of distinct nodes; ``add`` returns a node's index."""

    nodes: list[dict[str, Any]] = field(default_factory=list)
    _index: dict[str, int] = field(default_factory=dict)

    def add(self, node: Node) -> int:
        """Store ``node`` once and return its id."""
        data = node.to_json()
        key = json.dumps(data, sort_keys=True)
        if key not in self._index:
            self._index[key] = len(self.nodes)
            self.nodes.append(data)
        return self._index[key]


def dump_json(data: dict[str, Any]) -> str:
    """Compact, deterministic JSON (one line per top-level node keeps diffs readable)."""
    lines = ["{"]
    items = list(data.items())
    for i, (key, value) in enumerate(items):
        comma = "," if i < len(items) - 1 else ""
        if key == "nodes":
            rows = [json.dumps(n, separators=(",", ":"), sort_keys=True) for n in value]
            body = ",\n".join(rows)
            lines.append(f'"nodes":[\n{body}\n]{comma}')
        else:
            lines.append(f"{json.dumps(key)}:{json.dumps(value, sort_keys=True)}{comma}")
    lines.append("}")
    return "\n".join(lines) + "\n"
