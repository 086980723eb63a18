"""Deploy the Coder server chart (``chart/``): ``helm upgrade --install``, or render offline.

``deploy_chart`` stands alone in the pipeline.  With ``dry_run`` it renders the
chart with the Helm engine embedded in ``helm-python-sdk`` (no binary, no
cluster) once for the oldest and once for the newest Kubernetes release that
``kubernetes-validate`` ships, validates every manifest against that release's
schema, and then checks the rules the API server enforces beyond the schema
(``check_rules``: what Kubernetes' own validation code rejects, e.g. a
``rollingUpdate`` next to ``type: Recreate``).  Otherwise it runs the ``helm``
binary through ``process.run`` after the same offline checks: never with
``--atomic``/``--rollback-on-failure`` (rolling coderd back onto a database
already migrated forward breaks it), and, for several replicas, first with one
replica and then with all of them, as Coder's upgrade guidance asks.
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

from coderbundle import chart_values, process
from coderbundle.errors import DeployEnvironmentError, DeployError, UsageError
from coderbundle.kube_rules import check_rules

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence

    from coderbundle.settings import Settings

__all__ = [
    "HELM_TIMEOUT",
    "KUBE_VERSIONS",
    "OFFLINE_API_VERSIONS",
    "DeployResult",
    "Manifest",
    "check_rules",
    "deploy_chart",
    "find_kubeconfig",
    "helm_commands",
    "load_values",
    "render_chart",
    "secret_values",
    "several_replicas",
    "upgrade_notes",
    "validate_manifests",
    "write_manifests",
]

log = logging.getLogger(__name__)

# The oldest and newest releases kubernetes-validate 1.37 carries schemas for.
KUBE_VERSIONS = ("1.25.0", "1.37.0")
# Long enough for database migrations; helm only reports failure after it, never rolls back.
HELM_TIMEOUT = "30m"
# Custom resources have no schema in kubernetes-validate; chart/ci/crd-schemas.json covers them.
CRD_SCHEMAS = "ci/crd-schemas.json"
# An offline render assumes the cluster serves the Prometheus Operator's ServiceMonitor (the
# chart renders one only where .Capabilities lists it; a live helm install asks the cluster).
OFFLINE_API_VERSIONS = ("monitoring.coreos.com/v1/ServiceMonitor",)
_EXEC_ERROR = re.compile(r"^.*execution error at \([^)]*\): ")
_F_HINT = "check the -f path"
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


def load_values(files: Iterable[Path]) -> dict[str, Any]:
    """Read and merge values files in order; later files win (``chart_values``, as publish reads them)."""
    merged: dict[str, Any] = {}
    for path in files:
        unreadable = DeployEnvironmentError  # a -f file that is not there: exit 2 (docs/errors.md)
        data = chart_values.read_values(path, error=DeployError, hint=_F_HINT, unreadable=unreadable).data
        merged = chart_values.merge(merged, data)
    return merged


def secret_values(values: Mapping[str, Any]) -> list[str]:
    """The secrets in ``values``, to redact.

    PostgreSQL URL and password, client secrets, and the original chart README's
    ``secrets`` block.
    """
    coder = values.get("coder") or {}
    url = str((coder.get("database") or {}).get("url") or "")
    found = [
        url,
        urlsplit(url).password or "" if url else "",
        str((coder.get("oidc") or {}).get("clientSecret") or ""),
        str((coder.get("gitlab") or {}).get("clientSecret") or ""),
    ]
    block = values.get("secrets") or {}
    if isinstance(block, dict):
        found += [str(v) for k, v in block.items() if "secret" in k.lower() or "password" in k.lower()]
    return [s for s in found if s]


def _engine() -> Any:
    try:
        import helm_python  # noqa: PLC0415 - optional and heavy: only for rendering
    except ImportError:
        msg = f"the embedded Helm engine is not installed; {_INSTALL_HINT}"
        raise DeployEnvironmentError(msg) from None
    helm_python.disable_logging()
    return helm_python


def _render(chart: Any, values: dict[str, Any], opts: dict[str, Any]) -> dict[str, str]:
    """``Chart.render`` plus what ``helm template --kube-version/--api-versions`` set.

    helm-python-sdk's ``render`` does not expose those two options; its native call takes
    them in the same options object, so only a Kubernetes version uses that call.
    """
    if "kube_version" not in opts and "api_versions" not in opts:
        return dict(chart.render(values, **opts))
    from helm_python import _native  # noqa: PLC0415 - see the docstring

    rendered: dict[str, str] = json.loads(
        _native.call_string("helm_render", chart._raw(), json.dumps(values), json.dumps(opts))  # noqa: SLF001
    )
    return rendered


def render_chart(  # noqa: PLR0913 - keyword-only options of one render
    chart_dir: Path,
    values: Mapping[str, Any],
    *,
    release: str,
    namespace: str,
    kube_version: str | None = None,
    api_versions: Sequence[str] = (),
) -> list[Manifest]:
    """Check ``values`` against the chart's schema and render it offline.

    ``kube_version`` (e.g. ``1.25.0``) and ``api_versions`` set ``.Capabilities`` like
    ``helm template --kube-version --api-versions``; by default the engine's own.
    """
    helm = _engine()
    opts: dict[str, Any] = {"name": release, "namespace": namespace, "is_install": True}
    if kube_version:
        opts["kube_version"] = f"v{kube_version.removeprefix('v')}"
    if api_versions:
        opts["api_versions"] = list(api_versions)
    try:
        with helm.Chart.load(chart_dir) as chart:
            chart.validate_schema(dict(values))
            rendered = _render(chart, dict(values), opts)
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


def write_manifests(manifests: Sequence[Manifest], folder: Path) -> list[Path]:
    """Write each template's manifests to ``folder/<template path>`` like ``helm template --output-dir``."""
    by_template: dict[str, list[dict[str, Any]]] = {}
    for manifest in manifests:
        by_template.setdefault(manifest.template, []).append(manifest.body)
    written: list[Path] = []
    for template, bodies in sorted(by_template.items()):
        path = folder / template
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(yaml.safe_dump_all(bodies, sort_keys=False), encoding="utf-8")
        except OSError as exc:
            msg = f"{path}: cannot write the rendered manifests ({exc.strerror}); check --output-dir"
            raise DeployError(msg) from None
        written.append(path)
    return written


