"""The one reader of the chart's values files: `publish` (bundle.toml's values_file) and `deploy -f`.

Both read the files the same way (YAML, one-line errors with file and line)
and hold them to the same strictness: the chart's ``values.schema.json``
(``additionalProperties: false``), so a typo such as
``coder.workspaces.defaultResouces`` stops both instead of being ignored by one.
Schema findings name the user's file and line, never the schema file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import yaml

from coderbundle.files import decode, why_unreadable

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence
    from pathlib import Path

    from coderbundle.errors import ToolError

__all__ = ["SCHEMA_FILE", "ValuesFile", "check_schema", "merge", "read_and_check", "read_values"]

SCHEMA_FILE = "values.schema.json"


@dataclass(frozen=True)
class ValuesFile:
    """One parsed values file: its data and its YAML node tree (for line numbers)."""

    path: Path
    data: dict[str, Any]
    node: yaml.Node | None


def _yaml_error(path: Path, exc: yaml.YAMLError, error: type[ToolError]) -> ToolError:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    return error(f"{where}: invalid YAML ({problem}); fix the values file")


def read_values(
    path: Path,
    *,
    error: type[ToolError],
    hint: str = "check the path",
    unreadable: type[ToolError] | None = None,
) -> ValuesFile:
    """Read one values file: a YAML mapping, or ``error`` in one line with file and line.

    ``unreadable`` (default ``error``) is raised for a file that cannot be read at all:
    for ``deploy -f`` that is a usage error (exit 2), not a finding.
    """
    try:
        raw = path.read_bytes()
    except OSError as exc:
        msg = f"{path}: cannot read values file ({why_unreadable(path, exc)}); {hint}"
        raise (unreadable or error)(msg) from None
    text = decode(raw, path, error=error)
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise _yaml_error(path, exc, error) from None
    except RecursionError:
        msg = f"{path}: invalid YAML (nested too deeply); fix the values file"
        raise error(msg) from None
    if data is None:
        return ValuesFile(path, {}, None)
    if not isinstance(data, dict):
        msg = f"{path}: a values file must be a YAML mapping of chart keys"
        raise error(msg)
    return ValuesFile(path, data, node)


def merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Deep-merge like ``helm -f a -f b``: maps merge, everything else is replaced."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _line_of(node: yaml.Node | None, path: Sequence[Any]) -> int | None:
    """The 1-based line of the key at ``path`` in a composed YAML tree, or None."""
    line = None
    for step in path:
        if isinstance(node, yaml.MappingNode):
            found = next(((k, v) for k, v in node.value if getattr(k, "value", None) == str(step)), None)
            if found is None:
                return line
            line, node = found[0].start_mark.line + 1, found[1]
        elif isinstance(node, yaml.SequenceNode) and isinstance(step, int) and step < len(node.value):
            node = node.value[step]
            line = node.start_mark.line + 1
        else:
            return line
    return line


def _where(files: Sequence[ValuesFile], path: Sequence[Any]) -> str:
    """``file:line`` of the last file (the one that wins) that sets ``path``."""
    for vf in reversed(files):
        line = _line_of(vf.node, path)
        if line is not None:
            return f"{vf.path}:{line}"
    return str(files[-1].path) if files else "values"


def check_schema(files: Sequence[ValuesFile], schema_path: Path, *, error: type[ToolError]) -> dict[str, Any]:
    """Merge ``files`` and check them against the chart's schema; ``error`` names the user's file and line."""
    import jsonschema  # noqa: PLC0415 - only when a values file is read

    merged: dict[str, Any] = {}
    for vf in files:
        merged = merge(merged, vf.data)
    try:
        schema = json.loads(schema_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        msg = f"{schema_path}: cannot read the chart's schema ({exc}); restore the file"
        raise error(msg) from None
    validator = jsonschema.Draft7Validator(schema)
    found = sorted(validator.iter_errors(merged), key=lambda e: list(map(str, e.absolute_path)))
    if not found:
        return merged
    first = found[0]
    path = list(first.absolute_path)
    if first.validator == "additionalProperties":
        extra = sorted(set(first.instance) - set(first.schema.get("properties", {})))
        path += extra[:1]
        detail = f"unknown key {'.'.join(map(str, path))}"
    else:
        detail = f"{'.'.join(map(str, path)) or 'the document'}: {first.message}"
    more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
    msg = f"{_where(files, path)}: {detail}{more}; fix the values file (keys in chart/README.md)"
    raise error(msg)


def read_and_check(
    paths: Iterable[Path],
    chart_dir: Path,
    *,
    error: type[ToolError],
    hint: str = "check the path",
    unreadable: type[ToolError] | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Read ``paths`` in order (later files win); check them over the chart's defaults against its schema.

    Returns the merge of the user's files alone and the merge over the chart's
    ``values.yaml`` (what Helm renders with).
    """
    files = [read_values(p, error=error, hint=hint, unreadable=unreadable) for p in paths]
    defaults = read_values(chart_dir / "values.yaml", error=error, hint="restore the chart")
    merged = check_schema([defaults, *files], chart_dir / SCHEMA_FILE, error=error)
    own: dict[str, Any] = {}
    for vf in files:
        own = merge(own, vf.data)
    return own, merged
