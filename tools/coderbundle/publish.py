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
import re
import tempfile
import threading
import time
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
from coderbundle.coder_api import CoderAPI, CoderAuthError, Organization, connect, environment_errors
from coderbundle.configured import find_tool
from coderbundle.console import err_console
from coderbundle.errors import CommandFailed, EnvError, PublishError
from coderbundle.publish_plan import (
    annotate_plan,
    archive_directory,
    plan_templates,
    read_image_manifest,
    write_artifacts,
)
from coderbundle.rollout import archive, log
from coderbundle.rollout.canary import run_canary
from coderbundle.upgrade_gate import Finding, check_upgrade, tf_files

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
# Template fields only a licensed deployment applies (advanced template scheduling); the
# open-source server accepts them in a PATCH and keeps its old value (schedule.agplTemplateScheduleStore).
LICENSED_FIELDS = (
    "time_til_dormant_ms",
    "time_til_dormant_autodelete_ms",
    "failure_ttl_ms",
    "autostop_requirement",
    "autostart_requirement",
    "allow_user_autostart",
    "allow_user_autostop",
)
# A push that failed on the way, not on the template: a proxy's 502/503/504, a reset
# connection, or two imports inserting the same modules archive at once (coderd's
# files_hash_created_by_key race between parallel pushes).  Retried with backoff.
_TRANSIENT = re.compile(
    r"files_hash_created_by_key|connection reset|connection refused|\bEOF\b|broken pipe"
    r"|Status code 50[234]\b|Bad Gateway|Service Unavailable|Gateway Timeout|i/o timeout"
    r"|Status code 429\b",
    re.IGNORECASE,
)
_PUSH_TRIES = 4
_RATE_WAIT = 20.0
_IMPORT_TIMEOUT = 1800.0


@dataclass
class Outcome:
    """What happened to one template."""

    name: str
    status: str  # planned | unchanged | would-push | pushed | blocked | failed | skipped
    version: str
    detail: str = ""
    settings_changed: list[str] = field(default_factory=list)
    image: str = ""  # the image its workspaces run
    findings: list[dict[str, Any]] = field(default_factory=list)  # the upgrade gate's
    canary: list[dict[str, Any]] = field(default_factory=list)  # the canary workspaces and results
    archived: int = 0  # old versions archived (--archive-older-than)


@dataclass
class PublishResult:
    """Every template's outcome plus how the run went."""

    mode: str  # plan-only (no CODER_URL) | dry-run | publish
    outcomes: list[Outcome]
    plan_file: Path | None  # None when validation failed and nothing was planned
    api_requests: int = 0
    problems: list[dict[str, Any]] = field(default_factory=list)  # validation problems, if any
    notes: list[str] = field(default_factory=list)  # said once per run (fields the server ignores)
    server_version: str = ""
    checks: dict[str, Any] = field(default_factory=dict)  # what validation ran (Report.checks_json)

    @property
    def ok(self) -> bool:
        """True when no template failed."""
        return all(o.status not in ("failed", "skipped", "invalid", "blocked") for o in self.outcomes)


@dataclass
class _Run:
    """Shared state of one publish run (one API client, the org, the stop flag)."""

    api: CoderAPI
    org: Organization
    settings: Settings
    sha: str
    dry_run: bool
    accept_breaking: bool = False
    ignored: frozenset[str] = frozenset()  # template fields this deployment does not apply
    server_version: str = ""
    stop: threading.Event = field(default_factory=threading.Event)
    archive_days: float | None = None  # --archive-older-than
    _username: str = ""

    @property
    def username(self) -> str:
        """The publishing token's user (the rollout log's ``by``), asked once."""
        if not self._username:
            self._username = str(self.api.me().get("username", ""))
        return self._username


def _settings_diff(current: Mapping[str, Any], wanted: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in wanted.items() if current.get(k) != v}


