"""Map a line of a rendered ``.tf`` file back to the template source line it came from.

Rendering goes through jinja2 includes, macros and blocks, so there is no
exact line table.  A rendered line is matched against every source line of
the template and of ``templates/_shared/``: literal lines by their text, lines
with ``{{ ... }}`` by their literal parts; ties are broken by how many
neighbouring lines agree.  Lines with too little text to tell (``}``, blank)
are mapped through the nearest telling line above them.  The answer is a hint
for humans ("from templates/_shared/agent.tf.j2:14"), or nothing when unsure.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from coderbundle.render import RenderedTemplate

__all__ = ["annotate", "source_line"]

_JINJA = re.compile(r"\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\}")
_MIN_TEXT = 4  # characters of literal text a line needs to be matched on its own
_CONTEXT = 3


@functools.cache
def _source_lines(folder: Path) -> tuple[tuple[str, tuple[str, ...]], ...]:
    files = []
    for path in sorted(folder.glob("*")):
        if path.is_file() and path.suffix in {".j2", ".tf"}:
            try:
                text = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError):
                continue
            files.append((str(path), tuple(line.strip() for line in text.splitlines())))
    return tuple(files)


@functools.cache
def _pattern(source: str) -> re.Pattern[str] | None:
    literal = _JINJA.sub("", source)
    if len(literal.strip()) < _MIN_TEXT or source.startswith(("{%", "{#")):
        return None
    pieces = [re.escape(p) for p in _JINJA.split(source)]
    return re.compile(".*?".join(pieces) + "$") if len(pieces) > 1 else None


def _matches(source: str, rendered: str) -> bool:
    if source == rendered:
        return len(rendered) >= _MIN_TEXT
    pattern = _pattern(source)
    return pattern is not None and pattern.match(rendered) is not None


def _score(src: tuple[str, ...], at: int, rendered: list[str], line: int) -> int:
    score = 0
    for delta in range(-_CONTEXT, _CONTEXT + 1):
        if delta and 0 <= at + delta < len(src) and 0 <= line + delta < len(rendered):
            score += _matches(src[at + delta], rendered[line + delta])
    return score


def source_line(folders: list[Path], rendered: list[str], line: int) -> tuple[str, int] | None:
    """``(source file, 1-based line)`` for 0-based ``line`` of ``rendered``, or None when unsure."""
    anchor = line
    while anchor >= 0 and len(rendered[anchor]) < _MIN_TEXT:
        anchor -= 1
    if anchor < 0:
        return None
    candidates = [
        (_score(src, i, rendered, anchor), name, i)
        for folder in folders
        for name, src in _source_lines(folder)
        for i, text in enumerate(src)
        if _matches(text, rendered[anchor])
    ]
    if not candidates:
        return None
    candidates.sort(key=lambda c: -c[0])
    if len(candidates) > 1 and candidates[0][0] == candidates[1][0]:
        return None
    _, name, index = candidates[0]
    return name, index + 1 + (line - anchor)


def annotate(rendered: RenderedTemplate, file: str, line: int, message: str) -> str:
    """``message`` plus " (from <source>:<line>)" when ``file:line`` maps to a template source."""
    path = Path(file)
    if line <= 0 or not path.is_file():
        return message
    try:
        lines = [ln.strip() for ln in path.read_text(encoding="utf-8").splitlines()]
    except (OSError, UnicodeDecodeError):
        return message
    if line > len(lines):
        return message
    source = rendered.template.source
    found = source_line([source, source.parent / "_shared"], lines, line - 1)
    if found is None:
        return message
    name, number = found
    try:
        shown = Path(name).relative_to(source.parent.parent)
    except ValueError:
        shown = Path(name)
    return f"{message} (from {shown}:{number})"
