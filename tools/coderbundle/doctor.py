"""`coderbundle doctor`: one table of what publish and deploy need, and whether it is there.

Rows: terraform and the offline mirrors (version, built from source or
stand-in), the Coder server, the session token's role and expiry, the coder CLI
against the server's version, the registry (reachable, writable), Docker, the
values file against the chart schema, the kube context.  A row is ``ok``,
``failed``, ``missing``, ``not set`` (nothing configured, nothing to check) or
``unknown`` (there, but what it is needed for was not proven: a registry that
wants a login doctor has no credentials for); the command exits 1 when any row
failed or is missing.  A ``bundle.toml`` or values file that does not load is a
failed row of its own: the other rows are still checked, from what did load and
the environment.  The Coder checks take a URL and a token, so tests point them
at any server.
"""

from __future__ import annotations

import base64
import json
import re
import shutil
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from coderbundle import process
from coderbundle.configured import why_not_runnable
from coderbundle.errors import CommandFailed, ToolError

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from coderbundle.coder_api import CoderAPI
    from coderbundle.settings import Settings

__all__ = ["Check", "check_coder_cli", "check_coder_server", "check_token", "print_checks", "run_doctor"]

BAD = ("failed", "missing")
# Roles that may push templates and change their settings: Coder's site roles, and the
# organization roles that may in the organization they are held in (coderd/rbac/roles.go).
PUBLISH_ROLES = {"owner", "template-admin"}
PUBLISH_ORG_ROLES = {"organization-admin", "organization-template-admin"}
_VERSION = re.compile(r"v?(\d+)\.(\d+)\.(\d+)")
_TOKEN_ID = re.compile(r"^([A-Za-z0-9]{10})-")
_SOON_DAYS = 14
_NOT_FOUND = 404


@dataclass(frozen=True)
class Check:
    """One row: what, its state, what was found (or what to do), and which command needs it."""

    name: str
    status: str  # ok | failed | missing | not set | unknown
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


def check_token(url: str, token: str, organization: str = "") -> Check:
    """The token's user, whether its role may publish templates, and when it expires.

    A site role (owner, template-admin) may publish anywhere; an organization role
    (organization-template-admin, organization-admin) only in ``organization`` (a name or
    id; '' = the default organization, as publish resolves it).
    """
    api = _api(url, token)
    try:
        me = _get(api, "/users/me")
    except (ToolError, ValueError) as exc:
        return Check("session token", "failed", str(exc), "publish")
    if not isinstance(me, dict):
        return Check("session token", "failed", f"{url}: GET /api/v2/users/me did not answer", "publish")
    roles = sorted(str(r.get("name")) for r in me.get("roles") or [] if isinstance(r, dict))
    if not PUBLISH_ROLES & set(roles):
        try:
            org_name, org_roles = _organization_roles(api, organization)
        except (ToolError, ValueError) as exc:
            return Check("session token", "failed", str(exc), "publish")
        roles += [f"{r} in {org_name}" for r in sorted(org_roles)]
        who = f"{me.get('username', '?')} ({', '.join(roles) or 'member'})"
        if not PUBLISH_ORG_ROLES & org_roles:
            detail = (
                f"{who} may not push templates to {org_name}; give the CI user the template-admin "
                f"role, or organization-template-admin in {org_name}"
            )
            return Check("session token", "failed", detail, "publish")
    else:
        who = f"{me.get('username', '?')} ({', '.join(roles)})"
    expiry, expired = _expiry(api, me, token)
    return Check("session token", "failed" if expired else "ok", f"{who}; {expiry}", "publish")


def _organization_roles(api: CoderAPI, organization: str) -> tuple[str, set[str]]:
    """The organization publish would use (its name) and the token user's roles in it."""
    from coderbundle.errors import EnvError  # noqa: PLC0415

    try:
        org = api.organization(organization)
    except ToolError as exc:
        raise EnvError(str(exc)) from None
    # GET /users/me/roles: {"roles": [site roles], "organization_roles": {org id: [names]}}
    found = _get(api, "/users/me/roles") or {}
    names = (found.get("organization_roles") or {}).get(org.id) or [] if isinstance(found, dict) else []
    return org.name, {str(n) for n in names}


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
        token = check_token(settings.coder_url, settings.coder_session_token, settings.coder_organization)
    cli = check_coder_cli(settings.coder_executable, version, configured_by=settings.coder_executable_from)
    return [server, token, cli]


# --- terraform, registry, Docker, values, kube ---------------------------------------------------


def tools_caches(env: Mapping[str, str], home: Path) -> list[Path]:
    """Where `nox -s tools` may have built the toolchain (its manifest.json lists every part)."""
    default = home / ".cache" / "coderbundle" / "tools"
    return (
        [Path(env["CODERBUNDLE_TOOLS_CACHE"]), default] if env.get("CODERBUNDLE_TOOLS_CACHE") else [default]
    )