def several_replicas(values: Mapping[str, Any]) -> bool:
    """True when the values run more than one coderd replica (or an HPA)."""
    coder = values.get("coder") or {}
    autoscaling = values.get("autoscaling") or {}
    return int(coder.get("replicaCount") or 1) > 1 or bool(autoscaling.get("enabled"))


def helm_commands(
    chart_dir: Path, values_files: Sequence[Path], *, release: str, namespace: str, scale_down_first: bool
) -> list[list[str]]:
    """The ``helm upgrade --install`` runs of one deploy, in order.

    No ``--atomic``/``--rollback-on-failure``: coderd migrates the database forward at start,
    and a rollback would start the old coderd on the migrated database. With
    ``scale_down_first`` (several replicas and an existing release), the first run upgrades
    with one replica and no HPA, so a single new coderd migrates while no other version runs;
    the second scales back to the values' replicas.
    """
    base = ["helm", "upgrade", "--install", release, str(chart_dir)]
    base += ["--namespace", namespace, "--create-namespace", "--wait", "--timeout", HELM_TIMEOUT]
    for path in values_files:
        base += ["--values", str(path)]
    if not scale_down_first:
        return [base]
    return [[*base, "--set", "coder.replicaCount=1", "--set", "autoscaling.enabled=false"], base]


def _check_offline(
    chart_dir: Path, values: Mapping[str, Any], *, release: str, namespace: str
) -> DeployResult:
    """Render, validate and check the chart once per Kubernetes version.

    ``.Capabilities`` decide what is rendered; each render is validated against that
    version's schema, then checked for the rules the schema misses.
    """
    crd_schemas = _load_crd_schemas(chart_dir)
    problems: list[str] = []
    crds: list[str] = []
    manifests: list[Manifest] = []
    for version in KUBE_VERSIONS:
        rendered = render_chart(
            chart_dir,
            values,
            release=release,
            namespace=namespace,
            kube_version=version,
            api_versions=OFFLINE_API_VERSIONS,
        )
        found, checked = validate_manifests(rendered, crd_schemas, (version,))
        problems += [p for p in found + check_rules(rendered) if p not in problems]
        crds += [ref for ref in checked if ref not in crds]
        manifests = rendered
    if problems:
        for problem in problems:
            log.error("%s", problem)
        msg = f"{chart_dir}: {len(problems)} rendered manifest problem(s): {problems[0]}"
        raise DeployError(msg)
    return DeployResult(tuple(manifests), KUBE_VERSIONS, tuple(crds), applied=False)


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(n) for n in re.findall(r"\d+", text)[:3])