def _push(run: _Run, plan: Plan, template: Mapping[str, Any] | None) -> tuple[str, str]:
    """``coder templates push`` (a new version of an existing template stays inactive).

    Returns the version's name and, when it took more than one try, what was retried.

    Failures on the way (see ``_TRANSIENT``) are retried with backoff under the next
    free version name (a failed import keeps its name); a bad template is not.
    """
    retried: list[str] = []
    for attempt in range(1, _PUSH_TRIES + 1):
        version, existing = _free_version_name(run, template, plan)
        if existing:  # imported before (an earlier try, or a run that stopped before promoting)
            return version, _retried(retried)
        try:
            _push_once(run, plan, version, activate=template is None)
        except CommandFailed as exc:
            found = _TRANSIENT.search(f"{exc.stderr}\n{exc.stdout}")
            if attempt == _PUSH_TRIES or not found:
                raise
            retried.append(found.group(0))
            # A 429 is coderd's per-user limit (uploads: 12 a minute): wait for the window.
            time.sleep(_RATE_WAIT * attempt if "429" in found.group(0) else 0.5 * 2 ** (attempt - 1))
        else:
            return version, _retried(retried)
    msg = "unreachable"  # pragma: no cover - the loop returns or raises
    raise AssertionError(msg)


def _retried(reasons: list[str]) -> str:
    return f"retried {len(reasons)}x ({', '.join(dict.fromkeys(reasons))})" if reasons else ""


def _push_once(run: _Run, plan: Plan, version: str, *, activate: bool) -> None:
    s = run.settings
    argv = [s.coder_executable, "templates", "push", plan.name, "--directory", str(plan.directory)]
    # --verbose: an API error then names its HTTP status, which tells a proxy's 502 from a 400.
    argv += ["--yes", "--verbose", "--name", version, "--message", plan.message(run.sha)]
    if not activate:
        argv += ["--activate=false"]
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
    """The version name to push and "", or (name, id) when this content exists as a good version.

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
            return name, found["id"]
    msg = f"{plan.name}: versions {plan.version} to -r{_MAX_RETRY_NAMES} all exist; archive failed versions"
    raise PublishError(msg)


def _publish_one(run: _Run, plan: Plan) -> Outcome:
    template = run.api.template(run.org.id, plan.name)
    active = run.api.template_version(template["active_version_id"]) if template else None
    if active is not None and plan.marker in active.get("message", ""):
        outcome = Outcome(plan.name, "unchanged", active["name"])
    elif template is None or active is None:
        outcome = _publish_new(run, plan)
        template = None if run.dry_run else run.api.template(run.org.id, plan.name)
    else:
        outcome = _publish_version(run, plan, template, active)
    outcome.image = plan.image
    wanted = {k: v for k, v in plan.wanted.items() if k not in run.ignored}
    changes = _settings_diff(template or {}, wanted)
    if changes and template is not None and not run.dry_run and outcome.status != "blocked":
        run.api.update_template(template, changes)
    outcome.settings_changed = sorted(changes)
    archiving = run.archive_days is not None and not run.dry_run
    if archiving and template is not None and outcome.status in ("pushed", "unchanged"):
        done = _archive(run, plan.name, template)
        outcome.archived = done.archived
        outcome.detail = "; ".join(filter(None, (outcome.detail, done.summary())))
    return outcome


def _publish_new(run: _Run, plan: Plan) -> Outcome:
    if run.dry_run:
        return Outcome(plan.name, "would-push", plan.version, "new template")
    version, retried = _push(run, plan, None)
    template = run.api.template(run.org.id, plan.name)
    first = run.api.template_version(template["active_version_id"]) if template else None
    if template is not None and first is not None:
        entry = log.Entry("created", log.now(), run.username, first["id"], version, "", "")
        log.record(run.api, first, entry)
    return Outcome(plan.name, "pushed", version, "; ".join(filter(None, ("created", retried))))


def _publish_version(
    run: _Run, plan: Plan, template: Mapping[str, Any], active: Mapping[str, Any]
) -> Outcome:
    """A new version of an existing template: import it inactive, gate it, then promote it."""
    retried = ""
    if run.dry_run:
        version, candidate = plan.version, _import_unattached(run, plan)
    else:
        version, retried = _push(run, plan, template)
        found = run.api.version_by_name(template["id"], version)
        if found is None:
            msg = f"{plan.name}: version {version} was pushed but the server does not list it"
            raise PublishError(msg)
        candidate = found
    blocking, accepted = check_upgrade(
        active_parameters=run.api.rich_parameters(active["id"]),
        candidate_parameters=run.api.rich_parameters(candidate["id"]),
        active_files=tf_files(run.api.file(active["job"]["file_id"])),
        candidate_files=tf_files(plan.archive),
        accepted=(*plan.accept, *(("*",) if run.accept_breaking else ())),
    )
    findings = [_finding_json(f, accepted=False) for f in blocking]
    findings += [_finding_json(f, accepted=True) for f in accepted]
    if blocking:
        ids = ", ".join(json.dumps(f.id) for f in blocking)
        detail = "; ".join(f.message for f in blocking)
        detail += f" (not activated; accept with [upgrade] accept = [{ids}] in templates/{plan.name}/"
        detail += "template.toml, or publish --accept-breaking)"
        return Outcome(plan.name, "blocked", version, detail, findings=findings)
    detail = f"accepted: {', '.join(f.id for f in accepted)}" if accepted else ""
    detail = "; ".join(filter(None, (detail, retried)))
    if run.dry_run:
        return Outcome(plan.name, "would-push", version, detail, findings=findings)
    return _roll_out(
        run,
        template,
        active,
        candidate,
        Outcome(plan.name, "pushed", version, detail, findings=findings),
    )


def _archive(run: _Run, name: str, template: Mapping[str, Any]) -> archive.Archived:
    """``--archive-older-than``: the template's old unused versions (re-read: one was just promoted)."""
    days = run.archive_days or 0.0
    return archive.archive_old(run.api, run.api.template(run.org.id, name) or template, days)


