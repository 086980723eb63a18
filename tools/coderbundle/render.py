"""Render template sources into ``build/templates/<name>/``: what ``coder templates push`` uploads.

Files ending in ``.j2`` are jinja2 templates (StrictUndefined) and lose the
suffix; ``template.toml`` stays behind; every other file is copied as is.
``README.md`` gets Coder's frontmatter from the template's settings.  Partials
that several templates share live in ``templates/_shared/`` and are included
by name.  Output is deterministic: same sources, byte-identical files.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import shutil
import signal
import threading
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jinja2
import jinja2.runtime
import yaml
from jinja2.exceptions import SecurityError
from jinja2.loaders import split_template_path
from jinja2.sandbox import SandboxedEnvironment

from coderbundle import files
from coderbundle.discover import SETTINGS_FILE
from coderbundle.errors import EnvError, RenderError
from coderbundle.shape import VERSIONS_SHAPE, check_shape

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from coderbundle.discover import Template
    from coderbundle.settings import Settings

__all__ = ["SHARED_DIR", "RenderedTemplate", "digest_tree", "load_versions", "render_template"]

SHARED_DIR = "_shared"
VERSIONS_FILE = "versions.toml"
# Coder accepts template archives up to 1 MiB, so no rendered file may be larger;
# a .tf file has a lower bound (files.MAX_TF_BYTES) so terraform fmt stays fast.
MAX_RENDERED_FILE = files.MAX_UPLOAD_BYTES
RENDER_SECONDS = 30.0  # per .j2 file; a runaway loop becomes a RenderError
_MAX_RENDERED = 1 << 20  # items a `*` may produce
_MAX_EXPONENT = 1000


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
    if not path.exists() and not path.is_symlink():
        return {}
    data = files.read_toml(path)
    check_shape(data, VERSIONS_SHAPE, path)
    return data


class _SourceLoader(jinja2.FileSystemLoader):
    """Jinja's file loader, reading through the one file door (bad UTF-8 names the file and line)."""

    def get_source(
        self, environment: jinja2.Environment, template: str
    ) -> tuple[str, str, Callable[[], bool]]:
        del environment
        pieces = split_template_path(template)
        for base in self.searchpath:
            path = Path(base, *pieces)
            if not (path.is_file() or path.is_symlink()):
                continue
            text = files.read_text(path, error=RenderError, limit=files.MAX_SOURCE_BYTES)
            mtime = _mtime(path)
            return text, str(path), lambda path=path, mtime=mtime: _mtime(path) == mtime
        raise jinja2.TemplateNotFound(template)


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return -1.0


class _BundleEnvironment(SandboxedEnvironment):
    """One environment for all templates of a run, so shared partials compile once.

    Templates are loaded as ``<template>/<file>``; a name included from there
    resolves to the template's own file when it has one, else to ``_shared/``.
    Sandboxed, with ``*`` and ``**`` bounded: a template cannot reach Python
    internals or build a gigabyte string by accident.
    """

    intercepted_binops = frozenset({"*", "**"})

    def join_path(self, template: str, parent: str) -> str:
        folder = parent.split("/", 1)[0] if "/" in parent else ""
        if folder and self.loader is not None:
            local = f"{folder}/{template}"
            for base in self.loader.searchpath:  # type: ignore[attr-defined]
                if (Path(base) / local).is_file():
                    return local
        return template

    def call_binop(self, context: jinja2.runtime.Context, operator: str, left: Any, right: Any) -> Any:
        if operator == "**" and isinstance(right, int | float) and abs(right) > _MAX_EXPONENT:
            msg = f"exponent {right} is too large (at most {_MAX_EXPONENT})"
            raise SecurityError(msg)
        if operator == "*":
            for seq, count in ((left, right), (right, left)):
                sized = isinstance(seq, str | list | tuple) and isinstance(count, int)
                if sized and len(seq) * count > _MAX_RENDERED:
                    msg = f"repeating a sequence {count} times makes more than {_MAX_RENDERED} items"
                    raise SecurityError(msg)
        return super().call_binop(context, operator, left, right)


