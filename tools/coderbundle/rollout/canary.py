"""Canary builds: prove a candidate version on real workspaces before it becomes active.

For each canary user, their workspaces of the template are rebuilt on the candidate
(a running one is stopped and started on it, a stopped one started and stopped
again); a user with none gets a fresh test workspace ``canary-<template>`` built
from the candidate with the parameters' defaults, deleted afterwards.  Every build
must succeed and every agent reach ``ready`` within the timeout (builds.health).

On the first failure the rollout stops: workspaces already rebuilt go back to the
version that was active (a running one is rebuilt and started on it, a stopped one
gets a stop build on it), fresh ones are deleted, and the reason comes back; the
caller leaves the active version alone.  ``stop`` (set on Ctrl-C) ends a wait the
same way.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from coderbundle.coder_api import CoderAuthError
from coderbundle.errors import PublishError
from coderbundle.rollout import builds

if TYPE_CHECKING:
    import threading
    from collections.abc import Mapping, Sequence

    from coderbundle.coder_api import CoderAPI

__all__ = ["CanaryResult", "run_canary"]

# Undoing a failed canary is best effort within this long per workspace.
_RESTORE_TIMEOUT = 300.0
_NAME_LIMIT = 32  # codersdk.NameValid
_BUSY = ("pending", "running")


@dataclass
class Proved:
    """One canary workspace: whose, which, what happened to it."""

    owner: str
    workspace: str
    fresh: bool
    was_running: bool
    result: str = ""  # ready | failed | restored | deleted | not restored: ...
    seconds: float = 0.0
    workspace_id: str = field(default="", repr=False)

    def to_json(self) -> dict[str, Any]:
        """The JSON row publish prints."""
        return {
            "owner": self.owner,
            "workspace": self.workspace,
            "fresh": self.fresh,
            "result": self.result,
            "seconds": round(self.seconds, 1),
        }


@dataclass
class CanaryResult:
    """Whether the candidate proved healthy, why not, and on which workspaces."""

    ok: bool
    reason: str = ""
    workspaces: list[Proved] = field(default_factory=list)

    def summary(self) -> str:
        """``canary: alice/dev ready in 4.1 s, bob/canary-go (fresh) ready in 3.2 s``."""
        rows = [
            f"{p.owner}/{p.workspace}{' (fresh)' if p.fresh else ''} {p.result}"
            + (f" in {p.seconds:.1f} s" if p.result == "ready" else "")
            for p in self.workspaces
        ]
        return "canary: " + ", ".join(rows)


def fresh_name(template: str) -> str:
    """The test workspace's name: ``canary-<template>``, within Coder's 32 characters."""
    name = re.sub(r"[^a-z0-9-]+", "-", f"canary-{template}".lower())[:_NAME_LIMIT]
    return name.strip("-")


@dataclass
class _Canary:
    """One canary run: the API, the candidate, the clock and the stop flag."""

    api: CoderAPI
    org_id: str
    template: str
    template_id: str
    candidate_id: str
    timeout: float
    stop: threading.Event
    result: CanaryResult = field(default_factory=lambda: CanaryResult(ok=True))

    def prove_user(self, user: str) -> bool:
        """Rebuild the user's workspaces of the template (or a fresh one); False on the first failure."""
        found = [  # the search matches the name in every organization
            ws
            for ws in self.api.workspaces(f"template:{self.template} owner:{user}")
            if ws.get("template_id") == self.template_id
        ]
        if not found:
            return self.prove_fresh(user)
        for ws in found:
            proved = Proved(
                owner=str(ws["owner_name"]),
                workspace=str(ws["name"]),
                fresh=ws["name"] == fresh_name(self.template),
                was_running=builds.is_running(ws),
                workspace_id=str(ws["id"]),
            )
            self.result.workspaces.append(proved)
            if not self.rebuild(proved):
                return False
        return True

    def prove_fresh(self, user: str) -> bool:
        began = time.monotonic()
        name = fresh_name(self.template)
        try:
            ws = self.api.create_workspace(self.org_id, user, name, self.candidate_id, {})
        except CoderAuthError:
            self.result.ok = False
            self.result.reason = f"this token may not create a test workspace for {user} ({builds.DENIED})"
            return False
        except PublishError as exc:
            self.result.ok = False
            self.result.reason = f"could not create a test workspace for {user}: {exc}"
            return False
        proved = Proved(
            str(ws["owner_name"]), name, fresh=True, was_running=False, workspace_id=str(ws["id"])
        )
        self.result.workspaces.append(proved)
        health, _ = builds.wait(self.api, proved.workspace_id, self.timeout, self.stop)
        return self.settle(proved, health, began)

    def rebuild(self, proved: Proved) -> bool:
        began = time.monotonic()
        # A build still on its way (someone just started it) finishes first.
        health, ws = builds.wait(self.api, proved.workspace_id, self.timeout, self.stop)
        if not ws or (health.state == "failed" and ws["latest_build"]["job"]["status"] in _BUSY):
            return self.settle(proved, health, began)
        if builds.is_running(ws):
            health, _ = builds.build_and_wait(
                self.api, proved.workspace_id, "stop", timeout=self.timeout, stop=self.stop
            )
            if health.state != "ok":
                return self.settle(proved, health, began)
        had = len(builds.agents(ws)) if builds.is_running(ws) else 0
        health, after = builds.build_and_wait(
            self.api,
            proved.workspace_id,
            "start",
            version_id=self.candidate_id,
            timeout=self.timeout,
            stop=self.stop,
        )
        if health.state == "ok" and len(builds.agents(after)) < had:
            # No agent to wait for is not a healthy workspace: nothing would serve the developer.
            found = len(builds.agents(after))
            health = builds.Health(
                "failed", f"the build has {found} agent(s) where the active version had {had}"
            )
        return self.settle(proved, health, began)

    def settle(self, proved: Proved, health: builds.Health, began: float) -> bool:
        proved.seconds = time.monotonic() - began
        if health.state == "ok":
            proved.result = "ready"
            return True
        proved.result = "failed"
        self.result.ok = False
        self.result.reason = f"{proved.owner}/{proved.workspace}: {health.reason}"
        return False


