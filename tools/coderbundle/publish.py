"""Publish rendered templates to Coder with ``coder templates push``, only what changed.

Each template is planned first (:mod:`coderbundle.publish_plan`): the exact
archive ``coder templates push`` uploads, the variables it passes (the image
pinned by digest from ``build/images.json``), a content hash over both, and a
version name.  The plan and archives always land in ``dist/``.  With ``CODER_URL`` set, the
active version's message is compared with the hash (``[content:<hash16>]``),
changed templates are pushed in parallel, and display and scheduling
settings are brought to the wanted state through the REST API.
"""

from __future__ import annotations

import json
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table
from rich.text import Text

from coderbundle import process
from coderbundle.coder_api import CoderAPI, CoderAuthError, Organization
from coderbundle.configured import find_tool
from coderbundle.console import err_console
from coderbundle.errors import CommandFailed, EnvError, PublishError
from coderbundle.publish_plan import archive_directory, plan_templates, read_image_manifest, write_artifacts

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping, Sequence

    from coderbundle.publish_plan import Plan
    from coderbundle.render import RenderedTemplate
    from coderbundle.settings import Settings

__all__ = [
    "Outcome",
    "PublishResult",
    "archive_directory",  # re-exported from publish_plan
    "print_result",
    "progress_display",
    "publish_templates",
    "read_image_manifest",  # re-exported from publish_plan
    "result_json",
]

_MAX_RETRY_NAMES = 20


@dataclass
class Outcome:
    """What happened to one template."""

    name: str
    status: str  # planned | unchanged | would-push | pushed | failed | skipped
    version: str
    detail: str = ""
    settings_changed: list[str] = field(default_factory=list)


@dataclass
class PublishResult:
    """Every template's outcome plus how the run went."""

    mode: str  # plan-only (no CODER_URL) | dry-run | publish
    outcomes: list[Outcome]
    plan_file: Path | None  # None when validation failed and nothing was planned
    api_requests: int = 0
    problems: list[dict[str, Any]] = field(default_factory=list)  # validation problems, if any
    checks: dict[str, Any] = field(default_factory=dict)  # what validation ran (Report.checks_json)

    @property
    def ok(self) -> bool:
        """True when no template failed."""
        return all(o.status not in ("failed", "skipped", "invalid") for o in self.outcomes)


@dataclass
class _Run:
    """Shared state of one publish run (one API client, the org, the stop flag)."""

    api: CoderAPI
    org: Organization
    settings: Settings
    sha: str
    dry_run: bool
    stop: threading.Event = field(default_factory=threading.Event)


def _settings_diff(current: Mapping[str, Any], wanted: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in wanted.items() if current.get(k) != v}


def _push(run: _Run, plan: Plan, version: str) -> None:
    s = run.settings
    argv = [s.coder_executable, "templates", "push", plan.name, "--directory", str(plan.directory)]
    argv += ["--yes", "--name", version, "--message", plan.message(run.sha)]
    for key, value in sorted(plan.variables.items()):
        argv += ["--variable", f"{key}={value}"]
    if s.coder_organization:
        argv += ["-O", run.org.id]
    secrets = {k: v for k, v in plan.secrets.items() if v is not None}
    env = {"CODER_URL": s.coder_url, "CODER_SESSION_TOKEN": s.coder_session_token}
    with tempfile.TemporaryDirectory(prefix="coderbundle-") as tmp:
        if secrets:
            path = Path(tmp) / "variables.yaml"
            path.touch(mode=0o600)
            path.write_text(json.dumps(secrets, sort_keys=True), encoding="utf-8")  # JSON is YAML
            argv += ["--variables-file", str(path)]
        hidden = [s.coder_session_token, *secrets.values()]
        process.run(argv, env=env, secrets=hidden, timeout=1800)


