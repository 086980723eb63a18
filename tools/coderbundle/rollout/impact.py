"""``coderbundle impact NAME``: what a candidate version would do to every existing workspace.

The server's template-version dry-run plans a *new* workspace, so it cannot say what an
update does to the workspaces people already have.  For each workspace of the template
(``--owner`` narrows it) this asks two questions:

1. Do its parameters still hold?  The last build's values are evaluated by the server
   against the candidate (``POST /templateversions/{id}/dynamic-parameters/evaluate``),
   or, where the server lacks that endpoint, checked against the candidate's
   ``/rich-parameters`` (``rollout/parameters.py``).
2. What would Terraform replace or destroy?  The last build's real state
   (``GET /workspacebuilds/{id}/state``) is planned locally with ``terraform plan
   -refresh=false`` and the provisioner's environment for that very workspace
   (``rollout/workspace_plan.py``).  Resources that hold data come first: the
   built-in volume types (``upgrade_gate.VOLUME_TYPES``) and the template's
   ``[upgrade] volumes`` list.

The candidate is the repository's rendered template, imported as a version of no
template (as ``publish --dry-run`` does; users never see it), or ``--version NAME``, a
version already pushed to the template.  A workspace whose volume would be replaced or
destroyed, whose parameters do not hold, or that could not be planned makes the run fail
(exit 1); replacing other resources (a pod, an agent) is reported and is not a failure.
"""

from __future__ import annotations

import io
import json
import shutil
import tarfile
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.text import Text

from coderbundle import process, terraform
from coderbundle.coder_api import CoderAPI, CoderAuthError, Organization
from coderbundle.console import err_console
from coderbundle.discover import find_templates
from coderbundle.errors import EnvError, PublishError, ToolError, UsageError
from coderbundle.rollout import parameters
from coderbundle.rollout.workspace_plan import (
    Change,
    Target,
    Volumes,
    changes_from_plan,
    plan_workspace,
    provisioner_env,
    state_secrets,
)
from coderbundle.upgrade_gate import Finding

if TYPE_CHECKING:
    from collections.abc import Mapping

    from coderbundle.discover import TemplateSettings
    from coderbundle.settings import Settings

__all__ = ["ImpactResult", "WorkspaceImpact", "impact_json", "impact_template", "print_impact"]

WORKERS = 2
_IMPORT_TIMEOUT = 900.0
_INIT_TIMEOUT = 300
# Parameter findings that stop a build before terraform runs: nothing to plan then.
_BUILD_FAILS = ("parameter-invalid:", "parameter-missing:", "parameters-error")
_UNFINISHED = ("pending", "running", "canceling")
DYNAMIC = "dynamic-parameters"
RICH = "rich-parameters"


@dataclass(frozen=True)
class Candidate:
    """The version the workspaces would move to, and what planning it needs."""

    id: str
    name: str
    source: str  # repository | version
    archive: bytes
    variables: dict[str, str] = field(repr=False)
    secrets: tuple[str, ...] = field(default=(), repr=False)


@dataclass
class WorkspaceImpact:
    """What the candidate does to one workspace."""

    id: str
    name: str
    owner: str
    build: dict[str, Any]  # number, version, transition, status of its last build
    findings: list[Finding] = field(default_factory=list)
    changes: list[Change] = field(default_factory=list)
    error: str = ""
    not_planned: str = ""  # why its state was not planned (the update would not get that far)

    @property
    def status(self) -> str:
        """``failed`` (could not tell), ``findings`` (data or an update at risk), ``replaces``, ``clean``."""
        if self.error:
            return "failed"
        if self.findings:
            return "findings"
        return "replaces" if self.changes else "clean"


