"""``coderbundle mirror``: every pinned module, and every module it calls, into a module mirror.

On a machine that reaches the module registry, for each ``[modules.*]`` pin of
``versions.toml`` this speaks Terraform's module registry protocol:
``https://<host>/.well-known/terraform.json`` names the ``modules.v1`` base;
``<base><ns>/<name>/<system>/<version>/download`` answers with an
``X-Terraform-Get`` address; that archive (``.tar.gz``, ``.tgz`` or ``.zip``,
an optional ``//subdir``, an optional ``?checksum=sha256:...`` that is
verified) holds the module's whole tree, scripts included.  The ``module``
blocks of every downloaded tree that name a registry source at an exact
version are mirrored the same way (agentapi inside claude-code, ...).

The result, laid out ``<host>/<ns>/<name>/<system>/<version>/`` with
``MIRROR.json`` (every file's sha256), is what ``[terraform] module_mirror``
serves later (``mirrors.serve_modules``).  It is written to a staging folder
and swapped in whole: a failed run leaves the previous mirror as it was.
``verify_mirror`` checks a mirror against its ``MIRROR.json``.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import tarfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit, urlunsplit

import requests

from coderbundle.errors import MirrorError
from coderbundle.mirrors import MIRROR_MANIFEST
from coderbundle.render import load_versions

if TYPE_CHECKING:
    from collections.abc import Mapping

    from coderbundle.settings import Settings

__all__ = ["MirrorResult", "mirror_modules", "verify_mirror"]

TIMEOUT = 60
MAX_ARCHIVE_BYTES = 64 << 20
_NESTED = re.compile(
    r'^\s*source\s*=\s*"(?P<source>[a-z0-9.-]+\.[a-z]+/[\w-]+/[\w-]+/[\w-]+)"\s*\n'
    r'\s*version\s*=\s*"(?P<version>[^"]+)"',
    re.MULTILINE,
)
_EXACT = re.compile(r"^=?\s*v?(\d+\.\d+\.\d+(?:-[\w.]+)?)$")


@dataclass
class MirrorResult:
    """What was mirrored: ``source@version`` -> the file count, and where."""

    directory: Path
    modules: dict[str, int] = field(default_factory=dict)


def _get(session: requests.Session, url: str, **kwargs: Any) -> requests.Response:
    try:
        response = session.get(url, timeout=TIMEOUT, **kwargs)
    except requests.RequestException as exc:
        why = exc.__class__.__name__
        msg = f"cannot reach {url}: {why}; run `coderbundle mirror` where the registry answers"
        raise MirrorError(msg) from None
    if not response.ok:
        msg = (
            f"{url} answered HTTP {response.status_code}; check the pinned source and version (versions.toml)"
        )
        raise MirrorError(msg)
    return response


class _Registry:
    """One registry host: its modules.v1 base from service discovery, then downloads."""

    def __init__(self, session: requests.Session, host: str, base_url: str) -> None:
        self.session = session
        self.host = host
        well_known = urljoin(base_url.rstrip("/") + "/", ".well-known/terraform.json")
        try:
            services = _get(session, well_known).json()
            self.modules = urljoin(well_known, str(services["modules.v1"]))
        except (ValueError, KeyError, TypeError):
            msg = f"{well_known} names no modules.v1 service: {host} is no module registry"
            raise MirrorError(msg) from None

    def archive(self, module: str, version: str) -> str:
        """The X-Terraform-Get address of ``<ns>/<name>/<system>`` at ``version``."""
        url = urljoin(self.modules, f"{module}/{version}/download")
        response = _get(self.session, url, allow_redirects=True)
        location = response.headers.get("X-Terraform-Get")
        if not location:
            msg = f"{url} gave no X-Terraform-Get header; the registry does not serve {module} {version}"
            raise MirrorError(msg)
        return urljoin(url, location)


def _split(address: str) -> tuple[str, str, str | None]:
    """``https://h/a.tar.gz//sub?checksum=sha256:x`` -> (URL without both, subdir, sha256)."""
    if "::" in address.split("?", 1)[0]:
        forced = address.split("::", 1)[0]
        msg = (
            f"the registry points at a {forced!r} source ({address}); coderbundle mirror fetches "
            "http(s) archives only: fetch that module with terraform get on a connected machine"
        )
        raise MirrorError(msg)
    parts = urlsplit(address)
    path, _, subdir = parts.path.partition("//")
    query = parse_qs(parts.query)
    checksum = query.pop("checksum", [None])[0]
    sha256 = None
    if checksum:
        kind, _, value = checksum.partition(":")
        if kind != "sha256":
            msg = f"{address}: checksum type {kind!r} is not supported (sha256 is)"
            raise MirrorError(msg)
        sha256 = value.lower()
    url = urlunsplit((parts.scheme, parts.netloc, path, urlencode(query, doseq=True), ""))
    return url, subdir.strip("/"), sha256


