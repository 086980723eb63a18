"""``coderbundle test``: plan every template the way Coder's provisioner would, check invariants.

For each template, ``terraform init`` once (offline mirrors, ``terraform.toolchain``),
then ``terraform plan`` for every preset plus the all-defaults case, on both
transitions (start, stop), and once more as a second workspace of another
owner.  The coder provider gets exactly what the provisioner feeds it: the
``CODER_WORKSPACE_*`` and owner environment, and each parameter value in
``CODER_PARAMETER_<hex sha256(name)>`` (terraform-provider-coder
``provider/parameter.go``, ``provider/workspace.go``, ``workspace_owner.go``).
``terraform show -json`` of each plan goes to ``invariants.check_all``.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from coderbundle import invariants, plan_matrix, terraform
from coderbundle.console import err_console
from coderbundle.errors import ToolError, UsageError

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

    from coderbundle.render import RenderedTemplate
    from coderbundle.settings import Settings

__all__ = ["Case", "PlanReport", "plan_templates", "print_plan_report"]

DEFAULTS = "defaults"
TRANSITIONS = ("start", "stop")
PLAN_TIMEOUT = 300
# 2 plans at a time on 2 cores; 3 was slower there (scripts/bench_matrix.py).
WORKERS = 2


@dataclass(frozen=True)
class Owner:
    """A workspace and its owner, as the provisioner describes them."""

    workspace_name: str
    username: str

    def ids(self, template: str) -> tuple[str, str]:
        """Stable workspace and owner ids for this template (uuid5, so reruns plan the same)."""
        ns = uuid.uuid5(uuid.NAMESPACE_URL, f"coderbundle-test/{template}")
        return str(uuid.uuid5(ns, f"ws/{self.workspace_name}")), str(uuid.uuid5(ns, f"u/{self.username}"))


FIRST = Owner("dev-box", "alice")
SECOND = Owner("other-box", "bob")


@dataclass(frozen=True)
class Case:
    """One plan: a template, a preset (or the defaults), a transition, a workspace."""

    template: str
    preset: str
    transition: str
    owner: Owner = FIRST
    parameters: tuple[tuple[str, str], ...] = ()
    # Template variables, passed as `-var name=value` the way the provisioner passes them.
    variables: tuple[tuple[str, str], ...] = ()

    @property
    def label(self) -> str:
        """``nodejs/Medium/start``."""
        second = " (second workspace)" if self.owner != FIRST else ""
        return f"{self.template}/{self.preset}/{self.transition}{second}"


@dataclass
class PlanReport:
    """Every case planned and every invariant failure found."""

    cases: list[invariants.CaseResult] = field(default_factory=list)
    toolchain: str = ""

    @property
    def ok(self) -> bool:
        """True when every plan succeeded and every invariant held."""
        return all(not c.failures for c in self.cases)

    def to_json(self) -> dict[str, Any]:
        """A stable, machine-readable form (``--format json``)."""
        return {
            "ok": self.ok,
            "toolchain": self.toolchain,
            "invariants": [{"name": i.name, "doc": i.doc} for i in invariants.INVARIANTS],
            "cases": [c.to_json() for c in self.cases],
        }


def parameter_env(name: str) -> str:
    """The variable the coder provider reads a parameter's value from."""
    return "CODER_PARAMETER_" + hashlib.sha256(name.encode()).hexdigest()


def provisioner_env(case: Case) -> dict[str, str]:
    """What Coder's provisioner sets for terraform on this case's build."""
    workspace_id, owner_id = case.owner.ids(case.template)
    env = {
        "CODER_AGENT_URL": "https://coder.example.com",
        "CODER_WORKSPACE_TRANSITION": case.transition,
        "CODER_WORKSPACE_NAME": case.owner.workspace_name,
        "CODER_WORKSPACE_ID": workspace_id,
        "CODER_WORKSPACE_OWNER": case.owner.username,
        "CODER_WORKSPACE_OWNER_ID": owner_id,
        "CODER_WORKSPACE_OWNER_NAME": case.owner.username.title(),
        "CODER_WORKSPACE_OWNER_EMAIL": f"{case.owner.username}@example.com",
        "CODER_WORKSPACE_OWNER_SESSION_TOKEN": "test-session-token",
        "CODER_WORKSPACE_OWNER_GROUPS": '["Everyone"]',
        "CODER_WORKSPACE_OWNER_LOGIN_TYPE": "password",
        "CODER_WORKSPACE_TEMPLATE_ID": str(uuid.uuid5(uuid.NAMESPACE_URL, case.template)),
        "CODER_WORKSPACE_TEMPLATE_NAME": case.template,
        "CODER_WORKSPACE_TEMPLATE_VERSION": "test",
        "CODER_WORKSPACE_BUILD_ID": str(uuid.uuid5(uuid.NAMESPACE_URL, case.label)),
    }
    env.update({parameter_env(name): value for name, value in case.parameters})
    return env


def _plan(scratch: Path, case: Case, tc: terraform.Toolchain) -> dict[str, Any] | str:
    """``terraform show -json`` of the case's plan, or terraform's first error."""
    out = scratch / f"{hashlib.sha256(case.label.encode()).hexdigest()[:16]}.tfplan"
    return terraform.plan_json(
        tc, scratch, out, env=provisioner_env(case), variables=case.variables, timeout=PLAN_TIMEOUT
    )


