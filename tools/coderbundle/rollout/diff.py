"""``coderbundle diff NAME``: what the repository would publish against what is active.

Files: the archive ``publish`` would push (``publish_plan``) against the active
version's archive on the server (``GET /files/{id}``), as unified diffs.

Variables: Coder applies a template variable's default only on the first push
(coder/coder#12133); afterwards each version keeps the value it was given, so
the server can drift from the repository.  Each variable the server stores for
the active version is compared with the value publish would pass (template
default, bundle setting, pinned image).  Sensitive variables are not compared:
the server answers ``*redacted*`` for them; they are listed as not compared.
"""

from __future__ import annotations

import difflib
import io
import json
import tarfile
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from coderbundle.errors import RolloutError
from coderbundle.hcl import HclSyntaxError, literal, parse_text
from coderbundle.rollout.rollback import find_template

if TYPE_CHECKING:
    from collections.abc import Mapping

    from coderbundle.coder_api import CoderAPI, Organization
    from coderbundle.publish_plan import Plan

__all__ = ["Diff", "FileChange", "VariableDrift", "diff_template"]


@dataclass(frozen=True)
class FileChange:
    """A file added, removed or changed; ``patch`` is the unified diff (text files)."""

    path: str
    change: str  # added | removed | changed
    patch: str = ""


@dataclass(frozen=True)
class VariableDrift:
    """A template variable whose stored value is not what the repository says."""

    name: str
    server: str
    repository: str

    def describe(self) -> str:
        """``image: server 'a', repository 'b'``."""
        return f"{self.name}: server {self.server!r}, repository {self.repository!r}"


@dataclass
class Diff:
    """The repository's candidate against the active version."""

    template: str
    active: str
    candidate: str
    files: list[FileChange] = field(default_factory=list)
    variables: list[VariableDrift] = field(default_factory=list)
    not_compared: list[str] = field(default_factory=list)  # sensitive variables (redacted by the server)

    @property
    def changed(self) -> bool:
        """Whether anything differs."""
        return bool(self.files or self.variables)

    def to_json(self) -> dict[str, Any]:
        """The ``--format json`` answer."""
        return {
            "template": self.template,
            "active_version": self.active,
            "candidate_version": self.candidate,
            "changed": self.changed,
            "files": [{"path": f.path, "change": f.change, "patch": f.patch} for f in self.files],
            "variables": [
                {"name": v.name, "server": v.server, "repository": v.repository} for v in self.variables
            ],
            "not_compared": self.not_compared,
        }


def archive_files(archive: bytes) -> dict[str, bytes]:
    """The regular files of a template archive (tar), by path."""
    found = {}
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        for member in tar.getmembers():
            if member.isfile():
                data = tar.extractfile(member)
                found[member.name.removeprefix("./")] = data.read() if data else b""
    return found


def _patch(path: str, old: bytes, new: bytes, old_label: str, new_label: str) -> str:
    try:
        a, b = old.decode().splitlines(keepends=True), new.decode().splitlines(keepends=True)
    except UnicodeDecodeError:
        return "binary files differ\n"
    lines = difflib.unified_diff(a, b, f"{old_label}/{path}", f"{new_label}/{path}")
    return "".join(line if line.endswith("\n") else line + "\n" for line in lines)


def compare_files(
    active: Mapping[str, bytes], candidate: Mapping[str, bytes], labels: tuple[str, str]
) -> list[FileChange]:
    """Every file that differs, sorted by path."""
    changes = []
    for path in sorted(set(active) | set(candidate)):
        old, new = active.get(path), candidate.get(path)
        if old == new:
            continue
        change = "added" if old is None else "removed" if new is None else "changed"
        changes.append(FileChange(path, change, _patch(path, old or b"", new or b"", *labels)))
    return changes


def declared_defaults(files: Mapping[str, bytes]) -> dict[str, str | None]:
    """The variables the top-level ``*.tf`` files declare, with their default as Coder stores it."""
    found: dict[str, str | None] = {}
    for path, data in files.items():
        if not path.endswith(".tf") or "/" in path:
            continue
        try:
            root = parse_text(data.decode("utf-8", "replace"), path)
        except HclSyntaxError:
            continue  # the file diff shows it; publish's validation names the line
        for block in root.blocks:
            if block.type == "variable" and block.labels:
                default = literal(block.get("default"))
                found[block.labels[0]] = None if default is None else _as_stored(default)
    return found


def _as_stored(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return value if isinstance(value, str) else json.dumps(value)


def compare_variables(
    stored: list[dict[str, Any]], plan: Plan, declared: Mapping[str, str | None]
) -> tuple[list[VariableDrift], list[str]]:
    """The variables whose stored value differs from what publish would pass, and those not compared.

    Publish passes ``plan.variables``; any other variable the repository declares gets its
    default.  Sensitive ones are not compared: the server answers ``*redacted*`` for them.
    A variable the repository no longer declares shows in the file diff instead.
    """
    drift, hidden = [], []
    for var in sorted(stored, key=lambda v: str(v["name"])):
        name = str(var["name"])
        if var.get("sensitive"):
            hidden.append(name)
            continue
        if name not in declared:
            continue
        repo_value = plan.variables.get(name, declared[name])
        server_value = var.get("value") if var.get("value") not in (None, "") else var.get("default_value")
        if repo_value is not None and str(server_value or "") != repo_value:
            drift.append(VariableDrift(name, str(server_value or ""), repo_value))
    return drift, hidden


def diff_template(api: CoderAPI, org: Organization, plan: Plan) -> Diff:
    """The plan's archive and variables against the template's active version on the server."""
    template = find_template(api, org, plan.name)
    active = api.template_version(str(template["active_version_id"]))
    if active is None:
        msg = f"{plan.name}: the server does not return the active version; try again"
        raise RolloutError(msg)
    labels = (f"active:{active['name']}", f"repository:{plan.version}")
    found = Diff(plan.name, str(active["name"]), plan.version)
    candidate = archive_files(plan.archive)
    found.files = compare_files(archive_files(api.file(str(active["job"]["file_id"]))), candidate, labels)
    stored = api.version_variables(str(active["id"]))
    found.variables, found.not_compared = compare_variables(stored, plan, declared_defaults(candidate))
    return found