@functools.cache
def _environment(templates_dir: Path, cache_dir: Path) -> jinja2.Environment:
    files.ensure_dir(cache_dir)
    env = _BundleEnvironment(
        loader=_SourceLoader([str(templates_dir), str(templates_dir / SHARED_DIR)]),
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


def _where(exc: BaseException, fallback: str, templates_dir: Path) -> str:
    """``file:line`` of the innermost template source frame an error was raised in."""
    lineno = getattr(exc, "lineno", None)
    filename = getattr(exc, "filename", None)
    if lineno and filename:
        return f"{filename}:{lineno}"
    tb = exc.__traceback__
    found = fallback
    base = str(templates_dir)
    while tb is not None:
        name = tb.tb_frame.f_code.co_filename
        if name.startswith(base) or name.endswith(".j2"):
            found = f"{name}:{tb.tb_lineno}"
        tb = tb.tb_next
    return found


class _RenderTimeout(Exception):
    pass


@contextlib.contextmanager
def _time_limit(seconds: float) -> Iterator[None]:
    """Raise ``_RenderTimeout`` after ``seconds`` (main thread on POSIX; elsewhere unbounded)."""
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "setitimer"):
        yield
        return

    def expire(signum: int, frame: object) -> None:
        del signum, frame
        raise _RenderTimeout

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _one_line(text: str) -> str:
    first = (text.strip().splitlines() or [""])[0]
    return first if len(first) <= 200 else first[:197] + "..."


def _check_no_dropped_text(env: jinja2.Environment, name: str, source: Path) -> None:
    """A file that ``{% extends %}`` another renders only its blocks: text outside them is an error."""
    from jinja2 import nodes  # noqa: PLC0415

    assert env.loader is not None  # noqa: S101 - _environment always sets one
    text, filename, _ = env.loader.get_source(env, name)
    body = env.parse(text, name, filename).body
    if not any(isinstance(n, nodes.Extends) for n in body):
        return
    for node in body:
        if not isinstance(node, nodes.Output):
            continue
        for part in node.nodes:
            data = part.data if isinstance(part, nodes.TemplateData) else "{{ ... }}"
            if shown := data.strip():
                line = part.lineno + data[: len(data) - len(data.lstrip())].count("\n")
                snippet = _one_line(shown)[:60]
                msg = (
                    f"{source / name}:{line}: text outside {{% block %}} is dropped by "
                    f"{{% extends %}} ({snippet!r}); move it into a block or remove it"
                )
                raise RenderError(msg)


def _render_one(env: jinja2.Environment, name: str, context: dict[str, Any], source: Path) -> str:
    """Render one ``.j2`` file; any failure is a ``RenderError`` naming the source file and line."""
    fallback = str(source / name)
    try:
        _check_no_dropped_text(env, name, source)
        with _time_limit(RENDER_SECONDS):
            return env.get_template(name).render(context)
    except RenderError:
        raise
    except jinja2.TemplateNotFound as exc:
        msg = f"{source / name}: included file {exc.name!r} not found in the template or _shared"
        raise RenderError(msg) from None
    except jinja2.TemplateSyntaxError as exc:
        msg = f"{_where(exc, fallback, source)}: jinja2 syntax error: {_one_line(exc.message or '')}"
        raise RenderError(msg) from None
    except jinja2.UndefinedError as exc:
        where = _where(exc, fallback, source)
        msg = f"{where}: {_one_line(exc.message or '')}; define it in template.toml or fix the name"
        raise RenderError(msg) from None
    except _RenderTimeout as exc:
        where = _where(exc, fallback, source)
        msg = f"{where}: rendering took over {RENDER_SECONDS:g}s; look for a runaway loop"
        raise RenderError(msg) from None
    except RecursionError as exc:
        msg = f"{_where(exc, fallback, source)}: recursion too deep (an include or macro calls itself?)"
        raise RenderError(msg) from None
    except Exception as exc:  # noqa: BLE001 - any error in a template expression is the template's
        what = type(exc).__name__
        where = _where(exc, fallback, source)
        msg = f"{where}: {what} while rendering: {_one_line(str(exc))}; fix the template"
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


def digest_tree(path: Path, names: tuple[str, ...]) -> str:
    """sha256 over the relative names and bytes of ``names`` under ``path``."""
    h = hashlib.sha256()
    for rel in names:
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
        # The server's Git external auth provider id ([coder] external_auth); "" = none.
        "external_auth": settings.external_auth,
    }