@dataclass
class ImpactResult:
    """Every workspace's impact, and how it was found."""

    template: str
    candidate: Candidate
    active_version: str
    parameter_check: str  # dynamic-parameters | rich-parameters
    volumes: tuple[str, ...]  # the template's [upgrade] volumes
    workspaces: list[WorkspaceImpact] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    server_version: str = ""
    api_requests: int = 0
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """True when no workspace has findings or failed to plan."""
        return all(w.status in ("clean", "replaces") for w in self.workspaces)


# -- connecting and the candidate ---------------------------------------------------------


def _connect(settings: Settings) -> tuple[CoderAPI, Organization, str]:
    if not settings.coder_url:
        msg = "impact needs a Coder deployment: set CODER_URL and CODER_SESSION_TOKEN"
        raise EnvError(msg)
    if not settings.coder_session_token:
        msg = f"CODER_URL is {settings.coder_url} but CODER_SESSION_TOKEN is not set"
        raise EnvError(msg + "; create a token with `coder tokens create`")
    api = CoderAPI(settings.coder_url, settings.coder_session_token)
    try:
        org = api.organization(settings.coder_organization)
        version = str((api.buildinfo() or {}).get("version", ""))
    except CoderAuthError:
        raise
    except PublishError as exc:  # Coder unreachable, not Coder, no such organization
        if ": HTTP " in str(exc):
            raise
        raise EnvError(str(exc)) from None
    return api, org, version


def _template_settings(settings: Settings, name: str) -> TemplateSettings | None:
    """The repository's settings of the template, or None when the repository has no such folder."""
    if not (settings.templates_dir / name).is_dir():
        return None
    return find_templates(settings.templates_dir, [name])[0].settings


def _sources(local: TemplateSettings | None) -> dict[str, str]:
    """Which environment variable sets each secret variable (template.toml ``[variables]``)."""
    return {k: spec.get("env", "") for k, spec in (local.variables if local is not None else {}).items()}


def _variables(
    api: CoderAPI, version_id: str, secrets: Mapping[str, str], sources: Mapping[str, str]
) -> tuple[dict[str, str], list[str]]:
    """The template variables the provisioner would pass (``-var``), as the server stores them.

    The server never reveals a sensitive value: it comes from ``secrets`` (what this run
    imported) or is planned empty, with a note naming the environment variable to set.
    """
    variables, notes = {}, []
    for var in api.version_variables(version_id):
        name = str(var["name"])
        if not var.get("sensitive"):
            variables[name] = str(var.get("value", ""))
            continue
        variables[name] = secrets.get(name, "")
        if not variables[name]:
            source = sources.get(name, "")
            where = f"set ${source}" if source else "the repository's template.toml names no variable for it"
            notes.append(
                f"sensitive variable {name!r} planned empty (the server does not reveal it; {where})"
            )
    return variables, notes


def _pushed_candidate(
    api: CoderAPI,
    template: Mapping[str, Any],
    version: str,
    local: TemplateSettings | None,
    env: Mapping[str, str],
) -> tuple[Candidate, list[str]]:
    """A version already pushed to the template (``--version``)."""
    found = api.version_by_name(template["id"], version)
    if found is None:
        msg = f"template {template['name']!r} has no version {version!r}; "
        msg += f"`coder templates versions list {template['name']}` lists them"
        raise UsageError(msg)
    status = found.get("job", {}).get("status")
    if status != "succeeded":
        msg = f"version {version!r} of {template['name']!r} did not import (job {status}); pick another"
        raise UsageError(msg)
    sources = _sources(local)
    secrets = {k: env[v] for k, v in sources.items() if v and env.get(v)}
    variables, notes = _variables(api, found["id"], secrets, sources)
    archive = api.file(found["job"]["file_id"])
    hidden = tuple(secrets.values())
    return Candidate(found["id"], str(found["name"]), "version", archive, variables, hidden), notes


