"""Archive a template's old versions nobody uses (``publish --archive-older-than DAYS``).

A version older than the cut-off that is not active is archived with
``POST /templateversions/{id}/archive``; the server itself refuses a version a
workspace's latest build still runs, and such a version is kept and counted.
Archived versions disappear from the version list and the UI's picker; they can
be unarchived (``coder templates versions unarchive``).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Mapping

    from coderbundle.coder_api import CoderAPI

__all__ = ["Archived", "archive_old"]


@dataclass(frozen=True)
class Archived:
    """How many old versions were archived, and how many the server kept because they are in use."""

    archived: int
    in_use: int

    def summary(self) -> str:
        """``archived 3 old versions (1 in use, kept)``; "" when there was nothing to do."""
        if not self.archived and not self.in_use:
            return ""
        kept = f" ({self.in_use} in use, kept)" if self.in_use else ""
        return f"archived {self.archived} old version{'s' if self.archived != 1 else ''}{kept}"


def _created(version: Mapping[str, Any]) -> dt.datetime:
    return dt.datetime.fromisoformat(str(version["created_at"]))


def archive_old(api: CoderAPI, template: Mapping[str, Any], days: float) -> Archived:
    """Archive the template's versions created more than ``days`` ago that are not active."""
    cutoff = dt.datetime.now(dt.UTC) - dt.timedelta(days=days)
    archived = in_use = 0
    for version in api.versions(str(template["id"])):
        if version["id"] == template["active_version_id"] or version.get("archived"):
            continue
        if _created(version) >= cutoff:
            continue
        if api.archive_version(str(version["id"])):
            in_use += 1
        else:
            archived += 1
    return Archived(archived, in_use)
