"""THE Coder stand-in: an in-process HTTP server speaking the parts of Coder's REST API we use.

Publishing is proven against a real Coder server (tests/coder_deployment.py,
tests/test_publish_real.py).  This stand-in stays only for what that server
cannot do on demand.  Its users, and why:

tests/test_publish.py
  * a *licensed* deployment (``GET /entitlements`` says advanced template
    scheduling is entitled, so dormancy fields are applied and compared, and a
    PATCH keeps the licensed defaults it was not sent): the real server here is
    the open-source build, which has no licence;
  * a 403 to every REST call (``forbidden``), as a policy or proxy in front of
    Coder answers: coderd lets any member read templates and refuses only
    writes;
  * a ``coder`` CLI that prints the token it was given (``echo_token``), to
    prove no secret reaches the output even from a leaky tool: the real CLI
    never does;
  * exact fault sequences on the REST calls of one run (``faults``: status
    codes or ``"drop"``) and the exact argv the CLI was run with
    (``cli_calls``); the real server's faults come from
    ``standin/fault_proxy.py``, which matches requests, not their order;
  * an import of a new *version of an existing template* failing once with the
    modules-archive race's error (``fail_once``) or every time
    (``fail_imports``), to check the version name the failed import leaves
    taken: the real server's race test races first publishes only.
tests/test_doctor.py
  * a token that has expired, yet whose key doctor can still read
    (``key_expires_at`` in 2020): coderd answers 401 to an expired key, so the
    "expired on" row cannot be produced by it; the fixed expiry of the valid
    case keeps that row's text exact;
  * a ``coder`` CLI of another version than the server
    (``STANDIN_CODER_CLI_VERSION``): one Coder version is built here;
  * and, so that the doctor tests run without a deployment (PostgreSQL and a
    Coder build), the version, not-Coder, member-role and wrong-token rows a
    real server could answer too.

(tests/test_messages.py does not use it: its not-Coder server is a handler of
its own.)

JSON shapes follow codersdk (Template, TemplateVersion, Organization,
BuildInfoResponse, Response{message, detail}); semantics follow coderd where
they matter to publishing:

* ``Coder-Session-Token`` auth (401 without it, 403 when ``forbidden``);
* ``PATCH /templates/{id}`` *replaces* the scheduling and display fields the
  body leaves out, and answers 304 when nothing changes (coderd
  patchTemplateMeta);
* a failed import leaves the template's active version alone;
* version names are unique per template (409).

The companion ``coder`` CLI (``coder_cli.py``, installed on PATH with
``install_cli``) uploads and registers versions through the same API.
"""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Self

__all__ = ["CoderStandin", "State", "install_cli"]

HERE = Path(__file__).resolve().parent
DAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
USER = {"id": "5a3f7bd4-0000-4000-8000-000000000001", "username": "admin", "avatar_url": ""}
# Replaced by PATCH /templates/{id} with the zero value when left out of the body.
REPLACED = {
    "display_name": "",
    "description": "",
    "icon": "",
    "default_ttl_ms": 0,
    "activity_bump_ms": 0,
    "allow_user_autostart": False,
    "allow_user_autostop": False,
    "allow_user_cancel_workspace_jobs": False,
    "failure_ttl_ms": 0,
    "time_til_dormant_ms": 0,
    "time_til_dormant_autodelete_ms": 0,
    "require_active_version": False,
}
KEPT_WHEN_MISSING = ("name", "deprecation_message", "autostop_requirement", "autostart_requirement")


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime())


