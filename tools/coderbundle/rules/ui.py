"""Rules about what developers see: apps, parameters, presets."""

from __future__ import annotations

import json
import re
from collections import Counter
from typing import TYPE_CHECKING, Any

import re2

from coderbundle.hcl import Block, is_expression, literal
from coderbundle.rules import Model, line_of, rule

if TYPE_CHECKING:
    from collections.abc import Iterator

    from coderbundle.findings import Problem

SLUG = re.compile(r"^[a-z0-9](-?[a-z0-9])*$")
# Coder checks validation regexes with Go's regexp: RE2 syntax, linear time.  Errors are reported, not logged.
_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False


@rule("CB108")
def app_slug_format(m: Model) -> Iterator[Problem]:
    """App slugs match ``^[a-z0-9](-?[a-z0-9])*$``."""
    for app in m.top("resource", "coder_app"):
        slug = app.get("slug")
        if slug is not None and not is_expression(slug) and not SLUG.match(str(literal(slug))):
            msg = f"coder_app slug {literal(slug)!r} must be lowercase letters, digits, single hyphens"
            yield m.problem(app, "CB108", msg, line_of(app, "slug"))


@rule("CB109")
def app_slug_unique(m: Model) -> Iterator[Problem]:
    """App slugs are unique within the template."""
    seen: dict[str, Block] = {}
    for app in m.top("resource", "coder_app"):
        slug = app.get("slug")
        if slug is None or is_expression(slug):
            continue
        key = str(literal(slug))
        if key in seen:
            msg = f"coder_app slug {literal(slug)!r} is used twice; slugs must be unique"
            yield m.problem(app, "CB109", msg, line_of(app, "slug"))
        seen[key] = app


def _parameters(m: Model) -> list[Block]:
    return list(m.top("data", "coder_parameter"))


@rule("CB110")
def parameter_name_unique(m: Model) -> Iterator[Problem]:
    """Parameter names are unique (the name is what users' values are stored under)."""
    counts = Counter(str(literal(p.get("name"))) for p in _parameters(m) if p.get("name") is not None)
    for p in _parameters(m):
        name = str(literal(p.get("name")))
        if counts.get(name, 0) > 1:
            yield m.problem(p, "CB110", f"parameter name {name!r} is used more than once", line_of(p, "name"))


@rule("CB111")
def regex_has_error(m: Model) -> Iterator[Problem]:
    """A ``regex`` validation carries an ``error`` message."""
    for p in _parameters(m):
        for v in p.children("validation"):
            if "regex" in v.attributes and "error" not in v.attributes:
                yield m.problem(v, "CB111", 'validation with regex needs an error message; add error = "..."')


@rule("CB112")
def ephemeral_is_mutable(m: Model) -> Iterator[Problem]:
    """``ephemeral`` parameters are ``mutable`` and have a ``default``."""
    for p in _parameters(m):
        if p.get("ephemeral") is True and (p.get("mutable") is not True or "default" not in p.attributes):
            msg = "an ephemeral parameter needs mutable = true and a default"
            yield m.problem(p, "CB112", msg, line_of(p, "ephemeral"))


@rule("CB113")
def options_unique(m: Model) -> Iterator[Problem]:
    """Option names are unique, and so are option values."""
    for p in _parameters(m):
        options = p.children("option")
        for key in ("name", "value"):
            counts = Counter(str(o.get(key)) for o in options)
            for o in options:
                if counts[str(o.get(key))] > 1:
                    msg = f"option {key} {literal(o.get(key))!r} appears more than once"
                    yield m.problem(o, "CB113", msg, line_of(o, key))
                    break


