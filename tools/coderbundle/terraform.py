"""terraform fmt, init, validate and plan, as pipeline steps; the offline toolchain they run with.

``toolchain(settings)`` finds the terraform binary (``[terraform] binary``),
and when a provider or module mirror is configured writes a CLI
configuration and serves the module mirror on 127.0.0.1 (``mirrors.py``), so
``terraform init`` needs no network.  ``validate_dir`` then runs ``init`` +
``validate -json`` on a scratch copy of a rendered template.  Without
mirrors it runs where the registries answer, and otherwise reports
``skipped: <reason>`` -- never a silent pass; with ``validate = "always"``
(``CODERBUNDLE_TERRAFORM_VALIDATE=always``, as in CI) a skip is a failure.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import re
import shutil
import socket
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from coderbundle import mirrors, process
from coderbundle.errors import CommandFailed

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Mapping, Sequence

    from coderbundle.settings import Settings

__all__ = [
    "Outcome",
    "Toolchain",
    "fingerprint",
    "fmt_check",
    "init_dir",
    "plan_json",
    "toolchain",
    "validate_dir",
]

REGISTRIES = ("registry.terraform.io", "registry.coder.com")
INIT_TIMEOUT = 300
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


@dataclass(frozen=True)
class Toolchain:
    """The terraform a run uses: binary, environment, mode, and what it is made of."""

    binary: str | None
    env: dict[str, str]
    mode: str
    offline: bool
    summary: str
    # Keys the .terraform that init_dir keeps: a changed binary or mirror content starts afresh.
    key: str = ""


@functools.cache
def _version(binary: str) -> str:
    done = process.run([binary, "version", "-json"], check=False, timeout=30)
    try:
        return str(json.loads(done.stdout)["terraform_version"])
    except (ValueError, KeyError, TypeError):
        return "unknown version"


def _summary(binary: str | None, settings: Settings) -> str:
    if binary is None:
        return "terraform not installed"
    parts = [f"terraform {_version(binary)}"]
    if provider_mirror := settings.terraform.provider_mirror:
        base = Path(provider_mirror) / "registry.terraform.io"
        infos = base.glob(f"*/*/*/*/{mirrors.BUILDINFO}")
        addresses = {"/".join(i.relative_to(base).parts[:2]) for i in infos}
        # The newest version of each: what terraform installs for a `>=` constraint.
        for address in sorted(addresses):
            found = mirrors.provenance(Path(provider_mirror), address)
            if found is not None:
                parts.append(f"{found.address} {found.version} {found.kind}")
    if module_mirror := settings.terraform.module_mirror:
        parts.append(mirrors.describe_modules(Path(module_mirror)))
    return "; ".join(parts)


def _mirror_key(binary: str | None, provider_mirror: Path | None, module_mirror: Path | None) -> str:
    """What ``init_dir``'s kept ``.terraform`` depends on: the binary and both mirrors' content."""
    parts = [binary or "", *(mirrors.tree_digest(m) if m else "" for m in (provider_mirror, module_mirror))]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()


@contextlib.contextmanager
def toolchain(settings: Settings) -> Iterator[Toolchain]:
    """The terraform to run and its environment; serves the module mirror while open."""
    tf = settings.terraform
    binary = shutil.which(tf.binary)
    provider_mirror = Path(tf.provider_mirror) if tf.provider_mirror else None
    module_mirror = Path(tf.module_mirror) if tf.module_mirror else None
    env = {"TF_IN_AUTOMATION": "1", "CHECKPOINT_DISABLE": "1"}
    summary = _summary(binary, settings)
    key = _mirror_key(binary, provider_mirror, module_mirror)
    # One configuration per open toolchain: two runs in one checkout (a test beside a validate,
    # the plan matrix's toolchains) each name their own mirrors and registry port.
    folder = settings.build_dir / ".cache" / "terraform"
    folder.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix="cli-", suffix=".tfrc", dir=folder)
    os.close(fd)
    config_path = Path(name)
    # No plugin cache: terraform links unpacked mirror packages in place, and a cache would
    # keep a stale copy when the mirror is rebuilt.
    plugin_cache = None
    try:
        with contextlib.ExitStack() as stack:
            registry = stack.enter_context(mirrors.serve_modules(module_mirror)) if module_mirror else None
            if provider_mirror is not None or registry is not None:
                written = mirrors.cli_config(
                    config_path, provider_mirror=provider_mirror, registry=registry, plugin_cache=plugin_cache
                )
                env["TF_CLI_CONFIG_FILE"] = str(written)
            yield Toolchain(binary, env, tf.validate, provider_mirror is not None, summary, key)
    finally:
        config_path.unlink(missing_ok=True)


def fingerprint(settings: Settings) -> str:
    """Identify the toolchain (binary, mirrors) without running anything: part of cache keys."""
    binary = shutil.which(settings.terraform.binary)
    if binary is None:
        return "absent"
    parts = [binary]
    if Path(binary).exists():
        st = Path(binary).stat()
        parts.append(f"{binary}:{st.st_size}:{int(st.st_mtime)}")
    mirrored = (settings.terraform.provider_mirror, settings.terraform.module_mirror)
    parts += [f"{path}:{mirrors.tree_digest(Path(path))}" for path in mirrored if path]
    parts += [settings.terraform.validate, os.environ.get("TF_CLI_CONFIG_FILE", "")]
    return "|".join(parts)


def fmt_check(dirs: Sequence[Path], binary: str | None) -> list[tuple[Path, int, str]]:
    """Files that ``terraform fmt`` would change, with the first line that differs."""
    if not dirs or binary is None:
        return []
    base = Path(os.path.commonpath([d.resolve() for d in dirs]))
    if len(dirs) == 1:
        base = base.parent
    targets = [str(d.resolve().relative_to(base)) for d in dirs]
    argv = [binary, "fmt", "-check", "-diff", "-no-color", "-recursive", *targets]
    result = process.run(argv, cwd=base, check=False, timeout=120)
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
    text = "\n".join(p.read_text(encoding="utf-8", errors="replace") for p in directory.glob("*.tf"))
    return bool(re.search(r"required_providers|^\s*source\s*=", text, re.MULTILINE)) or bool(
        re.search(r'^(resource|data)\s+"(?!terraform_)', text, re.MULTILINE)
    )


def _user_mirror_configured() -> bool:
    if os.environ.get("TF_PLUGIN_CACHE_DIR"):
        return True
    config = Path(os.environ.get("TF_CLI_CONFIG_FILE", Path.home() / ".terraformrc"))
    try:
        text = config.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return False
    return "provider_installation" in text or "plugin_cache_dir" in text


@functools.cache
def _registry_unreachable() -> str:
    """Why the registries cannot be reached, or "" when both answer."""
    for host in REGISTRIES:
        try:
            socket.create_connection((host, 443), timeout=2).close()
        except OSError as exc:
            return f"{host} unreachable ({exc.strerror or exc})"
    return ""


def why_skip(directory: Path, tc: Toolchain) -> str:
    """Why terraform validate cannot run here, or "" when it can."""
    if tc.mode == "never":
        return "disabled by CODERBUNDLE_TERRAFORM_VALIDATE=never"
    if tc.binary is None:
        return "terraform is not installed (build it with `nox -s tools`, or set CODERBUNDLE_TERRAFORM)"
    if tc.offline or not _needs_download(directory) or _user_mirror_configured():
        return ""
    if reason := _registry_unreachable():
        return (
            f"providers and modules cannot be fetched: {reason} and no provider mirror is set "
            "(`nox -s tools` builds one; see docs/offline.md)"
        )
    return ""


def _diagnostics(stdout: str, directory: Path) -> list[tuple[str, int, str]]:
    try:
        data = json.loads(stdout or "{}")
    except ValueError:
        return [(str(directory), 0, f"terraform validate printed no JSON: {first_error(stdout)}")]
    found = []
    for d in data.get("diagnostics", []):
        if d.get("severity") != "error":
            continue
        rng = d.get("range") or {}
        file = str(directory / rng["filename"]) if rng.get("filename") else str(directory)
        line = int((rng.get("start") or {}).get("line", 0))
        detail = f": {' '.join(str(d['detail']).split())}" if d.get("detail") else ""
        found.append((file, line, f"terraform validate error: {d['summary']}{detail}"))
    return found


# Terraform and the providers are short-lived Go processes in a plan: collecting garbage at
# 400 % heap growth instead of Go's 100 % cut a template's plan time by about a third
# (nodejs, 24 plans: 26.7 s -> 18.3 s on 2 cores).  GOGC in the environment wins.
GO_GC = "400"


def plan_json(  # noqa: PLR0913 - one plan's inputs
    tc: Toolchain,
    cwd: Path,
    out: Path,
    *,
    env: Mapping[str, str],
    variables: Iterable[tuple[str, str]] = (),
    state: Path | None = None,
    secrets: Sequence[str] = (),
    timeout: float = 300,
) -> dict[str, Any] | str:
    """``terraform plan -refresh=false`` in ``cwd`` (initialized), then ``show -json`` of it.

    The plan as JSON, or terraform's first error line.  ``out`` (the plan file) is removed
    afterwards; ``secrets`` are redacted from anything logged.
    """
    full_env = {"GOGC": os.environ.get("GOGC", GO_GC), **tc.env, **env}
    argv = [str(tc.binary), "plan", "-input=false", "-no-color", "-lock=false", "-refresh=false"]
    argv += [*([f"-state={state}"] if state else []), f"-out={out}"]
    argv += [f"-var={name}={value}" for name, value in variables]
    run = functools.partial(
        process.run, cwd=cwd, check=False, env=full_env, secrets=list(secrets), timeout=timeout
    )
    try:
        done = run(argv)
        if done.returncode != 0:
            return first_error(done.stderr + done.stdout)
        shown = run([str(tc.binary), "show", "-json", str(out)])
    finally:
        out.unlink(missing_ok=True)
    try:
        data: dict[str, Any] = json.loads(shown.stdout)
    except ValueError:
        return f"terraform show printed no JSON: {first_error(shown.stderr)}"
    return data


def first_error(text: str) -> str:
    """The first ``Error: ...`` line of terraform's output."""
    lines = [ln.strip(" │╷╵") for ln in text.splitlines()]
    return next((ln for ln in lines if ln.startswith("Error")), lines[0] if lines else "")


