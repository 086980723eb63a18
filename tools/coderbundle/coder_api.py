"""A small client for the parts of Coder's REST API (``/api/v2``) that publishing reads.

Authentication is the ``Coder-Session-Token`` header.  Connection errors and
5xx answers are retried with exponential backoff (bounded); a 401 or 403 stops
everything with ``CoderAuthError``.  No message this module raises ever
contains the token.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

import requests

from coderbundle.errors import PublishError

__all__ = ["CoderAPI", "CoderAuthError", "Organization"]

_SERVER_ERROR = 500
_NOT_FOUND = 404
_NOT_MODIFIED = 304
_AUTH_FAILED = (401, 403)
# The template fields PATCH /templates/{id} replaces: the server resets any
# field the body leaves out (coderd patchTemplateMeta), so a change is always
# sent on top of the current values, as `coder templates edit` does.
PATCH_FIELDS = (
    "name",
    "display_name",
    "description",
    "icon",
    "default_ttl_ms",
    "activity_bump_ms",
    "autostop_requirement",
    "autostart_requirement",
    "allow_user_autostart",
    "allow_user_autostop",
    "allow_user_cancel_workspace_jobs",
    "failure_ttl_ms",
    "time_til_dormant_ms",
    "time_til_dormant_autodelete_ms",
    "require_active_version",
    "deprecation_message",
)


class CoderAuthError(PublishError):
    """The deployment rejected the session token (401) or its permissions (403)."""


@dataclass(frozen=True)
class Organization:
    """A Coder organization, resolved to its id."""

    id: str
    name: str


class CoderAPI:
    """Typed calls to one Coder deployment; safe to share between threads."""

    def __init__(
        self,
        url: str,
        token: str,
        *,
        tries: int = 4,
        backoff: float = 0.25,
        timeout: float = 30.0,
    ) -> None:
        """Talk to ``url`` (the deployment's access URL) with ``token``."""
        self.url = url.rstrip("/")
        self._token = token
        self._tries = tries
        self._backoff = backoff
        self._timeout = timeout
        self._local = threading.local()
        self._lock = threading.Lock()
        self.requests_made = 0

    def _session(self) -> requests.Session:
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            session.headers["Coder-Session-Token"] = self._token
            session.headers["Accept"] = "application/json"
            self._local.session = session
        return session

    def _send(self, method: str, path: str, body: object) -> requests.Response:
        with self._lock:
            self.requests_made += 1
        return self._session().request(method, f"{self.url}/api/v2{path}", json=body, timeout=self._timeout)

    def request(self, method: str, path: str, body: object = None) -> requests.Response:
        """Send one request, retrying connection errors and 5xx; raise on 401/403."""
        for attempt in range(1, self._tries + 1):
            try:
                resp = self._send(method, path, body)
            except (requests.ConnectionError, requests.Timeout) as exc:
                if attempt == self._tries:
                    msg = f"{method} {self.url}{path}: cannot reach Coder ({type(exc).__name__})"
                    msg += f" after {attempt} tries; check CODER_URL and the network"
                    raise PublishError(msg) from None
            else:
                if resp.status_code < _SERVER_ERROR or attempt == self._tries:
                    return self._check(method, path, resp)
            time.sleep(self._backoff * 2 ** (attempt - 1))
        msg = "unreachable"  # pragma: no cover - the loop always returns or raises
        raise AssertionError(msg)

    def _check(self, method: str, path: str, resp: requests.Response) -> requests.Response:
        code = resp.status_code
        if code in _AUTH_FAILED:
            what = "rejected the session token" if code == _AUTH_FAILED[0] else "denied access"
            msg = (
                f"{self.url}: Coder {what} (HTTP {code} on {method} {path}); "
                "set CODER_SESSION_TOKEN to a valid token of a template admin "
                "(coder tokens create)"
            )
            raise CoderAuthError(msg)
        if code >= _SERVER_ERROR or (code >= 400 and code != _NOT_FOUND):
            msg = f"{method} {self.url}{path}: HTTP {code}: {_error_text(resp)}"
            raise PublishError(msg)
        return resp

    def _json(self, method: str, path: str, body: object = None) -> Any:
        resp = self.request(method, path, body)
        if resp.status_code in (_NOT_FOUND, _NOT_MODIFIED):
            return None
        try:
            return resp.json()
        except ValueError:
            msg = (
                f"{method} {self.url}/api/v2{path}: the answer is not JSON; is CODER_URL Coder's access URL?"
            )
            raise PublishError(msg) from None

    def organization(self, wanted: str) -> Organization:
        """Resolve an organization name or id (empty: the default one) to its id."""
        orgs: list[dict[str, Any]] | None = self._json("GET", "/organizations")
        if orgs is None:  # every Coder answers this path: 404 means something else is at CODER_URL
            msg = (
                f"{self.url}: not a Coder server (GET /api/v2/organizations answered HTTP 404); "
                "set CODER_URL to Coder's access URL"
            )
            raise PublishError(msg)
        for org in orgs:
            if (not wanted and org.get("is_default")) or wanted in (org["id"], org["name"]):
                return Organization(org["id"], org["name"])
        known = ", ".join(o["name"] for o in orgs) or "none visible to this token"
        what = f"organization {wanted!r}" if wanted else "default organization"
        msg = f"{self.url}: no {what}; known: {known}; set [coder].organization or CODER_ORGANIZATION"
        raise PublishError(msg)

    def template(self, org_id: str, name: str) -> dict[str, Any] | None:
        """The template ``name`` in the organization, or ``None`` when it does not exist."""
        found: dict[str, Any] | None = self._json("GET", f"/organizations/{org_id}/templates/{name}")
        return found

    def template_version(self, version_id: str) -> dict[str, Any] | None:
        """``GET /templateversions/{id}``."""
        found: dict[str, Any] | None = self._json("GET", f"/templateversions/{version_id}")
        return found

    def version_by_name(self, template_id: str, name: str) -> dict[str, Any] | None:
        """The template's version called ``name``, or ``None``."""
        found: dict[str, Any] | None = self._json("GET", f"/templates/{template_id}/versions/{name}")
        return found

    def promote(self, template_id: str, version_id: str) -> None:
        """Make an existing version the active one."""
        self._json("PATCH", f"/templates/{template_id}/versions", {"id": version_id})

    def update_template(self, current: dict[str, Any], changes: dict[str, Any]) -> None:
        """Apply ``changes`` on top of the template's current settings."""
        body = {k: current[k] for k in PATCH_FIELDS if k in current}
        body.update(changes)
        self._json("PATCH", f"/templates/{current['id']}", body)


def _error_text(resp: requests.Response) -> str:
    """Coder's ``{message, detail}`` error body as one line."""
    try:
        data = resp.json()
    except ValueError:
        return resp.reason or "no details"
    if not isinstance(data, dict):
        return resp.reason or "no details"
    parts = [str(data.get("message", "")), str(data.get("detail", ""))]
    return "; ".join(p for p in parts if p) or (resp.reason or "no details")
