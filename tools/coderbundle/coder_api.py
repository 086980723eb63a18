"""A small client for the parts of Coder's REST API (``/api/v2``) that publishing reads.

Authentication is the ``Coder-Session-Token`` header.  Connection errors and
5xx answers are retried with exponential backoff (bounded); a 401 or 403 stops
everything with ``CoderAuthError``.  No message this module raises ever
contains the token.
"""

from __future__ import annotations

import contextlib
import threading
import time
import urllib.parse
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import requests

from coderbundle.errors import EnvError, PublishError

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = ["CoderAPI", "CoderAuthError", "Organization", "connect", "environment_errors"]

_SERVER_ERROR = 500
_NOT_FOUND = 404
_GONE = 410
_NOT_MODIFIED = 304
_AUTH_FAILED = (401, 403)
_RATE_LIMITED = 429
_PAGE = 100
_IMPORT_POLL = 0.5
# coderd limits some endpoints per user (uploads: 12 a minute, FilesRateLimit) and says
# when to come back in Retry-After; a wait longer than this is not waited for.
_MAX_RATE_WAIT = 65.0
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

    doctor_predicts = True  # the session token row: rejected, expired, or not a template admin


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

    def _send(self, method: str, path: str, body: object, raw: bytes | None) -> requests.Response:
        with self._lock:
            self.requests_made += 1
        url = f"{self.url}/api/v2{path}"
        if raw is not None:
            headers = {"Content-Type": "application/x-tar"}
            return self._session().request(method, url, data=raw, headers=headers, timeout=self._timeout)
        return self._session().request(method, url, json=body, timeout=self._timeout)

    def request(
        self,
        method: str,
        path: str,
        body: object = None,
        *,
        raw: bytes | None = None,
        allow: tuple[int, ...] = (),
    ) -> requests.Response:
        """Send one request, retrying connection errors, 5xx and 429 (after Retry-After); raise on 401/403.

        Answers with a status in ``allow`` (and 404) are returned for the caller to read.
        """
        for attempt in range(1, self._tries + 1):
            try:
                resp = self._send(method, path, body, raw)
                resp = self._wait_out_rate_limit(resp, method, path, body, raw)
            except (requests.ConnectionError, requests.Timeout) as exc:
                if attempt == self._tries:
                    msg = f"{method} {self.url}{path}: cannot reach Coder ({type(exc).__name__})"
                    msg += f" after {attempt} tries; check CODER_URL and the network"
                    raise PublishError(msg) from None
            else:
                if resp.status_code < _SERVER_ERROR or resp.status_code in allow or attempt == self._tries:
                    return self._check(method, path, resp, allow)
            time.sleep(self._backoff * 2 ** (attempt - 1))
        msg = "unreachable"  # pragma: no cover - the loop always returns or raises
        raise AssertionError(msg)

    def _wait_out_rate_limit(
        self, resp: requests.Response, method: str, path: str, body: object, raw: bytes | None
    ) -> requests.Response:
        """Wait as long as a 429 says (Retry-After) and send again, a few times."""
        for _ in range(3):
            if resp.status_code != _RATE_LIMITED:
                break
            try:
                wait = float(resp.headers.get("Retry-After", "5"))
            except ValueError:
                wait = 5.0
            if wait > _MAX_RATE_WAIT:
                break
            time.sleep(max(wait, 0.1))
            resp = self._send(method, path, body, raw)
        return resp

    def _check(
        self, method: str, path: str, resp: requests.Response, allow: tuple[int, ...] = ()
    ) -> requests.Response:
        code = resp.status_code
        if code in allow:
            return resp
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

    def _json(self, method: str, path: str, body: object = None, *, raw: bytes | None = None) -> Any:
        resp = self.request(method, path, body, raw=raw)
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

    def buildinfo(self) -> dict[str, Any] | None:
        """``GET /buildinfo``: the server's version."""
        found: dict[str, Any] | None = self._json("GET", "/buildinfo")
        return found

    def external_auth_ids(self) -> list[str] | None:
        """The ids of the deployment's external auth providers (``None``: the server has no such list)."""
        found = self._json("GET", "/external-auth")
        if not isinstance(found, dict):
            return None
        return sorted(str(p.get("id", "")) for p in found.get("providers") or [])

    def entitled(self, feature: str) -> bool:
        """Whether a licensed feature is on; the open-source build has no entitlements (False)."""
        found = self._json("GET", "/entitlements")
        if not isinstance(found, dict):
            return False
        entry = (found.get("features") or {}).get(feature) or {}
        return entry.get("entitlement") in ("entitled", "grace_period") and bool(entry.get("enabled"))

    def upload(self, archive: bytes) -> str:
        """Upload a template archive; its file id."""
        return str(self._json("POST", "/files", raw=archive)["hash"])

    def file(self, file_id: str) -> bytes:
        """A file the deployment stores (a template version's archive)."""
        resp = self.request("GET", f"/files/{file_id}")
        if resp.status_code == _NOT_FOUND:
            msg = f"GET {self.url}/api/v2/files/{file_id}: the server no longer has this version's archive"
            raise PublishError(msg)
        return resp.content

    def import_version(self, org_id: str, file_id: str, variables: dict[str, str]) -> dict[str, Any]:
        """Import an archive as a version of no template (users never see it); the new version."""
        body = {
            "storage_method": "file",
            "provisioner": "terraform",
            "file_id": file_id,
            "user_variable_values": [{"name": k, "value": v} for k, v in sorted(variables.items())],
        }
        found: dict[str, Any] = self._json("POST", f"/organizations/{org_id}/templateversions", body)
        return found

    def import_unattached(
        self, org_id: str, archive: bytes, variables: dict[str, str], *, label: str, timeout: float = 1800.0
    ) -> dict[str, Any]:
        """Upload an archive and import it as a version of no template (users never see it).

        Waits for the import job; the finished version, or one line naming ``label`` when the
        server failed or did not finish in ``timeout`` seconds.
        """
        version = self.import_version(org_id, self.upload(archive), variables)
        deadline = time.monotonic() + timeout
        while version.get("job", {}).get("status") not in ("succeeded", "failed", "canceled"):
            if time.monotonic() > deadline:
                msg = f"{label}: the server did not finish importing the candidate in {timeout:.0f} s"
                raise PublishError(msg)
            time.sleep(_IMPORT_POLL)
            version = self.template_version(version["id"]) or version
        if version["job"]["status"] != "succeeded":
            error = str(version["job"].get("error") or version["job"]["status"]).splitlines()[0]
            msg = f"{label}: the server failed to import the candidate: {error}"
            raise PublishError(msg)
        return version

    def rich_parameters(self, version_id: str) -> list[dict[str, Any]]:
        """The parameters the server extracted from a version (``/rich-parameters``)."""
        path = f"/templateversions/{version_id}/rich-parameters"
        found: list[dict[str, Any]] = self._json("GET", path) or []
        return found

    # -- versions and workspaces (rollouts) -------------------------------------------
    def me(self) -> dict[str, Any]:
        """The token's user (``GET /users/me``)."""
        found: dict[str, Any] = self._json("GET", "/users/me")
        return found

    def versions(self, template_id: str) -> list[dict[str, Any]]:
        """Every unarchived version of a template, oldest first (all pages)."""
        found: list[dict[str, Any]] = []
        after = ""
        while True:
            query = f"?limit={_PAGE}" + (f"&after_id={after}" if after else "")
            page: list[dict[str, Any]] = self._json("GET", f"/templates/{template_id}/versions{query}") or []
            found += page
            if len(page) < _PAGE:
                return found
            after = page[-1]["id"]

    def set_version_message(self, version_id: str, message: str) -> None:
        """Replace a version's message (``PATCH /templateversions/{id}``)."""
        self._json("PATCH", f"/templateversions/{version_id}", {"message": message})

    def archive_version(self, version_id: str) -> str:
        """Archive one version; "" when archived, else the server's reason (active, in use).

        coderd answers a version still in use with HTTP 500 ("Unable to archive specified
        version, the version is likely in use ..."): that answer is a reason, not a failure.
        """
        path = f"/templateversions/{version_id}/archive"
        resp = self.request("POST", path, None, allow=(400, _SERVER_ERROR))
        if resp.status_code < 400:
            return ""
        reason = _error_text(resp)
        if resp.status_code == _SERVER_ERROR and "in use" not in reason:
            msg = f"POST {self.url}/api/v2{path}: HTTP 500: {reason}"
            raise PublishError(msg)
        return reason

    def workspaces(self, query: str) -> list[dict[str, Any]]:
        """Workspaces matching a search query (``template:T owner:U outdated:true``), all pages."""
        found: list[dict[str, Any]] = []
        while True:
            params = urllib.parse.urlencode({"q": query, "limit": _PAGE, "offset": len(found)})
            page = self._json("GET", f"/workspaces?{params}") or {}
            batch: list[dict[str, Any]] = page.get("workspaces") or []
            found += batch
            if len(batch) < _PAGE or len(found) >= int(page.get("count") or 0):
                return found

    def workspace(self, workspace_id: str) -> dict[str, Any] | None:
        """``GET /workspaces/{id}``: the workspace with its latest build, resources and agents.

        ``None`` once it is deleted (410 Gone) or not there.
        """
        resp = self.request("GET", f"/workspaces/{workspace_id}", allow=(_GONE,))
        if resp.status_code in (_GONE, _NOT_FOUND):
            return None
        found: dict[str, Any] = resp.json()
        return found

    def create_workspace(
        self, org_id: str, owner: str, name: str, version_id: str, parameters: dict[str, str]
    ) -> dict[str, Any]:
        """A workspace of ``owner`` (``me``: the token's user) built from a given template version."""
        body = {
            "name": name,
            "template_version_id": version_id,
            "rich_parameter_values": [{"name": k, "value": v} for k, v in sorted(parameters.items())],
        }
        found: dict[str, Any] = self._json(
            "POST", f"/organizations/{org_id}/members/{owner}/workspaces", body
        )
        return found

    def start_build(
        self,
        workspace_id: str,
        transition: str,
        version_id: str = "",
        parameters: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """A new build (``start``, ``stop``, ``delete``), on ``version_id`` when given."""
        body: dict[str, Any] = {"transition": transition}
        if version_id:
            body["template_version_id"] = version_id
        if parameters:
            body["rich_parameter_values"] = [{"name": k, "value": v} for k, v in sorted(parameters.items())]
        found: dict[str, Any] = self._json("POST", f"/workspaces/{workspace_id}/builds", body)
        return found

    def build(self, build_id: str) -> dict[str, Any]:
        """``GET /workspacebuilds/{id}``."""
        found: dict[str, Any] = self._json("GET", f"/workspacebuilds/{build_id}")
        return found

    def build_parameters(self, build_id: str) -> list[dict[str, Any]]:
        """The parameter values a build ran with (``[{name, value}]``)."""
        found: list[dict[str, Any]] = self._json("GET", f"/workspacebuilds/{build_id}/parameters") or []
        return found

    def build_state(self, build_id: str) -> bytes:
        """The Terraform state a build left (``GET /workspacebuilds/{id}/state``); b"" when none."""
        resp = self.request("GET", f"/workspacebuilds/{build_id}/state")
        return b"" if resp.status_code == _NOT_FOUND else resp.content

    def build_logs(self, build_id: str) -> list[dict[str, Any]]:
        """The provisioner's log lines of a finished build."""
        found: list[dict[str, Any]] = self._json("GET", f"/workspacebuilds/{build_id}/logs") or []
        return found

    def version_variables(self, version_id: str) -> list[dict[str, Any]]:
        """A version's template variables with the values the server stores (sensitive ones blank)."""
        found: list[dict[str, Any]] = self._json("GET", f"/templateversions/{version_id}/variables") or []
        return found

    def update_template(self, current: dict[str, Any], changes: dict[str, Any]) -> None:
        """Apply ``changes`` on top of the template's current settings."""
        body = {k: current[k] for k in PATCH_FIELDS if k in current}
        body.update(changes)
        self._json("PATCH", f"/templates/{current['id']}", body)

    # -- impact -----------------------------------------------------------------------
    def evaluate_parameters(
        self, version_id: str, owner_id: str, inputs: dict[str, str]
    ) -> dict[str, Any] | None:
        """The server's evaluation of a version's parameters with ``inputs`` for an owner.

        ``POST /templateversions/{id}/dynamic-parameters/evaluate`` (codersdk
        DynamicParametersResponse); ``None`` where the server has no such endpoint.
        """
        path = f"/templateversions/{version_id}/dynamic-parameters/evaluate"
        body = {"id": 0, "inputs": inputs, "owner_id": owner_id}
        resp = self.request("POST", path, body, allow=(405,))
        if resp.status_code in (_NOT_FOUND, 405):
            return None
        found: dict[str, Any] = resp.json()
        return found

    def user(self, user_id: str) -> dict[str, Any] | None:
        """``GET /users/{id}``: name, email, login type and roles."""
        found: dict[str, Any] | None = self._json("GET", f"/users/{user_id}")
        return found


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


def connect(url: str, token: str, organization: str) -> tuple[CoderAPI, Organization]:
    """A client for ``url`` and the organization resolved; a wrong environment exits 2 (EnvError)."""
    if not url:
        msg = "CODER_URL is not set; set it to the Coder deployment's access URL"
        raise EnvError(msg)
    if not token:
        msg = f"CODER_URL is {url} but CODER_SESSION_TOKEN is not set"
        msg += "; create a token with `coder tokens create`"
        raise EnvError(msg)
    api = CoderAPI(url, token)
    with environment_errors():
        return api, api.organization(organization)


@contextlib.contextmanager
def environment_errors() -> Iterator[None]:
    """Coder unreachable, not Coder at that URL, no such organization: exit 2 (``EnvError``).

    A 5xx answer stays a failed step (``PublishError``); a rejected token stays ``CoderAuthError``.
    """
    try:
        yield
    except CoderAuthError:
        raise
    except PublishError as exc:
        if ": HTTP " in str(exc):
            raise  # the server failed (5xx): a failed step, not the environment
        raise EnvError(str(exc)) from None
