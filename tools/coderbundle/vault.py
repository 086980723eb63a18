"""``coderbundle vault-setup``: the chart's secrets, a read policy and a Kubernetes auth role in Vault.

Idempotent: ``plan_vault`` reads what Vault holds and lists only the changes;
``apply_plan`` makes them.  A second run plans nothing.  Secret values never
appear in the plan, in logs or in errors, only their paths.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from coderbundle.deploy import load_values
from coderbundle.errors import DeployEnvironmentError, DeployError

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from pathlib import Path

    from coderbundle.settings import Settings

__all__ = [
    "Action",
    "VaultPlan",
    "VaultTarget",
    "apply_plan",
    "database_url",
    "plan_vault",
    "policy_hcl",
    "secrets_from_values",
    "setup_vault",
    "target_from_values",
]

log = logging.getLogger(__name__)

KUBERNETES_HOST = "https://kubernetes.default.svc"
# The chart's defaults (chart/values.yaml): Vault in the original chart README's `service`
# namespace over TLS, and the token audience its role is bound to.
DEFAULT_ADDRESS = "https://vault.service.svc:8200"
DEFAULT_AUDIENCE = "vault"
_SECRET_REF = re.compile(r"^\{\{-?\s*\.Values\.secrets\.([A-Za-z0-9_]+)\s*-?\}\}$")


@dataclass(frozen=True)
class VaultTarget:
    """Where in Vault the chart's secrets, policy and role live."""

    address: str
    kv_mount: str = "secret"
    path: str = "coder"
    auth_mount: str = "kubernetes"
    role: str = "coder"
    namespace: str = "code"
    service_account: str = "coder"
    token_ttl: str = "1h"  # noqa: S105 - a lifetime, not a secret
    audience: str = ""

    @property
    def policy(self) -> str:
        """The policy name (the role's name)."""
        return self.role


@dataclass(frozen=True)
class Action:
    """One change to make: ``kind`` and the Vault path it touches."""

    kind: str
    path: str


@dataclass(frozen=True)
class VaultPlan:
    """Changes to make, things already right, and secrets nobody provided."""

    actions: tuple[Action, ...]
    unchanged: tuple[str, ...] = ()
    missing: tuple[str, ...] = field(default=())

    @property
    def empty(self) -> bool:
        """True when Vault already matches."""
        return not self.actions


def _fullname(release: str, values: Mapping[str, Any]) -> str:
    """The chart's ``coder.fullname`` helper, in Python."""
    if values.get("fullnameOverride"):
        return str(values["fullnameOverride"])[:63]
    name = str(values.get("nameOverride") or "coder")
    return (release if name in release else f"{release}-{name}")[:63]


def target_from_values(
    values: Mapping[str, Any], *, address: str, namespace: str, release: str
) -> VaultTarget:
    """Build the target from the chart values (``vault.*``, ``serviceAccount.name``)."""
    vault = values.get("vault") or {}
    service_account = (values.get("serviceAccount") or {}).get("name") or _fullname(release, values)
    return VaultTarget(
        address=address or str(vault.get("address") or DEFAULT_ADDRESS),
        kv_mount=str(vault.get("kvMount") or "secret"),
        path=str(vault.get("path") or "coder"),
        auth_mount=str(vault.get("authMount") or "kubernetes"),
        role=str(vault.get("role") or "coder"),
        namespace=namespace,
        service_account=str(service_account),
        audience=str(vault.get("audience", DEFAULT_AUDIENCE) or ""),
    )


def _resolve(values: Mapping[str, Any], value: Any) -> str:
    """``value``, or the ``secrets`` key it names as ``{{ .Values.secrets.<key> }}`` (like the chart)."""
    text = str(value or "")
    m = _SECRET_REF.match(text)
    if not m:
        return text
    return str((values.get("secrets") or {}).get(m[1]) or "")


def database_url(values: Mapping[str, Any]) -> str:
    """The PostgreSQL URL the chart uses.

    ``coder.database.url``, else composed from ``secrets.coderPostgresPassword`` and the
    ``coder.database`` host, port, user, name and sslMode (chart defaults).
    """
    database = (values.get("coder") or {}).get("database") or {}
    if database.get("url"):
        return _resolve(values, database["url"])
    password = _resolve(values, (values.get("secrets") or {}).get("coderPostgresPassword"))
    if not password:
        return ""
    return "postgres://{}:{}@{}:{}/{}?sslmode={}".format(
        quote(str(database.get("user") or "postgres"), safe=""),
        quote(password, safe=""),
        database.get("host") or "postgres-postgresql.db.svc",
        int(database.get("port") or 5432),
        quote(str(database.get("name") or "coder"), safe=""),
        database.get("sslMode") or "disable",
    )


