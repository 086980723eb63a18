"""`coderbundle doctor`: one table of what publish and deploy need, and whether it is there.

Rows: terraform and the offline mirrors (version, built from source or
stand-in), the Coder server, the session token's role and expiry, the coder CLI
against the server's version, the registry (reachable, writable), Docker, the
values file against the chart schema, the kube context.  A row is ``ok``,
``failed``, ``missing`` or ``not set`` (nothing configured, nothing to check);
the command exits 1 when any row failed or is missing.  The Coder checks take
a URL and a token, so tests point them at any server.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from coderbundle import process
from coderbundle.configured import why_not_runnable
from coderbundle.errors import CommandFailed, ToolError

if TYPE_CHECKING:
    from collections.abc import Mapping

    from coderbundle.coder_api import CoderAPI
    from coderbundle.settings import Settings

__all__ = ["Check", "check_coder_cli", "check_coder_server", "check_token", "print_checks", "run_doctor"]

BAD = ("failed", "missing")
# Roles that may push templates and change their settings (Coder's site roles).
PUBLISH_ROLES = {"owner", "template-admin"}
_VERSION = re.compile(r"v?(\d+)\.(\d+)\.(\d+)")
_TOKEN_ID = re.compile(r"^([A-Za-z0-9]{10})-")
_SOON_DAYS = 14
_NOT_FOUND = 404


@dataclass(frozen=True)
class Check:
    """One row: what, its state, what was found (or what to do), and which command needs it."""

    name: str
    status: str  # ok | failed | missing | not set
    detail: str
    needed_by: str

    @property
    def bad(self) -> bool:
        """True when publish or deploy would fail on it."""
        return self.status in BAD


# --- Coder -------------------------------------------------------------------------------------


def _api(url: str, token: str) -> CoderAPI:
    from coderbundle.coder_api import CoderAPI  # noqa: PLC0415 - requests only when Coder is set

    return CoderAPI(url, token, tries=1, timeout=10)


def _get(api: CoderAPI, path: str) -> Any:
    resp = api.request("GET", path)
    return None if resp.status_code == _NOT_FOUND else resp.json()


def check_coder_server(url: str, token: str) -> tuple[Check, str]:
    """Is ``url`` a Coder that answers?  The check and the server's version ('' when unknown)."""
    try:
        info = _get(_api(url, token), "/buildinfo")
    except (ToolError, ValueError) as exc:
        return Check("Coder server", "failed", str(exc), "publish"), ""
    if not isinstance(info, dict) or "version" not in info:
        detail = f"{url}: GET /api/v2/buildinfo is not Coder's; set CODER_URL to Coder's access URL"
        return Check("Coder server", "failed", detail, "publish"), ""
    version = str(info["version"])
    return Check("Coder server", "ok", f"{url}: Coder {version}", "publish"), version


def check_token(url: str, token: str) -> Check:
    """The token's user, whether its role may publish templates, and when it expires."""
    api = _api(url, token)
    try:
        me = _get(api, "/users/me")
    except (ToolError, ValueError) as exc:
        return Check("session token", "failed", str(exc), "publish")
    if not isinstance(me, dict):
        return Check("session token", "failed", f"{url}: GET /api/v2/users/me did not answer", "publish")
    roles = sorted(str(r.get("name")) for r in me.get("roles") or [] if isinstance(r, dict))
    who = f"{me.get('username', '?')} ({', '.join(roles) or 'member'})"
    if not PUBLISH_ROLES & set(roles):
        detail = f"{who} may not push templates; give the CI user the template-admin role"
        return Check("session token", "failed", detail, "publish")
    expiry, expired = _expiry(api, me, token)
    return Check("session token", "failed" if expired else "ok", f"{who}; {expiry}", "publish")


def _expiry(api: CoderAPI, me: Mapping[str, Any], token: str) -> tuple[str, bool]:
    match = _TOKEN_ID.match(token)
    if match is None:
        return "expiry unknown (not a Coder API key)", False
    try:
        key = _get(api, f"/users/{me.get('id', 'me')}/keys/{match.group(1)}")
        expires = datetime.fromisoformat(str(key["expires_at"]))
    except (ToolError, ValueError, KeyError, TypeError):
        return "expiry unknown", False
    days = (expires - datetime.now(UTC)).days
    if days < 0:
        return f"expired on {expires.date()}; create a new token (coder tokens create)", True
    soon = "; soon: create a new one" if days < _SOON_DAYS else ""
    return f"expires {expires.date()} (in {days} day(s){soon})", False


def _minor(version: str) -> tuple[int, int] | None:
    match = _VERSION.search(version)
    return (int(match.group(1)), int(match.group(2))) if match else None