@dataclass
class State:
    """Everything the stand-in knows; tests read and steer it directly."""

    token: str = "standin-session-token-0123456789"  # noqa: S105 - a test value
    orgs: list[dict[str, Any]] = field(default_factory=list)
    templates: dict[str, dict[str, Any]] = field(default_factory=dict)
    versions: dict[str, dict[str, Any]] = field(default_factory=dict)
    version_variables: dict[str, dict[str, str]] = field(default_factory=dict)
    files: dict[str, bytes] = field(default_factory=dict)
    fail_imports: set[str] = field(default_factory=set)  # template names whose import fails
    # template name -> the error its next import fails with, once (a race the real one hits at random)
    fail_once: dict[str, str] = field(default_factory=dict)
    echo_token: bool = False  # the CLI prints the token it was given (a leaky tool)
    push_delay: float = 0.0  # seconds an import takes
    forbidden: bool = False
    # Who the token belongs to (GET /users/me) and its API key (GET /users/{id}/keys/{key id}).
    user: dict[str, Any] = field(
        default_factory=lambda: {
            "id": "0c0de000-0000-4000-8000-0000000000aa",
            "username": "coderbundle-ci",
            "roles": [{"name": "template-admin", "display_name": "Template Admin"}],
        }
    )
    key_expires_at: str = "2099-01-01T00:00:00Z"
    # GET /users/me/roles: the user's roles per organization id (Coder's organization_roles).
    org_roles: dict[str, list[str]] = field(default_factory=dict)
    # Consumed by the publisher's requests in order: 503, "drop", or (path regex, fault).
    faults: list[Any] = field(default_factory=list)
    requests: list[tuple[str, str, str]] = field(default_factory=list)  # (client, method, path)
    cli_calls: list[dict[str, Any]] = field(default_factory=list)
    lock: Any = field(default_factory=threading.RLock)

    def __post_init__(self) -> None:
        if not self.orgs:
            self.orgs = [
                _org("coder", default=True, oid="0c0de000-0000-4000-8000-000000000001"),
                _org("platform", default=False, oid="0c0de000-0000-4000-8000-000000000002"),
            ]

    def take_fault(self, path: str) -> int | str | None:
        """Pop the first fault for ``path``: a bare fault, or ``(regex, fault)``."""
        for i, entry in enumerate(self.faults):
            if not isinstance(entry, tuple) or re.search(entry[0], path):
                self.faults.pop(i)
                return entry[1] if isinstance(entry, tuple) else entry
        return None

    def api_requests(self, client: str = "publisher") -> list[tuple[str, str, str]]:
        """Requests made by ``client`` (``publisher`` or ``cli``)."""
        return [r for r in self.requests if r[0] == client]

    def template_named(self, name: str) -> dict[str, Any] | None:
        return next((t for t in self.templates.values() if t["name"] == name), None)

    def active_version(self, name: str) -> dict[str, Any] | None:
        t = self.template_named(name)
        return self.versions[t["active_version_id"]] if t else None


def _org(name: str, *, default: bool, oid: str) -> dict[str, Any]:
    return {
        "id": oid,
        "name": name,
        "display_name": name.title(),
        "description": "",
        "icon": "",
        "is_default": default,
        "created_at": now(),
        "updated_at": now(),
    }


def _new_template(org: dict[str, Any], name: str, version_id: str) -> dict[str, Any]:
    return {
        "id": str(uuid.uuid4()),
        "name": name,
        "display_name": "",
        "description": "",
        "icon": "",
        "organization_id": org["id"],
        "organization_name": org["name"],
        "organization_display_name": org["display_name"],
        "organization_icon": "",
        "active_version_id": version_id,
        "active_user_count": 0,
        "build_time_stats": {},
        "deprecated": False,
        "deprecation_message": "",
        "created_at": now(),
        "updated_at": now(),
        "created_by_id": USER["id"],
        "created_by_name": USER["username"],
        "provisioner": "terraform",
        "default_ttl_ms": 0,
        "activity_bump_ms": 3_600_000,
        "autostop_requirement": {"days_of_week": [], "weeks": 1},
        "autostart_requirement": {"days_of_week": DAYS},
        "allow_user_autostart": True,
        "allow_user_autostop": True,
        "allow_user_cancel_workspace_jobs": True,
        "failure_ttl_ms": 0,
        "time_til_dormant_ms": 0,
        "time_til_dormant_autodelete_ms": 0,
        "require_active_version": False,
        "max_port_share_level": "owner",
        "use_classic_parameter_flow": False,
    }


class _Reply(Exception):
    def __init__(self, status: int, body: object = None) -> None:
        super().__init__(status)
        self.status, self.body = status, body


def _fail(status: int, message: str, detail: str = "") -> _Reply:
    return _Reply(status, {"message": message, "detail": detail})