def _sources(template: Template) -> list[tuple[str, Path]]:
    """(relative name, path) of every file in the template folder; odd entries are errors, not skipped.

    Hidden files and folders (``.name``) are skipped, and so is ``template.toml``.
    Symlinks are followed; a dangling link or a loop is reported by the file door
    or here, and so is a directory whose name says it is a template file.
    """
    found: list[tuple[str, Path]] = []
    seen: set[str] = set()
    for folder, dirs, names in os.walk(template.source, followlinks=True, onerror=_walk_error):
        real = os.path.realpath(folder)
        if real in seen:
            msg = f"{folder}: symlink loop (this folder is reached twice); fix or remove the link"
            raise RenderError(msg)
        seen.add(real)
        base = Path(folder)
        for d in dirs:
            if d.endswith(".j2") and not d.startswith("."):
                msg = f"{base / d}: a directory named like a template file; rename it (no .j2 suffix)"
                raise RenderError(msg)
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in names:
            rel = (base / name).relative_to(template.source).as_posix()
            if rel == SETTINGS_FILE or name.startswith("."):
                continue
            found.append((rel, base / name))
    return sorted(found)


def _walk_error(exc: OSError) -> None:
    name = Path(exc.filename) if exc.filename else Path()
    raise RenderError(f"{name}: {files.why_unreadable(name, exc)}")


def _render_outputs(template: Template, settings: Settings) -> dict[str, bytes]:
    # Not .cache/jinja: bytecode compiled without the sandbox must never be loaded.
    env = _environment(settings.templates_dir, settings.build_dir / ".cache" / "jinja-sandboxed")
    context = _context(template, settings, load_versions(settings.templates_dir))
    outputs: dict[str, bytes] = {}
    sources = _sources(template)
    seen: dict[str, str] = {}
    for rel, _ in sources:
        out = rel.removesuffix(".j2")
        if out in seen:
            msg = f"{template.source / rel}: {seen[out]} and {rel} both become {out}; keep one"
            raise RenderError(msg)
        seen[out] = rel
    for rel, src in sources:
        if rel.endswith(".j2"):
            text = _render_one(env, f"{template.name}/{rel}", context, template.source.parent)
            try:
                data = text.encode()
            except UnicodeEncodeError as exc:
                msg = f"{src}: renders a character UTF-8 cannot hold ({exc.reason}); fix the template"
                raise RenderError(msg) from None
            outputs[rel.removesuffix(".j2")] = data
        else:
            outputs[rel] = files.read_bytes(src, error=RenderError, limit=MAX_RENDERED_FILE)
    for rel, data in outputs.items():
        if len(data) > MAX_RENDERED_FILE:
            msg = (
                f"{template.source / rel}: renders to {len(data)} bytes; Coder accepts at most "
                f"{MAX_RENDERED_FILE} bytes per template, so make it smaller"
            )
            raise RenderError(msg)
        if rel.endswith(".tf") and len(data) > files.MAX_TF_BYTES:
            msg = (
                f"{template.source / rel}: renders to {len(data)} bytes; coderbundle checks .tf files "
                f"of at most {files.MAX_TF_BYTES} bytes, so split it into several files"
            )
            raise RenderError(msg)
    if "README.md" not in outputs:
        msg = f"{template.source}: no README.md or README.md.j2; add one (it becomes the page in Coder)"
        raise RenderError(msg)
    outputs["README.md"] = _frontmatter(template).encode() + outputs["README.md"]
    return outputs


def render_template(template: Template, settings: Settings, out_root: Path) -> RenderedTemplate:
    """Render ``template`` into ``out_root/<name>/`` and return what was written.

    All or nothing: the files are written to a per-process staging folder and
    swapped in with renames; on any failure the staging folder is removed and
    the previous output stays as it was.
    """
    outputs = _render_outputs(template, settings)
    files.ensure_dir(out_root)
    target = out_root / template.name
    staging = out_root / f".{template.name}.{os.getpid()}.tmp"
    old = out_root / f".{template.name}.{os.getpid()}.old"
    try:
        shutil.rmtree(staging, ignore_errors=True)
        for rel, data in outputs.items():
            dest = staging / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(data)
        if target.is_symlink() or (target.exists() and not target.is_dir()):
            msg = f"{target}: is not a directory coderbundle wrote; move or remove it"
            raise EnvError(msg)
        if target.exists():
            target.rename(old)
        staging.rename(target)
    except OSError as exc:
        if old.exists() and not target.exists():
            old.rename(target)
        msg = f"{target}: cannot write ({exc.strerror or exc}); free space or fix permissions, then run again"
        raise EnvError(msg) from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)
    files_written = tuple(sorted(outputs))
    return RenderedTemplate(template, target, files_written, digest_tree(target, files_written))
