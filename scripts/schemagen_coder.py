"""coder/coder provider schemas from its generated docs (tfplugindocs "Schema" sections).

Each ``docs/resources/<name>.md`` and ``docs/data-sources/<name>.md`` at the
release tag lists ``### Required``, ``### Optional`` and ``### Read-Only``
arguments as ``- `name` (Type) text``, then one ``### Nested Schema for `a.b```
section per nested block with ``Required:``/``Optional:``/``Read-Only:`` lists.
Blocks say ``Block List``/``Block Set`` with ``Min: n``/``Max: n``.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass, field
from typing import Any

from schemagen_common import Interner, Node

__all__ = ["coder_schema"]

_ITEM = re.compile(r"^- `(\w+)` \(([^)]*)\)(.*)$")
_NESTED = re.compile(r"^### Nested Schema for `([\w.]+)`")
_GROUP = {"Required": "required", "Optional": "optional", "Read-Only": "computed"}
_SCALAR = {"String": "string", "Number": "number", "Boolean": "bool", "Object": "object"}


@dataclass
class _Item:
    name: str
    group: str
    kind: str
    block: bool
    min_items: int = 0
    max_items: int = 0
    deprecated: bool = False


@dataclass
class _Doc:
    sections: dict[str, list[_Item]] = field(default_factory=dict)


def _type(kind: str) -> str:
    words = kind.split(" of ")
    if len(words) == 2:
        return f"{words[0].lower()}({_SCALAR.get(words[1], 'any')})"
    return _SCALAR.get(kind, "any")


def _item(match: re.Match[str], group: str) -> _Item:
    parts = [p.strip() for p in match.group(2).split(",")]
    kind, flags = parts[0], parts[1:]
    item = _Item(match.group(1), group, _type(kind), kind.startswith("Block"))
    item.deprecated = "Deprecated" in flags
    for flag in flags:
        if flag.startswith("Min:"):
            item.min_items = int(flag.split(":")[1])
        if flag.startswith("Max:"):
            item.max_items = int(flag.split(":")[1])
    if item.block and group == "required":
        item.min_items = max(item.min_items, 1)
    return item


def parse_doc(text: str) -> _Doc:
    """Every schema section of one doc page, keyed by dotted path ("" = top)."""
    doc = _Doc()
    path: str | None = None
    group = "optional"
    for line in text.splitlines():
        if line.startswith("## Schema"):
            path = ""
        elif nested := _NESTED.match(line):
            path = nested.group(1)
        elif path is not None and (head := line.lstrip("#").strip().rstrip(":")) in _GROUP:
            group = _GROUP[head]
        elif path is not None and (m := _ITEM.match(line)):
            doc.sections.setdefault(path, []).append(_item(m, group))
    return doc


def _node(doc: _Doc, path: str, interner: Interner) -> int:
    node = Node()
    for item in doc.sections.get(path, []):
        child_path = f"{path}.{item.name}" if path else item.name
        if item.group == "computed":
            if item.name != "id":  # the SDK lets every resource set id
                node.computed.add(item.name)
            else:
                node.attrs[item.name] = item.kind
            continue
        if item.block:
            child = _node(doc, child_path, interner)
            node.blocks[item.name] = (child, item.min_items, item.max_items)
        else:
            node.attrs[item.name] = item.kind
        if item.group == "required":
            node.required.add(item.name)
        if item.deprecated:
            node.deprecated.add(item.name)
    return interner.add(node)


def _git(git_dir: str, *args: str) -> str:
    return subprocess.run(
        ["git", f"--git-dir={git_dir}", *args], check=True, capture_output=True, text=True
    ).stdout


def coder_schema(git_dir: str, tag: str, interner: Interner) -> dict[str, Any]:
    """All resources and data sources documented at ``tag`` of a provider checkout."""
    out: dict[str, Any] = {"resources": {}, "data": {}}
    for folder, key in (("docs/resources", "resources"), ("docs/data-sources", "data")):
        for path in _git(git_dir, "ls-tree", "--name-only", f"{tag}:{folder}").split():
            text = _git(git_dir, "show", f"{tag}:{folder}/{path}")
            name = "coder_" + path.removesuffix(".md")
            out[key][name] = _node(parse_doc(text), "", interner)
    out["all_resources"] = sorted(out["resources"])
    out["all_data"] = sorted(out["data"])
    out["source_commit"] = _git(git_dir, "rev-parse", f"{tag}^{{commit}}").strip()
    return out
