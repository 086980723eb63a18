"""Render template sources into ``build/templates/<name>/``: what ``coder templates push`` uploads.

Files ending in ``.j2`` are jinja2 templates (StrictUndefined) and lose the
suffix; ``template.toml`` stays behind; every other file is copied as is.
``README.md`` gets Coder's frontmatter from the template's settings.  Partials
that several templates share live in ``templates/_shared/`` and are included
by name.  Output is deterministic: same sources, byte-identical files.
"""

from __future__ import annotations

import functools
import hashlib
import shutil
import tomllib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jinja2
import yaml

from coderbundle.discover import SETTINGS_FILE
from coderbundle.errors import RenderError, SettingsError

if TYPE_CHECKING:
    from coderbundle.discover import Template
    from coderbundle.settings import Settings

__all__ = ["SHARED_DIR", "RenderedTemplate", "digest_tree", "load_versions", "render_template"]

SHARED_DIR = "_shared"
VERSIONS_FILE = "versions.toml"


@dataclass(frozen=True)
class RenderedTemplate:
    """A rendered template directory and the content digest of all its files."""

    template: Template
    path: Path
    files: tuple[str, ...]
    digest: str

    @property
    def name(self) -> str:
        """The template name (and the Coder template it publishes to)."""
        return self.template.name


def load_versions(templates_dir: Path) -> dict[str, Any]:
    """Read ``templates/_shared/versions.toml``: every pinned version in one place."""
    path = templates_dir / SHARED_DIR / VERSIONS_FILE
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except tomllib.TOMLDecodeError as exc:
        msg = f"{path}: invalid TOML: {exc}; fix the syntax"
        raise SettingsError(msg) from None


class _BundleEnvironment(jinja2.Environment):
    """One environment for all templates of a run, so shared partials compile once.

    Templates are loaded as ``<template>/<file>``; a name included from there
    resolves to the template's own file when it has one, else to ``_shared/``.
    """

    def join_path(self, template: str, parent: str) -> str:
        folder = parent.split("/", 1)[0] if "/" in parent else ""
        if folder and self.loader is not None:
            local = f"{folder}/{template}"
            for base in self.loader.searchpath:  # type: ignore[attr-defined]
                if (Path(base) / local).is_file():
                    return local
        return template


@functools.cache
def _environment(templates_dir: Path, cache_dir: Path) -> jinja2.Environment:
    cache_dir.mkdir(parents=True, exist_ok=True)
    env = _BundleEnvironment(
        loader=jinja2.FileSystemLoader([str(templates_dir), str(templates_dir / SHARED_DIR)]),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        bytecode_cache=jinja2.FileSystemBytecodeCache(str(cache_dir)),
    )
    env.filters["tfstring"] = _tf_string
    return env


def _tf_string(value: object) -> str:
    """Quote a Python value as a Terraform string literal."""
    text = str(value).replace("\\", "\\\\").replace('"', '\\"').replace("${", "$${")
    return f'"{text}"'


def _where(exc: BaseException, fallback: str) -> str:
    """``file:line`` of the jinja2 source frame an error was raised in."""
    lineno = getattr(exc, "lineno", None)
    filename = getattr(exc, "filename", None)
    if lineno and filename:
        return f"{filename}:{lineno}"
    tb = exc.__traceback__
    found = fallback
    while tb is not None:
        name = tb.tb_frame.f_code.co_filename
        if name.endswith(".j2") or "/templates/" in name:
            found = f"{name}:{tb.tb_lineno}"
        tb = tb.tb_next
    return found


def _render_one(env: jinja2.Environment, name: str, context: dict[str, Any], source: Path) -> str:
    try:
        return env.get_template(name).render(context)
    except jinja2.TemplateNotFound as exc:
        msg = f"{source / name}: included file {exc.name!r} not found in the template or _shared"
        raise RenderError(msg) from None
    except jinja2.TemplateSyntaxError as exc:
        msg = f"{_where(exc, str(source / name))}: jinja2 syntax error: {exc.message}"
        raise RenderError(msg) from None
    except jinja2.UndefinedError as exc:
        where = _where(exc, str(source / name))
        msg = f"{where}: {exc.message}; define it in template.toml or fix the name"
        raise RenderError(msg) from None


def _frontmatter(template: Template) -> str:
    s = template.settings
    meta: dict[str, Any] = {
        "display_name": s.display_name,
        "description": s.description,
        "icon": s.icon,
        "tags": list(s.tags),
    }
    if s.agent_description:
        meta["agent_description"] = s.agent_description
    body = yaml.safe_dump(meta, sort_keys=False, allow_unicode=True, width=1000)
    return f"---\n{body}---\n\n"


def digest_tree(path: Path, files: tuple[str, ...]) -> str:
    """sha256 over the relative names and bytes of ``files`` under ``path``."""
    h = hashlib.sha256()
    for rel in files:
        data = (path / rel).read_bytes()
        h.update(f"{rel}\0{len(data)}\0".encode())
        h.update(data)
    return h.hexdigest()


def _context(template: Template, settings: Settings, versions: dict[str, Any]) -> dict[str, Any]:
    s = template.settings
    return {
        "template": {"name": template.name, **asdict(s), "tags": list(s.tags)},
        "offers": s.offers,
        "workspace": {
            **asdict(settings.workspace),
            "home_disk_gib": settings.workspace.home_disk_gib,
        },
        "versions": versions,
        # For the image variable's default; the publish step passes the pinned image.
        "registry": {"host": settings.registry, "prefix": settings.repository_prefix},
    }


def render_template(template: Template, settings: Settings, out_root: Path) -> RenderedTemplate:
    """Render ``template`` into ``out_root/<name>/`` and return what was written."""
    env = _environment(settings.templates_dir, settings.build_dir / ".cache" / "jinja")
    context = _context(template, settings, load_versions(settings.templates_dir))
    outputs: dict[str, bytes] = {}
    for src in sorted(p for p in template.source.rglob("*") if p.is_file()):
        rel = src.relative_to(template.source).as_posix()
        if rel == SETTINGS_FILE or "/." in f"/{rel}":
            continue
        if rel.endswith(".j2"):
            text = _render_one(env, f"{template.name}/{rel}", context, template.source.parent)
            outputs[rel.removesuffix(".j2")] = text.encode()
        else:
            outputs[rel] = src.read_bytes()
    if "README.md" not in outputs:
        msg = f"{template.source}: no README.md or README.md.j2; add one (it becomes the page in Coder)"
        raise RenderError(msg)
    outputs["README.md"] = _frontmatter(template).encode() + outputs["README.md"]
    target = out_root / template.name
    staging = out_root / f".{template.name}.tmp"
    shutil.rmtree(staging, ignore_errors=True)
    for rel, data in outputs.items():
        dest = staging / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(data)
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)
    files = tuple(sorted(outputs))
    return RenderedTemplate(template, target, files, digest_tree(target, files))