def check_coder_cli(executable: str, server_version: str, *, configured_by: str = "") -> Check:
    """The coder CLI publish runs: there, and of the server's major.minor."""
    if why := why_not_runnable(executable):
        where = f"{configured_by} is {executable!r}" if configured_by else executable
        return Check("coder CLI", "missing", f"{where}: {why}; install the server's CLI", "publish")
    try:
        done = process.run([executable, "version", "--output", "json"], timeout=30)
        version = str(json.loads(done.stdout)["version"])
    except (CommandFailed, ValueError, KeyError, TypeError) as exc:
        return Check("coder CLI", "failed", f"{executable} version: {exc}", "publish")
    if not server_version:
        return Check("coder CLI", "ok", f"{version} (no server to compare with)", "publish")
    if _minor(version) != _minor(server_version):
        detail = f"{version}, the server is {server_version}; install the server's CLI from <CODER_URL>/bin/"
        return Check("coder CLI", "failed", detail, "publish")
    return Check("coder CLI", "ok", f"{version}, as the server", "publish")


def _coder_checks(settings: Settings) -> list[Check]:
    if not settings.coder_url:
        return [
            Check("Coder server", "not set", "CODER_URL unset: publish writes the offline plan", "publish")
        ]
    if not settings.coder_session_token:
        server, version = check_coder_server(settings.coder_url, "")
        token = Check(
            "session token", "missing", "CODER_SESSION_TOKEN unset (coder tokens create)", "publish"
        )
    else:
        server, version = check_coder_server(settings.coder_url, settings.coder_session_token)
        token = check_token(settings.coder_url, settings.coder_session_token)
    cli = check_coder_cli(settings.coder_executable, version, configured_by=settings.coder_executable_from)
    return [server, token, cli]


# --- terraform, registry, Docker, values, kube ---------------------------------------------------


def check_terraform(settings: Settings) -> list[Check]:
    """Terraform's version, and what the provider and module mirrors hold (built from source or stand-in)."""
    from coderbundle import mirrors  # noqa: PLC0415

    tf = settings.terraform
    if why := why_not_runnable(tf.binary):
        where = f"{tf.binary_from} is {tf.binary!r}" if tf.binary_from else tf.binary
        hint = "fix the setting" if tf.binary_from else "`nox -s tools` builds it (docs/offline.md)"
        rows = [
            Check(
                "terraform", "failed" if tf.binary_from else "missing", f"{where}: {why}; {hint}", "validate"
            )
        ]
    else:
        done = process.run([tf.binary, "version", "-json"], check=False, timeout=30)
        try:
            version = str(json.loads(done.stdout)["terraform_version"])
        except (ValueError, KeyError, TypeError):
            version = "unknown version"
        rows = [Check("terraform", "ok", f"{tf.binary}: terraform {version}", "validate")]
    if not tf.provider_mirror:
        rows.append(Check("provider mirror", "not set", "providers come from the registry", "validate"))
    else:
        base = Path(tf.provider_mirror) / "registry.terraform.io"
        found = [
            mirrors.provenance(Path(tf.provider_mirror), "/".join(info.relative_to(base).parts[:2]))
            for info in sorted(base.glob(f"*/*/*/*/{mirrors.BUILDINFO}"))
        ]
        shown = sorted({f"{p.address} {p.version} ({p.kind})" for p in found if p is not None})
        status = "ok" if shown else "failed"
        rows.append(Check("provider mirror", status, "; ".join(shown) or f"{base}: no providers", "validate"))
    if tf.module_mirror:
        stubs = any(Path(tf.module_mirror).rglob(mirrors.STUB_MARKER))
        detail = "stubs (no module resources)" if stubs else "modules from the mirror"
        rows.append(Check("module mirror", "ok", f"{tf.module_mirror}: {detail}", "validate"))
    return rows


def check_registry(host: str, prefix: str) -> Check:
    """The registry answers the Docker registry API, and takes an upload (cancelled at once)."""
    import requests  # noqa: PLC0415

    if not host:
        return Check(
            "registry", "not set", "CODERBUNDLE_REGISTRY unset: templates keep their image default", "publish"
        )
    scheme = "http" if host.startswith(("localhost", "127.0.0.1")) else "https"
    base = f"{scheme}://{host}/v2/"
    try:
        answer = requests.get(base, timeout=10)
        upload = requests.post(f"{base}{prefix}/coderbundle-doctor/blobs/uploads/", timeout=10)
    except requests.RequestException as exc:
        return Check("registry", "failed", f"{host}: unreachable ({type(exc).__name__})", "publish")
    if answer.status_code not in (200, 401):
        return Check(
            "registry", "failed", f"{base} answered HTTP {answer.status_code}: not a registry", "publish"
        )
    if upload.status_code == 202:
        if location := upload.headers.get("Location"):
            requests.delete(requests.compat.urljoin(base, location), timeout=10)
        return Check("registry", "ok", f"{host}: reachable, accepts pushes to {prefix}/", "publish")
    if upload.status_code == 401:
        return Check("registry", "ok", f"{host}: reachable; pushes need `docker login {host}`", "publish")
    return Check("registry", "failed", f"{host}: refuses pushes (HTTP {upload.status_code})", "publish")


