"""The declared shape of the settings files, checked when they load.

``bundle.toml``, ``template.toml`` and ``versions.toml`` are checked against
the shapes below: every key known, every value of the declared type.  A
mistake is one ``SettingsError`` naming the file and the dotted key, with a
did-you-mean suggestion for a misspelled key.  Checks of a value's content
(a duration, a URL, a namespace) stay with the code that reads it.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from coderbundle.errors import SettingsError

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

__all__ = [
    "BUNDLE_SHAPE",
    "TEMPLATE_SHAPE",
    "VERSIONS_SHAPE",
    "AnyValue",
    "ArrayOf",
    "Enum",
    "ListOf",
    "MapOf",
    "Table",
    "check_shape",
    "suggest",
]


@dataclass(frozen=True)
class Table:
    """A TOML table with known keys (``required`` ones must be present)."""

    keys: dict[str, Any]
    required: frozenset[str] = field(default_factory=frozenset)


@dataclass(frozen=True)
class MapOf:
    """A table whose keys are names the user picks, each value of one shape."""

    value: Any


@dataclass(frozen=True)
class ListOf:
    """An array of one scalar type."""

    item: type


@dataclass(frozen=True)
class ArrayOf:
    """An array of tables (``[[name]]``)."""

    table: Table


@dataclass(frozen=True)
class Enum:
    """A string from a fixed set."""

    choices: tuple[str, ...]


class AnyValue:
    """Anything (free-form data handed to the templates as is)."""


_STR = str
BUNDLE_SHAPE = Table(
    {
        "workspace": Table(
            {
                "cpu_request": _STR,
                "memory_request": _STR,
                "home_disk_size": _STR,
                "inactivity_timeout": _STR,
                "dormancy_deletion": _STR,
                "namespace": _STR,
                "values_file": _STR,
                "subdomain_apps": bool,
            }
        ),
        "registry": Table({"host": _STR, "prefix": _STR}),
        "coder": Table({"organization": _STR, "executable": _STR, "concurrency": int, "external_auth": _STR}),
        "images": Table(
            {
                "extra_ca_cert": _STR,
                "upstream_image": _STR,
                "download_source": Enum(("upstream", "registries")),
                "pinned": MapOf(_STR),
            }
        ),
        "terraform": Table({"binary": _STR, "provider_mirror": _STR, "module_mirror": _STR}),
        "rollout": Table({"canary": ListOf(str), "timeout": _STR}),
    }
)

TEMPLATE_SHAPE = Table(
    {
        "display_name": _STR,
        "description": _STR,
        "icon": _STR,
        "tags": ListOf(str),
        "image": _STR,
        "agent_description": _STR,
        "offers": MapOf(AnyValue),
        "variables": MapOf(Table({"env": _STR, "description": _STR}, frozenset({"env"}))),
        "tools": ArrayOf(Table({"name": _STR, "check": _STR}, frozenset({"name", "check"}))),
        # Findings of the upgrade-safety gate accepted on purpose (docs/publishing.md);
        # volumes: resources (types or addresses) holding data, for `coderbundle impact`.
        "upgrade": Table({"accept": ListOf(str), "volumes": ListOf(str)}),
    },
    frozenset({"display_name", "description", "icon", "tags", "image"}),
)

_PIN = Table({"source": _STR, "version": _STR}, frozenset({"source", "version"}))
VERSIONS_SHAPE = Table(
    {
        "terraform": Table({"required_version": _STR, "version": _STR}),
        "providers": MapOf(_PIN),
        "modules": MapOf(_PIN),
    }
)

_TYPE_NAMES = {str: "a string", int: "an integer", bool: "true or false", float: "a number"}


def suggest(word: str, known: Any) -> str:
    """``"; did you mean 'x'?"`` for the closest known name, or ``""``."""
    close = difflib.get_close_matches(word, list(known), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def _describe(value: Any) -> str:
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        shown = value if len(value) <= 40 else value[:37] + "..."
        return f"the string {shown!r}"
    if isinstance(value, int | float):
        return f"the number {value}"
    return type(value).__name__


def _want(shape: Any) -> str:
    if isinstance(shape, Table | MapOf):
        return "a table"
    if isinstance(shape, ListOf):
        return f"an array of {_TYPE_NAMES.get(shape.item, 'values').removeprefix('a ').removeprefix('an ')}s"
    if isinstance(shape, ArrayOf):
        return "an array of tables"
    if isinstance(shape, Enum):
        return " or ".join(repr(c) for c in shape.choices)
    return _TYPE_NAMES.get(shape, str(shape))


def _fits(value: Any, kind: type) -> bool:
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if kind is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    return isinstance(value, kind)


def check_shape(data: Any, shape: Any, source: Path, key: str = "") -> None:
    """Raise ``SettingsError`` at the first key of ``data`` that does not fit ``shape``."""
    if shape is AnyValue:
        return
    checker = _CHECKERS.get(type(shape), _check_scalar)
    checker(data, shape, source, key)


def _fail(source: Path, key: str, what: str) -> None:
    where = f"{source}: {key}" if key else f"{source}:"
    raise SettingsError(f"{where} {what}")


def _check_table(data: Any, shape: Table, source: Path, key: str) -> None:
    if not isinstance(data, dict):
        _fail(source, key, f"must be {_want(shape)}, not {_describe(data)}; see README.md for the layout")
    for name in data:
        if name not in shape.keys:
            hint = suggest(name, shape.keys) or f"; known keys: {', '.join(sorted(shape.keys))}"
            raise SettingsError(f"{source}: unknown key {_join(key, name)!r}{hint}")
    for name in sorted(shape.required - set(data)):
        raise SettingsError(f"{source}: missing key {_join(key, name)!r}; add it")
    for name, value in data.items():
        check_shape(value, shape.keys[name], source, _join(key, name))


def _check_map(data: Any, shape: MapOf, source: Path, key: str) -> None:
    if not isinstance(data, dict):
        _fail(source, key, f"must be a table, not {_describe(data)}")
    for name, value in data.items():
        check_shape(value, shape.value, source, _join(key, name))


def _check_list(data: Any, shape: ListOf, source: Path, key: str) -> None:
    if not isinstance(data, list) or not all(_fits(v, shape.item) for v in data):
        _fail(source, key, f"must be {_want(shape)}, not {_describe(data)}")


def _check_array(data: Any, shape: ArrayOf, source: Path, key: str) -> None:
    if not isinstance(data, list):
        _fail(source, key, f"must be an array of tables ([[{key}]]), not {_describe(data)}")
    for i, item in enumerate(data):
        check_shape(item, shape.table, source, f"{key}[{i}]")


def _check_enum(data: Any, shape: Enum, source: Path, key: str) -> None:
    if data not in shape.choices:
        _fail(source, key, f"must be {_want(shape)}, not {_describe(data)}")


def _check_scalar(data: Any, shape: Any, source: Path, key: str) -> None:
    if not _fits(data, shape):
        _fail(source, key, f"must be {_want(shape)}, not {_describe(data)}; fix the value")


_CHECKERS: dict[type, Callable[[Any, Any, Path, str], None]] = {
    Table: _check_table,
    MapOf: _check_map,
    ListOf: _check_list,
    ArrayOf: _check_array,
    Enum: _check_enum,
}


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name
