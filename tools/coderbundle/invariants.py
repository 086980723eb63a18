"""Behaviour invariants of a planned workspace (``coderbundle test``), one small function each.

Each invariant takes a ``Planned`` case (the plan JSON of ``terraform show
-json`` plus the case and its siblings) and returns ``Failure``s naming the
resource and the fix.  docs/rules.md ("Plan invariants") documents them;
tests/test_plantest.py breaks each on purpose.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from coderbundle import module_invariants
from coderbundle.planned import Failure, Planned
from coderbundle.planned import walk as _walk
from coderbundle.rules.image import image_facts

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from pathlib import Path

    from coderbundle.plantest import Case
    from coderbundle.render import RenderedTemplate
    from coderbundle.settings import Settings

__all__ = ["INVARIANTS", "CaseResult", "Failure", "Invariant", "Planned", "check_case", "image_env"]

WORKLOAD_KINDS = ("kubernetes_deployment_v1", "kubernetes_deployment", "kubernetes_pod_v1", "kubernetes_pod")
PVC_KINDS = ("kubernetes_persistent_volume_claim_v1", "kubernetes_persistent_volume_claim")
NAMESPACE_KINDS = ("kubernetes_namespace_v1", "kubernetes_namespace")
_QUANTITY = re.compile(r"^(\d+(?:\.\d+)?)(m|Ki|Mi|Gi|Ti)?$")
_SCALE = {None: 1.0, "m": 0.001, "Ki": 2.0**10, "Mi": 2.0**20, "Gi": 2.0**30, "Ti": 2.0**40}


@dataclass
class CaseResult:
    """A planned case and what failed in it."""

    case: Case
    resources: int = 0
    failures: list[Failure] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """One row of ``--format json``."""
        return {
            "template": self.case.template,
            "preset": self.case.preset,
            "transition": self.case.transition,
            "parameters": dict(self.case.parameters),
            "workspace": self.case.owner.workspace_name,
            "resources": self.resources,
            "failures": [vars(f) for f in self.failures],
        }


@dataclass(frozen=True)
class Invariant:
    """A named check with its documentation (the first docstring line of ``check``)."""

    name: str
    check: Callable[[Planned], list[Failure]]

    @property
    def doc(self) -> str:
        """What must hold."""
        return (self.check.__doc__ or "").strip().splitlines()[0]


def _quantity(value: object) -> float | None:
    match = _QUANTITY.match(str(value).strip())
    return float(match.group(1)) * _SCALE[match.group(2)] if match else None


def _containers(workload: Mapping[str, Any]) -> list[dict[str, Any]]:
    spec = workload["values"].get("spec") or [{}]
    if workload["type"].startswith("kubernetes_deployment"):
        spec = (spec[0].get("template") or [{}])[0].get("spec") or [{}]
    return list(spec[0].get("container") or [])


def stop_keeps_what_developers_own(p: Planned) -> list[Failure]:
    """stop: no Deployment or pod is planned, and every volume and namespace planned on start still is."""
    if p.case.transition != "stop":
        return []
    fix = "give the workload `count = data.coder_workspace.me.start_count` and nothing else a count"
    failures = [
        Failure("stop-keeps-what-developers-own", w["address"], "a workload is planned on stop", fix)
        for w in p.of_type(*WORKLOAD_KINDS)
    ]
    start = p.sibling(transition="start")
    if start is not None:
        kept = {r["address"] for r in p.of_type(*PVC_KINDS, *NAMESPACE_KINDS)}
        started = Planned(p.case, start, p.plans, p.template, p.settings)
        failures += [
            Failure(
                "stop-keeps-what-developers-own",
                r["address"],
                "planned on start but not on stop: stopping would destroy it",
                "remove the count (volumes and namespaces live as long as the workspace)",
            )
            for r in started.of_type(*PVC_KINDS, *NAMESPACE_KINDS)
            if r["address"] not in kept
        ]
    return failures


def start_pod_matches_parameters(p: Planned) -> list[Failure]:
    """start: one pod whose CPU/memory limits and home volume equal the parameters, requests the defaults."""
    if p.case.transition != "start":
        return []
    name = "start-pod-matches-parameters"
    workloads = p.of_type(*WORKLOAD_KINDS)
    if len(workloads) != 1:
        return [
            Failure(
                name,
                p.case.template,
                f"{len(workloads)} workloads planned on start",
                "plan exactly one Deployment (replicas = 1) or pod per workspace",
            )
        ]
    (workload,) = workloads
    failures = []
    replicas = ((workload["values"].get("spec") or [{}])[0]).get("replicas")
    if workload["type"].startswith("kubernetes_deployment") and str(replicas) != "1":
        failures.append(Failure(name, workload["address"], f"replicas = {replicas}", "set replicas = 1"))
    containers = _containers(workload)

    def total(kind: str, key: str) -> float:
        return sum(
            _quantity(((c.get("resources") or [{}])[0].get(kind) or {}).get(key, 0)) or 0.0
            for c in containers
        )

    cpu, memory = p.parameter("cpu"), p.parameter("memory")
    ws = p.settings.workspace
    wanted = {
        ("limits", "cpu"): (_quantity(cpu), f"the CPU parameter ({cpu})"),
        ("limits", "memory"): (_quantity(f"{memory}Gi"), f"the Memory parameter ({memory} GiB)"),
        ("requests", "cpu"): (_quantity(ws.cpu_request), f"the workspace default {ws.cpu_request}"),
        ("requests", "memory"): (_quantity(ws.memory_request), f"the workspace default {ws.memory_request}"),
    }
    for (kind, key), (value, what) in wanted.items():
        got = total(kind, key)
        if value is None or abs(got - value) > value * 1e-9:
            failures.append(
                Failure(
                    name,
                    workload["address"],
                    f"the pod's {key} {kind} add up to {got:g}, not {what}",
                    f"derive the containers' {kind} from {what}",
                )
            )
    disk = p.parameter("home_disk_size")
    for pvc in p.of_type(*PVC_KINDS):
        if not pvc["values"]["metadata"][0]["name"].endswith("-home"):
            continue
        size = (pvc["values"]["spec"][0]["resources"][0].get("requests") or {}).get("storage")
        if _quantity(size) != _quantity(f"{disk}Gi"):
            failures.append(
                Failure(
                    name,
                    pvc["address"],
                    f"storage {size}, not the Home disk size ({disk} GiB)",
                    "size the home volume from data.coder_parameter.home_disk_size",
                )
            )
    return failures


def image_env(images_dir: Path, image: str) -> dict[str, str]:
    """The environment the image sets with ENV, its base's included (rules/image.py reads it)."""
    facts = image_facts(str(images_dir), image)
    return {name: value for name, (value, _) in facts.env.items()} if facts else {}