def run_canary(  # noqa: PLR0913 - one canary's inputs
    api: CoderAPI,
    *,
    org_id: str,
    template: Mapping[str, Any],
    candidate_id: str,
    active_id: str,
    users: Sequence[str],
    timeout: float,
    stop: threading.Event,
) -> CanaryResult:
    """Rebuild the users' workspaces on the candidate and wait for them to be healthy."""
    run = _Canary(api, org_id, str(template["name"]), str(template["id"]), candidate_id, timeout, stop)
    for user in users:
        if not run.prove_user(user):
            break
    _clean_up(api, run.result, active_id)
    return run.result


def _clean_up(api: CoderAPI, result: CanaryResult, active_id: str) -> None:
    """Fresh workspaces are deleted; after a failure, rebuilt ones go back to the active version."""
    for proved in result.workspaces:
        if proved.fresh:
            health, _ = builds.build_and_wait(api, proved.workspace_id, "delete", timeout=_RESTORE_TIMEOUT)
            proved.result = proved.result if health.state == "ok" else f"{proved.result}; not deleted"
            continue
        if result.ok:
            if not proved.was_running:  # it was stopped before the canary: stopped again
                builds.build_and_wait(api, proved.workspace_id, "stop", timeout=_RESTORE_TIMEOUT)
            continue
        proved.result = _restore(api, proved, active_id)


def _restore(api: CoderAPI, proved: Proved, active_id: str) -> str:
    before = proved.result
    health, ws = builds.wait(api, proved.workspace_id, _RESTORE_TIMEOUT)
    if not ws:
        return f"{before}; not restored: the workspace is gone"
    if builds.is_running(ws) or ws["latest_build"]["transition"] == "start":
        health, ws = builds.build_and_wait(
            api, proved.workspace_id, "stop", version_id=active_id, timeout=_RESTORE_TIMEOUT
        )
    if proved.was_running and health.state == "ok":
        health, ws = builds.build_and_wait(
            api, proved.workspace_id, "start", version_id=active_id, timeout=_RESTORE_TIMEOUT
        )
    restored = health.state == "ok" and bool(ws) and ws["latest_build"]["template_version_id"] == active_id
    return (
        f"{before}; restored" if restored else f"{before}; not restored: {health.reason or 'see the build'}"
    )
