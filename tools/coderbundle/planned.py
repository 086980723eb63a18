"""What a plan invariant sees and reports: a planned case (``Planned``) and a ``Failure``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping

    from coderbundle.plantest import Case
    from coderbundle.render import RenderedTemplate
    from coderbundle.settings import Settings

__all__ = ["Failure", "Planned", "walk"]


@dataclass(frozen=True)
class Failure:
    """One broken invariant: where, what, and what to do."""

    invariant: str
    resource: str
    message: str
    fix: str

    def __str__(self) -> str:
        """``[name] resource: message; fix``."""
        return f"[{self.invariant}] {self.resource}: {self.message}; fix: {self.fix}"


@dataclass(frozen=True)
class Planned:
    """What an invariant sees: the case, its plan, every plan of the run, the settings."""

    case: Case
    plan: dict[str, Any]
    plans: Mapping[Case, dict[str, Any] | str]
    template: RenderedTemplate
    settings: Settings

    def resources(self) -> list[dict[str, Any]]:
        """Every planned resource, and every data source read while planning (modules included)."""
        planned = list(walk(self.plan.get("planned_values", {}).get("root_module", {})))
        read = walk(self.plan.get("prior_state", {}).get("values", {}).get("root_module", {}))
        return planned + [r for r in read if r.get("mode") == "data"]

    def of_type(self, *types: str) -> list[dict[str, Any]]:
        """Planned managed resources of these types."""
        return [r for r in self.resources() if r.get("mode") == "managed" and r.get("type") in types]

    def sibling(self, **changes: str) -> dict[str, Any] | None:
        """The plan of the same template with some case fields changed (e.g. transition="start")."""
        for case, plan in self.plans.items():
            if (
                case.template == self.case.template
                and isinstance(plan, dict)
                and all(getattr(case, k) == v for k, v in changes.items())
                and all(
                    getattr(case, k) == getattr(self.case, k) for k in ("owner", "preset") if k not in changes
                )
            ):
                return plan
        return None

    def parameter(self, name: str) -> str | None:
        """The value a coder_parameter data source resolved to in this plan."""
        for res in self.resources():
            if res.get("type") == "coder_parameter" and res["values"].get("name") == name:
                return str(res["values"].get("value"))
        return None


def walk(module: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """Every resource of a plan's module and of its child modules."""
    yield from module.get("resources", [])
    for child in module.get("child_modules", []):
        yield from walk(child)
