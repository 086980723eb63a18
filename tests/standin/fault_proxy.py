"""A fault-injecting HTTP proxy in front of a real server (the one precise fault nobody else makes).

The real Coder server cannot be made to answer 502 or drop a connection on
demand, but a proxy in front of it (a load balancer, an ingress) does exactly
that in production.  ``FaultProxy`` forwards every request to the upstream
(websocket upgrades too: the ``coder`` CLI streams import logs over one) and
replaces the answer of requests matching a rule with a fault: a status code
(``502``, ``503``, ``400``) or ``"reset"`` (the connection closes with no
answer).  Each rule fires ``times`` times, then the request passes.

Used by tests/test_publish_real.py (retry with backoff on transient faults, no
retry on 4xx); everything else talks to the real server directly.
"""

from __future__ import annotations

import contextlib
import http
import http.client
import re
import socket
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import urlsplit

__all__ = ["FaultProxy", "Rule"]

_HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "te", "trailer"}


@dataclass
class Rule:
    """Answer ``fault`` to ``times`` requests whose ``METHOD path`` matches ``pattern``."""

    pattern: str
    fault: int | str
    times: int = 1
    hits: int = 0
    seen: int = 0  # requests that matched, faulted or passed


@dataclass
class _State:
    upstream: tuple[str, int]
    rules: list[Rule] = field(default_factory=list)
    log: list[str] = field(default_factory=list)  # "METHOD path -> status"
    lock: threading.Lock = field(default_factory=threading.Lock)

    def fault_for(self, line: str) -> int | str | None:
        with self.lock:
            for rule in self.rules:
                if re.search(rule.pattern, line):
                    rule.seen += 1
                    if rule.hits < rule.times:
                        rule.hits += 1
                        return rule.fault
        return None


def _handler(state: _State) -> type[BaseHTTPRequestHandler]:  # noqa: C901 - one small HTTP handler
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib name
            del format, args

        def _relay(self) -> None:
            line = f"{self.command} {self.path}"
            fault = state.fault_for(line)
            body = self._read_body()
            if fault == "reset":
                state.log.append(f"{line} -> reset")
                with contextlib.suppress(OSError):
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\0\0\0\0\0\0\0")
                self.close_connection = True
                self.connection.close()
                return
            if isinstance(fault, int):
                state.log.append(f"{line} -> {fault}")
                reason = http.HTTPStatus(fault).phrase
                # What an ingress answers by itself: an HTML page, not Coder's JSON.
                payload = f"<html><head><title>{fault} {reason}</title></head></html>\n".encode()
                self.send_response(fault)
                if fault == http.HTTPStatus.TOO_MANY_REQUESTS:  # as coderd's per-user limits say it
                    self.send_header("Retry-After", "1")
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
                return
            if self.headers.get("Upgrade", "").lower() == "websocket":
                self._tunnel(line)
                return
            upstream = http.client.HTTPConnection(*state.upstream, timeout=600)
            headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP}
            upstream.request(self.command, self.path, body=body, headers=headers)
            resp = upstream.getresponse()
            data = resp.read()
            state.log.append(f"{line} -> {resp.status}")
            self.send_response(resp.status, resp.reason)
            for key, value in resp.getheaders():
                if key.lower() not in _HOP and key.lower() != "content-length":
                    self.send_header(key, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            upstream.close()

        def _read_body(self) -> bytes | None:
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                chunks = []
                while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
                    chunks.append(self.rfile.read(size))
                    self.rfile.readline()
                while self.rfile.readline() not in (b"\r\n", b"\n", b""):  # trailers
                    pass
                return b"".join(chunks)
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length else None

        def _tunnel(self, line: str) -> None:
            """Pass an upgraded connection through byte for byte."""
            state.log.append(f"{line} -> upgrade")
            sock = socket.create_connection(state.upstream)
            head = f"{self.command} {self.path} HTTP/1.1\r\n" + "".join(
                f"{k}: {v}\r\n" for k, v in self.headers.items()
            )
            sock.sendall(head.encode() + b"\r\n")

            def up() -> None:
                with contextlib.suppress(OSError, ValueError):  # ValueError: the handler closed rfile
                    while chunk := self.rfile.read1(65536):
                        sock.sendall(chunk)
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_WR)

            thread = threading.Thread(target=up, daemon=True)
            thread.start()
            with contextlib.suppress(OSError):
                while chunk := sock.recv(65536):
                    self.connection.sendall(chunk)
            sock.close()
            self.close_connection = True

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _relay  # noqa: N815

    return Handler


class FaultProxy:
    """``with FaultProxy(upstream_url) as proxy: proxy.url``; ``proxy.add(pattern, fault, times)``."""

    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        self.state = _State((parts.hostname or "127.0.0.1", parts.port or 80))
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self.state))
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def add(self, pattern: str, fault: int | str, times: int = 1) -> Rule:
        """Fault the next ``times`` requests matching ``pattern`` (``"POST /api/v2/files"``)."""
        rule = Rule(pattern, fault, times)
        with self.state.lock:
            self.state.rules.append(rule)
        return rule

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
