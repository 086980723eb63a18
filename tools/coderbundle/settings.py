"""Bundle settings: ``bundle.toml`` at the repository root, overridden by the environment.

``load_settings`` is the only reader of ``bundle.toml`` and of the
``CODERBUNDLE_*``/``CODER_*`` environment; every step receives the frozen
``Settings`` it returns, never ``os.environ``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from coderbundle import chart_values, files
from coderbundle.errors import EnvError, SettingsError, ToolError
from coderbundle.shape import BUNDLE_SHAPE, check_shape

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = [
    "BUNDLE_FILE",
    "Settings",
    "TerraformSettings",
    "WorkspaceDefaults",
    "find_root",
    "load_settings",
    "redact_url",
    "settings_from",
]

BUNDLE_FILE = "bundle.toml"
_DURATION = re.compile(r"^(\d+h)?(\d+m)?(\d+s)?$")
_QUANTITY = re.compile(r"^\d+(\.\d+)?(m|Ki|Mi|Gi|Ti)?$")
_WHOLE_GI = re.compile(r"^[1-9]\d{0,5}Gi$")
_DNS_LABEL = re.compile(r"^(?=.{1,63}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_USERINFO = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*://)[^/?#@]*@")
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOST = rf"(?:{_LABEL}(?:\.{_LABEL})*|\[[0-9A-Fa-f:.]+\])"
_PATH_PART = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_REGISTRY = re.compile(rf"^{_HOST}(?::\d{{1,5}})?(?:/{_PATH_PART})*$")
_REPO_PATH = re.compile(rf"^{_PATH_PART}(?:/{_PATH_PART})*$")
_PORT = re.compile(r":(\d+)$")
_MAX_CONCURRENCY = 32


@dataclass(frozen=True)
class WorkspaceDefaults:
    """What every template offers unless the developer picks otherwise."""

    cpu_request: str = "500m"
    memory_request: str = "1Gi"
    home_disk_size: str = "50Gi"
    inactivity_timeout: str = "4h"
    dormancy_deletion: str = "168h"
    namespace: str = "coder-workspaces"

    @property
    def home_disk_gib(self) -> int:
        """The home volume size as whole GiB (the unit of the disk parameter)."""
        return int(self.home_disk_size.removesuffix("Gi"))


@dataclass(frozen=True)
class TerraformSettings:
    """Which terraform runs and where it finds providers and modules offline (docs/offline.md)."""

    binary: str = "terraform"  # a name on PATH or a path
    provider_mirror: str = ""  # a filesystem mirror (unpacked layout); "" = the registries
    module_mirror: str = ""  # <host>/<ns>/<name>/<system>/<version>/ folders, served on 127.0.0.1
    validate: str = "auto"  # auto: run where possible; always: a skip is a failure; never
    binary_from: str = ""  # the setting that named ``binary`` ('' = the default, terraform on PATH)


@dataclass(frozen=True)
class Settings:
    """Everything the pipeline steps read from configuration."""

    root: Path
    workspace: WorkspaceDefaults = field(default_factory=WorkspaceDefaults)
    registry: str = ""
    repository_prefix: str = "coderbundle"
    coder_url: str = ""
    coder_session_token: str = field(default="", repr=False)
    coder_organization: str = ""
    coder_executable: str = "coder"
    coder_executable_from: str = ""  # the setting that named it ('' = the default, coder on PATH)
    publish_concurrency: int = 3
    extra_ca_cert: str = ""
    upstream_image: str = ""
    terraform: TerraformSettings = field(default_factory=TerraformSettings)
    # [workspace] subdomain_apps: web apps on subdomains (needs the server's wildcard URL).
    subdomain_apps: bool = False
    download_source: str = ""
    # [coder] external_auth: the id of the server's Git external auth provider the templates
    # ask developers to link (CODER_EXTERNAL_AUTH_0_ID on the server); "" = none.
    external_auth: str = "gitlab"
    # [images.pinned]: image name -> a reference published as is when no image was built here.
    pinned_images: dict[str, str] = field(default_factory=dict)
    # [rollout]: users whose workspaces prove a new version before it is promoted (publish
    # --canary), and how long a canary build may take to reach agent `ready`.
    canary: tuple[str, ...] = ()
    canary_timeout_s: int = 600

    @property
    def templates_dir(self) -> Path:
        """Where template sources live."""
        return self.root / "templates"

    @property
    def build_dir(self) -> Path:
        """Generated output; never committed."""
        return self.root / "build"

    @property
    def dist_dir(self) -> Path:
        """Publish artefacts (archives, the publish plan)."""
        return self.root / "dist"

    @property
    def images_dir(self) -> Path:
        """Workspace image sources."""
        return self.root / "images"


def find_root(start: Path) -> Path:
    """Return the nearest directory at or above ``start`` holding ``bundle.toml``."""
    for candidate in (start, *start.parents):
        if (candidate / BUNDLE_FILE).is_file():
            return candidate
    msg = f"{start}: no {BUNDLE_FILE} here or above; run coderbundle from the bundle repository"
    raise SettingsError(msg)


def _read_toml(path: Path) -> dict[str, Any]:
    if not path.exists() and not path.is_symlink():
        msg = f"{path}: file not found; create it (see README.md)"
        raise SettingsError(msg)
    return files.read_toml(path)


def _mapping(value: Any, path: Path, key: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        msg = f"{path}: {key} must be a mapping, not {type(value).__name__}; fix the values file"
        raise SettingsError(msg)
    return value


def _read_chart_values(path: Path, root: Path) -> dict[str, Any]:
    """A chart values file, read and checked as ``deploy -f`` reads it (``chart_values``)."""
    chart_dir = root / "chart"
    if (chart_dir / chart_values.SCHEMA_FILE).is_file() and (chart_dir / "values.yaml").is_file():
        hint = "fix workspace.values_file"
        own, _ = chart_values.read_and_check([path], chart_dir, error=SettingsError, hint=hint)
        return own
    # A bundle without the chart: the file is still read the same way; there is no schema to hold it to.
    return chart_values.read_values(path, error=SettingsError, hint="fix workspace.values_file").data


def _chart_workspace_values(path: Path, root: Path) -> dict[str, str]:
    """Read ``coder.workspaces.*`` from a chart values file (the original chart README's keys)."""
    values = _read_chart_values(path, root)
    values = _mapping(values, path, "the document")
    ws = _mapping(_mapping(values.get("coder"), path, "coder").get("workspaces"), path, "coder.workspaces")
    resources = _mapping(ws.get("defaultResources"), path, "coder.workspaces.defaultResources")
    requests = _mapping(resources.get("requests"), path, "coder.workspaces.defaultResources.requests")
    found = {
        "cpu_request": requests.get("cpu"),
        "memory_request": requests.get("memory"),
        "home_disk_size": _mapping(ws.get("storage"), path, "coder.workspaces.storage").get("size"),
        "inactivity_timeout": ws.get("inactivityTimeout"),
        "dormancy_deletion": ws.get("ttl"),
    }
    for key, value in found.items():
        if value is not None and not isinstance(value, str | int | float):
            msg = f"{path}: the value for workspace.{key} must be a string, not {type(value).__name__}"
            raise SettingsError(msg)
    return {k: str(v) for k, v in found.items() if v is not None}


def _workspace_defaults(root: Path, table: Mapping[str, Any], source: Path) -> WorkspaceDefaults:
    table = dict(table)
    values_file = table.pop("values_file", "")
    known = WorkspaceDefaults.__dataclass_fields__
    merged: dict[str, Any] = {k: v for k, v in table.items() if k in known}
    if values_file:
        merged.update(_chart_workspace_values(root / values_file, root))
    defaults = WorkspaceDefaults(**merged)
    _check_workspace(defaults, source)
    return defaults


def _check_workspace(ws: WorkspaceDefaults, source: Path) -> None:
    for key in ("cpu_request", "memory_request", "home_disk_size"):
        if not _QUANTITY.fullmatch(getattr(ws, key)):
            value = getattr(ws, key)
            msg = f"{source}: workspace.{key} = {value!r} is not a Kubernetes quantity like 500m or 1Gi"
            raise SettingsError(msg)
    if not _WHOLE_GI.fullmatch(ws.home_disk_size):
        msg = f"{source}: workspace.home_disk_size must be whole Gi (for example 50Gi)"
        raise SettingsError(msg)
    for key in ("inactivity_timeout", "dormancy_deletion"):
        value = getattr(ws, key)
        if not value or not _DURATION.fullmatch(value):
            msg = f"{source}: workspace.{key} = {value!r} is not a duration like 4h or 90m"
            raise SettingsError(msg)
    if not _DNS_LABEL.fullmatch(ws.namespace):
        msg = (
            f"{source}: workspace.namespace = {ws.namespace!r} is not a Kubernetes namespace name; "
            "use at most 63 lowercase letters, digits and '-', starting and ending with a letter or digit"
        )
        raise SettingsError(msg)


def redact_url(url: str) -> str:
    """``url`` without any ``user:password@`` part (for messages and files)."""
    return _USERINFO.sub(r"\1***@", url)


def _coder_url(env: Mapping[str, str]) -> str:
    """``CODER_URL`` checked: an http(s) URL with a host and no credentials; "" when unset."""
    raw = env.get("CODER_URL", "")
    if not raw.strip():
        return ""
    shown = redact_url(raw)
    fix = "set it to Coder's access URL, like https://coder.example.com"
    if any(c.isspace() or ord(c) < 32 for c in raw):
        raise EnvError(f"CODER_URL={shown!r} contains spaces or control characters; {fix}")
    try:
        parts = urlsplit(raw)
        port = parts.port
        host = parts.hostname
    except ValueError as exc:
        raise EnvError(f"CODER_URL={shown!r} is not a valid URL ({exc}); {fix}") from None
    if parts.scheme not in ("http", "https"):
        scheme = f"scheme {parts.scheme!r}" if parts.scheme else "no scheme"
        raise EnvError(f"CODER_URL={shown!r} has {scheme}; {fix}")
    if parts.username is not None or parts.password is not None:
        msg = (
            f"CODER_URL={shown!r} contains a user name or password; remove it and put a token in "
            "CODER_SESSION_TOKEN instead (coder tokens create)"
        )
        raise EnvError(msg)
    if not host:
        raise EnvError(f"CODER_URL={shown!r} has no host name; {fix}")
    if port == 0:
        raise EnvError(f"CODER_URL={shown!r} has port 0; {fix}")
    if parts.query or parts.fragment:
        raise EnvError(f"CODER_URL={shown!r} has a query or fragment; {fix}")
    return raw.rstrip("/")


def _token(env: Mapping[str, str]) -> str:
    """``CODER_SESSION_TOKEN``: printable ASCII without spaces (it goes into an HTTP header); never shown."""
    token = env.get("CODER_SESSION_TOKEN", "")
    if token and not (token.isascii() and token.isprintable() and not any(c.isspace() for c in token)):
        msg = (
            "CODER_SESSION_TOKEN contains spaces, line breaks or non-ASCII characters; "
            "set it to the token `coder tokens create` prints, nothing else"
        )
        raise EnvError(msg)
    return token


def _registry(value: str, where: str) -> str:
    """A registry ``host[:port]`` (optionally with a path), as Docker image references accept it."""
    if value and not _REGISTRY.fullmatch(value):
        msg = (
            f"{where} = {value!r} is not a registry host[:port] (like registry.example.com:5000); "
            "fix it or leave it empty"
        )
        raise EnvError(msg) if where.startswith("CODERBUNDLE") else SettingsError(msg)
    if value and (m := _PORT.search(value.split("/", 1)[0])) and not 0 < int(m.group(1)) < 65536:
        msg = f"{where} = {value!r}: the port must be 1-65535"
        raise EnvError(msg) if where.startswith("CODERBUNDLE") else SettingsError(msg)
    return value


def _prefix(value: str, where: str) -> str:
    if value and not _REPO_PATH.fullmatch(value.strip("/")):
        msg = f"{where} = {value!r} is not a repository path (lowercase letters, digits, '.', '_', '-', '/')"
        raise EnvError(msg) if where.startswith("CODERBUNDLE") else SettingsError(msg)
    return value


def _override(env: Mapping[str, str], name: str, table: Mapping[str, Any], key: str, default: Any) -> Any:
    return env[name] if name in env else table.get(key, default)


def _where(env: Mapping[str, str], name: str, key: str) -> str:
    return name if name in env else f"{BUNDLE_FILE} {key}"


_VALIDATE_MODES = ("auto", "always", "never")


def _configured_by(  # noqa: PLR0913 - one variable, one key, their default and file
    env: Mapping[str, str], var: str, table: Mapping[str, Any], key: str, *, default: str, source: Path
) -> str:
    """Which setting chose a tool: the variable, the bundle.toml key, or '' for the default."""
    if env.get(var):
        return var
    if table.get(key, default) != default:
        return f"[{'terraform' if var == 'CODERBUNDLE_TERRAFORM' else 'coder'}] {key} in {source}"
    return ""


def _terraform_settings(
    root: Path, table: Mapping[str, Any], env: Mapping[str, str], source: Path
) -> TerraformSettings:
    unknown = set(table) - set(TerraformSettings.__dataclass_fields__) - {"validate"}
    if unknown:
        msg = f"{source}: unknown key terraform.{min(unknown)}; known: binary, provider_mirror, module_mirror"
        raise SettingsError(msg)

    def path_value(key: str, var: str) -> str:
        value = str(env.get(var, table.get(key, "")))
        return str((root / value).resolve()) if value and not Path(value).is_absolute() else value

    mode = env.get("CODERBUNDLE_TERRAFORM_VALIDATE", "auto")
    if mode not in _VALIDATE_MODES:
        msg = f"CODERBUNDLE_TERRAFORM_VALIDATE={mode!r}: use one of {', '.join(_VALIDATE_MODES)}"
        raise SettingsError(msg)
    binary = str(env.get("CODERBUNDLE_TERRAFORM", table.get("binary", "terraform")))
    binary_from = _configured_by(
        env, "CODERBUNDLE_TERRAFORM", table, "binary", default="terraform", source=source
    )
    return TerraformSettings(
        binary_from=binary_from,
        binary=str((root / binary).resolve()) if "/" in binary and not Path(binary).is_absolute() else binary,
        provider_mirror=path_value("provider_mirror", "CODERBUNDLE_PROVIDER_MIRROR"),
        module_mirror=path_value("module_mirror", "CODERBUNDLE_MODULE_MIRROR"),
        validate=mode,
    )


def load_settings(root: Path, env: Mapping[str, str]) -> Settings:
    """Load ``root/bundle.toml`` (checked against its declared shape) and apply environment overrides."""
    source = root / BUNDLE_FILE
    return settings_from(root, _read_toml(source), env)


def settings_from(root: Path, data: Mapping[str, Any], env: Mapping[str, str]) -> Settings:
    """``Settings`` from a parsed ``bundle.toml`` (``{}``: the environment and the defaults alone).

    ``load_settings`` reads the file and calls this; ``coderbundle doctor`` calls it again
    without the parts that failed, so one bad setting does not hide every other row.
    """
    source = root / BUNDLE_FILE
    check_shape(data, BUNDLE_SHAPE, source)
    registry = data.get("registry", {})
    coder = data.get("coder", {})
    images = data.get("images", {})
    concurrency = coder.get("concurrency", 3)
    if not 1 <= concurrency <= _MAX_CONCURRENCY:
        msg = f"{source}: coder.concurrency = {concurrency} must be between 1 and {_MAX_CONCURRENCY}"
        raise SettingsError(msg)
    host = _override(env, "CODERBUNDLE_REGISTRY", registry, "host", "")
    prefix = _override(env, "CODERBUNDLE_REPOSITORY_PREFIX", registry, "prefix", "coderbundle")
    return Settings(
        root=root,
        workspace=_workspace_defaults(root, data.get("workspace", {}), source),
        subdomain_apps=_subdomain_apps(root, data.get("workspace", {}), env, source),
        registry=_registry(host, _where(env, "CODERBUNDLE_REGISTRY", "registry.host")),
        repository_prefix=_prefix(prefix, _where(env, "CODERBUNDLE_REPOSITORY_PREFIX", "registry.prefix")),
        coder_url=_coder_url(env),
        coder_session_token=_token(env),
        coder_organization=env.get("CODER_ORGANIZATION", coder.get("organization", "")),
        coder_executable=env.get("CODERBUNDLE_CODER", coder.get("executable", "coder")),
        coder_executable_from=_configured_by(
            env, "CODERBUNDLE_CODER", coder, "executable", default="coder", source=source
        ),
        publish_concurrency=concurrency,
        extra_ca_cert=env.get("CODERBUNDLE_EXTRA_CA_CERT", images.get("extra_ca_cert", "")),
        upstream_image=env.get("CODERBUNDLE_UPSTREAM_IMAGE", images.get("upstream_image", "")),
        terraform=_terraform_settings(root, data.get("terraform", {}), env, source),
        download_source=env.get("CODERBUNDLE_DOWNLOAD_SOURCE", images.get("download_source", "")),
        external_auth=_external_auth(env, coder, source),
        pinned_images=_pinned_images(images.get("pinned", {}), source),
        canary=_canary(env, data.get("rollout", {}), source),
        canary_timeout_s=_canary_timeout(env, data.get("rollout", {}), source),
    )


# A Coder username (codersdk's UsernameValid), or `me` for the token's user.
_USERNAME = re.compile(r"^[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,30}[a-zA-Z0-9])?$")
_TIMEOUT = re.compile(r"^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")


def parse_canary(value: str | list[str], where: str, error: type[ToolError]) -> tuple[str, ...]:
    """Canary users from ``alice,bob`` or a TOML list; one error naming ``where`` for a bad name."""
    names = value.split(",") if isinstance(value, str) else list(value)
    found = tuple(dict.fromkeys(n.strip() for n in names if n.strip()))
    for name in found:
        if not _USERNAME.fullmatch(name):
            msg = f"{where}: {name!r} is not a Coder username; list usernames (or `me`), comma-separated"
            raise error(msg)
    return found


def _canary(env: Mapping[str, str], table: Mapping[str, Any], source: Path) -> tuple[str, ...]:
    if "CODERBUNDLE_CANARY" in env:
        return parse_canary(env["CODERBUNDLE_CANARY"], "CODERBUNDLE_CANARY", EnvError)
    return parse_canary(table.get("canary", []), f"{source}: rollout.canary", SettingsError)


def _canary_timeout(env: Mapping[str, str], table: Mapping[str, Any], source: Path) -> int:
    """``[rollout] timeout`` (``CODERBUNDLE_CANARY_TIMEOUT``) as seconds."""
    name = "CODERBUNDLE_CANARY_TIMEOUT"
    if env.get(name):
        return canary_timeout(env[name], name, EnvError)
    return canary_timeout(str(table.get("timeout", "10m")), f"{source}: rollout.timeout", SettingsError)


def canary_timeout(raw: str, where: str, error: type[ToolError]) -> int:
    """A duration (``10m``, ``90s``, ``1h30m``) as seconds; one error naming ``where``."""
    match = _TIMEOUT.fullmatch(raw.strip())
    seconds = 0
    if match and raw.strip():
        h, m, s = (int(g or 0) for g in match.groups())
        seconds = h * 3600 + m * 60 + s
    if seconds <= 0:
        msg = f"{where} = {raw!r} is not a duration; write e.g. 10m, 90s or 1h"
        raise error(msg)
    return seconds


# Coder's external auth ids: what CODER_EXTERNAL_AUTH_<n>_ID accepts and Terraform can quote.
_AUTH_ID = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,62})$")
_IMAGE_REFERENCE = re.compile(
    r"^[a-z0-9][a-z0-9._:/-]*(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(?:@sha256:[0-9a-f]{64})?$"
)


