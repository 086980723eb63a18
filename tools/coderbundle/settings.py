"""Bundle settings: ``bundle.toml`` at the repository root, overridden by the environment.

``load_settings`` is the only reader of ``bundle.toml`` and of the
``CODERBUNDLE_*``/``CODER_*`` environment; every step receives the frozen
``Settings`` it returns, never ``os.environ``.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from coderbundle.errors import SettingsError

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["BUNDLE_FILE", "Settings", "WorkspaceDefaults", "find_root", "load_settings"]

BUNDLE_FILE = "bundle.toml"
_DURATION = re.compile(r"^(\d+h)?(\d+m)?(\d+s)?$")
_QUANTITY = re.compile(r"^\d+(\.\d+)?(m|Ki|Mi|Gi|Ti)?$")


@dataclass(frozen=True)
class WorkspaceDefaults:
    """What every template offers unless the developer picks otherwise."""

    cpu_request: str = "500m"
    memory_request: str = "1Gi"
    home_disk_size: str = "50Gi"
    inactivity_timeout: str = "4h"
    dormancy_deletion: str = "168h"
    namespace: str = "coder-workspaces"

    @property
    def home_disk_gib(self) -> int:
        """The home volume size as whole GiB (the unit of the disk parameter)."""
        return int(self.home_disk_size.removesuffix("Gi"))


@dataclass(frozen=True)
class Settings:
    """Everything the pipeline steps read from configuration."""

    root: Path
    workspace: WorkspaceDefaults = field(default_factory=WorkspaceDefaults)
    registry: str = ""
    repository_prefix: str = "coderbundle"
    coder_url: str = ""
    coder_session_token: str = field(default="", repr=False)
    coder_organization: str = ""
    coder_executable: str = "coder"
    publish_concurrency: int = 3
    extra_ca_cert: str = ""
    upstream_image: str = ""
    download_source: str = ""

    @property
    def templates_dir(self) -> Path:
        """Where template sources live."""
        return self.root / "templates"

    @property
    def build_dir(self) -> Path:
        """Generated output; never committed."""
        return self.root / "build"

    @property
    def dist_dir(self) -> Path:
        """Publish artefacts (archives, the publish plan)."""
        return self.root / "dist"

    @property
    def images_dir(self) -> Path:
        """Workspace image sources."""
        return self.root / "images"


def find_root(start: Path) -> Path:
    """Return the nearest directory at or above ``start`` holding ``bundle.toml``."""
    for candidate in (start, *start.parents):
        if (candidate / BUNDLE_FILE).is_file():
            return candidate
    msg = f"{start}: no {BUNDLE_FILE} here or above; run coderbundle from the bundle repository"
    raise SettingsError(msg)


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        msg = f"{path}: file not found; create it (see README.md)"
        raise SettingsError(msg) from None
    except tomllib.TOMLDecodeError as exc:
        msg = f"{path}: invalid TOML: {exc}; fix the syntax"
        raise SettingsError(msg) from None


def _chart_workspace_values(path: Path) -> dict[str, str]:
    """Read ``coder.workspaces.*`` from a chart values file (the seed's keys)."""
    try:
        values = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except OSError as exc:
        msg = f"{path}: cannot read chart values ({exc.strerror}); fix workspace.values_file"
        raise SettingsError(msg) from None
    except yaml.YAMLError as exc:
        msg = f"{path}: invalid YAML: {exc}; fix the values file"
        raise SettingsError(msg) from None
    ws = (values.get("coder") or {}).get("workspaces") or {}
    requests = (ws.get("defaultResources") or {}).get("requests") or {}
    found = {
        "cpu_request": requests.get("cpu"),
        "memory_request": requests.get("memory"),
        "home_disk_size": (ws.get("storage") or {}).get("size"),
        "inactivity_timeout": ws.get("inactivityTimeout"),
        "dormancy_deletion": ws.get("ttl"),
    }
    return {k: str(v) for k, v in found.items() if v is not None}


def _workspace_defaults(root: Path, table: Mapping[str, Any], source: Path) -> WorkspaceDefaults:
    table = dict(table)
    values_file = table.pop("values_file", "")
    unknown = set(table) - set(WorkspaceDefaults.__dataclass_fields__)
    if unknown:
        msg = f"{source}: unknown key workspace.{min(unknown)}; see README.md for the keys"
        raise SettingsError(msg)
    merged = {k: str(v) for k, v in table.items()}
    if values_file:
        merged.update(_chart_workspace_values(root / values_file))
    defaults = WorkspaceDefaults(**merged)
    _check_workspace(defaults, source)
    return defaults


def _check_workspace(ws: WorkspaceDefaults, source: Path) -> None:
    for key in ("cpu_request", "memory_request", "home_disk_size"):
        if not _QUANTITY.match(getattr(ws, key)):
            msg = f"{source}: workspace.{key} = {getattr(ws, key)!r} is not a Kubernetes quantity"
            raise SettingsError(msg)
    if not ws.home_disk_size.endswith("Gi"):
        msg = f"{source}: workspace.home_disk_size must be in Gi (for example 50Gi)"
        raise SettingsError(msg)
    for key in ("inactivity_timeout", "dormancy_deletion"):
        value = getattr(ws, key)
        if not value or not _DURATION.match(value):
            msg = f"{source}: workspace.{key} = {value!r} is not a duration like 4h or 90m"
            raise SettingsError(msg)


def load_settings(root: Path, env: Mapping[str, str]) -> Settings:
    """Load ``root/bundle.toml`` and apply environment overrides."""
    source = root / BUNDLE_FILE
    data = _read_toml(source)
    registry = data.get("registry", {})
    coder = data.get("coder", {})
    images = data.get("images", {})
    return Settings(
        root=root,
        workspace=_workspace_defaults(root, data.get("workspace", {}), source),
        registry=env.get("CODERBUNDLE_REGISTRY", registry.get("host", "")),
        repository_prefix=env.get(
            "CODERBUNDLE_REPOSITORY_PREFIX", registry.get("prefix", "coderbundle")
        ),
        coder_url=env.get("CODER_URL", "").rstrip("/"),
        coder_session_token=env.get("CODER_SESSION_TOKEN", ""),
        coder_organization=env.get("CODER_ORGANIZATION", coder.get("organization", "")),
        coder_executable=env.get("CODERBUNDLE_CODER", coder.get("executable", "coder")),
        publish_concurrency=int(coder.get("concurrency", 3)),
        extra_ca_cert=env.get("CODERBUNDLE_EXTRA_CA_CERT", images.get("extra_ca_cert", "")),
        upstream_image=env.get("CODERBUNDLE_UPSTREAM_IMAGE", images.get("upstream_image", "")),
        download_source=env.get("CODERBUNDLE_DOWNLOAD_SOURCE", images.get("download_source", "")),
    )
