"""Check resources, data sources and module calls against the providers' and modules' schemas.

The schemas are data (``data/kubernetes.json``, ``data/coder.json``,
``data/modules.json``, written by ``scripts/gen_schemas.py``), loaded once.
This finds offline, in milliseconds, what ``terraform validate`` finds only
with the providers and modules downloaded: unknown or misplaced attributes and
blocks, missing required ones, too many blocks, literals of the wrong type,
unknown module arguments and outputs.  Rule IDs are CS1xx (providers) and
CS2xx (modules); ``docs/rules.md`` describes them.
"""

from __future__ import annotations

import functools
import re
from typing import TYPE_CHECKING, Any

from coderbundle import hcl
from coderbundle.findings import Problem
from coderbundle.schema_blocks import (
    Provider,
    check_resource,
    is_expression,
    load_providers,
    read_data,
    show,
    suggest,
    type_matches,
)
from coderbundle.schema_values import check_values

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping

__all__ = ["Provider", "check_schemas", "load_modules", "load_providers", "type_matches"]

_MODULE_META = frozenset({"source", "version", "count", "for_each", "depends_on", "providers"})
_MODULE_REF = re.compile(r"(?<![\w.-])module\.([A-Za-z_][\w-]*)(?:\[[^\]]*\])?\.([A-Za-z_][\w-]*)")
_REGISTRY = "registry.coder.com/"


@functools.cache
def load_modules() -> dict[str, dict[str, Any]]:
    """Module source -> its pinned version's ``variables``/``outputs``, read once."""
    return {m["source"]: m for m in read_data("modules.json")["modules"].values()}


def _module_schema(block: hcl.Block, versions: Mapping[str, Any]) -> tuple[dict[str, Any] | None, str]:
    source = str(hcl.literal(block.get("source", "")))
    if not source.startswith(_REGISTRY):
        return None, ""
    schema = load_modules().get(source)
    raw = block.get("version")
    version = hcl.literal(raw)
    pins = {m.get("source"): m.get("version") for m in versions.get("modules", {}).values()}
    if schema is not None and (version == schema["version"] or raw is None or is_expression(raw)):
        return schema, ""  # no literal version: CB115 reports it; check against the pin
    if source not in pins:
        return None, f'module "{source}" is not pinned in versions.toml; add it under [modules.*]'
    if version != pins[source]:
        return (
            None,
            f'module "{source}" uses version "{version}"; use the pinned "{pins[source]}" (versions.toml)',
        )
    return None, f'no schema data for "{source}" {version}; run scripts/gen_schemas.py'


def _check_module(block: hcl.Block, file: str, versions: Mapping[str, Any], problems: list[Problem]) -> None:
    schema, trouble = _module_schema(block, versions)
    name = block.labels[0] if block.labels else "?"
    if trouble:
        problems.append(Problem(file=file, line=block.line, rule="CS204", message=trouble))
    if schema is None:
        return
    variables: dict[str, dict[str, Any]] = schema["variables"]
    where = f'module "{name}" ({schema["source"].split("/")[2]} {schema["version"]})'
    for arg, attr in block.attributes.items():
        if arg in _MODULE_META:
            continue
        if arg not in variables:
            hint = suggest(arg, variables) or "; remove it or pick a version that has it"
            msg = f'{where} has no argument "{arg}"{hint}'
            problems.append(Problem(file=file, line=attr.line, rule="CS201", message=msg))
        elif not type_matches(attr.value, variables[arg]["type"]):
            msg = (
                f'"{arg}" of {where} must be {variables[arg]["type"]}, not {show(attr.value)}; fix the value'
            )
            problems.append(Problem(file=file, line=attr.line, rule="CS106", message=msg))
    for child in block.blocks:
        msg = f'{where} takes no "{child.type}" block; module arguments are attributes (name = value)'
        problems.append(Problem(file=file, line=child.line, rule="CS201", message=msg))
    for var, spec in variables.items():
        if spec["required"] and var not in block.attributes:
            msg = f'{where} needs the argument "{var}"; add {var} = ...'
            problems.append(Problem(file=file, line=block.line, rule="CS202", message=msg))


def _values(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        if "module." in value and is_expression(value):
            yield value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _values(k)
            yield from _values(v)
    elif isinstance(value, list):
        for v in value:
            yield from _values(v)


def _module_calls(files: Mapping[str, hcl.Block]) -> dict[str, dict[str, Any]]:
    """Module name -> schema, for the calls whose pinned version has schema data."""
    calls: dict[str, dict[str, Any]] = {}
    for root in files.values():
        for block in root.children("module"):
            schema = load_modules().get(str(hcl.literal(block.get("source", ""))))
            version = block.get("version")
            if (
                block.labels
                and schema
                and (hcl.literal(version) == schema["version"] or is_expression(version))
            ):
                calls[block.labels[0]] = schema
    return calls


def _bad_outputs(value: Any, calls: dict[str, dict[str, Any]]) -> Iterator[str]:
    for text in _values(value):
        for match in _MODULE_REF.finditer(text):
            module, output = match.groups()
            outputs = calls.get(module, {}).get("outputs")
            if outputs is not None and output not in outputs:
                listing = f"outputs: {', '.join(outputs)}" if outputs else "no outputs"
                hint = suggest(output, outputs) or f"; it has {listing}"
                yield f'module "{module}" has no output "{output}"{hint}'


def _check_outputs(files: Mapping[str, hcl.Block], problems: list[Problem]) -> None:
    calls = _module_calls(files)
    if not calls:
        return
    for file, root in files.items():
        for block in root.walk():
            problems.extend(
                Problem(file=file, line=attr.line, rule="CS203", message=msg)
                for attr in block.attributes.values()
                for msg in _bad_outputs(attr.value, calls)
            )


def check_schemas(files: Mapping[str, hcl.Block], versions: Mapping[str, Any]) -> list[Problem]:
    """Every schema problem in one template's parsed files."""
    problems: list[Problem] = []
    for file, root in files.items():
        for block in root.blocks:
            if block.type in {"resource", "data"} and len(block.labels) == 2:
                check_resource(block, file, problems)
                check_values(block, file, problems)
            elif block.type == "module":
                _check_module(block, file, versions, problems)
    _check_outputs(files, problems)
    return problems
