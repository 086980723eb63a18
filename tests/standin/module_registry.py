"""STAND-IN for registry.coder.com: a module registry on 127.0.0.1 serving folders as tarballs.

Test-only.  It answers Terraform's module registry protocol the way a public
registry does: ``/.well-known/terraform.json`` names ``modules.v1``;
``/v1/modules/<ns>/<name>/<system>/<version>/download`` answers 204 with an
``X-Terraform-Get`` address of a ``.tar.gz`` (with ``?checksum=sha256:...``);
the archive is the folder ``<root>/<host>/<ns>/<name>/<system>/<version>/``.
``tests/test_mirror.py`` serves ``../shared/registry-modules`` with it as
"registry.coder.com" and mirrors from it.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import json
import tarfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path


def tarball(folder: Path) -> bytes:
    """The folder's files as a .tar.gz (paths relative to it)."""
    buffer = io.BytesIO()
    # mtime=0: the same folder gives the same bytes (the download names their checksum first).
    with gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0) as gz, tarfile.open(fileobj=gz, mode="w") as tar:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                info = tar.gettarinfo(path, arcname=path.relative_to(folder).as_posix())
                with path.open("rb") as fh:
                    tar.addfile(info, fh)
    return buffer.getvalue()


@contextlib.contextmanager
def serve_registry(root: Path, host: str, tamper: Callable[[bytes], bytes] | None = None) -> Iterator[str]:  # noqa: C901
    """Serve ``root/<host>`` as the registry ``host`` on 127.0.0.1; yield its base URL.

    ``tamper`` changes each archive after its checksum was named (a corrupted download).
    """

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            del format, args

        def _send(self, code: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
            self.send_response(code)
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            parts = [p for p in path.split("/") if p]
            if any(p in {".", ".."} for p in parts):
                self._send(404)
            elif path == "/.well-known/terraform.json":
                self._send(200, json.dumps({"modules.v1": "/v1/modules/"}).encode())
            elif parts[:2] == ["v1", "modules"] and len(parts) == 7 and parts[6] == "download":
                folder = root.joinpath(host, *parts[2:6])
                if not folder.is_dir():
                    self._send(404)
                    return
                digest = hashlib.sha256(tarball(folder)).hexdigest()
                target = f"/archive/{'/'.join(parts[2:6])}.tar.gz?checksum=sha256:{digest}"
                self._send(204, headers={"X-Terraform-Get": target})
            elif parts[:1] == ["archive"] and len(parts) == 5 and parts[4].endswith(".tar.gz"):
                folder = root.joinpath(host, *parts[1:4], parts[4].removesuffix(".tar.gz"))
                if not folder.is_dir():
                    self._send(404)
                    return
                data = tarball(folder)
                self._send(200, tamper(data) if tamper else data)
            else:
                self._send(404)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
