"""Publish rendered templates to Coder with ``coder templates push``, only what changed.

Each template is planned first: the exact archive ``coder templates push``
uploads, the variables it passes (the image pinned by digest from
``build/images.json``), a content hash over both, and a version name.  The
plan and archives always land in ``dist/``.  With ``CODER_URL`` set, the
active version's message is compared with the hash (``[content:<hash16>]``),
changed templates are pushed in parallel, and display and scheduling
settings are brought to the wanted state through the REST API.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import tarfile
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from coderbundle import __version__, process
from coderbundle.coder_api import CoderAPI, CoderAuthError, Organization
from coderbundle.console import err_console
from coderbundle.errors import CommandFailed, CommandNotFound, PublishError
from coderbundle.images import read_manifest

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping, Sequence

    from coderbundle.render import RenderedTemplate
    from coderbundle.settings import Settings

__all__ = [
    "ARCHIVE_LIMIT",
    "Outcome",
    "Plan",
    "PublishResult",
    "archive_directory",
    "git_short_sha",
    "plan_templates",
    "print_result",
    "progress_display",
    "publish_templates",
    "read_image_manifest",
    "result_json",
    "wanted_settings",
    "write_artifacts",
]

ARCHIVE_LIMIT = 1 << 20  # coderd TemplateArchiveLimit
PLAN_FILE = "publish-plan.json"
_MAX_RETRY_NAMES = 20
_UNIT_MS = {"h": 3_600_000, "m": 60_000, "s": 1000}
_SKIPPED_NAMES = re.compile(r"(\.tfstate|\.tfstate\.backup|^terraform\.tfvars|\.auto\.tfvars.*)$")


@dataclass(frozen=True)
class Plan:
    """What publishing one template means: archive, variables, hash, version."""

    name: str
    directory: Path
    archive: bytes
    version: str
    content_hash: str
    variables: dict[str, str]
    secrets: dict[str, str | None]
    image_source: str
    wanted: dict[str, Any]

    @property
    def marker(self) -> str:
        """The tag in the version message that change detection looks for."""
        return f"[content:{self.content_hash[:16]}]"

    def message(self, sha: str) -> str:
        """The version message: short, traceable, carrying the marker."""
        return f"coderbundle {sha} {self.marker}"


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

    mode: str  # embedded | dry-run | publish
    outcomes: list[Outcome]
    plan_file: Path
    api_requests: int = 0

    @property
    def ok(self) -> bool:
        """True when no template failed."""
        return all(o.status not in ("failed", "skipped") for o in self.outcomes)


def read_image_manifest(settings: Settings) -> dict[str, str]:
    """{image name: ``repository@sha256:…``} for the images ``build/images.json`` says were pushed."""
    return {
        name: entry["reference"]
        for name, entry in read_manifest(settings).items()
        if entry.get("pushed") and "@sha256:" in str(entry.get("reference", ""))
    }


def _skipped(rel: str) -> bool:
    """Coder's archive rules: no hidden files (but the lock file), no state or tfvars."""
    parts = rel.split("/")
    hidden = any(p.startswith(".") for p in parts) and rel != ".terraform.lock.hcl"
    return hidden or bool(_SKIPPED_NAMES.search(parts[-1]))