def check_docker(*, needed: bool) -> Check:
    """The Docker daemon that builds the images (needed when a registry is set)."""
    try:
        import docker  # noqa: PLC0415

        version = docker.from_env(timeout=10).version().get("Version", "?")
    except Exception as exc:  # noqa: BLE001 - any failure to reach the daemon is the finding
        status = "missing" if needed else "not set"
        return Check(
            "Docker", status, f"no daemon answers ({type(exc).__name__}); images need one", "publish"
        )
    return Check("Docker", "ok", f"daemon {version}", "publish")


def check_values(root: Path, table: Mapping[str, Any]) -> Check:
    """bundle.toml's values_file, read and checked against the chart's schema as deploy does."""
    from coderbundle import chart_values  # noqa: PLC0415

    name = str(table.get("values_file", ""))
    if not name:
        return Check(
            "values file",
            "not set",
            "[workspace] values_file unset: bundle.toml's defaults",
            "publish, deploy",
        )
    try:
        chart_values.read_and_check([root / name], root / "chart", error=ToolError)
    except ToolError as exc:
        return Check("values file", "failed", str(exc), "publish, deploy")
    return Check("values file", "ok", f"{name}: matches chart/{chart_values.SCHEMA_FILE}", "publish, deploy")


def check_kube_context(env: Mapping[str, str], home: Path) -> Check:
    """The kubeconfig and current context `deploy` (not --dry-run) would use."""
    import yaml  # noqa: PLC0415

    from coderbundle.deploy import find_kubeconfig  # noqa: PLC0415

    try:
        path = find_kubeconfig(env, home)
    except ToolError:
        return Check(
            "kube context", "not set", "no kubeconfig: deploy needs one (--dry-run does not)", "deploy"
        )
    if path is None:
        return Check("kube context", "ok", "in-cluster credentials", "deploy")
    try:
        context = (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("current-context", "")
    except (OSError, yaml.YAMLError, AttributeError) as exc:
        return Check("kube context", "failed", f"{path}: cannot read ({type(exc).__name__})", "deploy")
    if not context:
        return Check(
            "kube context", "failed", f"{path}: no current-context; kubectl config use-context", "deploy"
        )
    return Check("kube context", "ok", f"{context} ({path})", "deploy")


# --- the step ----------------------------------------------------------------------------------


def run_doctor(root: Path, env: Mapping[str, str], home: Path) -> list[Check]:
    """Every row; a bundle.toml that does not load is itself the first (failed) row."""
    from coderbundle import files  # noqa: PLC0415
    from coderbundle.settings import load_settings  # noqa: PLC0415

    try:
        table = files.read_toml(root / "bundle.toml").get("workspace", {})
        settings = load_settings(root, env)
    except ToolError as exc:
        return [Check("bundle.toml", "failed", str(exc), "publish, deploy")]
    return [
        *check_terraform(settings),
        *_coder_checks(settings),
        check_registry(settings.registry, settings.repository_prefix),
        check_docker(needed=bool(settings.registry)),
        check_values(root, table),
        check_kube_context(env, home),
    ]


def print_checks(checks: list[Check], *, fmt: str = "text") -> int:
    """The table on stderr (or JSON on stdout); returns the exit code: 1 when a row failed or is missing."""
    from rich.table import Table  # noqa: PLC0415
    from rich.text import Text  # noqa: PLC0415

    from coderbundle.console import err_console  # noqa: PLC0415

    code = 1 if any(c.bad for c in checks) else 0
    if fmt == "json":
        print(json.dumps({"ok": code == 0, "checks": [asdict(c) for c in checks]}, indent=2))  # noqa: T201
        return code
    table = Table(title="coderbundle doctor", title_justify="left")
    for column in ("check", "status", "needed by", "details"):
        table.add_column(column)
    for c in checks:
        table.add_row(Text(c.name), Text(c.status), Text(c.needed_by), Text(c.detail))
    err_console.print(table)
    return code
