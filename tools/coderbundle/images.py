"""Build (and push) the workspace images in ``images/<name>/``, base first.

Each image gets a content-addressed tag: the sha256 of its build context (a
deterministic tar of the directory, README.md excluded), the build arguments
that shape its content, and the id of the image it builds on.  An image whose
tag already exists locally (or, when pushing, in the registry) is neither
rebuilt nor pushed again.  Children ``FROM ${BASE_IMAGE}``, which is the
base's content tag from the same run.  Results go to ``build/images.json``
(see ``docs/images.md``); an entry is written only for an image that really is
built (and, with ``pushed: true``, really is in the registry).
"""

from __future__ import annotations

import base64
import difflib
import hashlib
import io
import json
import os
import re
import tarfile
import time
from contextlib import closing, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from coderbundle import docker_stream as ds
from coderbundle import files
from coderbundle.console import err_console
from coderbundle.errors import EnvError, ImageBuildError, UsageError
from coderbundle.process import git

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping, Sequence
    from pathlib import Path

    import docker

    from coderbundle.settings import Settings

__all__ = ["BASE", "ImageResult", "ImageSpec", "build_images", "find_images", "read_manifest"]

BASE = "base"
MANIFEST_NAME = "images.json"
MANIFEST_VERSION = 1
CONTEXT_EXCLUDES = frozenset({"README.md"})
OCI = "org.opencontainers.image."
PROXY_VARS = tuple(
    v for name in ("HTTP_PROXY", "HTTPS_PROXY", "FTP_PROXY", "NO_PROXY") for v in (name, name.lower())
)
_ARG = re.compile(r"^\s*ARG\s+([A-Za-z_][A-Za-z0-9_]*)", re.MULTILINE | re.IGNORECASE)


@dataclass(frozen=True)
class ImageSpec:
    """One ``images/<name>/`` directory and the build arguments its Dockerfile declares."""

    name: str
    path: Path
    args: frozenset[str]

    @property
    def parent(self) -> str | None:
        """The image this one builds on: the base, when it declares ``ARG BASE_IMAGE``."""
        return BASE if self.name != BASE and "BASE_IMAGE" in self.args else None


@dataclass(frozen=True)
class ImageResult:
    """What happened to one image: built, cached, or found in the registry."""

    name: str
    repository: str
    tag: str
    image_id: str
    status: str
    digest: str = ""
    seconds: float = 0.0

    @property
    def ref(self) -> str:
        """``repository:tag``."""
        return f"{self.repository}:{self.tag}"

    @property
    def pushed(self) -> bool:
        """True when the registry holds this tag (its digest is known)."""
        return bool(self.digest)

    def manifest_entry(self) -> dict[str, Any]:
        """The entry in ``build/images.json``; ``reference`` is digest-pinned only when pushed."""
        return {
            "repository": self.repository,
            "tag": self.tag,
            "image_id": self.image_id,
            "pushed": self.pushed,
            "digest": self.digest or None,
            "reference": f"{self.repository}@{self.digest}" if self.pushed else self.ref,
        }


