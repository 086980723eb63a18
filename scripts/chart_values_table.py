"""Generate the values table of chart/README.md from the `# --` comments in values.yaml.

Usage: ``python scripts/chart_values_table.py [--check] [CHART_DIR]``.  Without
``--check`` the table between the README markers is rewritten; with it, the
script exits 1 if the README is stale or a value has no ``# --`` description.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

__all__ = ["Row", "main", "parse_values", "render_table"]

START = "<!-- values-table:start -->"
END = "<!-- values-table:end -->"
_KEY = re.compile(r"^(?P<indent> *)(?P<key>[A-Za-z0-9_$.-]+):(?:\s|$)")
_DOC = re.compile(r"^ *# -- ?(?P<text>.*)$")
_MISSING = object()


@dataclass(frozen=True)
class Row:
    """One documented value: dotted key, type, default (JSON) and description."""

    key: str
    type: str
    default: str
    description: str


def _lookup(values: Any, path: list[str]) -> Any:
    for part in path:
        if not isinstance(values, dict) or part not in values:
            return _MISSING
        values = values[part]
    return values


def _type_name(value: object) -> str:
    names = {bool: "bool", int: "int", float: "float", str: "string", list: "list", dict: "object"}
    return names.get(type(value), "string")


def parse_values(text: str) -> tuple[list[Row], list[str]]:
    """Return the documented rows and the dotted keys of undocumented leaves."""
    values = yaml.safe_load(text) or {}
    rows: list[Row] = []
    missing: list[str] = []
    stack: list[tuple[int, str]] = []
    documented: set[str] = set()
    doc: str | None = None
    for line in text.splitlines():
        if m := _DOC.match(line):
            doc = m["text"].strip()
            continue
        m = _KEY.match(line)
        if not m:
            continue
        indent = len(m["indent"])
        while stack and stack[-1][0] >= indent:
            stack.pop()
        path = [k for _, k in stack] + [m["key"]]
        value = _lookup(values, path)
        if value is _MISSING:  # a key inside a list item: documented on the list
            doc = None
            continue
        stack.append((indent, m["key"]))
        key = ".".join(path)
        if any(key.startswith(f"{done}.") for done in documented):
            pass  # inside a value documented as a whole (a default map)
        elif doc is not None:
            rows.append(Row(key, _type_name(value), json.dumps(value), doc))
            documented.add(key)
        elif not isinstance(value, dict) or not value:
            missing.append(key)
        doc = None
    return rows, missing


def render_table(rows: list[Row]) -> str:
    """Render rows as a Markdown table."""
    lines = ["| Key | Type | Default | Description |", "|-----|------|---------|-------------|"]
    for row in rows:
        default = row.default.replace("|", "\\|")
        description = row.description.replace("|", "\\|")
        lines.append(f"| `{row.key}` | {row.type} | `{default}` | {description} |")
    return "\n".join(lines)


def _updated_readme(readme: str, table: str) -> str:
    if START not in readme or END not in readme:
        msg = f"README has no {START} … {END} markers"
        raise SystemExit(msg)
    head, rest = readme.split(START, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{START}\n{table}\n{END}{tail}"


def main(argv: list[str] | None = None) -> int:
    """Rewrite or check the README values table; return the exit code."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("chart", nargs="?", type=Path, default=Path("chart"))
    parser.add_argument("--check", action="store_true", help="fail if the README is stale")
    args = parser.parse_args(argv)
    values_path: Path = args.chart / "values.yaml"
    readme_path: Path = args.chart / "README.md"
    rows, missing = parse_values(values_path.read_text(encoding="utf-8"))
    for key in missing:
        print(f"{values_path}: {key}: no `# --` description above the key; add one", file=sys.stderr)
    readme = readme_path.read_text(encoding="utf-8")
    updated = _updated_readme(readme, render_table(rows))
    if args.check:
        if updated != readme:
            print(
                f"{readme_path}: values table is stale; run python scripts/chart_values_table.py",
                file=sys.stderr,
            )
            return 1
        return 1 if missing else 0
    readme_path.write_text(updated, encoding="utf-8")
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