def _roll_out(
    run: _Run,
    template: Mapping[str, Any],
    active: Mapping[str, Any],
    candidate: Mapping[str, Any],
    outcome: Outcome,
) -> Outcome:
    """Prove the candidate on the canary workspaces (if any), then record and promote it."""
    s = run.settings
    action, proof = ("accept" if outcome.findings else "promote"), ""
    if s.canary:
        canary = run_canary(
            run.api,
            org_id=run.org.id,
            template=template,
            candidate_id=str(candidate["id"]),
            active_id=str(active["id"]),
            users=s.canary,
            timeout=s.canary_timeout_s,
            stop=run.stop,
        )
        outcome.canary = [p.to_json() for p in canary.workspaces]
        if not canary.ok:
            outcome.status = "failed"
            outcome.detail = "; ".join(
                filter(
                    None,
                    (
                        f"canary failed: {canary.reason}",
                        f"{outcome.version} not activated, {active['name']} stays active",
                        canary.summary(),
                    ),
                )
            )
            return outcome
        action, proof = "canary", canary.summary()
    if run.stop.is_set():  # Ctrl-C (or an auth error elsewhere) after the proof: nothing half-done
        outcome.status = "skipped"
        outcome.detail = f"interrupted before promotion; {active['name']} stays active"
        return outcome
    log.promote(
        run.api,
        template,
        candidate,
        action=action,
        by=run.username,
        previous=active,
        detail=proof,
        extra={"canary": list(s.canary)} if s.canary else None,
    )
    outcome.detail = "; ".join(filter(None, (outcome.detail, proof)))
    return outcome


def _finding_json(finding: Finding, *, accepted: bool) -> dict[str, Any]:
    return {"id": finding.id, "message": finding.message, "accepted": accepted}


def _import_unattached(run: _Run, plan: Plan) -> dict[str, Any]:
    """Import the archive as a version of no template (what --dry-run gates); the finished version."""
    values = {**plan.variables, **{k: v for k, v in plan.secrets.items() if v is not None}}
    return run.api.import_unattached(
        run.org.id, plan.archive, values, label=plan.name, timeout=_IMPORT_TIMEOUT
    )


def _guarded(run: _Run, plan: Plan) -> Outcome:
    if run.stop.is_set():
        return Outcome(
            plan.name, "skipped", plan.version, "stopped (interrupted, or an authentication error)"
        )
    try:
        return _publish_one(run, plan)
    except CoderAuthError:
        run.stop.set()
        raise
    except CommandFailed as exc:
        detail = f"push failed: {_push_error(exc)}"
        return Outcome(plan.name, "failed", plan.version, detail, image=plan.image)
    except PublishError as exc:
        return Outcome(plan.name, "failed", plan.version, str(exc), image=plan.image)