def _extract(data: bytes, url: str, subdir: str, target: Path) -> int:
    """Unpack the archive's ``subdir`` into ``target``; refuse paths that leave it."""
    members: list[tuple[str, bytes]] = []
    name = urlsplit(url).path
    try:
        if name.endswith(".zip"):
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                members = [(i.filename, archive.read(i)) for i in archive.infolist() if not i.is_dir()]
        else:
            with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as archive:
                for info in archive.getmembers():
                    if info.isfile() and (fh := archive.extractfile(info)) is not None:
                        members.append((info.name, fh.read()))
    except (tarfile.TarError, zipfile.BadZipFile, OSError) as exc:
        msg = f"{url}: not a readable .tar.gz or .zip archive ({exc})"
        raise MirrorError(msg) from None
    count = 0
    for member, content in members:
        path = PurePosixPath(member.removeprefix("./"))
        if path.is_absolute() or ".." in path.parts:
            msg = f"{url}: the archive holds {member!r}, a path outside the module; refusing it"
            raise MirrorError(msg)
        if subdir:
            if not path.is_relative_to(subdir):
                continue
            path = path.relative_to(subdir)
        out = target.joinpath(*path.parts)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(content)
        count += 1
    if not count:
        msg = f"{url}: no files{f' under {subdir!r}' if subdir else ''}; the archive is not this module"
        raise MirrorError(msg)
    return count


def _nested(tree: Path) -> list[tuple[str, str, str]]:
    """Registry modules a tree calls: (source, version, where)."""
    found = []
    for tf in sorted(tree.rglob("*.tf")):
        text = tf.read_text(encoding="utf-8", errors="replace")
        for m in _NESTED.finditer(text):
            line = text.count("\n", 0, m.start()) + 1
            found.append((m["source"], m["version"], f"{tf.relative_to(tree)}:{line}"))
    return found


def _file_sums(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != MIRROR_MANIFEST
    }


def _exact(version: str, source: str, wanted_by: str) -> str:
    if not (exact := _EXACT.match(version)):
        msg = f"{wanted_by}: {source} asks for version {version!r}; mirror needs an exact version"
        raise MirrorError(msg)
    return exact.group(1)


def _fetch(registry: _Registry, module: str, version: str, tree: Path) -> tuple[int, dict[str, str]]:
    """Download one module's archive, check its sha256 when the registry names one, unpack it."""
    url, subdir, sha256 = _split(registry.archive(module, version))
    data = _get(registry.session, url).content
    if len(data) > MAX_ARCHIVE_BYTES:
        msg = f"{url}: {len(data)} bytes, more than a module archive may have ({MAX_ARCHIVE_BYTES})"
        raise MirrorError(msg)
    digest = hashlib.sha256(data).hexdigest()
    if sha256 is not None and digest != sha256:
        msg = f"{url}: sha256 {digest} is not the {sha256} the registry named; refusing the mirror"
        raise MirrorError(msg)
    return _extract(data, url, subdir, tree), {"url": url, "sha256": digest}


def mirror_modules(
    settings: Settings, destination: Path, *, registry_urls: Mapping[str, str] | None = None
) -> MirrorResult:
    """Mirror every pinned module and every module it calls into ``destination`` (swapped in whole).

    ``registry_urls`` maps a host to the base URL its service discovery is read from
    (default ``https://<host>/``): a registry proxy, or a test registry on 127.0.0.1.
    """
    pins = load_versions(settings.templates_dir).get("modules", {})
    queue = [
        (str(spec["source"]), str(spec["version"]), f"versions.toml [modules.{key}]")
        for key, spec in pins.items()
    ]
    if not queue:
        msg = f"{settings.templates_dir}/_shared/versions.toml pins no [modules.*]: nothing to mirror"
        raise MirrorError(msg)
    destination = destination.resolve()
    staging = destination.with_name(f".{destination.name}.staging-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    registries: dict[str, _Registry] = {}
    result = MirrorResult(destination)
    archives: dict[str, dict[str, str]] = {}
    try:
        with requests.Session() as session:
            while queue:
                source, version, wanted_by = queue.pop(0)
                if f"{source}@{version}" in result.modules:
                    continue
                version = _exact(version, source, wanted_by)
                host, module = source.split("/", 1)
                if host not in registries:
                    base = (registry_urls or {}).get(host, f"https://{host}/")
                    registries[host] = _Registry(session, host, base)
                tree = staging.joinpath(host, *module.split("/"), version)
                count, archives[f"{source}@{version}"] = _fetch(registries[host], module, version, tree)
                archives[f"{source}@{version}"]["wanted_by"] = wanted_by
                result.modules[f"{source}@{version}"] = count
                for nested, nested_version, where in _nested(tree):
                    queue.append((nested, nested_version, f"{source} {version} {where}"))
        manifest = {
            "registry": ", ".join(sorted(registries)),
            "modules": archives,
            "files": _file_sums(staging),
        }
        (staging / MIRROR_MANIFEST).write_text(
            json.dumps(manifest, indent=1, sort_keys=True) + "\n", encoding="utf-8"
        )
        verify_mirror(staging)
        old = destination.with_name(f".{destination.name}.old-{os.getpid()}")
        if destination.exists():
            destination.rename(old)
        staging.rename(destination)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return result


def verify_mirror(directory: Path) -> int:
    """Check every file of a mirror against its MIRROR.json; the number of files checked."""
    path = directory / MIRROR_MANIFEST
    try:
        recorded = json.loads(path.read_text(encoding="utf-8"))["files"]
    except (OSError, ValueError, KeyError, TypeError):
        msg = f"{path}: missing or unreadable; make the mirror with `coderbundle mirror`"
        raise MirrorError(msg) from None
    found = _file_sums(directory)
    if found != recorded:
        changed = sorted(k for k in found.keys() | recorded.keys() if found.get(k) != recorded.get(k))
        msg = (
            f"{directory}: {len(changed)} file(s) differ from {MIRROR_MANIFEST} "
            f"({changed[0]} first); mirror again"
        )
        raise MirrorError(msg)
    return len(found)
