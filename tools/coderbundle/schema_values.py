"""CS110: literal values the provider itself would reject.

``data/validators.json`` records, per provider at its pinned version, the
validators of the arguments (enumerations, ranges, formats, uniqueness and a
few read-time rules of ``coder_parameter`` and ``coder_script``), read from the
providers' Go sources.  This module checks the literal values of a resource or
data block against them; expressions are known only at plan time and pass.
``docs/rules.md`` lists what is covered and what is left out.
"""

from __future__ import annotations

import functools
import ipaddress
import json
import re
import zoneinfo
from typing import TYPE_CHECKING, Any

from coderbundle import hcl
from coderbundle.findings import Problem
from coderbundle.schema_blocks import is_expression, read_data, show

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

__all__ = ["check_values", "load_validators"]

RULE = "CS110"
_META_BLOCKS = frozenset({"lifecycle", "provisioner", "connection"})
_DNS_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS_SUBDOMAIN = re.compile(rf"^{_DNS_LABEL}(\.{_DNS_LABEL})*$")
_QUALIFIED_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_PORT_NAME = re.compile(r"^[-a-z0-9]+$")
_QUANTITY = re.compile(
    r"^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)(([eE][+-]?[0-9]+)|Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E)?$"
)
_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_INTERPOLATION = re.compile(r"(?<!\$)\$\{[^{}]*\}")
_GO_FLOAT = re.compile(r"[+-]?((\d+\.?\d*|\.\d+)([eE][+-]?\d+)?|inf|infinity|nan)", re.IGNORECASE)
_GO_BOOL = {"1", "t", "T", "TRUE", "true", "True", "0", "f", "F", "FALSE", "false", "False"}


@functools.cache
def load_validators() -> dict[str, list[tuple[dict[str, Any], str]]]:
    """Block type (``coder_app``, ``data.coder_parameter``) -> its checks and their provider label."""
    index: dict[str, list[tuple[dict[str, Any], str]]] = {}
    for name, provider in read_data("validators.json")["providers"].items():
        label = f"{name} {provider['version']}"
        for check in provider["checks"]:
            targets = check["on"] if isinstance(check["on"], list) else [check["on"]]
            for target in targets:
                index.setdefault(target, []).append((check, label))
    return index


# --- values -------------------------------------------------------------------------------


def _text(value: Any) -> str | None:
    """A literal as the provider receives it (Terraform converts numbers and bools to strings)."""
    if value is None or is_expression(value) or isinstance(value, (list, dict)):
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    return str(hcl.literal(value))


def _int(value: Any) -> int | None:
    text = _text(value)
    if text is None or not re.fullmatch(r"[+-]?\d+", text):
        return None
    return int(text)


def _fragments(value: Any) -> list[str] | None:
    """The literal parts of a quoted string with interpolations (None for anything else)."""
    if not isinstance(value, str) or not value.startswith('"') or "${" not in value:
        return None
    inner = str(hcl.literal(value))
    if "%{" in inner:
        return None
    return _INTERPOLATION.split(inner)


# --- format checks: each returns "" when the value is fine, else what is wrong -------------


def _dns_subdomain(text: str) -> str:
    if len(text) > 253 or not _DNS_SUBDOMAIN.match(text):
        return "is not a DNS-1123 subdomain (lowercase letters, digits, '-' and '.', at most 253)"
    return ""


def _dns_label(text: str) -> str:
    if len(text) > 63 or not re.fullmatch(_DNS_LABEL, text):
        return "is not a DNS-1123 label (lowercase letters, digits and '-', at most 63)"
    return ""


def _dns_label_prefix(text: str) -> str:
    core = text[:-1] + "a" if text.endswith("-") else text
    if len(core) > 63 or not re.fullmatch(_DNS_LABEL, core):
        return "is not a DNS-1123 label prefix (lowercase letters, digits and '-', at most 63)"
    return ""