def _keeps(name: str, value: str, image_value: str) -> bool:
    return value == image_value or f"${name}" in value or f"${{{name}}}" in value


def env_keeps_image_values(p: Planned) -> list[Failure]:
    """Every coder_env (and agent env) named PATH or set by the image keeps the image's value."""
    image = image_env(p.settings.images_dir, p.template.template.settings.image)
    failures = []
    envs = [(r["address"], r["values"].get("name"), r["values"].get("value")) for r in p.of_type("coder_env")]
    for agent in p.of_type("coder_agent"):
        envs += [(agent["address"], k, v) for k, v in (agent["values"].get("env") or {}).items()]
    for address, name, value in envs:
        if not isinstance(name, str) or not isinstance(value, str):
            continue
        if (name == "PATH" or name in image) and not _keeps(name, value, image.get(name, "")):
            failures.append(
                Failure(
                    "env-keeps-image-values",
                    f"{address} ({name})",
                    f"replaces the image's {name} ({image.get(name, 'set by the image')!r}) with {value!r}: "
                    "Coder's agent sets env values as given",
                    f'extend it: value = "...:${name}" (the agent expands ${name})',
                )
            )
    return failures


def _agent_refs(expressions: Mapping[str, Any]) -> list[str]:
    refs = (expressions.get("agent_id") or {}).get("references") or []
    return [r for r in refs if r.startswith("coder_agent.") and r.count(".") == 1]