def secrets_from_values(values: Mapping[str, Any]) -> tuple[dict[str, dict[str, str]], list[str]]:
    """The KV secrets to write (sub-path -> data) and the sub-paths the chart needs but lacks."""
    coder = values.get("coder") or {}
    block = values.get("secrets") or {}
    wanted = {
        "database": (coder.get("database") or {}, database_url(values), "url", True),
        "oidc": (
            coder.get("oidc") or {},
            _resolve(
                values, (coder.get("oidc") or {}).get("clientSecret") or block.get("coderOidcClientSecret")
            ),
            "client-secret",
            False,
        ),
        "gitlab": (
            coder.get("gitlab") or {},
            _resolve(
                values,
                (coder.get("gitlab") or {}).get("clientSecret") or block.get("coderGitlabClientSecret"),
            ),
            "client-secret",
            False,
        ),
    }
    found: dict[str, dict[str, str]] = {}
    missing: list[str] = []
    for name, (section, value, default_key, always) in wanted.items():
        if not (always or section.get("enabled")):
            continue
        if value:
            found[name] = {str(section.get("secretKey") or default_key): str(value)}
        else:
            missing.append(name)
    return found, missing


def policy_hcl(target: VaultTarget) -> str:
    """A policy that reads the chart's secrets and nothing else."""
    return (
        f"# coderd ({target.namespace}/{target.service_account}): read its own secrets only.\n"
        f'path "{target.kv_mount}/data/{target.path}/*" {{\n'
        '  capabilities = ["read"]\n'
        "}\n"
    )


def _mounts(listing: Mapping[str, Any]) -> Mapping[str, Any]:
    data = listing.get("data")
    return data if isinstance(data, dict) else listing


def _role_wanted(target: VaultTarget) -> dict[str, Any]:
    return {
        "bound_service_account_names": [target.service_account],
        "bound_service_account_namespaces": [target.namespace],
        "token_policies": [target.policy],
    }


def _role_matches(current: Mapping[str, Any] | None, target: VaultTarget) -> bool:
    if not current:
        return False
    if str(current.get("audience") or "") != target.audience:
        return False
    return all(sorted(current.get(key) or []) == sorted(value) for key, value in _role_wanted(target).items())


def _plan_kv(client: Any, target: VaultTarget, secrets: Mapping[str, Mapping[str, str]]) -> list[Action]:
    import hvac.exceptions  # noqa: PLC0415 - hvac is imported only when Vault is used

    mounts = _mounts(client.sys.list_mounted_secrets_engines())
    mount = mounts.get(f"{target.kv_mount}/")
    actions: list[Action] = []
    if mount is None:
        actions.append(Action("enable-kv-v2", target.kv_mount))
    elif (mount.get("options") or {}).get("version") != "2":
        msg = f"vault: {target.kv_mount}/ is not a KV version 2 mount; set vault.kvMount to one"
        raise DeployError(msg)
    for name, data in secrets.items():
        path = f"{target.path}/{name}"
        current = None
        if mount is not None:
            try:
                current = client.secrets.kv.v2.read_secret_version(
                    path=path, mount_point=target.kv_mount, raise_on_deleted_version=True
                )["data"]["data"]
            except hvac.exceptions.InvalidPath:
                current = None
        if current != dict(data):
            actions.append(Action("write-secret", f"{target.kv_mount}/{path}"))
    return actions


def _plan_auth(client: Any, target: VaultTarget) -> list[Action]:
    import hvac.exceptions  # noqa: PLC0415

    actions: list[Action] = []
    try:
        policy = client.sys.read_policy(name=target.policy)
    except hvac.exceptions.InvalidPath:
        policy = {}
    rules = policy.get("rules") or (policy.get("data") or {}).get("rules")
    if rules != policy_hcl(target):
        actions.append(Action("write-policy", f"sys/policy/{target.policy}"))
    methods = _mounts(client.sys.list_auth_methods())
    if f"{target.auth_mount}/" not in methods:
        actions.append(Action("enable-auth-kubernetes", f"auth/{target.auth_mount}"))
        actions.append(Action("configure-auth", f"auth/{target.auth_mount}/config"))
        actions.append(Action("write-role", f"auth/{target.auth_mount}/role/{target.role}"))
        return actions
    try:
        config = client.auth.kubernetes.read_config(mount_point=target.auth_mount)
    except hvac.exceptions.InvalidPath:
        config = None
    if not (config or {}).get("kubernetes_host"):
        actions.append(Action("configure-auth", f"auth/{target.auth_mount}/config"))
    try:
        role = client.auth.kubernetes.read_role(name=target.role, mount_point=target.auth_mount)
    except hvac.exceptions.InvalidPath:
        role = None
    if not _role_matches(role, target):
        actions.append(Action("write-role", f"auth/{target.auth_mount}/role/{target.role}"))
    return actions


def plan_vault(
    client: Any,
    target: VaultTarget,
    secrets: Mapping[str, Mapping[str, str]],
    missing: Sequence[str] = (),
) -> VaultPlan:
    """Compare Vault with what the chart needs; return only the differences."""
    actions = [*_plan_kv(client, target, secrets), *_plan_auth(client, target)]
    touched = {a.path for a in actions}
    everything = [f"{target.kv_mount}/{target.path}/{name}" for name in secrets]
    everything += [f"sys/policy/{target.policy}", f"auth/{target.auth_mount}/role/{target.role}"]
    unchanged = tuple(p for p in everything if p not in touched)
    return VaultPlan(tuple(actions), unchanged, tuple(missing))


