"""Plan each rendered template's publish: archive, variables, content hash, version.

The plan stage of publishing.  For every template it builds the exact
archive ``coder templates push`` uploads (deterministic: sorted, zero
mtimes and owners), the variables it passes (the image pinned by digest
from ``build/images.json``), a content hash over both plus secret
digests, and a version name ``<git sha>-<hash8>``.  :func:`write_artifacts`
writes ``dist/templates/<name>-<version>.tar`` and ``dist/publish-plan.json``.
Nothing here talks to Coder; :mod:`coderbundle.publish` pushes the plans.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import tarfile
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import yaml

from coderbundle import __version__, files, process
from coderbundle.errors import EnvError, PublishError
from coderbundle.images import read_manifest
from coderbundle.settings import redact_url

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from pathlib import Path

    from coderbundle.render import RenderedTemplate
    from coderbundle.settings import Settings

__all__ = [
    "ARCHIVE_LIMIT",
    "PLAN_FILE",
    "Plan",
    "annotate_plan",
    "archive_directory",
    "git_short_sha",
    "plan_templates",
    "read_image_manifest",
    "wanted_settings",
    "write_artifacts",
]

ARCHIVE_LIMIT = 1 << 20  # coderd TemplateArchiveLimit
PLAN_FILE = "publish-plan.json"
_UNIT_MS = {"h": 3_600_000, "m": 60_000, "s": 1000}
_SKIPPED_NAMES = re.compile(r"(\.tfstate|\.tfstate\.backup|^terraform\.tfvars|\.auto\.tfvars.*)$")


@dataclass(frozen=True)
class Plan:
    """What publishing one template means: archive, variables, hash, version."""

    name: str
    directory: Path
    archive: bytes
    version: str
    content_hash: str
    variables: dict[str, str]
    secrets: dict[str, str | None]
    image_source: str
    wanted: dict[str, Any]
    image: str = ""  # the image workspaces run: the pinned reference or the template default
    image_pinned: bool = True  # False: nothing was built, pushed or pinned for it
    accept: tuple[str, ...] = ()  # upgrade-gate findings the template accepts (template.toml)

    @property
    def marker(self) -> str:
        """The tag in the version message that change detection looks for."""
        return f"[content:{self.content_hash[:16]}]"

    def message(self, sha: str) -> str:
        """The version message: short, traceable, carrying the marker."""
        return f"coderbundle {sha} {self.marker}"


def read_image_manifest(settings: Settings) -> dict[str, str]:
    """{image name: ``repository@sha256:…``} for the images ``build/images.json`` says were pushed."""
    return {
        name: entry["reference"]
        for name, entry in read_manifest(settings).items()
        if entry.get("pushed") and "@sha256:" in str(entry.get("reference", ""))
    }


def _skipped(rel: str) -> bool:
    """Coder's archive rules: no hidden files (but the lock file), no state or tfvars."""
    parts = rel.split("/")
    hidden = any(p.startswith(".") for p in parts) and rel != ".terraform.lock.hcl"
    return hidden or bool(_SKIPPED_NAMES.search(parts[-1]))


