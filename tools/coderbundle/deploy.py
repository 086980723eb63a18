"""Deploy the Coder server chart (``chart/``): ``helm upgrade --install``, or render offline.

``deploy_chart`` stands alone in the pipeline.  With ``dry_run`` it renders the
chart with the Helm engine embedded in ``helm-python-sdk`` (no binary, no
cluster) and validates every manifest with ``kubernetes-validate`` for the
oldest and newest Kubernetes release that package ships; otherwise it runs the
``helm`` binary through ``process.run`` after the same offline checks.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import yaml

from coderbundle import process
from coderbundle.errors import DeployEnvironmentError, DeployError
from coderbundle.files import decode, why_unreadable

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence

    from coderbundle.settings import Settings

__all__ = [
    "HELM_TIMEOUT",
    "KUBE_VERSIONS",
    "DeployResult",
    "Manifest",
    "deploy_chart",
    "find_kubeconfig",
    "load_values",
    "render_chart",
    "rollback_flag",
    "secret_values",
    "validate_manifests",
]

log = logging.getLogger(__name__)

# The oldest and newest releases kubernetes-validate 1.37 carries schemas for.
KUBE_VERSIONS = ("1.25.0", "1.37.0")
# Long enough for database migrations: --atomic rolls back only after this.
HELM_TIMEOUT = "30m"
# Custom resources have no schema in kubernetes-validate; chart/ci/crd-schemas.json covers them.
CRD_SCHEMAS = "ci/crd-schemas.json"
_EXEC_ERROR = re.compile(r"^.*execution error at \([^)]*\): ")
_INSTALL_HINT = "install helm-python-sdk and kubernetes-validate (the `test` dependency group)"


@dataclass(frozen=True)
class Manifest:
    """One rendered Kubernetes object and the template it came from."""

    template: str
    body: dict[str, Any]

    @property
    def ref(self) -> str:
        """``template: Kind/name`` for messages."""
        name = self.body.get("metadata", {}).get("name", "?")
        return f"{self.template}: {self.body.get('kind', '?')}/{name}"


@dataclass(frozen=True)
class DeployResult:
    """What a deploy did: the manifests checked and whether helm applied them."""

    manifests: tuple[Manifest, ...]
    validated_for: tuple[str, ...]
    crd_checked: tuple[str, ...]
    applied: bool


def _merge(base: dict[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Deep-merge like ``helm -f a -f b``: maps merge, everything else is replaced."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def load_values(files: Iterable[Path]) -> dict[str, Any]:
    """Read and merge values files in order; later files win."""
    merged: dict[str, Any] = {}
    for path in files:
        try:
            raw = path.read_bytes()
        except OSError as exc:
            msg = f"{path}: cannot read values file ({why_unreadable(path, exc)}); check the -f path"
            raise DeployError(msg) from None
        try:
            data = yaml.safe_load(decode(raw, path, error=DeployError)) or {}
        except yaml.YAMLError as exc:
            msg = f"{path}: invalid YAML ({exc}); fix the values file"
            raise DeployError(msg) from None
        except RecursionError:
            msg = f"{path}: invalid YAML (nested too deeply); fix the values file"
            raise DeployError(msg) from None
        if not isinstance(data, dict):
            msg = f"{path}: a values file must be a YAML mapping of chart keys"
            raise DeployError(msg)
        merged = _merge(merged, data)
    return merged


def secret_values(values: Mapping[str, Any]) -> list[str]:
    """The secrets in ``values`` (PostgreSQL URL and password, client secrets), to redact."""
    coder = values.get("coder") or {}
    found = [
        str((coder.get("database") or {}).get("url") or ""),
        str((coder.get("oidc") or {}).get("clientSecret") or ""),
        str((coder.get("gitlab") or {}).get("clientSecret") or ""),
    ]
    if found[0]:
        found.append(urlsplit(found[0]).password or "")
    return [s for s in found if s]


def _engine() -> Any:
    try:
        import helm_python  # noqa: PLC0415 - optional and heavy: only for rendering
    except ImportError:
        msg = f"the embedded Helm engine is not installed; {_INSTALL_HINT}"
        raise DeployEnvironmentError(msg) from None
    helm_python.disable_logging()
    return helm_python


def render_chart(
    chart_dir: Path, values: Mapping[str, Any], *, release: str, namespace: str
) -> list[Manifest]:
    """Check ``values`` against the chart's schema and render it offline."""
    helm = _engine()
    try:
        with helm.Chart.load(chart_dir) as chart:
            chart.validate_schema(dict(values))
            rendered = chart.render(dict(values), name=release, namespace=namespace, is_install=True)
    except helm.HelmValuesError as exc:
        detail = " ".join(str(exc).split())
        msg = f"{chart_dir}/values.schema.json: {detail}; fix the values (keys in chart/README.md)"
        raise DeployError(msg) from None
    except helm.HelmError as exc:
        detail = _EXEC_ERROR.sub("", " ".join(str(exc).split()))
        msg = f"{chart_dir}: cannot render the chart: {detail}"
        raise DeployError(msg) from None
    return _split(rendered)


def _split(rendered: Mapping[str, str]) -> list[Manifest]:
    manifests: list[Manifest] = []
    for template in sorted(rendered):
        if not template.endswith((".yaml", ".yml")):
            continue  # NOTES.txt
        manifests.extend(
            Manifest(template, doc) for doc in yaml.safe_load_all(rendered[template]) if isinstance(doc, dict)
        )
    return manifests


