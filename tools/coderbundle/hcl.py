"""Parse Terraform files into a small block tree that keeps line numbers.

python-hcl2 8.x is the parser.  Its dict output drops line numbers, so this
module walks its rule tree instead and keeps each value in python-hcl2's
serialized form: strings keep their quotes (``'"dev"'``), expressions are
``"${...}"``, numbers and bools are Python values, objects are dicts and
tuples are lists.  ``literal`` strips the quotes of a plain string.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import hcl2.parser
from lark import Token, Tree
from lark.exceptions import LarkError, UnexpectedInput

from coderbundle import files

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
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
    "warm_up",
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
    # (line, message) of what Terraform would refuse to load: an attribute set twice in one body.
    issues: list[tuple[int, str]] = field(default_factory=list)

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
        """Yield this block and every block below it, depth first."""
        yield self
        for b in self.blocks:
            yield from b.walk()

    @property
    def address(self) -> str:
        """``type.label.label`` as Terraform writes it (``resource`` omitted)."""
        if self.type == "resource":
            return ".".join(self.labels)
        return ".".join((self.type, *self.labels))


_SKIP = frozenset({"new_line_or_comment"})
_Node = Tree[Token] | Token
_LITERALS = {"true": True, "false": False, "null": None}


def _trees(node: _Node) -> list[Tree[Token]]:
    if isinstance(node, Token):
        return []
    return [c for c in node.children if isinstance(c, Tree) and c.data not in _SKIP]


class _Converter:
    """Turn python-hcl2's raw lark tree into Blocks, serializing values as python-hcl2 8.x does.

    Walking the raw tree (not python-hcl2's element tree) halves parse time;
    expressions are taken verbatim from the source as ``"${...}"``.
    """

    def __init__(self, text: str, file: str) -> None:
        self.text = text
        self.file = file

    def source(self, node: _Node) -> str:
        """The node's source text, without the newlines and comments the grammar folds in."""
        if isinstance(node, Token):
            if node.start_pos is not None and node.end_pos is not None:
                return self.text[node.start_pos : node.end_pos]
            return str(node)
        tokens = [t for t in node.scan_values(lambda v: isinstance(v, Token)) if t.type != "NL_OR_COMMENT"]
        if not tokens:
            return ""
        return self.text[tokens[0].start_pos : tokens[-1].end_pos]

    def body(self, body: Tree[Token], block: Block) -> None:
        for child in _trees(body):
            if child.data == "attribute":
                name = self.name(child.children[0])
                value = self.value(child.children[-1])
                if name in block.attributes:
                    first = block.attributes[name].line
                    msg = f"attribute {name!r} is set twice (first on line {first}); keep one"
                    block.issues.append((child.meta.line, msg))
                block.attributes[name] = Attribute(name, value, child.meta.line)
            elif child.data == "block":
                block.blocks.append(self.block(child))

    def name(self, node: _Node) -> str:
        return self.source(node).strip()

    def block(self, node: Tree[Token]) -> Block:
        head: list[str] = []
        inner: Tree[Token] | None = None
        for child in node.children:
            if isinstance(child, Tree) and child.data == "body":
                inner = child
            elif isinstance(child, Tree) and child.data == "string":
                head.append(self.source(child)[1:-1])
            elif isinstance(child, Tree) and child.data not in _SKIP:
                head.append(self.name(child))
        block = Block(head[0], tuple(head[1:]), node.meta.line, file=self.file)
        if inner is not None:
            self.body(inner, block)
        return block

    def value(self, node: _Node) -> Any:
        """A value in python-hcl2 8.x form; anything computed becomes ``"${source}"``."""
        if isinstance(node, Token):
            return self.source(node)
        kind = node.data
        kids = _trees(node)
        if kind == "expr_term" and len(kids) == 1 and not isinstance(node.children[0], Token):
            return self.value(kids[0])  # not parenthesised: the term itself
        if kind in self._SCALARS:
            return self._SCALARS[kind](self, self.source(node))
        if kind == "tuple":
            return [self.value(c) for c in kids]
        if kind == "object":
            return dict(self.element(c) for c in kids)
        return "${" + self.source(node) + "}"

    _SCALARS: ClassVar[dict[str, Callable[[_Converter, str], Any]]] = {
        "int_lit": lambda _, text: int(text),
        "float_lit": lambda _, text: float(text),
        "literal_value": lambda _, text: _LITERALS[text],
        "string": lambda _, text: text,
        "identifier": lambda _, text: text,
        # python-hcl2 8.x quotes heredocs too
        "heredoc_template": lambda _, text: f'"{text.rstrip()}"',
        "heredoc_template_trim": lambda _, text: f'"{text.rstrip()}"',
    }

    def element(self, node: Tree[Token]) -> tuple[str, Any]:
        key_node, value_node = _trees(node)
        key = self.value(key_node.children[0])
        if isinstance(key, str) and key.startswith("${") and "(" not in key and "." not in key:
            key = key[2:-1]  # a bare identifier key: python-hcl2 writes it without ${}
        return str(key), self.value(value_node)


def _for_parser(text: str) -> str:
    """``text`` as python-hcl2's ASCII grammar can read it, same length so positions still match.

    Terraform accepts Unicode letters in identifiers (``locals { café = 1 }``);
    python-hcl2 does not.  Each non-ASCII letter, digit or mark becomes ``a``
    for the parser only: names and values are sliced from the original text.
    """
    if text.isascii():
        return text
    return "".join("a" if not ch.isascii() and unicodedata.category(ch)[0] in "LNM" else ch for ch in text)


def parse_text(text: str, file: str = "") -> Block:
    """Parse HCL text into a root ``Block``; raise ``HclSyntaxError`` with a line.

    A leading BOM is dropped and CRLF read as LF, as Terraform does; a lone CR
    stays what it is (inside a comment it is just a character).
    """
    text = text.removeprefix("\ufeff").replace("\r\n", "\n") + "\n"
    try:
        tree = _parser().parse(_for_parser(text))
    except UnexpectedInput as exc:
        first = (str(exc).strip().splitlines() or ["unexpected input"])[0]
        raise HclSyntaxError(first, int(getattr(exc, "line", 0) or 0)) from None
    except LarkError as exc:
        raise HclSyntaxError((str(exc).strip().splitlines() or ["cannot parse"])[0], 0) from None
    except RecursionError:
        msg = "nested too deeply for coderbundle's parser; flatten the expression or block"
        raise HclSyntaxError(msg, 0) from None
    root = Block("", (), 1, file=file)
    converter = _Converter(text, file)
    try:
        for child in _trees(tree):
            converter.body(child, root)
    except RecursionError:
        msg = "nested too deeply for coderbundle's parser; flatten the expression or block"
        raise HclSyntaxError(msg, 0) from None
    return root


def _parser() -> Any:
    """python-hcl2's LALR parser (built once, cached on disk by lark)."""
    return hcl2.parser.parser()


def warm_up() -> None:
    """Build the parser and its lexer now (before worker processes fork, so they share them)."""
    _parser().parse("a = 1\n")


def parse_file(path: Path) -> Block:
    """Parse one ``.tf`` file; unreadable, oversized or non-UTF-8 files are ``HclSyntaxError`` too."""
    try:
        size = path.stat().st_size
        if size > files.MAX_TF_BYTES:
            limit = files.MAX_TF_BYTES
            msg = f"file is {size} bytes, over the {limit} bytes coderbundle checks; split it into files"
            raise HclSyntaxError(msg, 0)
        data = path.read_bytes()
    except OSError as exc:
        raise HclSyntaxError(files.why_unreadable(path, exc), 0) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        msg = f"not valid UTF-8 (byte 0x{data[exc.start]:02x} at offset {exc.start}); save the file as UTF-8"
        raise HclSyntaxError(msg, line) from None
    return parse_text(text, file=str(path))


# Top-level block types Terraform loads, with the number of labels each must have.
_LABELS = {
    "resource": 2,
    "data": 2,
    "variable": 1,
    "output": 1,
    "module": 1,
    "provider": 1,
    "locals": 0,
    "terraform": 0,
    "check": 1,
    "moved": 0,
    "removed": 0,
    "import": 0,
}


_UNNAMED = frozenset({"locals", "terraform", "moved", "removed", "import"})


def structure_problems(files: dict[str, Block]) -> list[tuple[str, int, str]]:
    """What Terraform refuses to load although it parses: wrong label counts, names declared twice.

    Returns ``(file, line, message)``; rules never see such a tree.
    """
    found: list[tuple[str, int, str]] = []
    seen: dict[str, tuple[str, int]] = {}
    for file, root in files.items():
        for block in root.walk():
            found += [(file, line, msg) for line, msg in block.issues]
        for block in root.blocks:
            wanted = _LABELS.get(block.type)
            if wanted is not None and len(block.labels) != wanted:
                what = f"{wanted} label{'s' if wanted != 1 else ''}" if wanted else "no labels"
                msg = f"a {block.type} block needs {what}, found {len(block.labels)}; fix the block header"
                found.append((file, block.line, msg))
                continue
            names = [f"local.{k}" for k in block.attributes] if block.type == "locals" else []
            if block.type in _LABELS and block.type not in _UNNAMED:
                names = [block.address]
            if block.type == "provider":
                alias = block.get("alias")
                names = [f"provider.{block.labels[0]}" + (f".{alias}" if alias is not None else "")]
            for name in names:
                if name in seen:
                    first_file, first_line = seen[name]
                    msg = f"{name} is declared twice (first in {first_file}:{first_line}); keep one"
                    found.append((file, block.line, msg))
                else:
                    seen[name] = (file, block.line)
    return found


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
