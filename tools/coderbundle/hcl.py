"""Parse Terraform files into a small block tree that keeps line numbers.

python-hcl2 8.x is the parser.  Its dict output drops line numbers, so this
module walks its rule tree instead and keeps each value in python-hcl2's
serialized form: strings keep their quotes (``'"dev"'``), expressions are
``"${...}"``, numbers and bools are Python values, objects are dicts and
tuples are lists.  ``literal`` strips the quotes of a plain string.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import hcl2
from lark.exceptions import LarkError, UnexpectedInput

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

__all__ = [
    "Attribute",
    "Block",
    "HclSyntaxError",
    "is_expression",
    "literal",
    "parse_file",
    "parse_text",
    "references",
]


class HclSyntaxError(Exception):
    """The file is not valid HCL; ``line`` is 1-based, 0 if unknown."""

    def __init__(self, message: str, line: int) -> None:
        super().__init__(message)
        self.line = line


@dataclass
class Attribute:
    """``name = value`` in a body."""

    name: str
    value: Any
    line: int


@dataclass
class Block:
    """``type "label" ... { body }``; the file itself is a Block of type ``""``."""

    type: str
    labels: tuple[str, ...]
    line: int
    attributes: dict[str, Attribute] = field(default_factory=dict)
    blocks: list[Block] = field(default_factory=list)
    file: str = ""

    def children(self, block_type: str) -> list[Block]:
        """The nested blocks of one type, in file order."""
        return [b for b in self.blocks if b.type == block_type]

    def child(self, *path: str) -> Block | None:
        """The first nested block along ``path`` (``child("spec", "template")``)."""
        node: Block | None = self
        for part in path:
            found = node.children(part) if node else []
            node = found[0] if found else None
        return node

    def get(self, name: str, default: Any = None) -> Any:
        """An attribute's value, or ``default``."""
        attr = self.attributes.get(name)
        return attr.value if attr else default

    def walk(self) -> Iterator[Block]:
        """This block and every block below it, depth first."""
        yield self
        for b in self.blocks:
            yield from b.walk()

    @property
    def address(self) -> str:
        """``type.label.label`` as Terraform writes it (``resource`` omitted)."""
        if self.type == "resource":
            return ".".join(self.labels)
        return ".".join((self.type, *self.labels))


def _line(rule: Any) -> int:
    meta = getattr(rule, "_meta", None)
    return int(getattr(meta, "line", 0) or 0)


def _unquote(value: Any) -> str:
    text = str(value)
    return text[1:-1] if len(text) >= 2 and text[0] == text[-1] == '"' else text


def _convert_body(body: Any, block: Block) -> None:
    for child in getattr(body, "children", ()):
        kind = type(child).__name__
        if kind == "AttributeRule":
            ((name, value),) = child.serialize().items()
            block.attributes[name] = Attribute(name, value, _line(child))
        elif kind == "BlockRule":
            block.blocks.append(_convert_block(child, block.file))


def _convert_block(rule: Any, file: str) -> Block:
    parts = [c for c in rule.children if type(c).__name__ in ("IdentifierRule", "StringRule")]
    head = [_unquote(p.serialize()) for p in parts]
    block = Block(head[0], tuple(head[1:]), _line(rule), file=file)
    for c in rule.children:
        if type(c).__name__ == "BodyRule":
            _convert_body(c, block)
    return block


def parse_text(text: str, file: str = "") -> Block:
    """Parse HCL text into a root ``Block``; raise ``HclSyntaxError`` with a line."""
    try:
        tree = hcl2.transform(hcl2.parses_to_tree(text), discard_comments=True)
    except UnexpectedInput as exc:
        first = str(exc).strip().splitlines()[0]
        raise HclSyntaxError(first, int(getattr(exc, "line", 0) or 0)) from None
    except LarkError as exc:
        raise HclSyntaxError(str(exc).strip().splitlines()[0], 0) from None
    root = Block("", (), 1, file=file)
    for child in tree.children:
        _convert_body(child, root)
    return root


def parse_file(path: Path) -> Block:
    """Parse one ``.tf`` file."""
    return parse_text(path.read_text(encoding="utf-8"), file=str(path))


def is_expression(value: Any) -> bool:
    """True when ``value`` is (or contains) an interpolation or expression."""
    return isinstance(value, str) and "${" in value


def literal(value: Any) -> Any:
    """A plain string without its quotes; other values unchanged."""
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    return value


_REF = re.compile(
    r"(?<![\w.\"])((?:data|module|var|local)\.[A-Za-z_][\w-]*(?:\.[A-Za-z_][\w-]*)?"
    r"|[a-z][a-z0-9]*_[a-z0-9_]+\.[A-Za-z_][\w-]*)"
)
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')


def _expression_parts(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        for match in re.finditer(r"\$\{(.*)\}", value, flags=re.DOTALL):
            yield match.group(1)
        if not value.startswith('"'):
            yield value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _expression_parts(k)
            yield from _expression_parts(v)
    elif isinstance(value, list):
        for v in value:
            yield from _expression_parts(v)


def references(value: Any) -> set[str]:
    """Addresses an attribute value refers to: ``var.x``, ``data.t.n``, ``t.n``, ``module.m``."""
    refs: set[str] = set()
    for expr in _expression_parts(_unescape(value)):
        # Drop string literals inside the expression, but keep their own ${...}.
        inner = " ".join(re.findall(r"\$\{(.*?)\}", expr)) + " " + _STRING.sub(" ", expr)
        refs.update(_normalize(m.group(1)) for m in _REF.finditer(inner))
    return refs


def _unescape(value: Any) -> Any:
    """Drop Terraform's escaped ``$${...}`` (literal text, often shell) before scanning."""
    if isinstance(value, str):
        return re.sub(r"\$\$\{[^}]*\}", "", value)
    if isinstance(value, dict):
        return {_unescape(k): _unescape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_unescape(v) for v in value]
    return value


def _normalize(ref: str) -> str:
    parts = ref.split(".")
    return ".".join(parts[:3] if parts[0] == "data" else parts[:2])