def _free_version_name(run: _Run, template: Mapping[str, Any] | None, plan: Plan) -> tuple[str, str]:
    """The version name to push, or ("", id) when this content exists as a good version.

    A failed import keeps its name, so a retry of the same content pushes as
    ``<version>-r2``, ``-r3``, ...
    """
    if template is None:
        return plan.version, ""
    for attempt in range(1, _MAX_RETRY_NAMES + 1):
        name = plan.version if attempt == 1 else f"{plan.version}-r{attempt}"
        found = run.api.version_by_name(template["id"], name)
        if found is None:
            return name, ""
        if found.get("job", {}).get("status") == "succeeded" and plan.marker in found.get("message", ""):
            return "", found["id"]
    msg = f"{plan.name}: versions {plan.version} to -r{_MAX_RETRY_NAMES} all exist; archive failed versions"
    raise PublishError(msg)


def _publish_one(run: _Run, plan: Plan) -> Outcome:
    template = run.api.template(run.org.id, plan.name)
    active = run.api.template_version(template["active_version_id"]) if template else None
    if active is not None and plan.marker in active.get("message", ""):
        outcome = Outcome(plan.name, "unchanged", active["name"])
    elif run.dry_run:
        outcome = Outcome(plan.name, "would-push", plan.version, "" if template else "new template")
    else:
        version, existing = _free_version_name(run, template, plan)
        if existing:
            run.api.promote(template["id"] if template else "", existing)
            outcome = Outcome(plan.name, "pushed", plan.version, "re-activated existing version")
        else:
            _push(run, plan, version)
            outcome = Outcome(plan.name, "pushed", version, "created" if template is None else "")
            template = run.api.template(run.org.id, plan.name)
    changes = _settings_diff(template or {}, plan.wanted)
    if changes and template is not None and not run.dry_run:
        run.api.update_template(template, changes)
    outcome.settings_changed = sorted(changes)
    return outcome


def _guarded(run: _Run, plan: Plan) -> Outcome:
    if run.stop.is_set():
        return Outcome(plan.name, "skipped", plan.version, "stopped after an authentication error")
    try:
        return _publish_one(run, plan)
    except CoderAuthError:
        run.stop.set()
        raise
    except CommandFailed as exc:
        last = (exc.stderr or exc.stdout).strip().splitlines()[-1:] or [str(exc)]
        return Outcome(plan.name, "failed", plan.version, f"push failed: {last[0]}")
    except PublishError as exc:
        return Outcome(plan.name, "failed", plan.version, str(exc))


def publish_templates(  # noqa: PLR0913 - keyword-only knobs of one step
    rendered: Sequence[RenderedTemplate],
    settings: Settings,
    *,
    images: Mapping[str, str],
    env: Mapping[str, str],
    dry_run: bool = False,
    on_done: Callable[[Outcome], None] | None = None,
    checks: Mapping[str, Any] | None = None,
) -> PublishResult:
    """Plan, write ``dist/``, and (with CODER_URL) push what changed; never raises per template."""
    sha, plans = plan_templates(rendered, settings, images=images, env=env)
    plan_file = write_artifacts(plans, sha, settings, checks=checks)
    if not settings.coder_url:
        return PublishResult("plan-only", [_planned(p) for p in plans], plan_file, checks=dict(checks or {}))
    run = _connect(settings, sha, dry_run=dry_run)
    done: dict[str, Outcome] = {}
    with ThreadPoolExecutor(max_workers=max(1, settings.publish_concurrency)) as pool:
        for fut in as_completed([pool.submit(_guarded, run, p) for p in plans]):
            outcome = fut.result()  # re-raises CoderAuthError: the run stops
            done[outcome.name] = outcome
            if on_done is not None:
                on_done(outcome)
    mode = "dry-run" if dry_run else "publish"
    outcomes = [done[p.name] for p in plans]
    return PublishResult(mode, outcomes, plan_file, run.api.requests_made, checks=dict(checks or {}))


def _planned(plan: Plan) -> Outcome:
    image = plan.variables.get("image", "template default")
    unset = sorted(k for k, v in plan.secrets.items() if v is None)
    detail = f"image {image}" + (f"; unset: {', '.join(unset)}" if unset else "")
    return Outcome(plan.name, "planned", plan.version, detail)


