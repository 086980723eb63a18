"""The rollout log: every promotion coderbundle makes, kept on the Coder server itself.

The open-source server keeps no history of which version was active when (the
audit log is licensed), and a CI job starts from a fresh clone, so the log lives
where every run can read it: one line appended to the promoted version's message
(``PATCH /templateversions/{id}``) just before the promotion::

    coderbundle-rollout: {"action": "promote", "at": "...", "by": "ci", "previous": "<id>", ...}

The line is written first, then the version is promoted: an interrupted run leaves
at most a line on a version that never became active, which ``entries`` marks as
such and ``rollback`` never follows.  ``rollback`` reads the line of the active
version to find the one before it.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from coderbundle.errors import PublishError

if TYPE_CHECKING:
    from collections.abc import Mapping

    from coderbundle.coder_api import CoderAPI

__all__ = ["PREFIX", "Entry", "entries", "latest", "promote"]

PREFIX = "coderbundle-rollout: "
# coderd refuses a version message over 1 MiB (codersdk PatchTemplateVersionRequest); a log
# line is ~300 bytes, so only a version promoted thousands of times could reach it.
_MESSAGE_LIMIT = 1_048_576


@dataclass(frozen=True)
class Entry:
    """One promotion: which version became active, replacing which, when, by whom, how."""

    action: str  # created | promote | canary | rollback | accept
    at: str  # RFC 3339, UTC
    by: str  # the username of the token that promoted
    version_id: str
    version: str  # the version's name
    previous_id: str  # "" for a template's first version
    previous: str
    detail: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def line(self) -> str:
        """The message line that records this entry."""
        body = {k: v for k, v in asdict(self).items() if k not in ("version_id", "version") and v}
        return PREFIX + json.dumps(body, sort_keys=True, separators=(",", ":"))


def parse(version: Mapping[str, Any]) -> list[Entry]:
    """The entries recorded in one version's message (lines that do not parse are ignored)."""
    found = []
    for line in str(version.get("message") or "").splitlines():
        if not line.startswith(PREFIX):
            continue
        try:
            body = json.loads(line.removeprefix(PREFIX))
        except ValueError:
            continue
        if not isinstance(body, dict) or not isinstance(body.get("at"), str):
            continue
        found.append(
            Entry(
                action=str(body.get("action", "promote")),
                at=body["at"],
                by=str(body.get("by", "")),
                version_id=str(version["id"]),
                version=str(version.get("name", "")),
                previous_id=str(body.get("previous_id", "")),
                previous=str(body.get("previous", "")),
                detail=str(body.get("detail", "")),
                extra=dict(body.get("extra") or {}),
            )
        )
    return found


def entries(api: CoderAPI, template: Mapping[str, Any]) -> list[Entry]:
    """Every recorded promotion of a template, oldest first."""
    found = [e for v in api.versions(str(template["id"])) for e in parse(v)]
    return sorted(found, key=lambda e: e.at)


def latest(version: Mapping[str, Any]) -> Entry | None:
    """The newest entry on a version: how it last became active."""
    found = parse(version)
    return max(found, key=lambda e: e.at) if found else None


def now() -> str:
    """The current time as the log writes it."""
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def promote(  # noqa: PLR0913 - one log entry's fields
    api: CoderAPI,
    template: Mapping[str, Any],
    candidate: Mapping[str, Any],
    *,
    action: str,
    by: str,
    previous: Mapping[str, Any] | None,
    detail: str = "",
    extra: Mapping[str, Any] | None = None,
) -> Entry:
    """Record the promotion in the candidate's message, then make the candidate active."""
    entry = Entry(
        action=action,
        at=now(),
        by=by,
        version_id=str(candidate["id"]),
        version=str(candidate.get("name", "")),
        previous_id=str(previous["id"]) if previous else "",
        previous=str(previous.get("name", "")) if previous else "",
        detail=detail,
        extra=dict(extra or {}),
    )
    record(api, candidate, entry)
    if str(template.get("active_version_id")) != entry.version_id:
        api.promote(str(template["id"]), entry.version_id)
    return entry


def record(api: CoderAPI, version: Mapping[str, Any], entry: Entry) -> None:
    """Append an entry's line to a version's message (re-read first: another run may have written)."""
    current = api.template_version(str(version["id"])) or version
    message = str(current.get("message") or "").rstrip("\n")
    updated = f"{message}\n{entry.line()}" if message else entry.line()
    if len(updated.encode()) > _MESSAGE_LIMIT:
        msg = f"version {entry.version}: its message is full of rollout log lines; push a new version"
        raise PublishError(msg)
    api.set_version_message(str(version["id"]), updated)