def _repository_candidate(  # noqa: PLR0913, PLR0917 - the run's parts, handed on once
    api: CoderAPI,
    org: Organization,
    settings: Settings,
    name: str,
    local: TemplateSettings,
    env: Mapping[str, str],
) -> tuple[Candidate, list[str]]:
    """The repository's rendered template, imported as a version of no template and waited for."""
    from coderbundle.pipeline import render_all  # noqa: PLC0415 - rendering pulls in jinja2
    from coderbundle.publish_plan import plan_templates, read_image_manifest  # noqa: PLC0415

    _, (plan,) = plan_templates(
        render_all(settings, [name]), settings, images=read_image_manifest(settings), env=env
    )
    secrets = {k: v for k, v in plan.secrets.items() if v is not None}
    version = api.import_unattached(
        org.id, plan.archive, {**plan.variables, **secrets}, label=name, timeout=_IMPORT_TIMEOUT
    )
    variables, notes = _variables(api, version["id"], secrets, _sources(local))
    hidden = tuple(secrets.values())
    return Candidate(version["id"], plan.version, "repository", plan.archive, variables, hidden), notes


# -- one workspace -------------------------------------------------------------------------


@dataclass
class _Run:
    api: CoderAPI
    template: Mapping[str, Any]
    candidate: Candidate
    volumes: Volumes
    parameter_check: str
    config: Path
    scratch: Path
    tc: terraform.Toolchain
    access_url: str


def _check_parameters(
    run: _Run, ws: Mapping[str, Any], previous: dict[str, str]
) -> tuple[list[Finding], dict[str, str]]:
    if run.parameter_check == DYNAMIC:
        answer = run.api.evaluate_parameters(run.candidate.id, str(ws["owner_id"]), previous)
        if answer is not None:
            return parameters.from_evaluation(previous, answer)
    return parameters.from_rich_parameters(previous, run.api.rich_parameters(run.candidate.id))


def _volume_findings(changes: list[Change]) -> list[Finding]:
    found = []
    for c in changes:
        if not c.volume:
            continue
        why = f" ({', '.join(c.because)})" if c.because else ""
        verb = "replaced" if c.action == "replace" else "destroyed"
        found.append(
            Finding(
                f"volume-{verb}:{c.address}",
                f"{c.address} would be {verb}{why}: the data on it is lost",
            )
        )
    return found


def _one(run: _Run, ws: Mapping[str, Any]) -> WorkspaceImpact:
    build = ws["latest_build"]
    result = WorkspaceImpact(
        str(ws["id"]),
        str(ws["name"]),
        str(ws["owner_name"]),
        {
            "number": build.get("build_number"),
            "version": build.get("template_version_name", ""),
            "transition": build.get("transition", ""),
            "status": build.get("status") or build.get("job", {}).get("status", ""),
        },
    )
    job = str(build.get("job", {}).get("status", ""))
    if job in _UNFINISHED:  # its state is not written yet: no answer is better than a wrong one
        result.error = f"its latest build is {job}; run impact again when it has finished"
        return result
    try:
        previous = {str(p["name"]): str(p["value"]) for p in run.api.build_parameters(build["id"])}
        result.findings, values = _check_parameters(run, ws, previous)
        if any(f.id.startswith(_BUILD_FAILS) for f in result.findings):
            result.not_planned = "the update would fail on its parameters before terraform runs"
            return result
        raw = run.api.build_state(build["id"])
        if not raw.strip():
            return result  # never built: nothing to replace
        try:
            state = json.loads(raw)
        except ValueError:
            result.error = "the server's state of its last build is not JSON"
            return result
        owner = None
        if not any(r.get("type") == "coder_workspace_owner" for r in state.get("resources") or []):
            owner = run.api.user(str(ws["owner_id"]))
        target = Target(
            ws,
            str(run.template["id"]),
            str(run.template["name"]),
            run.candidate.id,
            run.candidate.name,
            run.access_url,
        )
        env = provisioner_env(target, state, values, previous, owner)
        folder = Path(tempfile.mkdtemp(prefix="ws-", dir=run.scratch))
        try:
            planned = plan_workspace(
                config=run.config,
                folder=folder,
                tc=run.tc,
                env=env,
                variables=run.candidate.variables,
                state=raw,
                secrets=[*state_secrets(state), *run.candidate.secrets],
            )
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        if isinstance(planned, str):
            result.error = planned
            return result
        result.changes = changes_from_plan(planned, run.volumes)
        result.findings = _volume_findings(result.changes) + result.findings
    except CoderAuthError:
        raise
    except ToolError as exc:
        result.error = str(exc)
    return result


