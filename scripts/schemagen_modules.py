"""Coder registry module interfaces: variables and outputs at each pinned release tag.

For ``[modules.<key>]`` in versions.toml (``source`` =
``registry.coder.com/<ns>/<name>/coder``), read every ``*.tf`` file of
``registry/<ns>/modules/<name>/`` at tag ``release/<ns>/<name>/v<version>`` of
a coder/registry checkout and record each ``variable`` (type; required when it
has no ``default``) and each ``output``.
"""

from __future__ import annotations

import subprocess
from typing import Any

import hcl2

__all__ = ["module_schema", "registry_address"]


def registry_address(source: str) -> tuple[str, str]:
    """``registry.coder.com/<ns>/<name>/coder`` -> ``(ns, name)``."""
    parts = source.split("/")
    if len(parts) != 4 or parts[0] != "registry.coder.com":
        raise SystemExit(f"not a Coder registry module source: {source}")
    return parts[1], parts[2]


def _git(git_dir: str, *args: str) -> str:
    return subprocess.run(
        ["git", f"--git-dir={git_dir}", *args], check=True, capture_output=True, text=True
    ).stdout


def _type(raw: Any) -> str:
    text = str(raw) if raw is not None else "any"
    if text.startswith("${") and text.endswith("}"):
        text = text[2:-1]
    return " ".join(text.split())


def module_schema(git_dir: str, source: str, version: str) -> dict[str, Any]:
    """One module version's ``variables`` (name -> {type, required}) and ``outputs``."""
    ns, name = registry_address(source)
    tag = f"release/{ns}/{name}/v{version}"
    folder = f"registry/{ns}/modules/{name}"
    variables: dict[str, dict[str, Any]] = {}
    outputs: list[str] = []
    for path in _git(git_dir, "ls-tree", "--name-only", f"{tag}:{folder}").split():
        if not path.endswith(".tf"):
            continue
        parsed = hcl2.loads(_git(git_dir, "show", f"{tag}:{folder}/{path}"))
        for entry in parsed.get("variable", []):
            for label, body in entry.items():
                variables[label.strip('"')] = {
                    "type": _type(body.get("type")),
                    "required": "default" not in body,
                }
        for entry in parsed.get("output", []):
            outputs.extend(label.strip('"') for label in entry)
    commit = _git(git_dir, "rev-parse", f"{tag}^{{commit}}").strip()
    return {
        "source": source,
        "version": version,
        "tag": tag,
        "commit": commit,
        "variables": dict(sorted(variables.items())),
        "outputs": sorted(outputs),
    }
