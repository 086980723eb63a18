"""Offline Terraform: a provider filesystem mirror and a module registry on 127.0.0.1.

Air-gapped teams (and this project's CI) give ``coderbundle`` two folders
(``bundle.toml`` ``[terraform]`` or ``CODERBUNDLE_PROVIDER_MIRROR`` /
``CODERBUNDLE_MODULE_MIRROR``):

* a provider mirror in Terraform's unpacked layout
  (``<host>/<namespace>/<type>/<version>/<os>_<arch>/terraform-provider-<type>_v<version>``);
* a module mirror laid out ``<host>/<namespace>/<name>/<system>/<version>/`` with
  each module's ``*.tf`` files.

``serve_modules`` serves the module mirror with Terraform's module registry
protocol on an ephemeral port of 127.0.0.1, and ``cli_config`` writes the CLI
configuration that points Terraform at both (``provider_installation {
filesystem_mirror }`` and a ``host`` block per module host), so the templates'
real ``source`` addresses resolve unchanged.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import tarfile
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

__all__ = [
    "BUILDINFO",
    "ModuleRegistry",
    "Provenance",
    "cli_config",
    "describe_modules",
    "provenance",
    "provider_binary_path",
    "serve_modules",
    "tree_digest",
    "write_stub_module",
]

BUILDINFO = "BUILDINFO.json"
STUB_MARKER = "STUB.json"
# Beside the real coder/registry trees: module, version, release tag, commit (one line each).
PROVENANCE_TSV = "PROVENANCE.tsv"
# Written by `coderbundle mirror` (mirror_modules.py): where the trees came from, their sha256.
MIRROR_MANIFEST = "MIRROR.json"
# Files above this size are keyed by size and mtime, not read (provider binaries).
_DIGEST_READ_LIMIT = 1 << 20


def describe_modules(mirror: Path) -> str:
    """What a module mirror holds, for every report: real trees or stubs."""
    if any(mirror.rglob(STUB_MARKER)):
        return "modules: stubs (no module resources)"
    if (mirror / PROVENANCE_TSV).is_file():
        return "modules: real, coder/registry at pinned tags"
    if (mirror / MIRROR_MANIFEST).is_file():
        try:
            origin = str(json.loads((mirror / MIRROR_MANIFEST).read_text(encoding="utf-8"))["registry"])
        except (OSError, ValueError, KeyError, TypeError):
            origin = "a registry"
        return f"modules: real, mirrored from {origin} by coderbundle mirror"
    return "modules: from the module mirror"


def tree_digest(root: Path) -> str:
    """A sha256 over every file under ``root`` (path and content): a cache key for a mirror.

    Small files are read; large ones (provider binaries) count by size and mtime.
    """
    h = hashlib.sha256()
    if not root.is_dir():
        return "absent"
    for path in sorted(root.rglob("*")):
        if not path.is_file():
            continue
        st = path.stat()
        h.update(path.relative_to(root).as_posix().encode() + b"\0")
        if st.st_size > _DIGEST_READ_LIMIT:
            h.update(f"{st.st_size}:{st.st_mtime_ns}".encode())
        else:
            h.update(hashlib.sha256(path.read_bytes()).digest())
    return h.hexdigest()


def provider_binary_path(mirror: Path, address: str, version: str, target: str) -> Path:
    """Where a provider binary goes in an unpacked filesystem mirror."""
    namespace, kind = address.split("/")
    folder = mirror / "registry.terraform.io" / namespace / kind / version / target
    return folder / f"terraform-provider-{kind}_v{version}"


def _hcl_literal(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, (int, float)):
        return json.dumps(value)
    if isinstance(value, str):
        return json.dumps(value).replace("${", "$${").replace("%{", "%%{")
    if isinstance(value, list):
        return "[" + ", ".join(_hcl_literal(v) for v in value) + "]"
    items = ", ".join(f"{json.dumps(str(k))} = {_hcl_literal(v)}" for k, v in value.items())
    return "{" + items + "}"


def write_stub_module(root: Path, spec: dict[str, Any]) -> Path:
    """Write a stub of one pinned module (variables as pinned, string outputs); return its folder.

    ``spec`` is one entry of ``data/modules.json``.  Optional variables get
    ``default = null`` (the real defaults are the module's business; a stub
    only has to accept exactly the arguments the real module accepts).
    """
    host, namespace, name, system = str(spec["source"]).split("/")
    folder: Path = root / host / namespace / name / system / spec["version"]
    folder.mkdir(parents=True, exist_ok=True)
    lines = [
        f"# STUB of {spec['source']} {spec['version']} ({spec.get('tag', '')}), generated from",
        "# coderbundle's module schema data: the real variables and their types, no resources.",
        "",
    ]
    for var, info in sorted(spec["variables"].items()):
        lines.append(f'variable "{var}" {{')
        lines.append(f"  type = {info['type']}")
        if not info["required"]:
            lines.append("  default = null")
        lines.append("}")
        lines.append("")
    for out in sorted(spec["outputs"]):
        lines += [f'output "{out}" {{', f"  value = {_hcl_literal('')}", "}", ""]
    (folder / "main.tf").write_text("\n".join(lines), encoding="utf-8")
    marker = {"source": spec["source"], "version": spec["version"], "stub": True}
    (folder / STUB_MARKER).write_text(json.dumps(marker) + "\n", encoding="utf-8")
    return folder


@dataclass
class ModuleRegistry:
    """A running module registry: its base URL and the hosts it answers for."""

    url: str
    hosts: list[str] = field(default_factory=list)


def _module_dirs(mirror: Path, host: str, parts: list[str]) -> Path:
    return mirror.joinpath(host, *parts)


def _handler(mirror: Path) -> type[BaseHTTPRequestHandler]:  # noqa: C901 - one small HTTP handler
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib name
            del format, args  # quiet: terraform's own output says what failed

        def _send(self, code: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
            self.send_response(code)
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if body:
                self.wfile.write(body)

        def do_GET(self) -> None:
            # /<host>/v1/modules/<ns>/<name>/<system>/versions
            # /<host>/v1/modules/<ns>/<name>/<system>/<version>/download
            # /<host>/archive/<ns>/<name>/<system>/<version>.tar.gz
            parts = [p for p in self.path.split("?", 1)[0].split("/") if p]
            if any(p in {".", ".."} for p in parts) or len(parts) < 6:
                self._send(404)
                return
            host, kind, rest = parts[0], parts[1], parts[2:]
            if kind == "v1" and rest[0] == "modules" and len(rest) == 5 and rest[4] == "versions":
                folder = _module_dirs(mirror, host, rest[1:4])
                versions = sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []
                body = {"modules": [{"versions": [{"version": v} for v in versions]}]}
                self._send(200, json.dumps(body).encode(), {"Content-Type": "application/json"})
            elif kind == "v1" and rest[0] == "modules" and len(rest) == 6 and rest[5] == "download":
                if not _module_dirs(mirror, host, rest[1:5]).is_dir():
                    self._send(404)
                    return
                target = f"/{host}/archive/{'/'.join(rest[1:5])}.tar.gz"
                self._send(204, headers={"X-Terraform-Get": f"http://{self.headers['Host']}{target}"})
            elif kind == "archive" and len(rest) == 4 and rest[3].endswith(".tar.gz"):
                folder = _module_dirs(mirror, host, [*rest[:3], rest[3].removesuffix(".tar.gz")])
                if not folder.is_dir():
                    self._send(404)
                    return
                self._send(200, _tarball(folder), {"Content-Type": "application/gzip"})
            else:
                self._send(404)

    return Handler


def _tarball(folder: Path) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                tar.add(path, arcname=path.relative_to(folder).as_posix())
    return buffer.getvalue()


@contextlib.contextmanager
def serve_modules(mirror: Path) -> Iterator[ModuleRegistry]:
    """Serve ``mirror`` as a module registry on 127.0.0.1 for the duration of the block."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(mirror))
    thread = threading.Thread(target=server.serve_forever, name="module-registry", daemon=True)
    thread.start()
    try:
        port = server.server_address[1]
        hosts = sorted(p.name for p in mirror.iterdir() if p.is_dir()) if mirror.is_dir() else []
        yield ModuleRegistry(f"http://127.0.0.1:{port}", hosts)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def cli_config(
    path: Path, *, provider_mirror: Path | None, registry: ModuleRegistry | None, plugin_cache: Path | None
) -> Path:
    """Write a Terraform CLI configuration for the mirrors and return its path."""
    lines = ["# Written by coderbundle: offline providers and modules."]
    if plugin_cache is not None:
        plugin_cache.mkdir(parents=True, exist_ok=True)
        lines += [
            f"plugin_cache_dir = {json.dumps(str(plugin_cache))}",
            "plugin_cache_may_break_dependency_lock_file = true",
        ]
    if provider_mirror is not None:
        lines += [
            "provider_installation {",
            "  filesystem_mirror {",
            f"    path = {json.dumps(str(provider_mirror))}",
            "  }",
            "}",
        ]
    if registry is not None:
        for host in registry.hosts:
            lines += [
                f"host {json.dumps(host)} {{",
                f'  services = {{ "modules.v1" = {json.dumps(f"{registry.url}/{host}/v1/modules/")} }}',
                "}",
            ]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@dataclass(frozen=True)
class Provenance:
    """How a provider in the mirror came to be: ``built from source`` or ``stand-in``."""

    address: str
    version: str
    kind: str


def provenance(provider_mirror: Path, address: str) -> Provenance | None:
    """Read the BUILDINFO.json a build left beside a mirrored provider (newest version)."""
    namespace, kind = address.split("/")
    base = provider_mirror / "registry.terraform.io" / namespace / kind

    def newest_first(info: Path) -> tuple[int, ...]:
        version = info.relative_to(base).parts[0]
        return tuple(int(p) if p.isdigit() else -1 for p in version.split("."))

    for info in sorted(base.glob(f"*/*/{BUILDINFO}"), key=newest_first, reverse=True):
        try:
            data = json.loads(info.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        return Provenance(address, str(data.get("version", "?")), str(data.get("kind", "?")))
    return None