def _extract(archive: bytes, dest: Path) -> None:
    """Unpack the candidate's archive (tarfile's ``data`` filter: nothing outside ``dest``, no devices)."""
    try:
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            tar.extractall(dest, filter="data")
    except (tarfile.TarError, OSError) as exc:
        msg = f"the candidate's archive does not unpack ({exc}); push the template again"
        raise PublishError(msg) from None


def _init(config: Path, tc: terraform.Toolchain) -> None:
    argv = [str(tc.binary), "init", "-backend=false", "-input=false", "-no-color"]
    done = process.run(argv, cwd=config, check=False, env=tc.env, timeout=_INIT_TIMEOUT)
    if done.returncode != 0:
        where = "; the mirrors lack something the template needs" if tc.offline else ""
        why = terraform.first_error(done.stderr + done.stdout)
        msg = f"terraform init of the candidate failed: {why}{where}"
        raise EnvError(msg)


# -- the verb ------------------------------------------------------------------------------


def impact_template(  # noqa: PLR0913 - keyword-only knobs of one step
    settings: Settings,
    name: str,
    *,
    env: Mapping[str, str],
    version: str = "",
    owner: str = "",
    workers: int = WORKERS,
) -> ImpactResult:
    """The candidate's impact on every workspace of template ``name`` (of ``owner``, when given)."""
    began = time.monotonic()
    api, org, server_version = _connect(settings)
    template = api.template(org.id, name)
    if template is None:
        msg = f"{api.url}: no template {name!r} in organization {org.name}; `coder templates list` lists them"
        raise UsageError(msg)
    local = _template_settings(settings, name)
    notes: list[str] = []
    if version:
        candidate, notes = _pushed_candidate(api, template, version, local, env)
    else:
        if local is None:
            msg = f"{settings.templates_dir / name}: no such template in the repository; "
            msg += "pass --version NAME to check a version already pushed"
            raise UsageError(msg)
        candidate, notes = _repository_candidate(api, org, settings, name, local, env)
    active = api.template_version(str(template["active_version_id"])) or {}
    query = f"template:{name}" + (f" owner:{owner}" if owner else "")
    workspaces = [w for w in api.workspaces(query) if w.get("template_id") == template["id"]]
    # One evaluation first: a server without the endpoint gets the rich-parameters comparison.
    probe = api.evaluate_parameters(candidate.id, str(workspaces[0]["owner_id"]), {}) if workspaces else {}
    check = DYNAMIC if probe is not None else RICH
    if check == RICH:
        notes.append(
            "the server cannot evaluate parameters: checked against the candidate's /rich-parameters"
        )
    result = ImpactResult(
        name,
        candidate,
        str(active.get("name", "")),
        check,
        local.volumes if local is not None else (),
        notes=notes,
        server_version=server_version,
    )
    if workspaces:
        result.workspaces = _plan_all(api, settings, template, candidate, result, workspaces, workers)
    result.api_requests = api.requests_made
    result.seconds = time.monotonic() - began
    return result