def _presets(plan: dict[str, Any]) -> list[tuple[str, tuple[tuple[str, str], ...]]]:
    """The presets the configuration declares: (name, parameter values)."""
    found = []
    for res in plan.get("configuration", {}).get("root_module", {}).get("resources", []):
        if res.get("type") != "coder_workspace_preset":
            continue
        expr = res.get("expressions", {})
        name = expr.get("name", {}).get("constant_value", res["name"])
        values = expr.get("parameters", {}).get("constant_value") or {}
        found.append((str(name), tuple(sorted((k, str(v)) for k, v in values.items()))))
    return found


def _choice_cases(template: str, plan: dict[str, Any]) -> list[Case]:
    """The choices people make (plan_matrix): each row on start; a row with a new AI agent on stop too."""
    cases: list[Case] = []
    agents: set[str | None] = set()
    for i, row in enumerate(plan_matrix.choice_rows(plan_matrix.factors(plan)), 1):
        values = tuple(sorted(row.items()))
        name = f"choices-{i:02d}"
        cases.append(Case(template, name, "start", parameters=values))
        if row.get("ai_agent") not in agents:
            agents.add(row.get("ai_agent"))
            cases.append(Case(template, name, "stop", parameters=values))
    return cases


def _cases(template: str, plan: dict[str, Any], *, presets: bool, choices: bool = False) -> list[Case]:
    cases = [Case(template, DEFAULTS, "stop")]
    for name, values in _presets(plan) if presets else ():
        cases += [Case(template, name, t, parameters=values) for t in TRANSITIONS]
    if choices:
        cases += _choice_cases(template, plan)
    cases.append(Case(template, DEFAULTS, "start", owner=SECOND))
    return cases


def _init_all(rendered: Sequence[RenderedTemplate], scratch: Path, tc: terraform.Toolchain) -> None:
    def init(r: RenderedTemplate) -> None:
        if failed := terraform.init_dir(r.path, scratch / r.name, tc):
            msg = f"{r.path}: terraform init failed: {failed.status}; {failed.diagnostics}"
            raise ToolError(msg)

    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        list(pool.map(init, rendered))


def plan_templates(
    rendered: Sequence[RenderedTemplate],
    settings: Settings,
    *,
    presets: bool = True,
    choices: bool = False,
    workers: int = WORKERS,
) -> PlanReport:
    """Plan every case of every rendered template and check the invariants.

    ``presets=False`` plans only the all-defaults cases (start, stop, a second workspace);
    ``choices=True`` adds the parameter choices of ``plan_matrix`` (every agent, repository
    set and unset, dotfiles, every option).  One ``terraform init`` per template and
    toolchain (scratch folders keyed by the toolchain), plans ``workers`` at a time.
    """
    with terraform.toolchain(settings) as tc:
        scratch = settings.build_dir / ".cache" / "terraform" / "test" / tc.key[:12]
        if reason := (terraform.why_skip(rendered[0].path, tc) if rendered else ""):
            msg = f"coderbundle test cannot plan: {reason}"
            raise UsageError(msg)
        _init_all(rendered, scratch, tc)
        report = PlanReport(toolchain=tc.summary)
        firsts = [Case(r.name, DEFAULTS, "start") for r in rendered]
        with ThreadPoolExecutor(max_workers=workers) as pool:
            first_plans = list(pool.map(lambda c: _plan(scratch / c.template, c, tc), firsts))
            more = [
                c
                for case, plan in zip(firsts, first_plans, strict=True)
                if isinstance(plan, dict)
                for c in _cases(case.template, plan, presets=presets, choices=choices)
            ]
            more_plans = list(pool.map(lambda c: _plan(scratch / c.template, c, tc), more))
        plans = dict(zip([*firsts, *more], [*first_plans, *more_plans], strict=True))
        by_template = {r.name: r for r in rendered}
        for case, plan in plans.items():
            report.cases.append(
                invariants.check_case(case, plan, plans, by_template[case.template], settings)
            )
        return report


def print_plan_report(report: PlanReport, *, fmt: str = "text") -> None:
    """A table of cases (stderr) with every failure and its fix, or JSON on stdout."""
    if fmt == "json":
        print(json.dumps(report.to_json(), indent=2, sort_keys=True))  # noqa: T201
        return
    err_console.print(f"terraform: {report.toolchain}", markup=False)
    width = max((len(c.case.label) for c in report.cases), default=10)
    for result in sorted(report.cases, key=lambda c: c.case.label):
        state = "ok" if not result.failures else f"{len(result.failures)} failure(s)"
        err_console.print(
            f"{result.case.label.ljust(width)}  {result.resources:3d} resources  {state}", markup=False
        )
        for failure in result.failures:
            err_console.print(f"  {failure}", markup=False)
    failed = sum(len(c.failures) for c in report.cases)
    summary = f"{len(report.cases)} plan(s), {len(invariants.INVARIANTS)} invariants"
    err_console.print(f"{summary}: {failed} failure(s)" if failed else f"{summary}: all hold", markup=False)