def find_images(images_dir: Path, names: Sequence[str] = ()) -> list[ImageSpec]:
    """The images asked for (default: all) plus their parents, base first."""
    available = sorted(p.name for p in images_dir.iterdir() if p.is_dir()) if images_dir.is_dir() else []
    unknown = [n for n in names if n not in available]
    if unknown:
        close = difflib.get_close_matches(unknown[0], available, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        msg = f"unknown image {unknown[0]!r}; {hint}available: {', '.join(available) or 'none'}"
        raise UsageError(msg)
    specs = {n: _read_spec(images_dir / n) for n in (names or available)}
    for parent in {s.parent for s in specs.values()} - {None} - set(specs):
        if parent not in available:
            raise ImageBuildError(f"{images_dir}/{parent}: the base image directory is missing")
        specs[str(parent)] = _read_spec(images_dir / str(parent))
    return sorted(specs.values(), key=lambda s: (s.name != BASE, s.name))


def _read_spec(path: Path) -> ImageSpec:
    dockerfile = path / "Dockerfile"
    if not dockerfile.is_file():
        msg = f"{dockerfile}: missing; add a Dockerfile or remove the directory {path.name}/"
        raise ImageBuildError(msg)
    args = frozenset(_ARG.findall(files.read_text(dockerfile, error=ImageBuildError)))
    return ImageSpec(path.name, path, args)


def build_context(path: Path) -> bytes:
    """A deterministic tar of ``path`` (sorted, mtime 0, root-owned): same files, same bytes."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for file in sorted(path.rglob("*")):
            if file.is_symlink() and not file.exists():  # dangling or a loop: say so, do not skip
                data = files.read_bytes(file, error=ImageBuildError)
            if not file.is_file():
                continue
            rel = file.relative_to(path).as_posix()
            if rel in CONTEXT_EXCLUDES:
                continue
            info = tarfile.TarInfo(rel)
            data = files.read_bytes(file, error=ImageBuildError, limit=files.MAX_CONTEXT_BYTES)
            info.size, info.mtime = len(data), 0
            info.mode = 0o755 if os.access(file, os.X_OK) else 0o644
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def content_tag(context: bytes, args: Mapping[str, str], parent_id: str) -> str:
    """The content-addressed tag: context, shaping build arguments and the parent's id."""
    digest = hashlib.sha256(b"coderbundle-image-v1\0")
    digest.update(hashlib.sha256(context).digest())
    digest.update(json.dumps(dict(sorted(args.items())), sort_keys=True).encode())
    digest.update(parent_id.encode())
    return digest.hexdigest()[:24]


@dataclass(frozen=True)
class _Run:
    """Everything shared by the images of one ``build_images`` call."""

    settings: Settings
    client: docker.DockerClient
    push: bool
    shaping: Mapping[str, str]
    extra: Mapping[str, str]
    nocache: bool = False


def build_images(  # noqa: PLR0913 - keyword-only knobs of one step
    settings: Settings,
    names: Sequence[str] = (),
    *,
    push: bool = False,
    upstream_image: str = "",
    environ: Mapping[str, str] | None = None,
    nocache: bool = False,
) -> list[ImageResult]:
    """Build (and with ``push`` push) the images in dependency order; update the manifest.

    ``nocache`` disables the builder's layer cache for images that are built
    (the benchmark's cold build); it does not rebuild images whose tag exists.
    """
    env = os.environ if environ is None else environ
    specs = find_images(settings.images_dir, names)
    if push and not settings.registry:
        msg = "cannot push without a registry; set [registry] host in bundle.toml or CODERBUNDLE_REGISTRY"
        raise UsageError(msg)
    shaping = {
        "UPSTREAM_IMAGE": upstream_image,
        "EXTRA_CA_CERT_B64": _extra_ca(settings),
        "DOWNLOAD_SOURCE": _download_source(settings),
    }
    try:
        client = ds.connect(env)
    except ImageBuildError as exc:  # no daemon: the environment, not an image, is wrong
        raise EnvError(str(exc)) from None
    except ValueError as exc:  # docker-py refuses a malformed DOCKER_HOST with a bare ValueError
        where = env.get("DOCKER_HOST", "")
        raise EnvError(f"DOCKER_HOST={where!r} is not a Docker address ({exc}); fix DOCKER_HOST") from None
    with closing(client):
        shaping["TARGETARCH"] = ds.daemon_arch(client)
        extra = {**_provenance(settings), **{k: env[k] for k in PROXY_VARS if env.get(k)}}
        return _build_in_order(_Run(settings, client, push, shaping, extra, nocache), specs)


def _build_in_order(ctx: _Run, specs: Sequence[ImageSpec]) -> list[ImageResult]:
    """Ensure each image, parents first; the manifest is rewritten even when one fails."""
    parents = {s.parent for s in specs}
    results: dict[str, ImageResult] = {}
    manifest = read_manifest(ctx.settings)
    try:
        for spec in specs:
            manifest.pop(spec.name, None)
            parent = results[spec.parent] if spec.parent else None
            results[spec.name] = _ensure(ctx, spec, parent, keep_local=spec.name in parents)
            manifest[spec.name] = results[spec.name].manifest_entry()
    finally:
        _write_manifest(ctx.settings, manifest)
    return list(results.values())


@dataclass(frozen=True)
class _Job:
    """One image to make: where it comes from and the tag its content gives it."""

    spec: ImageSpec
    repository: str
    tag: str
    context: bytes
    args: Mapping[str, str]

    @property
    def ref(self) -> str:
        return f"{self.repository}:{self.tag}"


def _ensure(ctx: _Run, spec: ImageSpec, parent: ImageResult | None, *, keep_local: bool) -> ImageResult:
    start = time.monotonic()
    shaping = {**ctx.shaping, "BASE_IMAGE": parent.ref if parent else ""}
    args = {k: v for k, v in shaping.items() if v and k in spec.args}
    context = build_context(spec.path)
    parent_id = parent.image_id if parent else _upstream_id(ctx.client, args)
    tag = content_tag(context, args, parent_id)
    job = _Job(spec, _repository(ctx.settings, spec.name), tag, context, args)
    with _display(spec.name) as progress:
        image_id, status, digest = _obtain(ctx, job, progress, keep_local=keep_local)
    seconds = time.monotonic() - start
    err_console.print(f"{spec.name:<12} {status:<17} {job.ref}  ({seconds:.1f}s)", markup=False)
    return ImageResult(spec.name, job.repository, tag, image_id, status, digest, seconds)


def _obtain(
    ctx: _Run, job: _Job, progress: Callable[[str], None], *, keep_local: bool
) -> tuple[str, str, str]:
    """Find, pull, build and/or push ``job``; return (image id, status, registry digest)."""
    image_id, status, digest = ds.local_image_id(ctx.client, job.ref), "cached", ""
    if ctx.push and (digest := ds.registry_digest(ctx.client, job.ref) or ""):
        status = "in registry"
        if image_id is None and keep_local:
            image_id, status = ds.pull_image(ctx.client, job.repository, job.tag), "pulled"
    if image_id is None and not digest:
        image_id = ds.stream_build(
            ctx.client,
            name=job.spec.name,
            context=io.BytesIO(job.context),
            ref=job.ref,
            buildargs=_all_args(ctx, job),
            labels=_labels(ctx, job),
            progress=progress,
            nocache=ctx.nocache,
        )
        status = "built"
    if ctx.push and not digest:
        digest = ds.push_image(ctx.client, job.repository, job.tag, progress)
        status += ", pushed"
    return image_id or "", status, digest


DOWNLOAD_SOURCES = ("upstream", "registries")


def _download_source(settings: Settings) -> str:
    """``[images] download_source``; empty leaves each Dockerfile's default (upstream)."""
    source = settings.download_source
    if source and source not in DOWNLOAD_SOURCES:
        msg = (
            f"{settings.root / 'bundle.toml'}: [images] download_source = {source!r} "
            f"(or CODERBUNDLE_DOWNLOAD_SOURCE) must be one of {', '.join(DOWNLOAD_SOURCES)}"
        )
        raise UsageError(msg)
    return source


def _upstream_id(client: docker.DockerClient, args: Mapping[str, str]) -> str:
    """The local id of the upstream image, so a re-imported upstream changes the base's tag."""
    upstream = args.get("UPSTREAM_IMAGE", "")
    return (ds.local_image_id(client, upstream) or "") if upstream else ""


def _all_args(ctx: _Run, job: _Job) -> dict[str, str]:
    """Shaping args and any proxy settings (proxies stay out of the image's history)."""
    proxies = {k: v for k, v in ctx.extra.items() if k in PROXY_VARS}
    return {**job.args, **proxies}


def _labels(ctx: _Run, job: _Job) -> dict[str, str]:
    """OCI labels, set by the pipeline on every image so no Dockerfile repeats them."""
    labels = {
        "title": f"coderbundle {job.spec.name}",
        "description": _summary(job.spec.path / "README.md"),
        "licenses": "Apache-2.0",
        "version": job.tag,
        "base.name": job.args.get("BASE_IMAGE") or job.args.get("UPSTREAM_IMAGE", ""),
        **{k: v for k, v in ctx.extra.items() if k not in PROXY_VARS},
    }
    return {OCI + k: v for k, v in labels.items() if v}


def _summary(readme: Path) -> str:
    """The first paragraph after the README's title, on one line."""
    try:
        text = readme.read_text(encoding="utf-8")
    except OSError:
        return ""
    paragraphs = [p for p in text.split("\n\n") if p.strip() and not p.startswith("#")]
    return " ".join(paragraphs[0].split()) if paragraphs else ""


@contextmanager
def _display(name: str) -> Iterator[Callable[[str], None]]:
    """A live spinner on stderr showing the current build step of ``name``."""
    columns = (SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn())
    with Progress(*columns, console=err_console, transient=True, disable=not err_console.is_terminal) as bar:
        task = bar.add_task(f"{name}: checking")

        def update(line: str) -> None:
            bar.update(task, description=f"{name}: {line[:90]}")

        yield update


def _repository(settings: Settings, name: str) -> str:
    parts = [settings.registry.rstrip("/"), settings.repository_prefix.strip("/"), name]
    return "/".join(p for p in parts if p)


def _extra_ca(settings: Settings) -> str:
    """The extra CA file as base64, or "" when none is configured."""
    if not settings.extra_ca_cert:
        return ""
    path = settings.root / settings.extra_ca_cert
    try:
        pem = path.read_bytes()
    except OSError as exc:
        why = files.why_unreadable(path, exc)
        msg = f"{path}: cannot read the extra CA certificate ({why}); fix CODERBUNDLE_EXTRA_CA_CERT"
        raise EnvError(msg) from None
    if b"-----BEGIN CERTIFICATE-----" not in pem:
        msg = f"{path}: not a PEM certificate; point CODERBUNDLE_EXTRA_CA_CERT at a PEM file"
        raise EnvError(msg)
    return base64.b64encode(pem).decode()


def _provenance(settings: Settings) -> dict[str, str]:
    """OCI label values: created now, revision and source from git (empty outside a repo)."""
    return {
        "created": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "revision": git(settings.root, "rev-parse", "HEAD"),
        "source": git(settings.root, "remote", "get-url", "origin"),
    }


def read_manifest(settings: Settings) -> dict[str, dict[str, Any]]:
    """The image entries of ``build/images.json`` ({} when there is none yet)."""
    path = settings.build_dir / MANIFEST_NAME
    if not path.exists():
        return {}
    try:
        data = json.loads(files.read_text(path, error=ImageBuildError))
    except (json.JSONDecodeError, RecursionError) as exc:
        msg = f"{path}: unreadable image manifest ({exc}); delete it and build again"
        raise ImageBuildError(msg) from None
    images = data.get("images") if isinstance(data, dict) else None
    return dict(images) if isinstance(images, dict) else {}


def _write_manifest(settings: Settings, images: Mapping[str, dict[str, Any]]) -> None:
    """Replace ``build/images.json`` atomically (write a sibling, then rename)."""
    body = {"version": MANIFEST_VERSION, "images": dict(sorted(images.items()))}
    files.write_atomic(settings.build_dir / MANIFEST_NAME, (json.dumps(body, indent=2) + "\n").encode())
