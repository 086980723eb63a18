"""Find template sources: ``templates/<name>/template.toml`` plus its own files.

Folders starting with ``_`` (``templates/_shared``) hold partials and data that
several templates share; they are not templates.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from coderbundle.errors import SettingsError, UsageError

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

__all__ = ["SETTINGS_FILE", "Template", "TemplateSettings", "Tool", "find_templates"]

SETTINGS_FILE = "template.toml"
# codersdk/name.go: template names are short, alphanumeric with single hyphens.
_NAME = re.compile(r"^[a-zA-Z0-9]+(?:-[a-zA-Z0-9]+)*$")
_REQUIRED = ("display_name", "description", "icon", "tags", "image")
_KNOWN = {*_REQUIRED, "agent_description", "offers", "tools", "variables"}
_VARIABLE_KEYS = {"env", "description"}
_TOOL_KEYS = {"name", "check"}


@dataclass(frozen=True)
class Tool:
    """A tool the template's README promises: ``check`` must exit 0 in the running workspace."""

    name: str
    check: str


@dataclass(frozen=True)
class TemplateSettings:
    """The small settings file of one template."""

    display_name: str
    description: str
    icon: str
    tags: tuple[str, ...]
    image: str
    agent_description: str = ""
    offers: dict[str, Any] = field(default_factory=dict)
    # Terraform variables set at publish time from the environment:
    # {"anthropic_api_key": {"env": "ANTHROPIC_API_KEY", "description": "..."}}.
    variables: dict[str, dict[str, str]] = field(default_factory=dict)
    # The tools the README promises, one [[tools]] table each: the README lists them
    # and the image start test runs each ``check`` in a started workspace.
    tools: tuple[Tool, ...] = ()


@dataclass(frozen=True)
class Template:
    """One template source folder and its parsed settings."""

    name: str
    source: Path
    settings: TemplateSettings


def _load_settings(folder: Path) -> TemplateSettings:
    path = folder / SETTINGS_FILE
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        msg = f"{path}: missing settings file; every template folder needs {SETTINGS_FILE}"
        raise SettingsError(msg) from None
    except tomllib.TOMLDecodeError as exc:
        msg = f"{path}: invalid TOML: {exc}; fix the syntax"
        raise SettingsError(msg) from None
    missing = [k for k in _REQUIRED if k not in data]
    if missing:
        msg = f"{path}: missing key {missing[0]!r}; add it (keys: {', '.join(_REQUIRED)})"
        raise SettingsError(msg)
    unknown = sorted(set(data) - _KNOWN)
    if unknown:
        msg = f"{path}: unknown key {unknown[0]!r}; known keys: {', '.join(sorted(_KNOWN))}"
        raise SettingsError(msg)
    if not isinstance(data["tags"], list) or not all(isinstance(t, str) for t in data["tags"]):
        msg = f"{path}: 'tags' must be a list of strings"
        raise SettingsError(msg)
    for name, spec in data.get("variables", {}).items():
        if not isinstance(spec, dict) or "env" not in spec or set(spec) - _VARIABLE_KEYS:
            msg = f"{path}: variables.{name} needs exactly an 'env' key (and an optional 'description')"
            raise SettingsError(msg)
    tools = _load_tools(path, data.get("tools", []))
    return TemplateSettings(**{**data, "tags": tuple(data["tags"]), "tools": tools})


def _load_tools(path: Path, entries: object) -> tuple[Tool, ...]:
    """``[[tools]]`` tables with exactly a non-empty ``name`` and ``check``, names unique."""
    if not isinstance(entries, list):
        msg = f'{path}: \'tools\' must be an array of tables: [[tools]] name = "..." check = "..."'
        raise SettingsError(msg)
    tools: list[Tool] = []
    for index, entry in enumerate(entries, 1):
        if (
            not isinstance(entry, dict)
            or set(entry) != _TOOL_KEYS
            or not all(isinstance(v, str) and v.strip() for v in entry.values())
        ):
            msg = (
                f"{path}: tools entry {index} needs exactly a non-empty 'name' and 'check' (a shell command)"
            )
            raise SettingsError(msg)
        if any(t.name == entry["name"] for t in tools):
            msg = f"{path}: tools entry {index} repeats the name {entry['name']!r}; give each tool one entry"
            raise SettingsError(msg)
        tools.append(Tool(entry["name"], entry["check"]))
    return tuple(tools)


def find_templates(templates_dir: Path, names: Sequence[str] = ()) -> list[Template]:
    """Return the templates under ``templates_dir`` (all, or the ``names`` asked for)."""
    if not templates_dir.is_dir():
        msg = f"{templates_dir}: no templates directory; create templates/<name>/"
        raise SettingsError(msg)
    folders = sorted(p for p in templates_dir.iterdir() if p.is_dir() and p.name[0] not in "_.")
    available = {p.name: p for p in folders}
    for name in names:
        if name not in available:
            known = ", ".join(available) or "none"
            msg = f"unknown template {name!r}; available: {known}"
            raise UsageError(msg)
    chosen = [available[n] for n in dict.fromkeys(names)] if names else folders
    templates = []
    for folder in chosen:
        if not _NAME.match(folder.name) or len(folder.name) >= 32:
            msg = f"{folder}: template name must be < 32 chars of letters, digits, single hyphens"
            raise SettingsError(msg)
        templates.append(Template(folder.name, folder, _load_settings(folder)))
    return templates