def upgrade_notes(changelog: str, installed: str, target: str) -> list[str]:
    """The ``### Upgrade notes`` items of chart/CHANGELOG.md after ``installed``, up to ``target``."""
    notes: list[str] = []
    applies = in_notes = False
    for line in changelog.splitlines():
        if line.startswith("## "):
            applies = _version(installed) < _version(line) <= _version(target)
            in_notes = False
        elif line.startswith("### "):
            in_notes = applies and line.strip() == "### Upgrade notes"
        elif in_notes and line.startswith("- "):
            notes.append(line[2:].strip())
        elif in_notes and line.startswith("  ") and notes:
            notes[-1] += " " + line.strip()
    return notes


def _warn_upgrade_notes(chart_dir: Path, release: str, namespace: str, env: Mapping[str, str] | None) -> None:
    """Warn with the upgrade notes the installed release's chart version crosses (none on install)."""
    listed = process.run(
        ["helm", "list", "--namespace", namespace, "--filter", f"^{re.escape(release)}$", "--output", "json"],
        env=env,
        check=False,
    )
    try:
        releases = json.loads(listed.stdout or "[]") if listed.returncode == 0 else []
    except ValueError:
        releases = []
    installed = next((r.get("chart", "") for r in releases if r.get("name") == release), "")
    if not installed:
        return
    target = yaml.safe_load((chart_dir / "Chart.yaml").read_text(encoding="utf-8"))["version"]
    installed_version = installed.rsplit("-", 1)[-1]
    changelog = (chart_dir / "CHANGELOG.md").read_text(encoding="utf-8")
    for note in upgrade_notes(changelog, installed_version, str(target)):
        log.warning("upgrading chart %s -> %s: %s", installed_version, target, note)


def deploy_chart(  # noqa: PLR0913 - keyword-only options of one command
    settings: Settings,
    *,
    values_files: Sequence[Path] = (),
    namespace: str = "code",
    release: str = "coder",
    dry_run: bool = False,
    output_dir: Path | None = None,
    env: Mapping[str, str],
    home: Path,
) -> DeployResult:
    """Render and validate the chart; unless ``dry_run``, install or upgrade the release.

    ``output_dir`` (dry run only) receives the manifests rendered for the newest Kubernetes.
    """
    chart_dir = settings.root / "chart"
    # The same reader and schema check as bundle.toml's values_file; findings name the user's file.
    if output_dir is not None and not dry_run:
        msg = "--output-dir writes the rendered manifests of a dry run; add --dry-run"
        raise UsageError(msg)
    values, _ = chart_values.read_and_check(
        values_files, chart_dir, error=DeployError, hint=_F_HINT, unreadable=DeployEnvironmentError
    )
    if dry_run:
        result = _check_offline(chart_dir, values, release=release, namespace=namespace)
        if output_dir is not None:
            write_manifests(result.manifests, output_dir)
        return result
    process.which("helm", hint="install Helm 3.8+, or render offline with --dry-run")
    kubeconfig = find_kubeconfig(env, home)
    if all(importlib.util.find_spec(m) for m in ("helm_python", "kubernetes_validate")):
        result = _check_offline(chart_dir, values, release=release, namespace=namespace)
    else:
        log.warning("skipping the offline render check: %s", _INSTALL_HINT)
        result = DeployResult((), (), (), applied=False)
    extra_env = {"KUBECONFIG": str(kubeconfig)} if kubeconfig else None
    _warn_upgrade_notes(chart_dir, release, namespace, extra_env)
    scale_down = False
    if several_replicas(values):
        status = process.run(
            ["helm", "status", release, "--namespace", namespace], env=extra_env, check=False
        )
        scale_down = status.returncode == 0
    for argv in helm_commands(
        chart_dir, values_files, release=release, namespace=namespace, scale_down_first=scale_down
    ):
        process.run(argv, env=extra_env, secrets=secret_values(values), cwd=settings.root)
    return DeployResult(result.manifests, result.validated_for, result.crd_checked, applied=True)