def archive_directory(directory: Path) -> bytes:
    """A deterministic tar of what ``coder templates push`` uploads from ``directory``."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in sorted(directory.rglob("*")):
            rel = path.relative_to(directory).as_posix()
            if _skipped(rel) or not (path.is_file() or path.is_dir()):
                continue
            info = tarfile.TarInfo(rel + "/" if path.is_dir() else rel)
            info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
            if path.is_dir():
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
                continue
            data = path.read_bytes()
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _duration_ms(value: str) -> int:
    return sum(int(n) * _UNIT_MS[u] for n, u in re.findall(r"(\d+)([hms])", value))


def _readable_ms(value: Any) -> str:
    """Milliseconds as ``4h``, ``90m``, ``168h``, ``1h30m`` (what bundle.toml says)."""
    minutes = int(value) // 60_000
    hours, rest = divmod(minutes, 60)
    return (f"{hours}h" if hours else "") + (f"{rest}m" if rest or not hours else "")


def _readme_meta(directory: Path) -> dict[str, Any]:
    text = files.read_text(directory / "README.md", error=PublishError)
    match = re.match(r"^---\n(.*?)\n---\n", text, re.DOTALL)
    try:
        meta = yaml.safe_load(match.group(1)) if match else None
    except (yaml.YAMLError, RecursionError):
        meta = None
    return meta if isinstance(meta, dict) else {}


def wanted_settings(directory: Path, settings: Settings) -> dict[str, Any]:
    """Template settings to bring to this state (see docs/publishing.md for the mapping)."""
    meta = _readme_meta(directory)
    inactivity = _duration_ms(settings.workspace.inactivity_timeout)
    return {
        **{k: str(meta.get(k, "")) for k in ("display_name", "description", "icon")},
        "default_ttl_ms": inactivity,
        "activity_bump_ms": inactivity,
        "time_til_dormant_autodelete_ms": _duration_ms(settings.workspace.dormancy_deletion),
    }


def git_short_sha(root: Path) -> str:
    """The commit being published, or ``nogit`` outside a repository."""
    sha = process.git(root, "rev-parse", "--short", "HEAD")
    return sha if sha.isalnum() else "nogit"


def _tfvars(directory: Path) -> bytes:
    """Variable files the CLI sends as values though they stay out of the archive."""
    files = sorted(p for p in directory.iterdir() if re.search(r"^terraform\.tfvars|\.auto\.tfvars", p.name))
    return b"".join(p.name.encode() + b"\0" + p.read_bytes() for p in files if p.is_file())


def _declares(directory: Path, variable: str) -> bool:
    """Whether a rendered template declares ``variable`` (Coder refuses values for undeclared ones)."""
    pattern = re.compile(rf'^variable\s+"{re.escape(variable)}"\s*{{', re.MULTILINE)
    return any(pattern.search(p.read_text(encoding="utf-8")) for p in sorted(directory.glob("*.tf")))


def _content_hash(archive: bytes, variables: Mapping[str, str], secrets: Mapping[str, str | None]) -> str:
    h = hashlib.sha256(archive)
    for key, value in sorted(variables.items()):
        h.update(f"\0var {key}={value}".encode())
    for key, secret in sorted(secrets.items()):
        digest = hashlib.sha256(secret.encode()).hexdigest() if secret is not None else "unset"
        h.update(f"\0secret {key}={digest}".encode())
    return h.hexdigest()


def _plan_one(
    r: RenderedTemplate, settings: Settings, sha: str, images: Mapping[str, str], env: Mapping[str, str]
) -> Plan:
    archive = archive_directory(r.path)
    if len(archive) > ARCHIVE_LIMIT:
        msg = f"{r.path}: archive is {len(archive)} bytes; Coder accepts at most {ARCHIVE_LIMIT}"
        raise PublishError(msg)
    image = r.template.settings.image
    variables = {"namespace": settings.workspace.namespace}
    if _declares(r.path, "subdomain_apps"):  # every bundle template, via _shared/variables.tf.j2
        variables["subdomain_apps"] = "true" if settings.subdomain_apps else "false"
    pinned = True
    if image in images:
        variables["image"] = images[image]
        source = "build/images.json"
    elif image in settings.pinned_images:
        variables["image"] = settings.pinned_images[image]
        source = "bundle.toml [images.pinned]"
    else:
        pinned = False
        source = f"template default (no pushed image {image!r} in build/images.json)"
    secrets = {k: env.get(spec["env"]) or None for k, spec in r.template.settings.variables.items()}
    digest = _content_hash(archive + _tfvars(r.path), variables, secrets)
    wanted = wanted_settings(r.path, settings)
    return Plan(
        r.name,
        r.path,
        archive,
        f"{sha}-{digest[:8]}",
        digest,
        variables,
        secrets,
        source,
        wanted,
        image=variables.get("image") or _image_default(r.path),
        image_pinned=pinned,
        accept=r.template.settings.accept,
    )


def _image_default(directory: Path) -> str:
    """The default of the rendered ``image`` variable (what workspaces run without a pinned one)."""
    pattern = re.compile(r'^variable\s+"image"\s*\{.*?^\s*default\s*=\s*"([^"]*)"', re.MULTILINE | re.DOTALL)
    for path in sorted(directory.glob("*.tf")):
        if match := pattern.search(path.read_text(encoding="utf-8")):
            return match.group(1)
    return "(none)"


def plan_templates(
    rendered: Sequence[RenderedTemplate],
    settings: Settings,
    *,
    images: Mapping[str, str],
    env: Mapping[str, str],
) -> tuple[str, list[Plan]]:
    """Plan every template; return the git sha and the plans (nothing is pushed)."""
    sha = git_short_sha(settings.root)
    return sha, [_plan_one(r, settings, sha, images, env) for r in rendered]


def write_artifacts(
    plans: Sequence[Plan], sha: str, settings: Settings, *, checks: Mapping[str, Any] | None = None
) -> Path:
    """Write ``dist/templates/<name>-<version>.tar`` and ``dist/publish-plan.json``, all or nothing.

    The new archives (and the kept archives of templates not in this run) and
    the plan are written to a staging folder first; only when the set is
    complete is it swapped in with renames.  On any failure (a full disk) the
    old archives and plan stay as they were and the staging folder is removed.
    ``checks`` is what validation ran, with which terraform (``Report.checks_json``).
    """
    dist = files.ensure_dir(settings.dist_dir)
    out = dist / "templates"
    if out.exists() and not out.is_dir():
        msg = f"{out}: is a file where coderbundle needs a directory; move or remove it"
        raise EnvError(msg)
    staging = dist / f".staging-{os.getpid()}"
    old = dist / f".old-{os.getpid()}"
    names = {p.name for p in plans}
    entries = []
    try:
        shutil.rmtree(staging, ignore_errors=True)
        (staging / "templates").mkdir(parents=True)
        if out.is_dir():  # archives of templates this run does not publish stay
            for kept in out.iterdir():
                if kept.is_file() and kept.name.rsplit("-", 2)[0] not in names:
                    shutil.copy2(kept, staging / "templates" / kept.name)
        for plan in plans:
            tar = out / f"{plan.name}-{plan.version}.tar"
            (staging / "templates" / tar.name).write_bytes(plan.archive)
            entries.append(_plan_entry(plan, sha, tar.relative_to(settings.root)))
        doc = {
            "generated_by": f"coderbundle {__version__}",
            "git_sha": sha,
            "coder_url": redact_url(settings.coder_url) or None,
            "organization": settings.coder_organization or "(default)",
            "templates": entries,
            "checks": dict(checks) if checks is not None else None,
        }
        (staging / PLAN_FILE).write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        if out.exists():
            out.rename(old)
        (staging / "templates").rename(out)
        (staging / PLAN_FILE).replace(dist / PLAN_FILE)
    except OSError as exc:
        if old.exists() and not out.exists():
            old.rename(out)
        msg = f"{dist}: cannot write the archives and plan ({exc.strerror or exc}); free space or fix "
        msg += "permissions, then run again (the previous dist/ is unchanged)"
        raise EnvError(msg) from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)
    return dist / PLAN_FILE


def annotate_plan(plan_file: Path, results: Mapping[str, Mapping[str, Any]]) -> None:
    """Add what the run found (status, upgrade-gate findings) to each template's plan entry."""
    doc = json.loads(plan_file.read_text(encoding="utf-8"))
    for entry in doc["templates"]:
        entry.update(results.get(entry["name"], {}))
    tmp = plan_file.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    tmp.replace(plan_file)


def _plan_entry(plan: Plan, sha: str, tar: Path) -> dict[str, Any]:
    shown: dict[str, str] = dict(plan.variables)
    shown.update({k: "set" if v is not None else "unset" for k, v in plan.secrets.items()})
    return {
        "name": plan.name,
        "version": plan.version,
        "message": plan.message(sha),
        "content_hash": plan.content_hash,
        "archive": tar.as_posix(),
        "archive_bytes": len(plan.archive),
        "archive_sha256": hashlib.sha256(plan.archive).hexdigest(),
        "image": {
            "value": plan.variables.get("image"),
            "effective": plan.image,
            "pinned": plan.image_pinned,
            "source": plan.image_source,
        },
        "variables": shown,
        "settings": plan.wanted,
        # The same durations as people write them (the API's fields above are milliseconds).
        "settings_readable": {
            k.removesuffix("_ms"): _readable_ms(v) for k, v in plan.wanted.items() if k.endswith("_ms")
        },
    }