def tool_provenance(program: str, caches: Sequence[Path] = ()) -> str:
    """How ``program`` came to be, from the `nox -s tools` manifest that lists it.

    ``built from source (<source>)`` or ``stand-in (<source>)``; '' when no manifest lists it.
    """
    found = shutil.which(program)
    if found is None:
        return ""
    binary = Path(found).resolve()
    for cache in dict.fromkeys([*caches, *list(binary.parents)[1:4]]):
        try:
            manifest = json.loads((cache / "manifest.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        for entry in manifest.values() if isinstance(manifest, dict) else ():
            if not isinstance(entry, dict) or not isinstance(entry.get("path"), str):
                continue
            if (cache / entry["path"]).resolve() == binary:
                source = f" ({entry['source']})" if entry.get("source") else ""
                return f"{entry.get('kind', 'unknown kind')}{source}"
    return ""


def check_terraform(settings: Settings, caches: Sequence[Path] = ()) -> list[Check]:
    """Terraform's version and provenance, and what the provider and module mirrors hold.

    Provenance as the mirror rows show it: ``built from source`` or ``stand-in`` from the
    manifest of `nox -s tools` that lists the binary, and where the binary was found
    (the setting that names it, or PATH).
    """
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
        where = f"set by {tf.binary_from}" if tf.binary_from else "from PATH"
        kind = tool_provenance(tf.binary, caches) or "not in a `nox -s tools` manifest"
        detail = f"{shutil.which(tf.binary) or tf.binary}: terraform {version}, {kind}; {where}"
        rows = [Check("terraform", "ok", detail, "validate")]
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


def docker_credentials(registry: str, env: Mapping[str, str], home: Path) -> tuple[str, str] | str | None:
    """What `docker login` stored for ``registry`` (``host[:port]``) in ``$DOCKER_CONFIG/config.json``.

    ``(user, password)`` from ``auths`` (basic auth); the name of the credential helper
    (``credHelpers``, ``credsStore``) when one holds them, which doctor does not run; ``None``.
    """
    folder = Path(env["DOCKER_CONFIG"]) if env.get("DOCKER_CONFIG") else home / ".docker"
    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(config, dict):
        return None
    helper = (config.get("credHelpers") or {}).get(registry) or config.get("credsStore")
    if helper:
        return str(helper)
    for key, entry in (config.get("auths") or {}).items():
        host = re.sub(r"^[a-z]+://", "", str(key)).split("/", 1)[0]
        if host != registry or not isinstance(entry, dict):
            continue
        try:
            user, _, password = base64.b64decode(str(entry.get("auth", ""))).decode().partition(":")
        except ValueError:
            continue
        if user and password:
            return user, password
    return None


def _auth_header(challenge: str, user: str, password: str, scope: str) -> dict[str, str]:
    """The Authorization header the registry's ``WWW-Authenticate`` challenge asks for (Basic or Bearer)."""
    import requests  # noqa: PLC0415

    if challenge.lower().startswith("bearer"):
        params = dict(re.findall(r'(\w+)="([^"]*)"', challenge))
        query = {"scope": scope, **({"service": params["service"]} if "service" in params else {})}
        answer = requests.get(params.get("realm", ""), params=query, auth=(user, password), timeout=10)
        if answer.status_code != 200:  # the token service refused the login
            return {}
        body = answer.json()
        token = body.get("token") or body.get("access_token") if isinstance(body, dict) else None
        return {"Authorization": f"Bearer {token}"} if token else {}
    pair = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {pair}"}


_UNAUTHORIZED = 401
_ACCEPTED = 202


def check_registry(
    host: str, prefix: str, env: Mapping[str, str] | None = None, home: Path | None = None
) -> Check:
    """The registry answers the Docker registry API, and takes an upload (cancelled at once).

    An upload the registry wants a login for is tried again with what `docker login` stored
    (``~/.docker/config.json``); without those the row says push rights were not checked
    (``unknown``): "writable" only when an upload was accepted.
    """
    import requests  # noqa: PLC0415

    if not host:
        return Check(
            "registry", "not set", "CODERBUNDLE_REGISTRY unset: templates keep their image default", "publish"
        )
    netloc, _, path = host.partition("/")
    scheme = "http" if netloc.startswith(("localhost", "127.0.0.1")) else "https"
    base = f"{scheme}://{netloc}/v2/"
    repository = "/".join(p for p in (path, prefix, "coderbundle-doctor") if p)
    try:
        answer = requests.get(base, timeout=10)
        status, credentials = _try_upload(
            base, repository, docker_credentials(netloc, env or {}, home or Path.home())
        )
    except requests.RequestException as exc:
        return Check("registry", "failed", f"{host}: unreachable ({type(exc).__name__})", "publish")
    if answer.status_code not in (200, _UNAUTHORIZED):
        return Check(
            "registry", "failed", f"{base} answered HTTP {answer.status_code}: not a registry", "publish"
        )
    return _upload_verdict(host, prefix, status, credentials)


def _upload_verdict(host: str, prefix: str, status: int, credentials: tuple[str, str] | str | None) -> Check:
    """The registry row from the upload's status: writable only when an upload was accepted."""
    netloc = host.split("/", 1)[0]
    where, login = (f"{prefix}/" if prefix else "the registry"), f"`docker login {netloc}`"
    user = credentials[0] if isinstance(credentials, tuple) else ""
    if status == _ACCEPTED:
        who = f" as {user} ({login})" if user else " without a login"
        return Check("registry", "ok", f"{host}: writable{who}: an upload to {where} was accepted", "publish")
    if user:
        detail = (
            f"{host}: refuses pushes to {where} with the credentials of {user} ({login}) "
            f"(HTTP {status}); log in again, or ask for push rights"
        )
        return Check("registry", "failed", detail, "publish")
    if status != _UNAUTHORIZED:
        return Check("registry", "failed", f"{host}: refuses pushes (HTTP {status})", "publish")
    if isinstance(credentials, str):
        why = f"the login is in docker-credential-{credentials}, which doctor does not run"
    else:
        why = f"no login for {netloc} in ~/.docker/config.json: run {login}"
    return Check("registry", "unknown", f"{host}: reachable; push rights not checked: {why}", "publish")


def _try_upload(
    base: str, repository: str, stored: tuple[str, str] | str | None
) -> tuple[int, tuple[str, str] | str | None]:
    """Start an upload (without, then with the stored login when asked for one) and cancel it.

    The upload's HTTP status and the credentials it was tried with (``None``: no login asked for).
    """
    import requests  # noqa: PLC0415

    uploads = f"{base}{repository}/blobs/uploads/"
    upload = requests.post(uploads, timeout=10)
    headers: dict[str, str] = {}
    used = None
    if upload.status_code == _UNAUTHORIZED:
        used = stored
        if isinstance(stored, tuple):
            challenge = upload.headers.get("WWW-Authenticate", "")
            headers = _auth_header(challenge, *stored, f"repository:{repository}:push,pull")
            upload = requests.post(uploads, headers=headers, timeout=10) if headers else upload
    if upload.status_code == _ACCEPTED and (location := upload.headers.get("Location")):
        requests.delete(requests.compat.urljoin(base, location), headers=headers, timeout=10)
    return upload.status_code, used


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
    chart = root / "chart"
    try:
        if (chart / chart_values.SCHEMA_FILE).is_file() and (chart / "values.yaml").is_file():
            chart_values.read_and_check([root / name], chart, error=ToolError)
        else:  # a bundle without the chart: read as settings reads it, no schema to hold it to
            chart_values.read_values(root / name, error=ToolError)
            return Check(
                "values file", "ok", f"{name}: reads (no chart here to check it against)", "publish, deploy"
            )
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


def _settings(
    root: Path, env: Mapping[str, str]
) -> tuple[Settings | None, dict[str, Any] | None, list[Check]]:
    """The settings, the parsed bundle.toml (``None`` when it does not parse) and the settings rows.

    When the settings do not load, the row says why and the other rows are checked with
    what does: bundle.toml without its values file, else the environment alone.
    """
    from coderbundle import files  # noqa: PLC0415
    from coderbundle.settings import BUNDLE_FILE, settings_from  # noqa: PLC0415

    source = root / BUNDLE_FILE
    data: dict[str, Any] | None = None
    try:
        data = files.read_toml(source)
        return (
            settings_from(root, data, env),
            data,
            [Check("bundle.toml", "ok", f"{source}: loads", "publish, deploy")],
        )
    except ToolError as exc:
        first = exc
    fallbacks: list[tuple[str, dict[str, Any]]] = []
    workspace = data.get("workspace") if data is not None else None
    if data is not None and isinstance(workspace, dict) and workspace.get("values_file"):
        rest = {k: v for k, v in workspace.items() if k != "values_file"}
        fallbacks.append(("bundle.toml without its values_file", {**data, "workspace": rest}))
    fallbacks.append(("the environment alone", {}))
    errors = [str(first)]
    for what, attempt in fallbacks:
        try:
            settings = settings_from(root, attempt, env)
        except ToolError as exc:
            errors.append(str(exc))
            continue
        row = Check("bundle.toml", "failed", f"{first}; the rows below use {what}", "publish, deploy")
        return settings, data, [row]
    rows = [Check("bundle.toml", "failed", str(first), "publish, deploy")]
    if errors[-1] != errors[0]:  # the environment is wrong too: its own row
        rows.append(Check("environment", "failed", errors[-1], "publish, deploy"))
    return None, data, rows


def run_doctor(root: Path, env: Mapping[str, str], home: Path) -> list[Check]:
    """Every row; a bundle.toml or values file that does not load is a failed row, and the rest still run."""
    settings, data, rows = _settings(root, env)
    workspace = data.get("workspace") if data is not None else None
    if settings is not None:
        rows += [
            *check_terraform(settings, tools_caches(env, home)),
            *_coder_checks(settings),
            check_registry(settings.registry, settings.repository_prefix, env, home),
        ]
    if isinstance(workspace, dict):
        values = check_values(root, workspace)
    else:
        values = Check("values file", "unknown", "not checked: bundle.toml does not load", "publish, deploy")
    return [
        *rows,
        check_docker(needed=bool(settings is not None and settings.registry)),
        values,
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
