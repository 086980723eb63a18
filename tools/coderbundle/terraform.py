"""terraform fmt and terraform init/validate, as validation steps.

``validate_dir`` runs ``terraform init -backend=false`` and ``terraform
validate -json`` wherever the template's providers and modules can be fetched:
when it needs none from a registry, when a provider mirror or plugin cache is
configured, or when the registries answer.  Otherwise it reports
``skipped: <reason>`` -- never a silent pass, and an init that fails to
download is a skip, not a failure blamed on the template.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from coderbundle import process
from coderbundle.errors import CommandFailed

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["Outcome", "fingerprint", "fmt_check", "validate_dir"]

REGISTRIES = ("registry.terraform.io", "registry.coder.com")
_DOWNLOAD_ERRORS = re.compile(
    r"Failed to (query available provider packages|install provider|download module"
    r"|retrieve available versions)|could not connect|Module not found|no such host"
    r"|Failed to resolve provider|registry service is unreachable|Error accessing remote module",
    re.IGNORECASE,
)


@dataclass
class Outcome:
    """The result of terraform init + validate for one directory."""

    status: str
    diagnostics: list[tuple[str, int, str]] = field(default_factory=list)


def _binary() -> str | None:
    return shutil.which("terraform")


def fingerprint() -> str:
    """Identify the terraform binary (path, size, mtime) without running it."""
    binary = _binary()
    if binary is None:
        return "absent"
    st = Path(binary).stat()
    return f"{binary}:{st.st_size}:{int(st.st_mtime)}:{os.environ.get('TF_CLI_CONFIG_FILE', '')}"


def fmt_check(dirs: Sequence[Path]) -> list[tuple[Path, int, str]]:
    """Files that ``terraform fmt`` would change, with the first line that differs."""
    if not dirs or _binary() is None:
        return []
    base = Path(os.path.commonpath([d.resolve() for d in dirs]))
    if len(dirs) == 1:
        base = base.parent
    targets = [str(d.resolve().relative_to(base)) for d in dirs]
    argv = ["terraform", "fmt", "-check", "-diff", "-no-color", "-recursive", *targets]
    result = process.run(argv, cwd=base, check=False)
    found: list[tuple[Path, int, str]] = []
    current: Path | None = None
    for line in result.stdout.splitlines():
        if line.startswith("--- old/"):
            current = base / line.removeprefix("--- old/")
        elif current is not None and (m := re.match(r"@@ -(\d+)", line)):
            msg = "not terraform fmt-clean; fix the template source so the output is formatted"
            found.append((current, int(m.group(1)), msg))
            current = None
    if result.returncode not in (0, 3) and not found:
        raise CommandFailed(argv, result.returncode, result.stdout, result.stderr)
    return found


def _needs_download(directory: Path) -> bool:
    """True when the directory names a provider or module that must be downloaded."""
    text = "\n".join(p.read_text(encoding="utf-8") for p in directory.glob("*.tf"))
    return bool(re.search(r"required_providers|^\s*source\s*=", text, re.MULTILINE)) or bool(
        re.search(r'^(resource|data)\s+"(?!terraform_)', text, re.MULTILINE)
    )


def _mirror_configured() -> bool:
    if os.environ.get("TF_PLUGIN_CACHE_DIR"):
        return True
    config = Path(os.environ.get("TF_CLI_CONFIG_FILE", Path.home() / ".terraformrc"))
    try:
        text = config.read_text(encoding="utf-8")
    except OSError:
        return False
    return "provider_installation" in text or "plugin_cache_dir" in text


@cache
def _registry_unreachable() -> str:
    """Why the registries cannot be reached, or "" when both answer."""
    for host in REGISTRIES:
        try:
            socket.create_connection((host, 443), timeout=2).close()
        except OSError as exc:
            return f"{host} unreachable ({exc.strerror or exc})"
    return ""


def _why_skip(directory: Path) -> str:
    if os.environ.get("CODERBUNDLE_TERRAFORM_VALIDATE", "auto") == "never":
        return "disabled by CODERBUNDLE_TERRAFORM_VALIDATE=never"
    if _binary() is None:
        return "terraform is not installed"
    if not _needs_download(directory) or _mirror_configured():
        return ""
    if reason := _registry_unreachable():
        return f"providers and modules cannot be fetched: {reason} and no provider mirror is set"
    return ""


def _diagnostics(stdout: str, directory: Path) -> list[tuple[str, int, str]]:
    data = json.loads(stdout or "{}")
    found = []
    for d in data.get("diagnostics", []):
        rng = d.get("range") or {}
        file = str(directory / rng["filename"]) if rng.get("filename") else str(directory)
        line = int((rng.get("start") or {}).get("line", 0))
        detail = f": {d['detail']}" if d.get("detail") else ""
        found.append((file, line, f"terraform validate {d['severity']}: {d['summary']}{detail}"))
    return [f for f in found if "warning" not in f[2]]


def first_error(text: str) -> str:
    """The first ``Error: ...`` line of terraform's output."""
    lines = [ln.strip(" │╷╵") for ln in text.splitlines()]
    return next((ln for ln in lines if ln.startswith("Error")), lines[0] if lines else "")


def validate_dir(directory: Path, scratch_root: Path) -> Outcome:
    """Terraform init + validate on a scratch copy of ``directory``."""
    if reason := _why_skip(directory):
        return Outcome(f"skipped: {reason}")
    scratch = scratch_root / directory.name
    shutil.rmtree(scratch, ignore_errors=True)
    shutil.copytree(directory, scratch)
    init = ["terraform", "init", "-backend=false", "-input=false", "-no-color"]
    result = process.run(init, cwd=scratch, check=False, timeout=300)
    if result.returncode != 0:
        text = result.stderr + result.stdout
        if _DOWNLOAD_ERRORS.search(text):
            reason = first_error(text)
            return Outcome(f"skipped: terraform init could not fetch dependencies ({reason})")
        return Outcome(
            "failed", [(str(directory), 0, f"terraform init failed: {first_error(text)}")]
        )
    check = process.run(["terraform", "validate", "-json", "-no-color"], cwd=scratch, check=False)
    diagnostics = _diagnostics(check.stdout, directory)
    return Outcome("passed" if not diagnostics else "failed", diagnostics)
