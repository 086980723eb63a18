"""Workspace builds the rollout verbs start, and what "healthy" means for one.

A start build is healthy when its job succeeded and every agent of it reached the
``ready`` lifecycle state (startup scripts done).  It failed when the job failed
or was canceled, an agent's startup script failed or timed out
(``start_error``/``start_timeout``), or an agent never connected within its
``connection_timeout`` (status ``timeout``).  Anything else is still on its way.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from coderbundle.coder_api import CoderAuthError
from coderbundle.errors import PublishError

if TYPE_CHECKING:
    import threading
    from collections.abc import Mapping

    from coderbundle.coder_api import CoderAPI

__all__ = ["Health", "build_and_wait", "health", "is_running"]

_POLL = 0.5
# What a template admin's token cannot do with other users' workspaces, and who can.
DENIED = "another user's workspace needs a token of an Owner or organization admin"
_JOB_BUSY = ("pending", "running", "canceling")
_AGENT_FAILED = {
    "start_error": "its startup script failed",
    "start_timeout": "its startup script timed out",
}


@dataclass(frozen=True)
class Health:
    """Where a workspace's latest build stands: ``pending``, ``ok`` or ``failed`` (with why)."""

    state: str
    reason: str = ""


def agents(workspace: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The agents of a workspace's latest build."""
    return [a for r in workspace["latest_build"].get("resources") or [] for a in r.get("agents") or []]


def is_running(workspace: Mapping[str, Any]) -> bool:
    """Whether the latest build started the workspace and succeeded."""
    build = workspace["latest_build"]
    return bool(build["transition"] == "start" and build["job"]["status"] == "succeeded")


def health(workspace: Mapping[str, Any]) -> Health:
    """The latest build's state (see the module docstring)."""
    build = workspace["latest_build"]
    job = build["job"]
    if job["status"] in _JOB_BUSY:
        return Health("pending", f"build #{build['build_number']} {job['status']}")
    if job["status"] != "succeeded":
        error = str(job.get("error") or "no error given").strip().splitlines()
        return Health(
            "failed", f"build #{build['build_number']} {job['status']}: {error[-1] if error else ''}"
        )
    if build["transition"] != "start":
        return Health("ok")
    waiting = []
    for agent in agents(workspace):
        lifecycle, status = agent.get("lifecycle_state", ""), agent.get("status", "")
        if lifecycle in _AGENT_FAILED:
            return Health("failed", f"agent {agent['name']}: {_AGENT_FAILED[lifecycle]} ({lifecycle})")
        if status == "timeout":
            return Health("failed", f"agent {agent['name']} never connected (status timeout)")
        if lifecycle != "ready":
            waiting.append(f"agent {agent['name']}: status {status}, lifecycle {lifecycle}")
    return Health("pending", "; ".join(waiting)) if waiting else Health("ok")


def wait(
    api: CoderAPI, workspace_id: str, timeout: float, stop: threading.Event | None = None
) -> tuple[Health, dict[str, Any]]:
    """Poll until the latest build is healthy or failed, ``timeout`` passes or ``stop`` is set."""
    deadline = time.monotonic() + timeout
    while True:
        current = api.workspace(workspace_id)
        if current is None:  # a delete build finished
            return Health("ok", "deleted"), {}
        workspace: dict[str, Any] = current
        found = health(workspace)
        if found.state != "pending":
            return found, workspace
        if stop is not None and stop.is_set():
            return Health("failed", f"interrupted while waiting ({found.reason})"), workspace
        if time.monotonic() >= deadline:
            return Health("failed", f"not ready after {timeout:.0f} s ({found.reason})"), workspace
        time.sleep(_POLL)


def build_and_wait(  # noqa: PLR0913 - one build's knobs
    api: CoderAPI,
    workspace_id: str,
    transition: str,
    *,
    version_id: str = "",
    timeout: float,
    stop: threading.Event | None = None,
) -> tuple[Health, dict[str, Any]]:
    """Start a build and wait for it; a build the server refuses is a failed ``Health``."""
    try:
        api.start_build(workspace_id, transition, version_id)
    except CoderAuthError:
        return Health("failed", f"this token may not start a {transition} build here ({DENIED})"), {}
    except PublishError as exc:
        return Health("failed", f"the server refused a {transition} build: {exc}"), {}
    return wait(api, workspace_id, timeout, stop)