def everything_has_its_agent(p: Planned) -> list[Failure]:
    """Every app, script, env and module refers to an agent that exists on this transition."""
    config = p.plan.get("configuration", {}).get("root_module", {})
    agents = {r["address"].split("[")[0] for r in p.of_type("coder_agent")}
    planned = {r["address"].split("[")[0] for r in p.resources()}
    modules = {
        r["address"].split(".")[1].split("[")[0] for r in p.resources() if r["address"].startswith("module.")
    }
    failures: list[Failure] = []
    items = [
        (f"{r['type']}.{r['name']}", r.get("expressions", {}), f"{r['type']}.{r['name']}" in planned)
        for r in config.get("resources", [])
        if r.get("mode") == "managed"
    ]
    items += [
        (f"module.{name}", call.get("expressions", {}), name in modules)
        for name, call in (config.get("module_calls") or {}).items()
    ]
    for address, expressions, is_planned in items:
        if not is_planned:
            continue
        failures.extend(
            Failure(
                "everything-has-its-agent",
                address,
                f"refers to {ref}, which is not planned on {p.case.transition}",
                f"give {address} the same count as {ref}",
            )
            for ref in _agent_refs(expressions)
            if ref not in agents
        )
    return failures


def presets_are_accepted(p: Planned) -> list[Failure]:
    """Every preset names only parameters that exist (the provider validates their values when planning).

    The workspace form is built from the start plan: a module's parameters (dotfiles) exist only
    while the module runs, so a stop case is checked against its start case's parameters.
    """
    plan = p.plan if p.case.transition == "start" else (p.sibling(transition="start") or p.plan)
    read = _walk(plan.get("prior_state", {}).get("values", {}).get("root_module", {}))
    parameters = {r["values"].get("name") for r in read if r.get("type") == "coder_parameter"}
    return [
        Failure(
            "presets-are-accepted",
            f"preset {p.case.preset}",
            f"sets {name!r}, which is no parameter",
            "use a coder_parameter's name as the key",
        )
        for name, _ in p.case.parameters
        if name not in parameters
    ]


def _kube_names(plan: dict[str, Any]) -> set[tuple[str, str, str]]:
    names = set()
    for res in _walk(plan.get("planned_values", {}).get("root_module", {})):
        meta = (res.get("values") or {}).get("metadata")
        if res.get("mode") == "managed" and res["type"].startswith("kubernetes_") and meta:
            names.add((res["type"], str(meta[0].get("namespace", "")), str(meta[0].get("name"))))
    return names


def workspaces_never_share_objects(p: Planned) -> list[Failure]:
    """Two workspaces of different owners and names never share a PVC, Deployment or namespace name."""
    if p.case.owner.workspace_name == "dev-box" or p.case.transition != "start":
        return []
    first = next(
        (
            plan
            for case, plan in p.plans.items()
            if case.template == p.case.template
            and case.owner.workspace_name == "dev-box"
            and case.transition == "start"
            and case.preset == p.case.preset
            and isinstance(plan, dict)
        ),
        None,
    )
    if first is None:
        return []
    shared = _kube_names(first) & _kube_names(p.plan)
    return [
        Failure(
            "workspaces-never-share-objects",
            f"{kind} {ns}/{name}",
            "two workspaces of different owners plan the same object",
            "name it from data.coder_workspace.me.id",
        )
        for kind, ns, name in sorted(shared)
    ]


INVARIANTS = [
    Invariant("stop-keeps-what-developers-own", stop_keeps_what_developers_own),
    Invariant("start-pod-matches-parameters", start_pod_matches_parameters),
    Invariant("env-keeps-image-values", env_keeps_image_values),
    Invariant("everything-has-its-agent", everything_has_its_agent),
    Invariant("presets-are-accepted", presets_are_accepted),
    Invariant("workspaces-never-share-objects", workspaces_never_share_objects),
    Invariant("apps-have-unique-slugs", module_invariants.apps_have_unique_slugs),
    Invariant(
        "module-resources-use-the-callers-agent", module_invariants.module_resources_use_the_callers_agent
    ),
    Invariant("parameters-are-ordered-and-described", module_invariants.parameters_are_ordered_and_described),
]


def check_case(
    case: Case,
    plan: dict[str, Any] | str,
    plans: Mapping[Case, dict[str, Any] | str],
    template: RenderedTemplate,
    settings: Settings,
) -> CaseResult:
    """Run every invariant on one case; a plan that failed is itself a failure."""
    if isinstance(plan, str):
        return CaseResult(
            case,
            0,
            [
                Failure(
                    "plan-succeeds",
                    case.label,
                    plan,
                    "fix the template or the preset's values (terraform's error above)",
                )
            ],
        )
    planned = Planned(case, plan, plans, template, settings)
    result = CaseResult(case, len([r for r in planned.resources() if r.get("mode") == "managed"]))
    for invariant in INVARIANTS:
        result.failures += invariant.check(planned)
    return result