def _path_segment(text: str) -> str:
    if text in {".", ".."} or "/" in text or "%" in text:
        return "is not a valid path segment name (no '/', no '%', not '.' or '..')"
    return ""


def qualified_name(text: str) -> str:
    """Kubernetes ``IsQualifiedName``: ``[prefix/]name``."""
    prefix, _, name = text.rpartition("/")
    if "/" in text and (not prefix or _dns_subdomain(prefix)):
        return "has an invalid prefix (a DNS-1123 subdomain before '/')"
    if len(name) > 63 or not _QUALIFIED_NAME.match(name):
        return "is not a qualified name (alphanumerics, '-', '_', '.', at most 63, alphanumeric at both ends)"
    return ""


def _label_value(text: str) -> str:
    if text and (len(text) > 63 or not _QUALIFIED_NAME.match(text)):
        return "is not a valid label value (alphanumerics, '-', '_', '.', at most 63)"
    return ""


def _port_name(text: str) -> str:
    ok = (
        len(text) <= 15
        and _PORT_NAME.match(text)
        and re.search("[a-z]", text)
        and not text.startswith("-")
        and not text.endswith("-")
        and "--" not in text
    )
    return "" if ok else "is not a port number (1-65535) or IANA service name"


def _port_num_or_name(text: str) -> str:
    if re.fullmatch(r"[+-]?\d+", text):
        return "" if 1 <= int(text) <= 65535 else "is not a port number between 1 and 65535"
    return _port_name(text)


def _mode_bits(text: str) -> str:
    try:
        number = int(text, 8)
    except ValueError:
        return "is not an octal mode"
    if not text.startswith("0") or not 0 <= number <= 0o777:
        return "is not an octal mode between 0 and 0777 starting with 0"
    return ""


def _rel_path(text: str) -> str:
    if text.startswith("/") or ".." in text.split("/"):
        return "must be a relative path without '..'"
    return ""


def _ip(text: str) -> str:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return "is not an IP address"
    return ""


def _timezone(text: str) -> str:
    if text in {"", "UTC", "Local"}:
        return ""
    try:
        zoneinfo.ZoneInfo(text)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return "is not an IANA time zone (e.g. Europe/Berlin)"
    return ""


_MONTHS = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]
_DAYS = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"]
_DESCRIPTORS = {"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"}


def _cron_value(part: str, low: int, names: list[str]) -> int | None:
    if part.isdigit():
        return int(part)
    upper = part.upper()
    return names.index(upper) + low if upper in names else None


def _cron_field(field: str, low: int, high: int, names: list[str]) -> bool:
    """One field of robfig/cron's grammar: ``*``, ``?``, ``a``, ``a-b``, each with ``/step``, comma lists."""
    for item in field.split(","):
        rng, _, step = item.partition("/")
        if step and (not step.isdigit() or int(step) == 0):
            return False
        if rng in {"*", "?"}:
            continue
        start, _, end = rng.partition("-")
        values = [_cron_value(start, low, names)] + ([_cron_value(end, low, names)] if end else [])
        if any(v is None or not low <= v <= high for v in values):
            return False
    return True


def cron_problem(text: str, *, seconds: bool, descriptors: bool, minute_any: bool = False) -> str:
    """Why robfig/cron (as the provider configures it) rejects ``text``; "" when it parses."""
    if descriptors and (text in _DESCRIPTORS or re.fullmatch(r"@every \S+", text)):
        return ""
    fields = text.split()
    bounds = [(0, 59, []), (0, 23, []), (1, 31, []), (1, 12, _MONTHS), (0, 6, _DAYS)]
    wanted: tuple[int, ...]
    if seconds:
        bounds.insert(0, (0, 59, []))
        wanted = (5, 6)  # day of week optional
    else:
        wanted = (5,)
    if len(fields) not in wanted:
        count = " or ".join(str(w) for w in wanted)
        return f"is not a cron expression of {count} fields"
    if minute_any and fields[0] != "*":
        return "must have * in the minute field (prebuild schedules are per hour)"
    for field, (low, high, names) in zip(fields, bounds, strict=False):
        if not _cron_field(field, low, high, list(names)):
            return f"is not a valid cron expression (field {field!r})"
    return ""