_LOG_TIME = re.compile(r"^\d{4}-\d\d-\d\d[T ][\d:.]+Z\s*")


def _push_error(exc: CommandFailed) -> str:
    """Why ``coder templates push`` failed, in one line: its last ``error:`` and terraform's first ``Error:``.

    The CLI ends with the job's error ("terraform plan: exit status 1"); the reason is
    in the import log it streamed before: ``Error: <summary>``, ``on <file> line <n>``,
    the source lines, then the detail.
    """
    lines = [_LOG_TIME.sub("", line).strip() for line in f"{exc.stdout}\n{exc.stderr}".splitlines()]
    lines = [line for line in lines if line]
    final = ([line for line in lines if re.match(r"^(error|fatal)\b", line)] or lines or [str(exc)])[-1]
    if status := re.search(r"Status code (\d{3})", "\n".join(lines)):
        final += f" (HTTP {status.group(1)})"
    start = next((i for i, line in enumerate(lines) if line.startswith("Error: ")), None)
    if start is None:
        return final
    diagnostic = lines[start].removeprefix("Error: ")
    rest = lines[start + 1 : start + 8]
    where = next((line.removeprefix("on ").rstrip(":") for line in rest if line.startswith("on ")), "")
    detail = next((line for line in rest if not line.startswith("on ") and not re.match(r"^\d+:", line)), "")
    found = f"{diagnostic} ({where})" if where else diagnostic
    return f"{final}; terraform: {found}" + (f": {detail}" if detail else "")


def publish_templates(  # noqa: PLR0913 - keyword-only knobs of one step
    rendered: Sequence[RenderedTemplate],
    settings: Settings,
    *,
    images: Mapping[str, str],
    env: Mapping[str, str],
    dry_run: bool = False,
    accept_breaking: bool = False,
    allow_default_image: bool = False,
    archive_older_than: float | None = None,
    on_done: Callable[[Outcome], None] | None = None,
    checks: Mapping[str, Any] | None = None,
) -> PublishResult:
    """Plan, write ``dist/``, and (with CODER_URL) push what changed; never raises per template."""
    sha, plans = plan_templates(rendered, settings, images=images, env=env)
    plan_file = write_artifacts(plans, sha, settings, checks=checks)
    if not settings.coder_url:
        return PublishResult("plan-only", [_planned(p) for p in plans], plan_file, checks=dict(checks or {}))
    run = _connect(settings, sha, dry_run=dry_run)
    if not dry_run and not allow_default_image:
        _refuse_unbuilt_images(plans)
    run.accept_breaking = accept_breaking
    run.archive_days = archive_older_than
    notes = _ignored_notes(run, plans)
    done: dict[str, Outcome] = {}
    with ThreadPoolExecutor(max_workers=max(1, settings.publish_concurrency)) as pool:
        try:
            for fut in as_completed([pool.submit(_guarded, run, p) for p in plans]):
                outcome = fut.result()  # re-raises CoderAuthError: the run stops
                done[outcome.name] = outcome
                if on_done is not None:
                    on_done(outcome)
        except BaseException:
            # Ctrl-C or a stopped run: templates not started are skipped, a canary waiting
            # gives up and restores its workspaces, and nothing is promoted after this.
            run.stop.set()
            raise
    mode = "dry-run" if dry_run else "publish"
    outcomes = [done[p.name] for p in plans]
    annotate_plan(plan_file, {o.name: {"status": o.status, "upgrade_findings": o.findings} for o in outcomes})
    result = PublishResult(
        mode, outcomes, plan_file, run.api.requests_made, notes=notes, checks=dict(checks or {})
    )
    result.server_version = run.server_version
    return result