def _connect(settings: Settings, sha: str, *, dry_run: bool) -> _Run:
    """The API client and organization; what is missing or wrong in the environment exits 2."""
    if not settings.coder_session_token:
        msg = f"CODER_URL is {settings.coder_url} but CODER_SESSION_TOKEN is not set"
        msg += "; create a token with `coder tokens create`"
        raise EnvError(msg)
    if not dry_run:
        find_tool(
            settings.coder_executable,
            configured_by=settings.coder_executable_from,
            install_hint="install the coder CLI or set CODERBUNDLE_CODER",
        )
    api = CoderAPI(settings.coder_url, settings.coder_session_token)
    try:
        org = api.organization(settings.coder_organization)
    except CoderAuthError:
        raise
    except PublishError as exc:  # no such organization, Coder unreachable, not Coder at that URL
        if ": HTTP " in str(exc):
            raise  # the server failed (5xx): a failed step, not the environment
        raise EnvError(str(exc)) from None
    return _Run(api, org, settings, sha, dry_run)


def _row_detail(o: Outcome, mode: str) -> str:
    parts = [o.detail] if o.detail else []
    if o.settings_changed:
        verb = "settings updated" if mode == "publish" else "settings to update"
        parts.append(f"{verb}: {', '.join(o.settings_changed)}")
    return "; ".join(parts)


def result_json(result: PublishResult) -> dict[str, Any]:
    """The machine-readable summary (``--format json``)."""
    counts: dict[str, int] = {}
    for o in result.outcomes:
        counts[o.status] = counts.get(o.status, 0) + 1
    return {
        "ok": result.ok and not result.problems,
        "mode": result.mode,
        "plan": str(result.plan_file) if result.plan_file else None,
        "api_requests": result.api_requests,
        "counts": counts,
        "problems": result.problems,
        "checks": result.checks or None,
        "templates": [
            {
                "name": o.name,
                "status": o.status,
                "version": o.version,
                "detail": o.detail,
                "settings_changed": o.settings_changed,
            }
            for o in result.outcomes
        ],
    }


def validation_failed_result(report: Any, *, mode: str) -> PublishResult:
    """The publish summary when validation failed: same shape, every template ``invalid``."""
    data = report.to_json()
    outcomes = []
    for entry in data["templates"]:
        count = len(entry["problems"])
        detail = f"{count} problem(s); nothing published" if count else "not published (another one failed)"
        outcomes.append(Outcome(entry["name"], "invalid", "", detail))
    problems = [p for entry in data["templates"] for p in entry["problems"]]
    return PublishResult(mode, outcomes, None, 0, problems, report.checks_json())


@contextmanager
def progress_display(total: int) -> Iterator[Callable[[Outcome], None]]:
    """A progress bar on stderr; yields the callback that marks a template done."""
    columns = (SpinnerColumn(), TextColumn("publishing"), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, TimeElapsedColumn(), console=err_console, transient=True) as bar:
        task = bar.add_task("publish", total=total)

        def done(o: Outcome) -> None:
            bar.console.print(f"{o.name}: {o.status} {o.version}", markup=False)
            bar.advance(task)

        yield done


def print_result(result: PublishResult, *, fmt: str = "text") -> None:
    """The summary table on stderr, or JSON on stdout; the plan-only hint."""
    if fmt == "json":
        print(json.dumps(result_json(result), indent=2, sort_keys=True))  # noqa: T201
    else:
        table = Table(title=f"coderbundle publish ({result.mode})", title_justify="left")
        for column in ("template", "status", "version", "details"):
            table.add_column(column)
        for o in result.outcomes:
            # Text cells: brackets in a name or an error detail are shown, not read as markup.
            table.add_row(Text(o.name), Text(o.status), Text(o.version), Text(_row_detail(o, result.mode)))
        err_console.print(table)
        counts = result_json(result)["counts"]
        err_console.print(", ".join(f"{n} {s}" for s, n in sorted(counts.items())), markup=False)
        if result.checks:
            err_console.print(f"validation: {result.checks['summary']}", markup=False)
    if result.mode == "plan-only" and result.plan_file is not None:
        err_console.print(
            f"No CODER_URL set: wrote {result.plan_file} and dist/templates/*.tar, pushed nothing.\n"
            "To publish, set CODER_URL=https://<your coder> and CODER_SESSION_TOKEN=<token from "
            "`coder tokens create`> (and CODER_ORGANIZATION if not the default), then run "
            "`nox -s publish` again.",
            markup=False,
        )