_FORMATS: dict[str, Callable[[str], str]] = {
    "dns1123_subdomain": _dns_subdomain,
    "dns1123_label": _dns_label,
    "dns1123_label_prefix": _dns_label_prefix,
    "path_segment_name": _path_segment,
    "port_num_or_name": _port_num_or_name,
    "mode_bits": _mode_bits,
    "rel_path": _rel_path,
    "ip": _ip,
    "timezone": _timezone,
}
# Characters a literal part of an interpolated value may hold, per format.
_FRAGMENT_CHARS = {
    "dns1123_subdomain": re.compile(r"^[a-z0-9.-]*$"),
    "dns1123_label": re.compile(r"^[a-z0-9-]*$"),
}


def _scalar_problem(check: dict[str, Any], value: Any) -> str:  # noqa: C901, PLR0911, PLR0912 - one dispatch table
    kind = check["check"]
    text = _text(value)
    if text is None:
        return ""
    if kind == "enum":
        listing = ", ".join(f'"{v}"' for v in check["values"])
        return "" if text in check["values"] else f"is not one of {listing}"
    if kind == "regex":
        return "" if re.search(check["pattern"], text) else f"does not match {check['pattern']}"
    if kind in {"int_range", "int_zero_or_range", "port_num"}:
        number = _int(value)
        if number is None:
            return ""  # not an integer at all: CS106 reports the type
        low, high = (1, 65535) if kind == "port_num" else (check.get("min"), check.get("max"))
        if kind == "int_zero_or_range" and number == 0:
            return ""
        if (low is not None and number < low) or (high is not None and number > high):
            span = f"between {low} and {high}" if high is not None else f"at least {low}"
            return f"must be {'0 or ' if kind == 'int_zero_or_range' else ''}{span}"
        return ""
    if kind == "int_string":
        return "" if text == "" or re.fullmatch(r"[+-]?\d+", text) else "is not an integer"
    if kind == "len_range":
        return f"is longer than {check['max']} characters" if len(text) > check["max"] else ""
    if kind == "not_empty":
        return "must not be empty" if text == "" else ""
    if kind == "abs_path":
        return "" if text.startswith("/") else "must be an absolute path"
    if kind == "uuid":
        return "" if _UUID.match(text) else "is not a UUID"
    if kind == "quantity":
        return "" if _QUANTITY.match(text) else "is not a Kubernetes quantity (e.g. 500m, 2, 4Gi)"
    if kind == "cron":
        flags = {k: check.get(k, False) for k in ("seconds", "descriptors", "minute_any")}
        return cron_problem(text, **flags)
    if kind in _FORMATS:
        return _FORMATS[kind](text)
    return ""


def _map_problems(kind: str, value: Any) -> Iterator[str]:
    if not isinstance(value, dict):
        return
    for raw_key, raw in value.items():
        key = None if str(raw_key).startswith("${") else str(hcl.literal(raw_key))
        if key is not None and kind in {"label_map", "annotation_map"}:
            why = qualified_name(key.lower() if kind == "annotation_map" else key)
            if why:
                yield f'key "{key}" {why}'
        text = _text(raw)
        if text is None:
            continue
        if kind == "label_map" and (why := _label_value(text)):
            yield f'value "{text}" of "{key}" {why}'
        elif kind == "quantity_map" and not _QUANTITY.match(text):
            yield f'"{key}" = "{text}" is not a Kubernetes quantity (e.g. 500m, 2, 4Gi)'