def _refuse_unbuilt_images(plans: Sequence[Plan]) -> None:
    """A live publish never ships an image nobody built: refuse before anything is pushed."""
    unbuilt = [p for p in plans if not p.image_pinned]
    if not unbuilt:
        return
    names = ", ".join(f"{p.name} ({p.image})" for p in unbuilt)
    msg = (
        f"no built image for {names}: set CODERBUNDLE_REGISTRY ([registry] host) so publish builds and "
        "pushes them, pin one in bundle.toml [images.pinned], or pass --allow-default-image to publish "
        "the template default; nothing was pushed"
    )
    raise EnvError(msg)


def _ignored_notes(run: _Run, plans: Sequence[Plan]) -> list[str]:
    """Fields of the wanted settings this deployment does not apply: said once, never PATCHed."""
    wanted = {k for p in plans for k in p.wanted}
    if not wanted & set(LICENSED_FIELDS) or run.api.entitled("advanced_template_scheduling"):
        return []
    run.ignored = frozenset(LICENSED_FIELDS)
    fields = ", ".join(sorted(wanted & set(LICENSED_FIELDS)))
    note = f"this deployment does not apply {fields} (advanced template scheduling is a licensed "
    return [note + "Coder feature); not sent"]


def _planned(plan: Plan) -> Outcome:
    unset = sorted(k for k, v in plan.secrets.items() if v is None)
    detail = "image not built here (template default)" if not plan.image_pinned else ""
    detail += ("; " if detail else "") + (f"unset: {', '.join(unset)}" if unset else "")
    return Outcome(plan.name, "planned", plan.version, detail, image=plan.image)


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
    api, org = connect(settings.coder_url, settings.coder_session_token, settings.coder_organization)
    with environment_errors():
        _check_external_auth(api, settings)
        version = str((api.buildinfo() or {}).get("version", ""))
    return _Run(api, org, settings, sha, dry_run, server_version=version)


def _check_external_auth(api: CoderAPI, settings: Settings) -> None:
    """Every template asks for ``[coder] external_auth``; the server refuses a push without it."""
    wanted = settings.external_auth
    known = api.external_auth_ids() if wanted else None
    if known is None or wanted in known:
        return
    msg = (
        f"{api.url}: Coder has no external auth provider {wanted!r} (it has: {', '.join(known) or 'none'}), "
        f"and every template asks for it; configure it on the server (CODER_EXTERNAL_AUTH_0_ID={wanted}; "
        "the chart's coder.gitlab.*), or set [coder] external_auth in bundle.toml "
        '(CODERBUNDLE_EXTERNAL_AUTH) to one of its ids, or to "" for none; nothing was pushed'
    )
    raise EnvError(msg)


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
        "server_version": result.server_version or None,
        "counts": counts,
        "problems": result.problems,
        "notes": result.notes,
        "checks": result.checks or None,
        "templates": [
            {
                "name": o.name,
                "status": o.status,
                "version": o.version,
                "image": o.image,
                "detail": o.detail,
                "settings_changed": o.settings_changed,
                "upgrade_findings": o.findings,
                "canary": o.canary,
                "archived": o.archived,
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
        server = f", Coder {result.server_version}" if result.server_version else ""
        table = Table(title=f"coderbundle publish ({result.mode}{server})", title_justify="left")
        for column in ("template", "status", "version", "image", "details"):
            table.add_column(column)
        for o in result.outcomes:
            # Text cells: brackets in a name or an error detail are shown, not read as markup.
            cells = (o.name, o.status, o.version, o.image, _row_detail(o, result.mode))
            table.add_row(*(Text(c) for c in cells))
        err_console.print(table)
        counts = result_json(result)["counts"]
        err_console.print(", ".join(f"{n} {s}" for s, n in sorted(counts.items())), markup=False)
        if result.checks:
            err_console.print(f"validation: {result.checks['summary']}", markup=False)
        for note in result.notes:
            err_console.print(f"note: {note}", markup=False)
    if result.mode == "plan-only" and result.plan_file is not None:
        err_console.print(
            f"No CODER_URL set: wrote {result.plan_file} and dist/templates/*.tar, pushed nothing.\n"
            "To publish, set CODER_URL=https://<your coder> and CODER_SESSION_TOKEN=<token from "
            "`coder tokens create`> (and CODER_ORGANIZATION if not the default), then run "
            "`nox -s publish` again.",
            markup=False,
        )