def archive_directory(directory: Path) -> bytes:
    """A deterministic tar of what ``coder templates push`` uploads from ``directory``."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in sorted(directory.rglob("*")):
            rel = path.relative_to(directory).as_posix()
            if _skipped(rel) or not (path.is_file() or path.is_dir()):
                continue
            info = tarfile.TarInfo(rel + "/" if path.is_dir() else rel)
            info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
            if path.is_dir():
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
                continue
            data = path.read_bytes()
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _duration_ms(value: str) -> int:
    return sum(int(n) * _UNIT_MS[u] for n, u in re.findall(r"(\d+)([hms])", value))


def _readme_meta(directory: Path) -> dict[str, Any]:
    text = (directory / "README.md").read_text(encoding="utf-8")
    match = re.match(r"^---\n(.*?)\n---\n", text, re.DOTALL)
    meta = yaml.safe_load(match.group(1)) if match else None
    return meta if isinstance(meta, dict) else {}


def wanted_settings(directory: Path, settings: Settings) -> dict[str, Any]:
    """Template settings to bring to this state (see docs/publishing.md for the mapping)."""
    meta = _readme_meta(directory)
    inactivity = _duration_ms(settings.workspace.inactivity_timeout)
    return {
        **{k: str(meta.get(k, "")) for k in ("display_name", "description", "icon")},
        "default_ttl_ms": inactivity,
        "activity_bump_ms": inactivity,
        "time_til_dormant_autodelete_ms": _duration_ms(settings.workspace.dormancy_deletion),
    }


def git_short_sha(root: Path) -> str:
    """The commit being published, or ``nogit`` outside a repository."""
    try:
        done = process.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, check=False)
    except CommandNotFound:
        return "nogit"
    sha = done.stdout.strip()
    return sha if done.returncode == 0 and sha.isalnum() else "nogit"


def _tfvars(directory: Path) -> bytes:
    """Variable files the CLI sends as values though they stay out of the archive."""
    files = sorted(p for p in directory.iterdir() if re.search(r"^terraform\.tfvars|\.auto\.tfvars", p.name))
    return b"".join(p.name.encode() + b"\0" + p.read_bytes() for p in files if p.is_file())


def _content_hash(archive: bytes, variables: Mapping[str, str], secrets: Mapping[str, str | None]) -> str:
    h = hashlib.sha256(archive)
    for key, value in sorted(variables.items()):
        h.update(f"\0var {key}={value}".encode())
    for key, secret in sorted(secrets.items()):
        digest = hashlib.sha256(secret.encode()).hexdigest() if secret is not None else "unset"
        h.update(f"\0secret {key}={digest}".encode())
    return h.hexdigest()


def _plan_one(
    r: RenderedTemplate, settings: Settings, sha: str, images: Mapping[str, str], env: Mapping[str, str]
) -> Plan:
    archive = archive_directory(r.path)
    if len(archive) > ARCHIVE_LIMIT:
        msg = f"{r.path}: archive is {len(archive)} bytes; Coder accepts at most {ARCHIVE_LIMIT}"
        raise PublishError(msg)
    image = r.template.settings.image
    variables = {"namespace": settings.workspace.namespace}
    if image in images:
        variables["image"] = images[image]
        source = "build/images.json"
    else:
        source = f"template default (no pushed image {image!r} in build/images.json)"
    secrets = {k: env.get(spec["env"]) or None for k, spec in r.template.settings.variables.items()}
    digest = _content_hash(archive + _tfvars(r.path), variables, secrets)
    wanted = wanted_settings(r.path, settings)
    return Plan(r.name, r.path, archive, f"{sha}-{digest[:8]}", digest, variables, secrets, source, wanted)


def plan_templates(
    rendered: Sequence[RenderedTemplate],
    settings: Settings,
    *,
    images: Mapping[str, str],
    env: Mapping[str, str],
) -> tuple[str, list[Plan]]:
    """Plan every template; return the git sha and the plans (nothing is pushed)."""
    sha = git_short_sha(settings.root)
    return sha, [_plan_one(r, settings, sha, images, env) for r in rendered]


def write_artifacts(plans: Sequence[Plan], sha: str, settings: Settings) -> Path:
    """Write ``dist/templates/<name>-<version>.tar`` and ``dist/publish-plan.json``."""
    out = settings.dist_dir / "templates"
    out.mkdir(parents=True, exist_ok=True)
    entries = []
    for plan in plans:
        for stale in out.glob(f"{plan.name}-*.tar"):
            stale.unlink()
        tar = out / f"{plan.name}-{plan.version}.tar"
        tar.write_bytes(plan.archive)
        entries.append(_plan_entry(plan, sha, tar.relative_to(settings.root)))
    doc = {
        "generated_by": f"coderbundle {__version__}",
        "git_sha": sha,
        "coder_url": settings.coder_url or None,
        "organization": settings.coder_organization or "(default)",
        "templates": entries,
    }
    path = settings.dist_dir / PLAN_FILE
    path.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return path


def _plan_entry(plan: Plan, sha: str, tar: Path) -> dict[str, Any]:
    shown: dict[str, str] = dict(plan.variables)
    shown.update({k: "set" if v is not None else "unset" for k, v in plan.secrets.items()})
    return {
        "name": plan.name,
        "version": plan.version,
        "message": plan.message(sha),
        "content_hash": plan.content_hash,
        "archive": tar.as_posix(),
        "archive_bytes": len(plan.archive),
        "archive_sha256": hashlib.sha256(plan.archive).hexdigest(),
        "image": {"value": plan.variables.get("image"), "source": plan.image_source},
        "variables": shown,
        "settings": plan.wanted,
    }


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
) -> PublishResult:
    """Plan, write ``dist/``, and (with CODER_URL) push what changed; never raises per template."""
    sha, plans = plan_templates(rendered, settings, images=images, env=env)
    plan_file = write_artifacts(plans, sha, settings)
    if not settings.coder_url:
        return PublishResult("embedded", [_planned(p) for p in plans], plan_file)
    run = _connect(settings, sha, dry_run=dry_run)
    done: dict[str, Outcome] = {}
    with ThreadPoolExecutor(max_workers=max(1, settings.publish_concurrency)) as pool:
        for fut in as_completed([pool.submit(_guarded, run, p) for p in plans]):
            outcome = fut.result()  # re-raises CoderAuthError: the run stops
            done[outcome.name] = outcome
            if on_done is not None:
                on_done(outcome)
    mode = "dry-run" if dry_run else "publish"
    return PublishResult(mode, [done[p.name] for p in plans], plan_file, run.api.requests_made)


def _planned(plan: Plan) -> Outcome:
    image = plan.variables.get("image", "template default")
    unset = sorted(k for k, v in plan.secrets.items() if v is None)
    detail = f"image {image}" + (f"; unset: {', '.join(unset)}" if unset else "")
    return Outcome(plan.name, "planned", plan.version, detail)


def _connect(settings: Settings, sha: str, *, dry_run: bool) -> _Run:
    if not settings.coder_session_token:
        msg = f"CODER_URL is {settings.coder_url} but CODER_SESSION_TOKEN is not set"
        msg += "; create a token with `coder tokens create`"
        raise PublishError(msg)
    if not dry_run:
        process.which(settings.coder_executable, hint="install the coder CLI or set CODERBUNDLE_CODER")
    api = CoderAPI(settings.coder_url, settings.coder_session_token)
    return _Run(api, api.organization(settings.coder_organization), settings, sha, dry_run)


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
        "ok": result.ok,
        "mode": result.mode,
        "plan": str(result.plan_file),
        "api_requests": result.api_requests,
        "counts": counts,
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
    """The summary table on stderr, or JSON on stdout; the embedded-mode hint."""
    if fmt == "json":
        print(json.dumps(result_json(result), indent=2, sort_keys=True))  # noqa: T201
    else:
        table = Table(title=f"coderbundle publish ({result.mode})", title_justify="left")
        for column in ("template", "status", "version", "details"):
            table.add_column(column)
        for o in result.outcomes:
            table.add_row(o.name, o.status, o.version, _row_detail(o, result.mode))
        err_console.print(table)
        counts = result_json(result)["counts"]
        err_console.print(", ".join(f"{n} {s}" for s, n in sorted(counts.items())), markup=False)
    if result.mode == "embedded":
        err_console.print(
            f"No CODER_URL set: wrote {result.plan_file} and dist/templates/*.tar, pushed nothing.\n"
            "To publish, set CODER_URL=https://<your coder> and CODER_SESSION_TOKEN=<token from "
            "`coder tokens create`> (and CODER_ORGANIZATION if not the default), then run "
            "`nox -s publish` again.",
            markup=False,
        )