def _fragment_problem(check: dict[str, Any], value: Any) -> str:
    chars = _FRAGMENT_CHARS.get(check["check"])
    parts = _fragments(value)
    if chars is None or parts is None:
        return ""
    if any(not chars.match(p) for p in parts):
        dot = ", '.'" if check["check"] == "dns1123_subdomain" else ""
        allowed = f"lowercase letters, digits, '-'{dot}"
        return f"has characters a DNS-1123 name cannot hold ({allowed})"
    if (parts[0] and not parts[0][0].isalnum()) or (parts[-1] and not parts[-1][-1].isalnum()):
        return "must start and end with a lowercase letter or digit"
    return ""


# --- walking ------------------------------------------------------------------------------


def _walk(block: hcl.Block, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], hcl.Block]]:
    """Every nested block with its path of block types (``dynamic "x"`` as ``x``)."""
    yield path, block
    for child in block.blocks:
        if not path and child.type in _META_BLOCKS:
            continue
        if child.type == "dynamic" and child.labels:
            content = child.child("content")
            if content is not None:
                yield from _walk(content, (*path, child.labels[0]))
        else:
            yield from _walk(child, (*path, child.type))


def _matches(pattern: tuple[str, ...], path: tuple[str, ...]) -> bool:
    if not pattern:
        return not path
    head, rest = pattern[0], pattern[1:]
    if head == "**":
        return any(_matches(rest, path[i:]) for i in range(len(path) + 1))
    return bool(path) and path[0] in head.split("|") and _matches(rest, path[1:])


_Walked = list[tuple[tuple[str, ...], hcl.Block]]


def _located(walked: _Walked, dotted: str) -> Iterator[tuple[str, hcl.Attribute]]:
    """``(path.to.attribute, attribute)`` for each attribute ``dotted`` names in the walked blocks."""
    *blocks, attr = dotted.split(".")
    for path, found in walked:
        if _matches(tuple(blocks), path) and attr in found.attributes:
            yield ".".join((*path, attr)), found.attributes[attr]


def _value_checks(walked: _Walked, where: str, check: dict[str, Any]) -> Iterator[tuple[int, str]]:
    kind = check["check"]
    if kind == "unique":
        seen: set[str] = set()
        for _, attr in _located(walked, check["path"]):
            text = _text(attr.value)
            if text is not None and text in seen:
                yield attr.line, f'"{check["path"]}" in {where} repeats "{text}"; use each value once'
            if text is not None:
                seen.add(text)
        return
    for name, attr in _located(walked, check["path"]):
        at = f'"{name}" in {where}'
        if kind.endswith("_map"):
            for why in _map_problems(kind, attr.value):
                yield attr.line, f"{at}: {why}"
            continue
        values = attr.value if check.get("each") and isinstance(attr.value, list) else [attr.value]
        for value in values:
            why = _scalar_problem(check, value) or _fragment_problem(check, value)
            if why:
                yield attr.line, f"{at} = {show(value)} {why}"


def _param_type(block: hcl.Block) -> str | None:
    raw = block.get("type", '"string"')
    return None if is_expression(raw) else str(hcl.literal(raw))


def _form_type(block: hcl.Block, check: dict[str, Any]) -> Iterator[tuple[int, str]]:
    kind = _param_type(block)
    raw = block.get("form_type")
    dynamic = any(c.type == "dynamic" and c.labels[:1] == ("option",) for c in block.blocks)
    if kind not in check["table"] or raw is None or is_expression(raw) or dynamic:
        return
    form = str(hcl.literal(raw))
    has = "options" if block.children("option") else "no_options"
    allowed = check["table"][kind][has]
    if form and form not in allowed:
        state = "with options" if has == "options" else "without options"
        msg = f'form_type "{form}" is not allowed for type "{kind}" {state}; use one of {", ".join(allowed)}'
        yield block.attributes["form_type"].line, msg