KEY_FILE = "coderbundle-toolchain.key"


def init_dir(directory: Path, scratch: Path, tc: Toolchain) -> Outcome | None:
    """Copy ``directory`` to ``scratch`` (keeping its .terraform) and run init; an Outcome if it failed.

    The kept ``.terraform`` is keyed by ``tc.key``: after a change of binary or of either
    mirror's content it is removed, so init installs the modules the mirror serves now.
    """
    scratch.mkdir(parents=True, exist_ok=True)
    stamp = scratch / ".terraform" / KEY_FILE
    if (scratch / ".terraform").exists() and (
        not stamp.is_file() or stamp.read_text(encoding="utf-8") != tc.key
    ):
        shutil.rmtree(scratch / ".terraform")
    # .terraform is kept (its module and provider links make init quick); the lock file is
    # not: a rebuilt mirror (a new stand-in, a new provider build) must not fail the hashes.
    for old in scratch.iterdir():
        if old.name != ".terraform":
            shutil.rmtree(old) if old.is_dir() else old.unlink()
    for path in directory.iterdir():
        if path.is_file():
            shutil.copy2(path, scratch / path.name)
    init = [str(tc.binary), "init", "-backend=false", "-input=false", "-no-color"]
    # init installs every provider from the mirror even when the caller reattaches one
    # (TF_REATTACH_PROVIDERS): under it terraform leaves that provider out of the lock file.
    env = {**tc.env, "TF_REATTACH_PROVIDERS": ""}
    result = process.run(init, cwd=scratch, check=False, env=env, timeout=INIT_TIMEOUT)
    if result.returncode == 0:
        if stamp.parent.is_dir():
            stamp.write_text(tc.key, encoding="utf-8")
        return None
    text = result.stderr + result.stdout
    if _DOWNLOAD_ERRORS.search(text) and not tc.offline:
        return Outcome(f"skipped: terraform init could not fetch dependencies ({first_error(text)})")
    where = "; the mirrors lack something the template needs" if tc.offline else ""
    return Outcome("failed", [(str(directory), 0, f"terraform init failed: {first_error(text)}{where}")])


def validate_dir(directory: Path, scratch_root: Path, tc: Toolchain) -> Outcome:
    """Terraform init + validate on a scratch copy of ``directory``."""
    if reason := why_skip(directory, tc):
        return Outcome(f"skipped: {reason}")
    scratch = scratch_root / directory.name
    if failed := init_dir(directory, scratch, tc):
        return failed
    argv = [str(tc.binary), "validate", "-json", "-no-color"]
    check = process.run(argv, cwd=scratch, check=False, env=tc.env, timeout=INIT_TIMEOUT)
    diagnostics = _diagnostics(check.stdout, directory)
    return Outcome("passed" if not diagnostics else "failed", diagnostics)
