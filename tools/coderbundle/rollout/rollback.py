"""``coderbundle rollback NAME``: make the version that was active before active again.

The version to go back to comes from the rollout log (``log.py``): the entry on
the active version names the one it replaced.  ``--to VERSION`` names it
instead (for a promotion made outside coderbundle).  The rollback is itself a
promotion with a log entry, so a second rollback undoes the first.  No upgrade
gate runs: the version was active before, and its workspaces ran it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from coderbundle.errors import RolloutError, UsageError
from coderbundle.rollout import log

if TYPE_CHECKING:
    from coderbundle.coder_api import CoderAPI, Organization

__all__ = ["Rollback", "rollback"]


@dataclass(frozen=True)
class Rollback:
    """What was active, what is active now, and the log entry (None when nothing changed)."""

    template: str
    was: str
    now: str
    entry: log.Entry | None

    def to_json(self) -> dict[str, Any]:
        """The ``--format json`` answer."""
        return {
            "template": self.template,
            "was": self.was,
            "now": self.now,
            "changed": self.entry is not None,
            "at": self.entry.at if self.entry else None,
        }


def find_template(api: CoderAPI, org: Organization, name: str) -> dict[str, Any]:
    """The template, or one line saying it is not on the deployment."""
    template = api.template(org.id, name)
    if template is None:
        msg = f"{api.url}: organization {org.name} has no template {name!r}; publish it first"
        raise UsageError(msg)
    return template


def _target(api: CoderAPI, template: dict[str, Any], active: dict[str, Any], to: str) -> dict[str, Any]:
    name = template["name"]
    if to:
        found = api.version_by_name(str(template["id"]), to)
        if found is None:
            msg = f"{name}: no version {to!r}; list them with `coder templates versions list {name}`"
            raise UsageError(msg)
        return found
    entry = log.latest(active)
    if entry is None or not entry.previous_id:
        why = "was its first" if entry is not None else "was not promoted by coderbundle"
        msg = (
            f"{name}: the active version {active['name']} {why}, so the rollout log names no version "
            f"before it; pass --to VERSION (`coder templates versions list {name}`)"
        )
        raise UsageError(msg)
    found = api.template_version(entry.previous_id)
    if found is None:
        msg = f"{name}: version {entry.previous} (active before {active['name']}) is gone; pass --to VERSION"
        raise RolloutError(msg)
    return found


def rollback(api: CoderAPI, org: Organization, name: str, *, to: str = "") -> Rollback:
    """Re-promote the version active before the current one (or ``to``), recording it."""
    template = find_template(api, org, name)
    active = api.template_version(str(template["active_version_id"]))
    if active is None:
        msg = f"{name}: the server does not return the active version; try again"
        raise RolloutError(msg)
    target = _target(api, template, active, to)
    if target["id"] == active["id"]:
        return Rollback(name, str(active["name"]), str(active["name"]), None)
    if target.get("archived"):
        msg = f"{name}: version {target['name']} is archived; `coder templates versions unarchive {name} "
        msg += f"{target['name']}` first"
        raise RolloutError(msg)
    if (target.get("job") or {}).get("status") != "succeeded":
        msg = f"{name}: version {target['name']} never imported successfully; pick another with --to"
        raise RolloutError(msg)
    by = str(api.me().get("username", ""))
    entry = log.promote(api, template, target, action="rollback", by=by, previous=active)
    return Rollback(name, str(active["name"]), str(target["name"]), entry)