def _external_auth(env: Mapping[str, str], coder: Mapping[str, Any], source: Path) -> str:
    """``CODERBUNDLE_EXTERNAL_AUTH`` or ``[coder] external_auth`` (default ``gitlab``; "" = none)."""
    name = "CODERBUNDLE_EXTERNAL_AUTH"
    value = env[name] if name in env else coder.get("external_auth", "gitlab")
    if value and not _AUTH_ID.fullmatch(value):
        where = name if name in env else f"{source}: coder.external_auth"
        msg = (
            f"{where} = {value!r} is not an external auth id (letters, digits, '.', '_', '-'); "
            'use the server\'s CODER_EXTERNAL_AUTH_<n>_ID, or "" for none'
        )
        raise (EnvError(msg) if name in env else SettingsError(msg))
    return str(value)


def _pinned_images(table: Mapping[str, str], source: Path) -> dict[str, str]:
    """``[images.pinned]``: image name -> a full image reference, checked."""
    for image, ref in table.items():
        if not _IMAGE_REFERENCE.fullmatch(ref):
            msg = (
                f"{source}: images.pinned.{image} = {ref!r} is not an image reference; "
                "write registry/repository:tag or registry/repository@sha256:<digest>"
            )
            raise SettingsError(msg)
    return dict(table)