def _validation(block: hcl.Block) -> Iterator[tuple[int, str]]:
    kind = _param_type(block)
    for v in block.children("validation"):
        if kind not in {"number", None}:
            for key in ("min", "max", "monotonic"):
                if key in v.attributes:
                    msg = f'validation "{key}" is for number parameters, not {kind}; remove it'
                    yield v.attributes[key].line, msg
        if kind not in {"string", None} and "regex" in v.attributes:
            msg = f'validation "regex" is for string parameters, not {kind}; remove it'
            yield v.attributes["regex"].line, msg
        mono = _text(v.get("monotonic"))
        if mono is not None and mono not in {"increasing", "decreasing"}:
            msg = 'validation "monotonic" must be "increasing" or "decreasing"; fix it'
            yield v.attributes["monotonic"].line, msg
        default = _text(block.get("default"))
        if kind == "number" and default is not None and not re.fullmatch(r"[+-]?\d+", default):
            line = block.attributes["default"].line
            yield line, f"default {default} is not an integer (number validation reads integers); fix it"


def _options(block: hcl.Block) -> Iterator[tuple[int, str]]:
    kind = _param_type(block)
    if kind == "list(string)" and _text(block.get("form_type")) == "multi-select":
        kind = "string"
    for option in block.children("option"):
        text = _text(option.get("value"))
        if text is None:
            continue
        bad = (
            (kind == "number" and not _GO_FLOAT.fullmatch(text))
            or (kind == "bool" and text not in _GO_BOOL)
            or (kind == "list(string)" and not _is_string_list(text))
        )
        if bad:
            msg = f'option value "{text}" is not a {kind}; fix the value or the type'
            yield option.attributes["value"].line, msg


def _is_string_list(text: str) -> bool:
    try:
        parsed = json.loads(text)
    except ValueError:
        return False
    return isinstance(parsed, list) and all(isinstance(x, str) for x in parsed)


def _script_runs(block: hcl.Block) -> Iterator[tuple[int, str]]:
    def flag(name: str) -> bool | None:
        """True/False for a literal (absent is False), None when an expression decides."""
        raw = block.get(name, False)
        return None if is_expression(raw) else _text(raw) == "true"

    start, stop, login = flag("run_on_start"), flag("run_on_stop"), flag("start_blocks_login")
    if start is False and stop is False and "cron" not in block.attributes:
        yield block.line, "coder_script never runs; set run_on_start, run_on_stop or cron"
    if login and start is False:
        msg = "start_blocks_login needs run_on_start = true; set it"
        yield block.attributes["start_blocks_login"].line, msg


_BLOCK_CHECKS: dict[str, Callable[[hcl.Block, dict[str, Any]], Iterator[tuple[int, str]]]] = {
    "parameter_form_type": _form_type,
    "parameter_validation": lambda b, _: _validation(b),
    "parameter_options": lambda b, _: _options(b),
    "script_runs": lambda b, _: _script_runs(b),
}


def check_values(block: hcl.Block, file: str, problems: list[Problem]) -> None:
    """Add a CS110 problem for each literal the provider's own validation rejects."""
    if len(block.labels) != 2:
        return
    target = f"data.{block.labels[0]}" if block.type == "data" else block.labels[0]
    where = f"{target}.{block.labels[1]}"
    checks = load_validators().get(target, [])
    reported: set[int] = set()  # the API's check adds nothing where the provider's already failed
    walked = list(_walk(block)) if checks else []
    for check, label in checks:
        if check.get("covered_by"):
            continue
        found: Iterator[tuple[int, str]]
        if check["check"] in _BLOCK_CHECKS:
            found = ((line, f"{where}: {msg}") for line, msg in _BLOCK_CHECKS[check["check"]](block, check))
        else:
            found = _value_checks(walked, where, check)
        api = check.get("enforced_by") == "api"
        by = "the Kubernetes API rejects it at apply" if api else f"{label} rejects it"
        by += ", fix the value"
        for line, message in found:
            if api and line in reported:
                continue
            reported.add(line)
            text = message if ";" in message else f"{message}; {by}"
            problems.append(Problem(file=file, line=line, rule=RULE, message=text))
