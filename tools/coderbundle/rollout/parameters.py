"""Whether a workspace's parameter values still hold on a candidate version (pure; no I/O).

Two sources, one result (findings, plus the values a build on the candidate would use):

* ``from_evaluation``: the server's answer to ``POST /templateversions/{id}/dynamic-parameters/
  evaluate`` with the workspace's last build values as inputs (the renderer coderd's
  builds use: options, validation, conditional parameters);
* ``from_rich_parameters``: the candidate's ``/rich-parameters`` checked here, for a
  server without that endpoint: options, validation regex/min/max, type.

Either way a parameter the workspace holds that the candidate lacks is ``parameter-removed``
(renamed or removed: the value is dropped and the candidate's default takes over), and a
new required parameter without a value is ``parameter-missing`` (an update cannot run
unattended).  Values never appear in a message: a parameter can hold something private.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

from coderbundle.upgrade_gate import Finding

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

__all__ = ["from_evaluation", "from_rich_parameters"]

_QUOTED_ONLY = 4  # a shorter value is replaced only where the server quotes it


def _removed(previous: Mapping[str, str], kept: Iterable[str]) -> list[Finding]:
    return [
        Finding(
            f"parameter-removed:{name}",
            f"parameter {name!r} is not in the candidate (removed or renamed): the value this "
            "workspace holds is dropped and a renamed parameter starts from its default",
        )
        for name in sorted(set(previous) - set(kept))
    ]


def _missing(name: str, *, mutable: bool) -> Finding:
    kind = "mutable" if mutable else "immutable"
    return Finding(
        f"parameter-missing:{name}",
        f"new required {kind} parameter {name!r} has no default: the workspace cannot update "
        "without someone choosing a value; give it a default",
    )


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _without_value(text: str, value: str) -> str:
    """The server's diagnostic without the value it quotes (``the value "x" must be ...``)."""
    if not value:
        return text
    text = text.replace(f'"{value}"', "<the held value>")
    return text.replace(value, "<the held value>") if len(value) >= _QUOTED_ONLY else text


def from_evaluation(
    previous: Mapping[str, str], answer: Mapping[str, Any]
) -> tuple[list[Finding], dict[str, str]]:
    """Findings and values from a ``DynamicParametersResponse`` evaluated with ``previous`` as inputs."""
    params: list[Mapping[str, Any]] = list(answer.get("parameters") or [])
    found = [
        Finding(
            "parameters-error",
            f"the candidate's parameters do not evaluate: {_one_line(d.get('summary', ''))}"
            + (f": {_one_line(d['detail'])}" if d.get("detail") else ""),
        )
        for d in answer.get("diagnostics") or []
        if d.get("severity") == "error"
    ]
    found += _removed(previous, (str(p["name"]) for p in params))
    values: dict[str, str] = {}
    for p in params:
        name = str(p["name"])
        errors = [d for d in p.get("diagnostics") or [] if d.get("severity") == "error"]
        value = p.get("value") or {}
        if errors:
            d = errors[0]
            why = _one_line(d.get("summary", "")) + (f": {_one_line(d['detail'])}" if d.get("detail") else "")
            why = _without_value(why, previous.get(name, ""))
            found.append(_invalid(name, why))
        elif value.get("valid") and not p.get("ephemeral"):
            values[name] = str(value.get("value", ""))
        elif p.get("required") and name not in previous:
            found.append(_missing(name, mutable=bool(p.get("mutable"))))
    return found, values


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _invalid(name: str, why: str) -> Finding:
    return Finding(
        f"parameter-invalid:{name}",
        f"parameter {name!r}: the candidate no longer allows the value this workspace holds "
        f"({why}); its update would fail",
    )


def _check_value(p: Mapping[str, Any], value: str) -> str:  # noqa: PLR0911 - one reason per check
    """Why ``value`` does not fit the rich parameter ``p`` (codersdk.TemplateVersionParameter), or ""."""
    kind = str(p.get("type") or "string")
    if kind == "number" and _number(value) is None:
        return "not a number"
    if kind == "bool" and value not in ("true", "false"):
        return "not true or false"
    items: list[str] = [value]
    if kind == "list(string)":
        try:
            loaded = json.loads(value or "[]")
        except ValueError:
            return "not a JSON list of strings"
        items = [str(i) for i in loaded] if isinstance(loaded, list) else []
    options = {str(o.get("value")) for o in p.get("options") or []}
    if options and any(i not in options for i in items):
        return "not one of the candidate's options"
    regex = p.get("validation_regex") or ""
    if regex and kind == "string" and not re.search(regex, value):
        return "does not match the candidate's validation regex"
    number = _number(value) if kind == "number" else None
    low, high = p.get("validation_min"), p.get("validation_max")
    if number is not None and low is not None and number < low:
        return f"below the candidate's minimum {low}"
    if number is not None and high is not None and number > high:
        return f"above the candidate's maximum {high}"
    return ""


def from_rich_parameters(
    previous: Mapping[str, str], candidate: Iterable[Mapping[str, Any]]
) -> tuple[list[Finding], dict[str, str]]:
    """Findings and values from the candidate's ``/rich-parameters`` and the workspace's values."""
    params = list(candidate)
    found = _removed(previous, (str(p["name"]) for p in params))
    values: dict[str, str] = {}
    for p in params:
        name = str(p["name"])
        if p.get("ephemeral"):
            continue
        if name in previous:
            value = previous[name]
        elif p.get("required"):
            found.append(_missing(name, mutable=bool(p.get("mutable"))))
            continue
        else:
            value = str(p.get("default_value") or "")
        if why := _check_value(p, value):
            found.append(_invalid(name, why))
        else:
            values[name] = value
    return found, values