def apply_plan(
    client: Any,
    target: VaultTarget,
    secrets: Mapping[str, Mapping[str, str]],
    plan: VaultPlan,
) -> None:
    """Make the planned changes, in order."""
    prefix = f"{target.kv_mount}/{target.path}/"
    for action in plan.actions:
        log.info("vault: %s %s", action.kind, action.path)
        if action.kind == "enable-kv-v2":
            client.sys.enable_secrets_engine("kv", path=target.kv_mount, options={"version": "2"})
        elif action.kind == "write-secret":
            name = action.path.removeprefix(prefix)
            client.secrets.kv.v2.create_or_update_secret(
                path=f"{target.path}/{name}", secret=dict(secrets[name]), mount_point=target.kv_mount
            )
        elif action.kind == "write-policy":
            client.sys.create_or_update_policy(name=target.policy, policy=policy_hcl(target))
        elif action.kind == "enable-auth-kubernetes":
            client.sys.enable_auth_method("kubernetes", path=target.auth_mount)
        elif action.kind == "configure-auth":
            client.auth.kubernetes.configure(KUBERNETES_HOST, mount_point=target.auth_mount)
        elif action.kind == "write-role":
            _write_role(client, target)


def _write_role(client: Any, target: VaultTarget) -> None:
    client.auth.kubernetes.create_role(
        name=target.role,
        bound_service_account_names=[target.service_account],
        bound_service_account_namespaces=[target.namespace],
        policies=[target.policy],
        ttl=target.token_ttl,
        mount_point=target.auth_mount,
        audience=target.audience or None,
    )


def _check_is_vault(address: str) -> None:
    """Raise unless ``address`` answers like Vault (``/v1/sys/health``, no token needed)."""
    import requests  # noqa: PLC0415

    try:
        resp = requests.get(f"{address.rstrip('/')}/v1/sys/health", timeout=15)
    except requests.RequestException as exc:
        msg = f"vault-setup: cannot reach Vault at {address} ({type(exc).__name__}); check VAULT_ADDR"
        raise DeployEnvironmentError(msg) from None
    try:
        body = resp.json()
    except ValueError:
        body = None
    if not isinstance(body, dict) or "initialized" not in body:
        msg = (
            f"vault-setup: {address} is not a Vault server (GET /v1/sys/health answered HTTP "
            f"{resp.status_code} without Vault's health document); set VAULT_ADDR to Vault's address"
        )
        raise DeployEnvironmentError(msg)


def _client(address: str, token: str) -> Any:
    import hvac  # noqa: PLC0415
    import hvac.exceptions  # noqa: PLC0415
    import requests  # noqa: PLC0415

    if not token:
        msg = "vault-setup: no Vault token; export VAULT_TOKEN (a token that may write policies)"
        raise DeployEnvironmentError(msg)
    _check_is_vault(address)
    client = hvac.Client(url=address, token=token, timeout=15)
    try:
        client.lookup_token()
    except requests.RequestException as exc:
        msg = f"vault-setup: cannot reach Vault at {address} ({type(exc).__name__}); check VAULT_ADDR"
        raise DeployEnvironmentError(msg) from None
    except (hvac.exceptions.Forbidden, hvac.exceptions.Unauthorized) as exc:
        code = 401 if isinstance(exc, hvac.exceptions.Unauthorized) else 403
        msg = f"vault-setup: Vault at {address} rejected the token (HTTP {code}); check VAULT_TOKEN"
        raise DeployEnvironmentError(msg) from None
    except hvac.exceptions.VaultError as exc:
        what = type(exc).__name__
        msg = f"vault-setup: Vault at {address} refused the token lookup ({what}); check VAULT_TOKEN"
        raise DeployEnvironmentError(msg) from None
    return client


def setup_vault(  # noqa: PLR0913 - keyword-only options of one command
    settings: Settings,
    *,
    values_files: Sequence[Path] = (),
    namespace: str = "code",
    release: str = "coder",
    address: str = "",
    token: str,
    dry_run: bool = False,
) -> VaultPlan:
    """Plan (and unless ``dry_run`` apply) the Vault side of the chart's ``vault.mode``."""
    del settings  # the values files carry everything; kept for the step signature
    values = load_values(values_files)
    target = target_from_values(values, address=address, namespace=namespace, release=release)
    secrets, missing = secrets_from_values(values)
    import hvac.exceptions  # noqa: PLC0415

    client = _client(target.address, token)
    try:
        plan = plan_vault(client, target, secrets, missing)
        if not dry_run:
            apply_plan(client, target, secrets, plan)
    except hvac.exceptions.Forbidden:
        msg = (
            f"vault-setup: the token may not manage {target.kv_mount}/, policies or auth; use an admin token"
        )
        raise DeployError(msg) from None
    except hvac.exceptions.VaultError as exc:
        msg = f"vault-setup: Vault refused a request ({type(exc).__name__}); rerun with -v for the path"
        raise DeployError(msg) from None
    return plan
