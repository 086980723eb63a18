"""Plan one existing workspace's real Terraform state against a candidate version, locally.

What Coder's provisioner would run on an update, minus the refresh: ``terraform plan
-refresh=false`` on the state the workspace's last build left, with the environment
``provisionEnv`` (coder ``provisioner/terraform/provision.go``) gives terraform:

* ``CODER_WORKSPACE_*``: the REAL workspace's id, name, owner and template (the coder
  provider's data sources read them; another id would make everything look replaced),
  the candidate's version name, transition ``start`` (an update starts the workspace);
* the owner's details the last build saw (email, name, groups, SSH key, roles, tokens),
  read back from that build's ``data.coder_workspace_owner`` in the state, and the
  agent URL from its ``data.coder_workspace``; external auth tokens likewise;
* ``CODER_PARAMETER_<hex sha256(name)>`` with the values the build would use, and
  ``CODER_PARAMETER_PREVIOUS_<...>`` with the values of the last build.

Only ``replace`` and ``destroy`` actions are reported (creates and in-place updates
lose nothing).  The state holds secrets (the agent token, the owner's session token):
the caller keeps it in a private folder; every string under a secret-looking key is
redacted from any terraform output that reaches a message.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from coderbundle import terraform
from coderbundle.plantest import parameter_env
from coderbundle.upgrade_gate import VOLUME_TYPES

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Mapping
    from pathlib import Path

__all__ = ["Change", "Volumes", "changes_from_plan", "plan_workspace", "provisioner_env", "state_secrets"]

PLAN_TIMEOUT = 600
_SECRET_KEY = re.compile(r"token|private_key|password|secret", re.IGNORECASE)
_SHORTEST_SECRET = 6  # "", "false", "none" under a token-like key are not secrets to redact
_INDEX = re.compile(r"\[[^\]]*\]")
_REPLACE = (["delete", "create"], ["create", "delete"])
_REASONS = {
    "delete_because_no_resource_config": "no longer in the configuration",
    "delete_because_no_module": "its module is no longer called",
    "delete_because_count_index": "its count index is gone",
    "delete_because_each_key": "its for_each key is gone",
    "delete_because_wrong_repetition": "count/for_each changed",
    "delete_because_no_move_target": "moved to an address that does not exist",
    "replace_because_tainted": "tainted",
    "replace_by_request": "replacement requested",
    "replace_by_triggers": "replace_triggered_by",
    "replace_because_cannot_update": "an attribute that cannot change in place",
}


@dataclass(frozen=True)
class Volumes:
    """Which resources hold data: ``upgrade_gate.VOLUME_TYPES`` plus a template's ``[upgrade] volumes``.

    An entry of ``declared`` is a resource type (``docker_container``) or an address without
    instance keys (``terraform_data.home_volume``, ``module.home.kubernetes_manifest.pvc``).
    """

    declared: tuple[str, ...] = ()

    def holds_data(self, address: str, kind: str) -> bool:
        """Whether replacing or destroying this resource loses data."""
        return kind in VOLUME_TYPES or kind in self.declared or _INDEX.sub("", address) in self.declared


@dataclass(frozen=True)
class Change:
    """A resource the candidate replaces or destroys in one workspace."""

    address: str
    type: str
    action: str  # replace | destroy
    volume: bool
    because: tuple[str, ...] = ()  # attribute paths forcing the replacement, or terraform's reason

    def to_json(self) -> dict[str, Any]:
        """The JSON form (``--format json``)."""
        return {
            "address": self.address,
            "type": self.type,
            "action": self.action,
            "volume": self.volume,
            "because": list(self.because),
        }


def _path(parts: Iterable[Any]) -> str:
    return ".".join(str(p) for p in parts)


def changes_from_plan(plan: Mapping[str, Any], volumes: Volumes) -> list[Change]:
    """Replaced and destroyed managed resources of a ``terraform show -json`` plan: volumes first."""
    found = []
    for rc in plan.get("resource_changes") or []:
        if rc.get("mode") != "managed":
            continue
        change = rc.get("change") or {}
        actions = list(change.get("actions") or [])
        if actions in _REPLACE:
            action = "replace"
        elif actions == ["delete"]:
            action = "destroy"
        else:
            continue
        because = [_path(p) for p in change.get("replace_paths") or [] if isinstance(p, list)]
        reason = str(rc.get("action_reason") or "")
        if reason and not (reason == "replace_because_cannot_update" and because):
            because.append(_REASONS.get(reason, reason))
        address, kind = str(rc["address"]), str(rc.get("type", ""))
        found.append(Change(address, kind, action, volumes.holds_data(address, kind), tuple(because)))
    return sorted(found, key=lambda c: (not c.volume, c.action != "replace", c.address))


def _instances(state: Mapping[str, Any], mode: str, kind: str) -> Iterator[Mapping[str, Any]]:
    for res in state.get("resources") or []:
        if res.get("mode") == mode and res.get("type") == kind:
            for inst in res.get("instances") or []:
                yield inst.get("attributes") or {}


def _walk_strings(value: Any, key: str = "") -> Iterator[tuple[str, str]]:
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _walk_strings(v, str(k))
    elif isinstance(value, list):
        for v in value:
            yield from _walk_strings(v, key)
    elif isinstance(value, str):
        yield key, value


def state_secrets(state: Mapping[str, Any]) -> set[str]:
    """Every non-trivial string under a token, private key, password or secret key in the state."""
    return {
        value
        for res in state.get("resources") or []
        for inst in res.get("instances") or []
        for key, value in _walk_strings(inst.get("attributes") or {})
        if _SECRET_KEY.search(key) and len(value) >= _SHORTEST_SECRET
    }


@dataclass(frozen=True)
class Target:
    """The workspace being planned and the candidate it would move to."""

    workspace: Mapping[str, Any]  # GET /workspaces/{id}
    template_id: str
    template_name: str
    version_id: str
    version_name: str
    access_url: str  # CODER_URL: used when the state has no data.coder_workspace


def _previous_env(name: str) -> str:
    """``CODER_PARAMETER_PREVIOUS_<hex sha256(name)>`` (provider ``ParameterEnvironmentVariablePrevious``)."""
    return parameter_env(name).replace("CODER_PARAMETER_", "CODER_PARAMETER_PREVIOUS_", 1)


def provisioner_env(
    target: Target,
    state: Mapping[str, Any],
    values: Mapping[str, str],
    previous: Mapping[str, str],
    owner: Mapping[str, Any] | None = None,
) -> dict[str, str]:
    """What coder's provisioner sets for terraform on an update of this workspace to the candidate.

    ``owner`` (``GET /users/{id}``) stands in when the last build had no ``coder_workspace_owner``.
    """
    ws = target.workspace
    workspace = next(_instances(state, "data", "coder_workspace"), {})
    seen = next(_instances(state, "data", "coder_workspace_owner"), None)
    user = owner or {}
    who = seen or {
        "email": user.get("email", ""),
        "full_name": user.get("name", ""),
        "groups": [],
        "login_type": user.get("login_type", ""),
        "rbac_roles": [
            {"name": r.get("name", ""), "org_id": r.get("organization_id", "")}
            for r in user.get("roles") or []
        ],
    }
    build = uuid.uuid5(uuid.NAMESPACE_URL, f"coderbundle-impact/{ws['id']}/{target.version_id}")
    env = {
        "CODER_AGENT_URL": str(workspace.get("access_url") or target.access_url.rstrip("/") + "/"),
        "CODER_WORKSPACE_TRANSITION": "start",
        "CODER_WORKSPACE_NAME": str(ws["name"]),
        "CODER_WORKSPACE_OWNER": str(ws["owner_name"]),
        "CODER_WORKSPACE_OWNER_EMAIL": str(who.get("email") or ""),
        "CODER_WORKSPACE_OWNER_NAME": str(who.get("full_name") or ""),
        "CODER_WORKSPACE_OWNER_OIDC_ACCESS_TOKEN": str(who.get("oidc_access_token") or ""),
        "CODER_WORKSPACE_OWNER_GROUPS": json.dumps(list(who.get("groups") or [])),
        "CODER_WORKSPACE_OWNER_SSH_PUBLIC_KEY": str(who.get("ssh_public_key") or ""),
        "CODER_WORKSPACE_OWNER_SSH_PRIVATE_KEY": str(who.get("ssh_private_key") or ""),
        "CODER_WORKSPACE_OWNER_LOGIN_TYPE": str(who.get("login_type") or ""),
        "CODER_WORKSPACE_OWNER_RBAC_ROLES": json.dumps(list(who.get("rbac_roles") or [])),
        "CODER_WORKSPACE_ID": str(ws["id"]),
        "CODER_WORKSPACE_OWNER_ID": str(ws["owner_id"]),
        "CODER_WORKSPACE_OWNER_SESSION_TOKEN": str(who.get("session_token") or ""),
        "CODER_WORKSPACE_TEMPLATE_ID": target.template_id,
        "CODER_WORKSPACE_TEMPLATE_NAME": target.template_name,
        "CODER_WORKSPACE_TEMPLATE_VERSION": target.version_name,
        "CODER_WORKSPACE_BUILD_ID": str(build),
        "CODER_TASK_ID": "",
        "CODER_TASK_PROMPT": "",
    }
    for auth in _instances(state, "data", "coder_external_auth"):
        if auth.get("id"):
            token = str(auth.get("access_token") or "")
            env[f"CODER_EXTERNAL_AUTH_ACCESS_TOKEN_{auth['id']}"] = token
            env[f"CODER_GIT_AUTH_ACCESS_TOKEN_{auth['id']}"] = token
    env.update({_previous_env(name): value for name, value in previous.items()})
    env.update({parameter_env(n): v for n, v in values.items()})
    return env


def plan_workspace(  # noqa: PLR0913 - keyword-only inputs of one plan
    *,
    config: Path,
    folder: Path,
    tc: terraform.Toolchain,
    env: Mapping[str, str],
    variables: Mapping[str, str],
    state: bytes,
    secrets: Iterable[str],
) -> dict[str, Any] | str:
    """``terraform show -json`` of the plan of ``state`` in ``config`` (initialized), or why it failed.

    ``folder`` is private to this workspace (its state file and plan are written there).
    """
    state_file = folder / "terraform.tfstate"
    state_file.touch(mode=0o600)
    state_file.write_bytes(state)
    hidden = [*secrets, *(v for k, v in env.items() if len(v) >= _SHORTEST_SECRET and _SECRET_KEY.search(k))]
    found = terraform.plan_json(
        tc,
        config,
        folder / "impact.tfplan",
        env=env,
        variables=sorted(variables.items()),
        state=state_file,
        secrets=hidden,
        timeout=PLAN_TIMEOUT,
    )
    if isinstance(found, str) and not found.startswith("terraform show"):
        return f"terraform plan failed: {found}"
    return found
