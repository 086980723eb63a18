"""Rules about what Coder uploads and shows: README frontmatter, archive size."""

from __future__ import annotations

from typing import TYPE_CHECKING

import yaml

from coderbundle import files
from coderbundle.errors import ToolError
from coderbundle.rules import Model, rule

if TYPE_CHECKING:
    from collections.abc import Iterator

    from coderbundle.findings import Problem

FRONTMATTER_KEYS = ("display_name", "description", "icon", "tags")
UPLOAD_LIMIT = 1 << 20  # Coder's TemplateArchiveLimit, in bytes
_BLOCK = 512


def _frontmatter(text: str) -> dict[str, object] | str:
    """The README's frontmatter mapping, or why it cannot be read."""
    if not text.startswith("---\n"):
        return "README.md must start with a --- frontmatter fence"
    end = text.find("\n---", 4)
    if end < 0:
        return "README.md frontmatter has no closing --- fence"
    try:
        data = yaml.safe_load(text[4:end])
    except RecursionError:
        return "README.md frontmatter is nested too deeply"
    except yaml.YAMLError as exc:
        return f"README.md frontmatter is not valid YAML: {exc}".splitlines()[0]
    return data if isinstance(data, dict) else "README.md frontmatter must be a YAML mapping"


@rule("CB117")
def readme_frontmatter(m: Model) -> Iterator[Problem]:
    """README frontmatter has ``display_name``, ``description``, ``icon`` and ``tags``."""
    path = m.rendered.path / "README.md"
    try:
        text = files.read_text(path, error=ToolError)
    except ToolError as exc:
        why = str(exc).removeprefix(f"{path}:").lstrip("0123456789:").strip()
        msg = f"README.md cannot be read ({why}); Coder shows it as the template page"
        yield m.problem(None, "CB117", msg)
        return
    data = _frontmatter(text)
    if isinstance(data, str):
        yield m.problem(None, "CB117", data, 1)
        return
    for key in FRONTMATTER_KEYS:
        if not data.get(key):
            yield m.problem(None, "CB117", f"README.md frontmatter lacks {key!r}; add it", 1)
    tags = data.get("tags")
    if tags and not (isinstance(tags, list) and all(isinstance(t, str) for t in tags)):
        yield m.problem(None, "CB117", "README.md frontmatter 'tags' must be a list of strings", 1)


def archive_size(m: Model) -> int:
    """Size of the tar ``coder templates push`` uploads (ustar: header + padded data)."""
    total = 2 * _BLOCK
    for rel in m.rendered.files:
        size = (m.rendered.path / rel).stat().st_size
        total += _BLOCK + -(-size // _BLOCK) * _BLOCK
    return total


@rule("CB118")
def upload_size(m: Model) -> Iterator[Problem]:
    """The rendered directory stays under Coder's 1 MiB upload limit."""
    size = archive_size(m)
    if size > UPLOAD_LIMIT:
        msg = f"template archive is {size} bytes; Coder rejects uploads over {UPLOAD_LIMIT} bytes"
        yield m.problem(None, "CB118", msg)