def _as_type(value: Any, kind: str) -> Any:
    """The literal ``value`` converted to the parameter ``kind``; raise ValueError if it does not fit."""
    raw = literal(value)
    if kind == "number":
        return float(raw)
    if kind == "bool":
        if str(raw).lower() not in ("true", "false"):
            raise ValueError(raw)
        return str(raw).lower() == "true"
    if kind == "list(string)":
        parsed = json.loads(raw) if isinstance(raw, str) else raw
        if not isinstance(parsed, list):
            raise ValueError(raw)
        return parsed
    return str(raw)


def value_problem(p: Block, value: Any) -> str:  # noqa: PLR0911 - one return per reason
    """Why ``value`` is not acceptable for parameter ``p`` ("" when it is)."""
    kind = literal(p.get("type", '"string"'))
    try:
        typed = _as_type(value, kind)
    except (ValueError, TypeError, RecursionError):
        return f"{literal(value)!r} is not a {kind}"
    options = [literal(o.get("value")) for o in p.children("option")]
    checkable = options and kind != "list(string)" and not any(is_expression(o) for o in options)
    if checkable and str(literal(value)).lower() not in {str(o).lower() for o in options}:
        return f"{literal(value)!r} is not one of the options"
    for v in p.children("validation"):
        low, high = v.get("min"), v.get("max")
        if kind == "number" and isinstance(low, int | float) and typed < low:
            return f"{literal(value)} is below validation min {low}"
        if kind == "number" and isinstance(high, int | float) and typed > high:
            return f"{literal(value)} is above validation max {high}"
        regex = v.get("regex")
        if kind == "string" and isinstance(regex, str) and not is_expression(regex):
            pattern = literal(regex).replace("\\\\", "\\")
            try:
                matched = re2.compile(pattern, options=_RE2_OPTIONS).search(str(typed))
            except re2.error as exc:
                raw = exc.args[0] if exc.args else exc
                why = raw.decode(errors="replace") if isinstance(raw, bytes) else raw
                return f"validation regex does not compile as RE2, the syntax Coder uses ({why})"
            if not matched:
                return f"{literal(value)!r} does not match validation regex"
    return ""


@rule("CB114")
def default_fits(m: Model) -> Iterator[Problem]:
    """A parameter's default fits its type, options and validation."""
    for p in _parameters(m):
        default = p.get("default")
        if default is None or is_expression(default):
            continue
        if why := value_problem(p, default):
            yield m.problem(p, "CB114", f"default {why}", line_of(p, "default"))


@rule("CB119")
def presets_consistent(m: Model) -> Iterator[Problem]:
    """Presets: at most one default; they set existing parameters to acceptable values."""
    presets = list(m.top("data", "coder_workspace_preset"))
    defaults = [p for p in presets if p.get("default") is True]
    for extra in defaults[1:]:
        yield m.problem(extra, "CB119", "more than one preset has default = true; keep one")
    names = Counter(str(literal(p.get("name"))) for p in _parameters(m))
    by_name = {str(literal(p.get("name"))): p for p in _parameters(m)}
    by_name = {name: p for name, p in by_name.items() if names[name] == 1}
    for preset in presets:
        values = preset.get("parameters") or {}
        if not isinstance(values, dict):
            continue
        for key, value in values.items():
            name = str(literal(key))
            if is_expression(name) and (ref := _parameter_ref(name, m)):
                name = ref
            param = by_name.get(name)
            where = line_of(preset, "parameters")
            if names[name] > 1:
                continue  # CB110 reports the duplicate
            if param is None:
                yield m.problem(preset, "CB119", f"preset sets unknown parameter {name!r}", where)
            elif not is_expression(value) and (why := value_problem(param, value)):
                yield m.problem(preset, "CB119", f"preset value for {name!r}: {why}", where)


def _parameter_ref(expr: str, m: Model) -> str:
    """Resolve ``${data.coder_parameter.x.name}`` to parameter x's name."""
    found = re.search(r"data\.coder_parameter\.([\w-]+)\.name", expr)
    if not found:
        return ""
    for p in _parameters(m):
        if p.labels[1] == found.group(1):
            return str(literal(p.get("name")))
    return ""