def _crd_problems(manifest: Manifest, schemas: Mapping[str, Any]) -> list[str]:
    import jsonschema  # noqa: PLC0415 - comes with kubernetes-validate

    schema = schemas.get(str(manifest.body.get("kind")))
    if schema is None:
        return [f"{manifest.ref}: no schema for this kind; add one to chart/{CRD_SCHEMAS}"]
    validator = jsonschema.Draft7Validator(schema)
    return [
        f"{manifest.ref}: {'/'.join(map(str, err.absolute_path)) or '.'}: {err.message}"
        for err in validator.iter_errors(manifest.body)
    ]


def validate_manifests(
    manifests: Sequence[Manifest],
    crd_schemas: Mapping[str, Any],
    versions: Sequence[str] = KUBE_VERSIONS,
) -> tuple[list[str], list[str]]:
    """Validate every manifest; return (problems, refs checked against the hand CRD schemas)."""
    try:
        import kubernetes_validate  # noqa: PLC0415 - optional: only for --dry-run
    except ImportError:
        msg = f"kubernetes-validate is not installed; {_INSTALL_HINT}"
        raise DeployEnvironmentError(msg) from None
    problems: list[str] = []
    crds: list[str] = []
    for manifest in manifests:
        if manifest.body.get("kind") in crd_schemas:
            crds.append(manifest.ref)
            problems.extend(_crd_problems(manifest, crd_schemas))
            continue
        for version in versions:
            try:
                kubernetes_validate.validate(manifest.body, version, strict=True)
            except kubernetes_validate.SchemaNotFoundError:
                problems.append(f"{manifest.ref}: no schema for Kubernetes {version}")
            except kubernetes_validate.ValidationError as exc:
                where = "/".join(map(str, exc.absolute_path)) or "."
                problems.append(f"{manifest.ref}: Kubernetes {version}: {where}: {exc.message}")
    return problems, crds


def _load_crd_schemas(chart_dir: Path) -> dict[str, Any]:
    path = chart_dir / CRD_SCHEMAS
    try:
        schemas: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        msg = f"{path}: cannot read the custom resource schemas ({exc}); restore the file"
        raise DeployError(msg) from None
    return schemas


def find_kubeconfig(env: Mapping[str, str], home: Path) -> Path | None:
    """The kubeconfig helm would use, or None inside a pod (in-cluster credentials)."""
    if env.get("KUBECONFIG"):
        return Path(env["KUBECONFIG"].split(":")[0])
    default = home / ".kube" / "config"
    if default.is_file():
        return default
    if env.get("KUBERNETES_SERVICE_HOST"):
        return None
    msg = "no kubeconfig: set KUBECONFIG or create ~/.kube/config (or use --dry-run)"
    raise DeployEnvironmentError(msg)


def rollback_flag(helm_version: str) -> str:
    """Helm 4 renamed ``--atomic`` (deprecated there, gone in 5) to ``--rollback-on-failure``."""
    major = re.match(r"v?(\d+)", helm_version.strip())
    return "--atomic" if major and int(major[1]) < 4 else "--rollback-on-failure"


def _helm_argv(
    chart_dir: Path, values_files: Sequence[Path], *, release: str, namespace: str, helm_version: str
) -> list[str]:
    argv = ["helm", "upgrade", "--install", release, str(chart_dir)]
    argv += ["--namespace", namespace, "--create-namespace"]
    argv += [rollback_flag(helm_version), "--wait", "--timeout", HELM_TIMEOUT]
    for path in values_files:
        argv += ["--values", str(path)]
    return argv


def _check_offline(
    chart_dir: Path, values: Mapping[str, Any], *, release: str, namespace: str
) -> DeployResult:
    manifests = render_chart(chart_dir, values, release=release, namespace=namespace)
    problems, crds = validate_manifests(manifests, _load_crd_schemas(chart_dir))
    if problems:
        for problem in problems:
            log.error("%s", problem)
        msg = f"{chart_dir}: {len(problems)} rendered manifest(s) are invalid: {problems[0]}"
        raise DeployError(msg)
    return DeployResult(tuple(manifests), KUBE_VERSIONS, tuple(crds), applied=False)


def deploy_chart(  # noqa: PLR0913 - keyword-only options of one command
    settings: Settings,
    *,
    values_files: Sequence[Path] = (),
    namespace: str = "code",
    release: str = "coder",
    dry_run: bool = False,
    env: Mapping[str, str],
    home: Path,
) -> DeployResult:
    """Render and validate the chart; unless ``dry_run``, install or upgrade the release."""
    chart_dir = settings.root / "chart"
    values = load_values(values_files)
    if dry_run:
        return _check_offline(chart_dir, values, release=release, namespace=namespace)
    process.which("helm", hint="install Helm 3.8+, or render offline with --dry-run")
    kubeconfig = find_kubeconfig(env, home)
    if all(importlib.util.find_spec(m) for m in ("helm_python", "kubernetes_validate")):
        result = _check_offline(chart_dir, values, release=release, namespace=namespace)
    else:
        log.warning("skipping the offline render check: %s", _INSTALL_HINT)
        result = DeployResult((), (), (), applied=False)
    helm_version = process.run(["helm", "version", "--short"]).stdout
    argv = _helm_argv(
        chart_dir, values_files, release=release, namespace=namespace, helm_version=helm_version
    )
    extra_env = {"KUBECONFIG": str(kubeconfig)} if kubeconfig else None
    process.run(argv, env=extra_env, secrets=secret_values(values), cwd=settings.root)
    return DeployResult(result.manifests, result.validated_for, result.crd_checked, applied=True)
