"""Plan invariants about what the registry modules create: apps, scripts and parameters.

Stubs create nothing; with the real module trees (``modules: real``) a plan
holds every app, script and parameter the modules add, and these invariants
check them as strictly as the template's own (docs/rules.md, "Plan invariants").
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any

from coderbundle.planned import Failure, Planned, walk

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping

__all__ = [
    "apps_have_unique_slugs",
    "module_resources_use_the_callers_agent",
    "parameters_are_ordered_and_described",
]

# Resources that belong to one agent through agent_id.
AGENT_TYPES = ("coder_app", "coder_script", "coder_env", "coder_devcontainer")


def apps_have_unique_slugs(p: Planned) -> list[Failure]:
    """Every app on a workspace, the modules' included, has a slug of its own."""
    if p.case.transition != "start":
        return []
    apps = p.of_type("coder_app")
    counts = Counter(str(r["values"].get("slug")) for r in apps)
    return [
        Failure(
            "apps-have-unique-slugs",
            ", ".join(sorted(r["address"] for r in apps if str(r["values"].get("slug")) == slug)),
            f"share the app slug {slug!r} (Coder refuses the build)",
            "give one of them another slug (a module's `slug` or `web_app_slug` input)",
        )
        for slug, n in sorted(counts.items())
        if n > 1
    ]


def _modules(config: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, Mapping[str, Any]]]:
    for name, call in (config.get("module_calls") or {}).items():
        address = f"{prefix}module.{name}"
        yield address, call
        yield from _modules(call.get("module") or {}, f"{address}.")


def module_resources_use_the_callers_agent(p: Planned) -> list[Failure]:
    """Every app, script and env a module (or a module it calls) creates is on the agent its caller names."""
    if p.case.transition != "start":
        return []
    root = p.plan.get("configuration", {}).get("root_module", {})
    failures: list[Failure] = []
    for address, call in _modules(root):
        module = call.get("module") or {}
        items = [
            (f"{address}.{r['type']}.{r['name']}", r.get("expressions", {}))
            for r in module.get("resources", [])
            if r.get("type") in AGENT_TYPES
        ]
        items += [
            (f"{address}.module.{name}", nested.get("expressions", {}))
            for name, nested in (module.get("module_calls") or {}).items()
            if "agent_id" in (nested.get("expressions") or {})
        ]
        for item, expressions in items:
            refs = (expressions.get("agent_id") or {}).get("references") or []
            if "var.agent_id" not in refs:
                failures.append(
                    Failure(
                        "module-resources-use-the-callers-agent",
                        item,
                        f"sets agent_id from {refs or 'a constant'}, not the module's var.agent_id",
                        "pin a module version whose resources take var.agent_id",
                    )
                )
    return failures


def parameters_are_ordered_and_described(p: Planned) -> list[Failure]:
    """Every parameter, the modules' included, has a description and an order the template chose."""
    if p.case.transition != "start":
        return []
    read = walk(p.plan.get("prior_state", {}).get("values", {}).get("root_module", {}))
    parameters = [r for r in read if r.get("type") == "coder_parameter"]
    root_orders = {r["values"].get("order") for r in parameters if not r["address"].startswith("module.")}
    failures: list[Failure] = []
    for res in parameters:
        values = res["values"]
        where = res["address"]
        if not str(values.get("description") or "").strip():
            failures.append(
                Failure(
                    "parameters-are-ordered-and-described",
                    where,
                    "has no description (the workspace form shows an empty help text)",
                    "give it a description (for a module: its description input)",
                )
            )
        order = values.get("order")
        if where.startswith("module.") and (order is None or order in root_orders):
            said = "no order (it sorts first)" if order is None else f"order {order}, as a template parameter"
            failures.append(
                Failure(
                    "parameters-are-ordered-and-described",
                    where,
                    f"has {said}",
                    "set the module's coder_parameter_order to an order of its own",
                )
            )
    return failures