def _plan_all(  # noqa: PLR0913, PLR0917 - the run's parts, handed on once
    api: CoderAPI,
    settings: Settings,
    template: Mapping[str, Any],
    candidate: Candidate,
    result: ImpactResult,
    workspaces: list[dict[str, Any]],
    workers: int,
) -> list[WorkspaceImpact]:
    with (
        terraform.toolchain(settings) as tc,
        tempfile.TemporaryDirectory(prefix="coderbundle-impact-") as tmp,
    ):
        if tc.binary is None:
            msg = "impact plans with terraform, which is not installed (`nox -s tools` builds it; "
            msg += "or set CODERBUNDLE_TERRAFORM)"
            raise EnvError(msg)
        scratch = Path(tmp)  # 0700: the states (agent tokens) live here for the run
        config = scratch / "candidate"
        config.mkdir()
        _extract(candidate.archive, config)
        _init(config, tc)
        run = _Run(
            api,
            template,
            candidate,
            Volumes(result.volumes),
            result.parameter_check,
            config,
            scratch,
            tc,
            settings.coder_url,
        )
        pool = ThreadPoolExecutor(max_workers=max(1, workers))
        try:
            found = list(pool.map(lambda ws: _one(run, ws), workspaces))
        finally:  # Ctrl-C or a rejected token: no workspace not yet started is planned
            pool.shutdown(wait=True, cancel_futures=True)
    return sorted(found, key=lambda w: (w.owner, w.name))


# -- output --------------------------------------------------------------------------------


def impact_json(result: ImpactResult) -> dict[str, Any]:
    """The machine-readable result (``--format json``)."""
    counts: dict[str, int] = {}
    for w in result.workspaces:
        counts[w.status] = counts.get(w.status, 0) + 1
    return {
        "ok": result.ok,
        "template": result.template,
        "candidate": {
            "name": result.candidate.name,
            "id": result.candidate.id,
            "source": result.candidate.source,
        },
        "active_version": result.active_version,
        "parameter_check": result.parameter_check,
        "volumes": list(result.volumes),
        "server_version": result.server_version or None,
        "api_requests": result.api_requests,
        "seconds": round(result.seconds, 2),
        "counts": counts,
        "notes": result.notes,
        "workspaces": [
            {
                "id": w.id,
                "name": w.name,
                "owner": w.owner,
                "build": w.build,
                "status": w.status,
                "findings": [{"id": f.id, "message": f.message} for f in w.findings],
                "changes": [c.to_json() for c in w.changes],
                "error": w.error,
                "not_planned": w.not_planned,
            }
            for w in result.workspaces
        ],
    }


def print_impact(result: ImpactResult, *, fmt: str = "text") -> None:
    """Per workspace its findings and replaced resources (stderr), or JSON on stdout."""
    if fmt == "json":
        print(json.dumps(impact_json(result), indent=2, sort_keys=True))  # noqa: T201
        return
    c = result.candidate
    head = f"impact of {result.template} {c.name} ({c.source}) on its workspaces; active: "
    head += f"{result.active_version or '(none)'}; parameters: {result.parameter_check}"
    err_console.print(head, markup=False, highlight=False)
    for w in result.workspaces:
        build = f"build {w.build['number']} on {w.build['version']}"
        err_console.print(
            Text.assemble(f"{w.owner}/{w.name} ({build}): ", (w.status, _STYLE[w.status])), highlight=False
        )
        for label, text in (("error", w.error), ("not planned", w.not_planned)):
            if text:
                err_console.print(f"  {label}: {text}", markup=False, highlight=False)
        for f in w.findings:
            err_console.print(f"  {f.id}: {f.message}", markup=False, highlight=False)
        for ch in w.changes:
            if not ch.volume:
                why = f" ({', '.join(ch.because)})" if ch.because else ""
                err_console.print(f"  {ch.action}: {ch.address}{why}", markup=False, highlight=False)
    counts = impact_json(result)["counts"]
    summary = ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "no workspaces"
    err_console.print(f"{len(result.workspaces)} workspace(s): {summary}", markup=False, highlight=False)
    for note in result.notes:
        err_console.print(f"note: {note}", markup=False, highlight=False)


_STYLE = {"clean": "green", "replaces": "yellow", "findings": "bold red", "failed": "bold red"}