_BOOLS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}


def _subdomain_apps(root: Path, table: Mapping[str, Any], env: Mapping[str, str], source: Path) -> bool:
    """Whether templates serve web apps on subdomains (the ``subdomain_apps`` variable).

    ``CODERBUNDLE_SUBDOMAIN_APPS`` wins (empty counts as unset, as CI variables often
    are), then ``[workspace] subdomain_apps``; without either, true exactly when
    ``values_file`` sets ``coder.config.wildcardAccessUrl``.
    """
    if raw := env.get("CODERBUNDLE_SUBDOMAIN_APPS", "").strip().lower():
        if raw not in _BOOLS:
            msg = f"CODERBUNDLE_SUBDOMAIN_APPS={raw!r} is not a boolean; set it to true or false"
            raise SettingsError(msg)
        return _BOOLS[raw]
    if "subdomain_apps" in table:
        value = table["subdomain_apps"]
        if not isinstance(value, bool):
            msg = f"{source}: workspace.subdomain_apps = {value!r} must be true or false (no quotes)"
            raise SettingsError(msg)
        return value
    values_file = table.get("values_file", "")
    return bool(values_file) and bool(_chart_wildcard_url(root / values_file, root))


def _chart_wildcard_url(path: Path, root: Path) -> str:
    """``coder.config.wildcardAccessUrl`` of a chart values file ('' when unset)."""
    coder = _read_chart_values(path, root).get("coder") or {}
    config = coder.get("config") or {} if isinstance(coder, dict) else {}
    return str(config.get("wildcardAccessUrl") or "") if isinstance(config, dict) else ""
