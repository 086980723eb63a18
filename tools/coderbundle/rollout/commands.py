"""The rollout verbs as the CLI runs them: connect, do the step, print (text on stderr, JSON on stdout).

``__main__`` parses the arguments and calls one function here; each returns the
exit code (0 done, 1 something to act on or a step failed).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from rich.table import Table
from rich.text import Text

from coderbundle.coder_api import connect
from coderbundle.console import err_console
from coderbundle.discover import find_templates
from coderbundle.rollout import log, outdated
from coderbundle.rollout.rollback import find_template, rollback

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from coderbundle.coder_api import CoderAPI, Organization
    from coderbundle.settings import Settings

__all__ = ["diff_command", "log_command", "outdated_command", "rollback_command"]


def _connect(settings: Settings) -> tuple[CoderAPI, Organization]:
    return connect(settings.coder_url, settings.coder_session_token, settings.coder_organization)


def _emit(data: Any) -> None:
    print(json.dumps(data, indent=2, sort_keys=True))  # noqa: T201 - machine output on stdout


def rollback_command(settings: Settings, name: str, *, to: str, fmt: str) -> int:
    """``coderbundle rollback NAME [--to VERSION]``."""
    api, org = _connect(settings)
    done = rollback(api, org, name, to=to)
    if fmt == "json":
        _emit(done.to_json())
    elif done.entry is None:
        err_console.print(f"{name}: {done.now} is already the active version; nothing changed", markup=False)
    else:
        err_console.print(f"{name}: rolled back from {done.was} to {done.now} (recorded)", markup=False)
    return 0


def log_command(settings: Settings, name: str, *, fmt: str) -> int:
    """``coderbundle rollout-log NAME``: every promotion coderbundle recorded, oldest first."""
    api, org = _connect(settings)
    template = find_template(api, org, name)
    entries = log.entries(api, template)
    active = str(template["active_version_id"])
    if fmt == "json":
        _emit(
            {
                "template": name,
                "entries": [
                    {
                        "at": e.at,
                        "action": e.action,
                        "version": e.version,
                        "previous": e.previous,
                        "by": e.by,
                        "detail": e.detail,
                        "active": e.version_id == active,
                    }
                    for e in entries
                ],
            }
        )
        return 0
    table = Table(title=f"rollout log of {name}", title_justify="left")
    for column in ("at", "action", "version", "replaced", "by", "details"):
        table.add_column(column)
    for e in entries:
        version = e.version + (" (active)" if e.version_id == active else "")
        table.add_row(*(Text(c) for c in (e.at[:19] + "Z", e.action, version, e.previous, e.by, e.detail)))
    err_console.print(table)
    if not entries:
        err_console.print(f"{name}: no promotion recorded by coderbundle yet", markup=False)
    return 0


def outdated_command(settings: Settings, names: Sequence[str], *, update: bool, fmt: str) -> int:
    """``coderbundle outdated [NAME...] [--update]``; 1 when an update failed."""
    names = list(names) or [t.name for t in find_templates(settings.templates_dir)]
    api, org = _connect(settings)
    fleets = outdated.find_outdated(api, org, names)
    ok = outdated.update(api, fleets, timeout=settings.canary_timeout_s) if update else True
    count = sum(len(f.outdated) for f in fleets)
    if fmt == "json":
        _emit({"count": count, "updated": update, "ok": ok, "templates": [f.to_json() for f in fleets]})
        return 0 if ok else 1
    table = Table(title="workspaces not on the active version", title_justify="left")
    for column in ("template", "owner", "workspace", "version", "active", "status", *(("update",) * update)):
        table.add_column(column)
    for fleet in fleets:
        for s in fleet.outdated:
            cells = (fleet.template, s.owner, s.workspace, s.version, fleet.active, s.status)
            table.add_row(*(Text(c) for c in (*cells, *((s.result,) * update))))
    if count:
        err_console.print(table)
    missing = [f.template for f in fleets if not f.on_server]
    summary = f"{count} outdated workspace(s) in {len(fleets) - len(missing)} template(s)"
    err_console.print(
        summary + (f"; not on the server: {', '.join(missing)}" if missing else ""), markup=False
    )
    return 0 if ok else 1


def diff_command(settings: Settings, name: str, *, env: Mapping[str, str], fmt: str, exit_code: bool) -> int:
    """``coderbundle diff NAME``: patches on stdout, the summary on stderr."""
    # Imported here: rendering pulls in jinja2 and the planner only this verb needs.
    from coderbundle.pipeline import render_all  # noqa: PLC0415
    from coderbundle.publish_plan import plan_templates, read_image_manifest  # noqa: PLC0415
    from coderbundle.rollout.diff import diff_template  # noqa: PLC0415

    rendered = render_all(settings, [name])
    _, plans = plan_templates(rendered, settings, images=read_image_manifest(settings), env=env)
    api, org = _connect(settings)
    found = diff_template(api, org, plans[0])
    if fmt == "json":
        _emit(found.to_json())
    else:
        for change in found.files:
            print(change.patch, end="")  # noqa: T201 - the patch is the output, as git diff's
        files = ", ".join(f"{c.path} ({c.change})" for c in found.files) or "no file differs"
        err_console.print(
            f"{name}: repository ({found.candidate}) against active {found.active}: {files}", markup=False
        )
        for drift in found.variables:
            err_console.print(f"variable drift: {drift.describe()}", markup=False)
        if found.not_compared:
            hidden = ", ".join(found.not_compared)
            err_console.print(f"not compared (sensitive, redacted by the server): {hidden}", markup=False)
    return 1 if exit_code and found.changed else 0
