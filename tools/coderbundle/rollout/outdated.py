"""``coderbundle outdated``: workspaces not on their template's active version, and ``--update``.

The list is the server's own ``outdated:true`` search per template.  ``--update``
moves each listed workspace to the active version the way a developer's
"Update" does it for a running workspace (stopped, then started on the active
version; it must come back healthy) and, for a stopped one, with a stop build on
the active version, so it stays stopped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from coderbundle.rollout import builds

if TYPE_CHECKING:
    from collections.abc import Sequence

    from coderbundle.coder_api import CoderAPI, Organization

__all__ = ["Straggler", "TemplateFleet", "find_outdated", "update"]


@dataclass
class Straggler:
    """A workspace on an older version."""

    owner: str
    workspace: str
    version: str
    status: str  # the latest build's status: running, stopped, failed ...
    workspace_id: str = field(default="", repr=False)
    result: str = ""  # after --update: updated | failed: <why>

    def to_json(self) -> dict[str, Any]:
        """One JSON row."""
        row = {
            "owner": self.owner,
            "workspace": self.workspace,
            "version": self.version,
            "status": self.status,
        }
        return row | ({"update": self.result} if self.result else {})


@dataclass
class TemplateFleet:
    """A template, its active version and the workspaces not on it."""

    template: str
    active: str
    outdated: list[Straggler]
    on_server: bool = True

    def to_json(self) -> dict[str, Any]:
        """One JSON entry."""
        return {
            "template": self.template,
            "on_server": self.on_server,
            "active_version": self.active,
            "outdated": [s.to_json() for s in self.outdated],
        }


def find_outdated(api: CoderAPI, org: Organization, names: Sequence[str]) -> list[TemplateFleet]:
    """Per template, the workspaces whose latest build is not on the active version."""
    found = []
    for name in names:
        template = api.template(org.id, name)
        if template is None:
            found.append(TemplateFleet(name, "", [], on_server=False))
            continue
        active = api.template_version(str(template["active_version_id"])) or {}
        stragglers = [
            Straggler(
                owner=str(ws["owner_name"]),
                workspace=str(ws["name"]),
                version=str(ws["latest_build"].get("template_version_name", "")),
                status=str(ws["latest_build"].get("status", "")),
                workspace_id=str(ws["id"]),
            )
            for ws in api.workspaces(f"template:{name} outdated:true")
            if ws.get("template_id") == template["id"]  # the search matches names in other orgs too
        ]
        found.append(TemplateFleet(name, str(active.get("name", "")), sorted(stragglers, key=_order)))
    return found


def _order(s: Straggler) -> tuple[str, str]:
    return s.owner, s.workspace


def update(api: CoderAPI, fleets: Sequence[TemplateFleet], *, timeout: float) -> bool:
    """Move every listed workspace to its template's active version; True when all made it."""
    ok = True
    for fleet in fleets:
        for straggler in fleet.outdated:
            straggler.result = _update_one(api, straggler, timeout)
            ok = ok and straggler.result == "updated"
    return ok


def _update_one(api: CoderAPI, straggler: Straggler, timeout: float) -> str:
    health, ws = builds.wait(api, straggler.workspace_id, timeout)
    if not ws:
        return "failed: the workspace is gone"
    if health.state == "pending":
        return f"failed: a build is still running ({health.reason})"
    active = str(ws["template_active_version_id"])
    if builds.is_running(ws):
        health, _ = builds.build_and_wait(api, straggler.workspace_id, "stop", timeout=timeout)
        if health.state == "ok":
            health, _ = builds.build_and_wait(
                api, straggler.workspace_id, "start", version_id=active, timeout=timeout
            )
    else:
        health, _ = builds.build_and_wait(
            api, straggler.workspace_id, "stop", version_id=active, timeout=timeout
        )
    return "updated" if health.state == "ok" else f"failed: {health.reason}"
