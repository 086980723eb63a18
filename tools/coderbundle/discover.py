"""Find template sources: ``templates/<name>/template.toml`` plus its own files.

Folders starting with ``_`` (``templates/_shared``) hold partials and data that
several templates share; they are not templates.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from coderbundle import files
from coderbundle.errors import SettingsError, UsageError
from coderbundle.shape import TEMPLATE_SHAPE, check_shape, suggest

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

__all__ = ["SETTINGS_FILE", "Template", "TemplateSettings", "Tool", "find_templates"]

SETTINGS_FILE = "template.toml"
# codersdk/name.go: template names are short, alphanumeric with single hyphens.
_NAME = re.compile(r"^[a-zA-Z0-9]+(?:-[a-zA-Z0-9]+)*$")
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
    # [upgrade] accept: upgrade-gate findings accepted on purpose ("parameter-removed:old").
    accept: tuple[str, ...] = ()
    # [upgrade] volumes: resource types or addresses that hold data beyond upgrade_gate.VOLUME_TYPES
    # ("terraform_data.home_volume"); `coderbundle impact` lists their replacement first.
    volumes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Template:
    """One template source folder and its parsed settings."""

    name: str
    source: Path
    settings: TemplateSettings


def _load_settings(folder: Path) -> TemplateSettings:
    path = folder / SETTINGS_FILE
    if not path.exists() and not path.is_symlink():
        msg = f"{path}: missing settings file; every template folder needs {SETTINGS_FILE}"
        raise SettingsError(msg)
    data = files.read_toml(path)
    check_shape(data, TEMPLATE_SHAPE, path)
    images = folder.parent.parent / "images"
    if images.is_dir():
        available = sorted(p.name for p in images.iterdir() if p.is_dir())
        if data["image"] not in available:
            hint = suggest(data["image"], available) or f"; available: {', '.join(available) or 'none'}"
            msg = f"{path}: image {data['image']!r} matches no folder in images/{hint}"
            raise SettingsError(msg)
    known = TemplateSettings.__dataclass_fields__
    values = {k: v for k, v in data.items() if k in known}
    tools = _load_tools(path, data.get("tools", []))
    upgrade = data.get("upgrade", {})
    accept, volumes = tuple(upgrade.get("accept", ())), tuple(upgrade.get("volumes", ()))
    fixed = {"tags": tuple(data["tags"]), "tools": tools, "accept": accept, "volumes": volumes}
    return TemplateSettings(**{**values, **fixed})


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


def _folders(templates_dir: Path) -> list[Path]:
    """Template folders; a symlink that leads nowhere (dangling, or a loop) is an error, not skipped."""
    found = []
    try:
        entries = sorted(templates_dir.iterdir())
    except OSError as exc:
        raise SettingsError(f"{templates_dir}: {files.why_unreadable(templates_dir, exc)}") from None
    for p in entries:
        if p.name[0] in "_.":
            continue
        if p.is_symlink() and not p.exists():
            try:
                p.stat()
            except OSError as exc:
                raise SettingsError(f"{p}: {files.why_unreadable(p, exc)}") from None
        if p.is_dir():
            found.append(p)
    return found


def find_templates(templates_dir: Path, names: Sequence[str] = ()) -> list[Template]:
    """Return the templates under ``templates_dir`` (all, or the ``names`` asked for)."""
    if not templates_dir.is_dir():
        msg = f"{templates_dir}: no templates directory; create templates/<name>/"
        raise SettingsError(msg)
    folders = _folders(templates_dir)
    available = {p.name: p for p in folders}
    for name in names:
        if name not in available:
            known = ", ".join(available) or "none"
            msg = f"unknown template {name!r}; available: {known}"
            raise UsageError(msg)
    chosen = [available[n] for n in dict.fromkeys(names)] if names else folders
    templates = []
    for folder in chosen:
        if not _NAME.fullmatch(folder.name) or len(folder.name) >= 32:
            msg = f"{folder}: template name must be < 32 chars of letters, digits, single hyphens; rename it"
            raise SettingsError(msg)
        templates.append(Template(folder.name, folder, _load_settings(folder)))
    return templates