class Api:
    """The routes: (method, regex) -> handler(match, body) -> JSON."""

    def __init__(self, state: State) -> None:
        self.s = state
        self.routes = [
            ("GET", r"/buildinfo", self.buildinfo),
            ("GET", r"/entitlements", self.entitlements),
            ("GET", r"/external-auth", self.external_auth),
            ("GET", r"/templateversions/([^/]+)/rich-parameters", self.rich_parameters),
            ("GET", r"/organizations", self.organizations),
            ("GET", r"/users/me", self.me),
            ("GET", r"/users/me/roles", self.my_roles),
            ("GET", r"/users/([^/]+)/keys/([^/]+)", self.api_key),
            ("GET", r"/organizations/([^/]+)/templates/([^/]+)", self.get_template),
            ("POST", r"/organizations/([^/]+)/templates", self.create_template),
            ("POST", r"/organizations/([^/]+)/templateversions", self.create_version),
            ("GET", r"/templateversions/([^/]+)", self.get_version),
            ("GET", r"/templates/([^/]+)/versions/([^/]+)", self.version_by_name),
            ("PATCH", r"/templates/([^/]+)/versions", self.promote),
            ("PATCH", r"/templates/([^/]+)", self.patch_template),
        ]

    def org(self, ref: str) -> dict[str, Any]:
        for org in self.s.orgs:
            if ref in (org["id"], org["name"]):
                return org
        raise _fail(404, "Resource not found or you do not have access to this resource")

    def me(self, _m: re.Match[str], _b: Any) -> Any:
        return {**self.s.user, "email": f"{self.s.user['username']}@example.com", "status": "active"}

    def my_roles(self, _m: re.Match[str], _b: Any) -> Any:
        site = [r["name"] for r in self.s.user.get("roles") or []]
        member: dict[str, list[str]] = {org["id"]: [] for org in self.s.orgs}
        return {"roles": site, "organization_roles": {**member, **self.s.org_roles}}

    def api_key(self, m: re.Match[str], _b: Any) -> Any:
        """The session token's key, when the token has Coder's ``<10-char id>-<secret>`` form."""
        if m.group(1) not in ("me", self.s.user["id"]) or not self.s.token.startswith(f"{m.group(2)}-"):
            raise _fail(404, "Resource not found or you do not have access to this resource")
        return {
            "id": m.group(2),
            "user_id": self.s.user["id"],
            "expires_at": self.s.key_expires_at,
            "login_type": "token",
            "token_name": "ci-publish",
        }

    def buildinfo(self, _m: re.Match[str], _b: Any) -> Any:
        return {
            "version": "v2.37.1-standin",
            "external_url": "https://github.com/coder/coder",
            "dashboard_url": "",
            "deployment_id": "standin",
            "agent_api_version": "2.6",
            "provisioner_api_version": "1.9",
            "telemetry": False,
            "upgrade_message": "",
            "webpush_public_key": "",
            "workspace_proxy": False,
        }

    def entitlements(self, _m: re.Match[str], _b: Any) -> Any:
        """A licensed deployment: advanced template scheduling applies (the real one here has no licence)."""
        return {"features": {"advanced_template_scheduling": {"entitlement": "entitled", "enabled": True}}}

    def external_auth(self, _m: re.Match[str], _b: Any) -> Any:
        return {"providers": [{"id": "gitlab", "type": "gitlab"}], "links": []}

    def rich_parameters(self, _m: re.Match[str], _b: Any) -> Any:
        return []  # the stand-in extracts nothing; the upgrade gate is proven on the real server

    def organizations(self, _m: re.Match[str], _b: Any) -> Any:
        return self.s.orgs

    def get_template(self, m: re.Match[str], _b: Any) -> Any:
        org = self.org(m[1])
        for t in self.s.templates.values():
            if t["name"] == m[2] and t["organization_id"] == org["id"]:
                return t
        raise _fail(404, "Resource not found or you do not have access to this resource")

    def create_template(self, m: re.Match[str], body: Any) -> Any:
        org = self.org(m[1])
        version = self.s.versions[body["template_version_id"]]
        if any(t["name"] == body["name"] for t in self.s.templates.values()):
            raise _fail(409, f"Template with name {body['name']!r} already exists.")
        t = _new_template(org, body["name"], version["id"])
        self.s.templates[t["id"]] = t
        version["template_id"] = t["id"]
        return t

    def create_version(self, m: re.Match[str], body: Any) -> Any:
        org = self.org(m[1])
        tid = body.get("template_id") or None
        if tid and any(
            v["template_id"] == tid and v["name"] == body.get("name") for v in self.s.versions.values()
        ):
            msg = f"A template version with name {body['name']!r} already exists for this template."
            raise _fail(409, msg)
        once = self.s.fail_once.pop(body.get("_template_name"), "")
        failed = bool(once) or body.get("_template_name") in self.s.fail_imports
        vid = str(uuid.uuid4())
        job = {
            "id": str(uuid.uuid4()),
            "status": "failed" if failed else "succeeded",
            "error": (once or "terraform plan: Error: injected import failure") if failed else "",
            "error_code": "",
            "created_at": now(),
            "started_at": now(),
            "completed_at": now(),
            "file_id": body["file_id"],
            "tags": {"scope": "organization", "owner": ""},
            "queue_position": 0,
            "queue_size": 0,
            "organization_id": org["id"],
        }
        version = {
            "id": vid,
            "template_id": tid,
            "organization_id": org["id"],
            "name": body.get("name") or f"standin_{vid[:8]}",
            "message": body.get("message", ""),
            "readme": "",
            "archived": False,
            "created_at": now(),
            "updated_at": now(),
            "created_by": USER,
            "warnings": [],
            "job": job,
        }
        self.s.versions[vid] = version
        values = {v["name"]: v["value"] for v in body.get("user_variable_values") or []}
        self.s.version_variables[vid] = values
        return version

    def get_version(self, m: re.Match[str], _b: Any) -> Any:
        if m[1] not in self.s.versions:
            raise _fail(404, "Resource not found or you do not have access to this resource")
        return self.s.versions[m[1]]

    def version_by_name(self, m: re.Match[str], _b: Any) -> Any:
        for v in self.s.versions.values():
            if v["template_id"] == m[1] and v["name"] == m[2]:
                return v
        raise _fail(404, f"No template version found by name {m[2]!r}.")

    def promote(self, m: re.Match[str], body: Any) -> Any:
        t = self.s.templates[m[1]]
        version = self.s.versions.get(body.get("id", ""))
        if version is None or version["template_id"] != t["id"]:
            raise _fail(400, "The provided template version doesn't belong to the specified template.")
        if version["job"]["status"] != "succeeded":
            raise _fail(400, "The provided template version failed to import!")
        t["active_version_id"] = version["id"]
        return {"message": "Updated the active template version!"}

    def patch_template(self, m: re.Match[str], body: Any) -> Any:
        t = self.s.templates.get(m[1])
        if t is None:
            raise _fail(404, "Resource not found or you do not have access to this resource")
        new = {k: body.get(k, zero) for k, zero in REPLACED.items()}
        new.update({k: body[k] for k in KEPT_WHEN_MISSING if body.get(k) not in (None, "")})
        if all(t.get(k) == v for k, v in new.items()):
            raise _Reply(304)
        t.update(new, updated_at=now())
        t["deprecated"] = bool(t["deprecation_message"])
        return t


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        del format, args

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    def _body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _dispatch(self, method: str) -> None:
        raw = self._body()
        path = self.path.split("?")[0]
        state = self.server.state
        if path.startswith("/_standin/"):
            return self._standin(method, path, raw)
        client = "cli" if self.headers.get("X-Standin-Client") == "cli" else "publisher"
        with state.lock:
            state.requests.append((client, method, path))
            fault = state.take_fault(path) if client == "publisher" else None
        if fault == "drop":
            self.close_connection = True
            return None
        if fault is not None:
            return self._send(int(fault), {"message": "Injected fault.", "detail": "stand-in"})
        try:
            body = self._handle(method, path.removeprefix("/api/v2"), raw)
        except _Reply as reply:
            return self._send(reply.status, reply.body)
        return self._send(201 if method == "POST" else 200, body)

    def _handle(self, method: str, path: str, raw: bytes) -> Any:
        state = self.server.state
        if path != "/buildinfo":
            if self.headers.get("Coder-Session-Token") != state.token:
                raise _fail(401, "You must be authenticated to use this endpoint.", "Invalid session token.")
            if state.forbidden:
                raise _fail(403, "Forbidden.", "Insufficient permissions to update templates.")
        if path == "/files" and method == "POST":
            fid = str(uuid.uuid4())
            with state.lock:
                state.files[fid] = raw
            return {"hash": fid}
        if (found := re.fullmatch(r"/files/([^/]+)", path)) and method == "GET":
            if found[1] not in state.files:
                raise _fail(404, "File not found.")
            return state.files[found[1]]
        data = json.loads(raw) if raw else None
        for verb, pattern, func in self.server.api.routes:
            match = re.fullmatch(pattern, path)
            if verb == method and match:
                if func == self.server.api.create_version:
                    time.sleep(state.push_delay)  # the import job; parallel pushes overlap here
                with state.lock:
                    return func(match, data)
        raise _fail(404, f"Route {method} {path} not found.")

    def _standin(self, method: str, path: str, raw: bytes) -> None:
        state = self.server.state
        if method == "POST" and path == "/_standin/cli":
            with state.lock:
                state.cli_calls.append(json.loads(raw))
            return self._send(200, {})
        return self._send(200, {"echo_token": state.echo_token})

    def _send(self, status: int, body: object) -> None:
        raw = isinstance(body, bytes)
        data = b"" if status == 304 or body is None else body if raw else json.dumps(body).encode()
        self.send_response(status)
        if data:
            self.send_header("Content-Type", "application/x-tar" if raw else "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, state: State) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.state = state
        self.api = Api(state)


class CoderStandin:
    """Start the stand-in on a free local port: ``with CoderStandin() as coder: coder.url``."""

    def __init__(self, state: State | None = None) -> None:
        self.state = state or State()
        self._server = _Server(self.state)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


def install_cli(bin_dir: Path, python: str) -> Path:
    """Write ``bin_dir/coder`` running the stand-in CLI with ``python``; return its path."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    script = bin_dir / "coder"
    script.write_text(f'#!/bin/sh\nexec "{python}" "{HERE / "coder_cli.py"}" "$@"\n', encoding="utf-8")
    script.chmod(0o755)
    return script
