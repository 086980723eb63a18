"""The chart on a real Kubernetes API server (tests/kube_fixtures.py): installed by Helm's own
SDK (helm-python-sdk), upgraded from chart 1.1.0, and its RBAC, namespace guard and Pod
Security proven by impersonating coderd's ServiceAccount and a developer.

No controller manager runs: objects are admitted and stored, nothing is scheduled.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import yaml

from ci_skip import import_or_skip, skip_or_fail

if TYPE_CHECKING:
    from collections.abc import Iterator

    from kube_fixtures import KubeAPI

# Skipped without the SDK, but under CI=true a collection error: CI must run these.
helm = import_or_skip("helm_python", "helm-python-sdk is not installed")

pytest_plugins = ("kube_fixtures",)

REPO = Path(__file__).resolve().parent.parent
CHART = REPO / "chart"
CASES = sorted(p.name.removesuffix("-values.yaml") for p in (CHART / "ci").glob("*-values.yaml"))
RELEASE, NS = "coder", "code"
CODERD = f"system:serviceaccount:{NS}:coder"
DEVELOPER, SHARED_DEVELOPER = "coder-workspace-developer", "coder-workspace-developer-shared"
# The chart commit that set version 1.1.0 (git log --oneline -- chart/Chart.yaml).
CHART_1_1_0 = "2a167dc"
# Custom resource definitions from the operators' own Go modules (the Go module proxy).
CRDS = {
    "github.com/prometheus-operator/prometheus-operator@v0.80.1": [
        "example/prometheus-operator-crd/monitoring.coreos.com_servicemonitors.yaml"
    ],
    "github.com/hashicorp/vault-secrets-operator@v0.10.0": [
        f"config/crd/bases/secrets.hashicorp.com_{k}.yaml"
        for k in ("vaultconnections", "vaultauths", "vaultstaticsecrets")
    ],
}


def values_for(case: str) -> dict[str, Any]:
    return yaml.safe_load((CHART / "ci" / f"{case}-values.yaml").read_text()) or {}


def helm_config(api: KubeAPI) -> Any:
    return helm.Config(kubeconfig_path=api.kubeconfig, namespace=NS)


def ensure_namespace(api: KubeAPI, name: str, labels: dict[str, str] | None = None) -> None:
    body = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels or {}}}
    assert api.apply(body).ok


@contextlib.contextmanager
def installed(api: KubeAPI, values: dict[str, Any], chart: Path = CHART) -> Iterator[list[dict[str, Any]]]:
    """``helm install`` (no wait: nothing is scheduled here), the release's objects, then uninstall."""
    ensure_namespace(api, NS)
    # Namespaces the values name but the chart does not create: they exist before the release.
    for item in values.get("coder", {}).get("workspaces", {}).get("namespaces", []):
        if not item.get("create", False):
            ensure_namespace(api, item["name"])
    for name in values.get("rbac", {}).get("workloadNamespaces", {}).get("shared", []):
        ensure_namespace(api, name, {"pod-security.kubernetes.io/enforce": "restricted"})
    with helm_config(api) as config, helm.Chart.load(chart) as loaded:
        release = config.install(loaded, RELEASE, values, namespace=NS)
        try:
            yield [b for b in yaml.safe_load_all(release["manifest"]) if b]
        finally:
            config.uninstall(RELEASE)
            guard_gone(api)


def guard_decides(api: KubeAPI) -> bool:
    """Whether a namespace guard refuses coderd an unlabelled workspace namespace (dry run).

    As coderd's ServiceAccount in ``system:masters``: RBAC lets the request through with or
    without a release, so what refuses it can only be admission.
    """
    probe = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "coder-ws-guard-probe"}}
    answer = api.apply(probe, as_user=CODERD, as_group="system:masters", dry_run=True)
    return "ValidatingAdmissionPolicy" in answer.text


def guard_gone(api: KubeAPI, timeout: float = 60) -> None:
    """Wait until the admission plugin has dropped the uninstalled release's namespace guard.

    It reads policies through an informer: for moments after ``helm uninstall`` the deleted
    policy (or, after a reinstall with other values, its old version) still decides (seen
    in CI).
    """
    deadline = time.monotonic() + timeout
    while guard_decides(api):
        assert time.monotonic() < deadline, "the uninstalled namespace guard still decides"
        time.sleep(0.5)


@pytest.fixture(scope="module")
def crds(kube_api: KubeAPI) -> KubeAPI:
    """The ServiceMonitor and Vault Secrets Operator CRDs, established."""
    if shutil.which("go") is None:
        skip_or_fail("go is not installed: the CRDs come from the operators' Go modules")
    for module, files in CRDS.items():
        proc = subprocess.run(
            ["go", "mod", "download", "-json", module], capture_output=True, text=True, check=False
        )
        folder = json.loads(proc.stdout or "{}").get("Dir")
        if not folder:
            skip_or_fail(f"{module} is not available from the Go module proxy: {proc.stderr.strip()}")
        for name in files:
            body = yaml.safe_load((Path(folder) / name).read_text())
            assert kube_api.apply(body).ok, name
    # Established: the kinds are served (Helm's discovery then lists them).
    deadline = time.monotonic() + 60
    for group in ("monitoring.coreos.com/v1", "secrets.hashicorp.com/v1beta1"):
        while not kube_api.request("GET", f"/apis/{group}").ok:
            assert time.monotonic() < deadline, f"{group} is not served"
            time.sleep(0.5)
    kube_api.forget_discovery()
    return kube_api


def exists(api: KubeAPI, body: dict[str, Any]) -> bool:
    return api.request("GET", api.path(body, NS)).status_code == 200


# --- install: no Prometheus Operator yet -------------------------------------------------------


def test_defaults_install_where_the_prometheus_operator_is_missing(kube_api):
    # Chart 2.0.0 rendered its ServiceMonitor anyway and the whole install failed
    # ("no matches for kind ServiceMonitor"); now it is left out and NOTES.txt says so.
    with installed(kube_api, values_for("defaults")) as objects:
        kinds = {b["kind"] for b in objects}
        assert "ServiceMonitor" not in kinds
        assert {"Deployment", "ValidatingAdmissionPolicy", "ClusterRole"} <= kinds
        assert all(exists(kube_api, b) for b in objects)


# --- install: every CI values file and the original chart README's values ----------------------


@pytest.mark.parametrize("case", CASES)
def test_every_ci_values_file_installs(crds, case):
    values = values_for(case)
    with installed(crds, values) as objects:
        assert objects
        missing = [f"{b['kind']}/{b['metadata']['name']}" for b in objects if not exists(crds, b)]
        assert missing == []
        if values.get("serviceMonitor", {}).get("enabled", True):
            assert "ServiceMonitor" in {b["kind"] for b in objects}


def test_the_seed_values_install_verbatim_and_namespace_must_match(crds):
    values = values_for("seed")
    assert values["namespace"] == NS  # the original chart README's file, unchanged
    with installed(crds, values) as objects:
        assert any(b["kind"] == "Deployment" for b in objects)
    # `namespace: code` used to be accepted and ignored: a release elsewhere now says so.
    with (
        helm_config(crds) as config,
        helm.Chart.load(CHART) as chart,
        pytest.raises(helm.HelmError, match=r"namespace: \"code\" in the values does not choose"),
    ):
        config.install(chart, RELEASE, values, namespace="default", dry_run="server")


# --- replicas, rollouts and chart bumps, as stored by the server --------------------------------


def stored(api: KubeAPI, kind: str, name: str, group: str = "apps/v1") -> dict[str, Any]:
    body = {"apiVersion": group, "kind": kind, "metadata": {"name": name, "namespace": NS}}
    found = api.request("GET", api.path(body))
    assert found.ok, found.text
    result: dict[str, Any] = found.json()
    return result


@pytest.mark.parametrize(
    "several", [{"autoscaling": {"enabled": True}}, {"coder": {"replicaCount": 2}}], ids=["hpa", "replicas"]
)
def test_several_replicas_are_refused_without_a_declared_licence(crds, several):
    # Chart 2.0.0 installed an HPA on an unlicensed deployment: a few concurrent builds scaled
    # coderd to 2 and Coder then refused workspace connections (HA is a licensed feature).
    values = values_for("defaults")
    values = {**values, **several, "coder": {**values["coder"], **several.get("coder", {})}}
    ensure_namespace(crds, NS)
    with helm_config(crds) as config, helm.Chart.load(CHART) as chart:
        try:
            with pytest.raises(helm.HelmError, match=r"needs a Coder Premium licence.*coder\.licensed=true"):
                config.install(chart, RELEASE, values, namespace=NS)
        finally:
            config.uninstall(RELEASE, ignore_not_found=True)
            guard_gone(crds)
        assert not [r for r in config.list(all_states=True) if r.get("name") == RELEASE]


def test_a_declared_licence_installs_the_hpa(crds):
    values = values_for("autoscaling")
    assert values["coder"]["licensed"] is True
    with installed(crds, values):
        hpa = stored(crds, "HorizontalPodAutoscaler", "coder", "autoscaling/v2")
        assert hpa["spec"]["scaleTargetRef"] == {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "name": "coder",
        }
        assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 4)
        # Several replicas roll one at a time and never drop below the HPA's count.
        strategy = stored(crds, "Deployment", "coder")["spec"]["strategy"]
        assert strategy == {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}


def test_one_replica_is_replaced_without_overlap(crds):
    # Chart 2.0.0 left the rolling update to the server's defaults (maxSurge 25%, rounded up to
    # one pod): the new coderd started beside the old one while it migrated the database.
    with installed(crds, values_for("defaults")):
        spec = stored(crds, "Deployment", "coder")["spec"]
    assert spec["replicas"] == 1
    assert spec["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1},
    }


def bumped_chart(dest: Path) -> tuple[Path, str]:
    """A copy of the chart whose Chart.yaml has the next patch version, and that version."""
    copy = dest / "chart"
    shutil.copytree(CHART, copy)
    meta = copy / "Chart.yaml"
    version = yaml.safe_load(meta.read_text())["version"]
    major, minor, patch = (int(n) for n in version.split("."))
    bumped = f"{major}.{minor}.{patch + 1}"
    meta.write_text(meta.read_text().replace(f"version: {version}\n", f"version: {bumped}\n", 1))
    assert yaml.safe_load(meta.read_text())["version"] == bumped
    return copy, bumped


def test_a_chart_bump_alone_does_not_restart_coderd(crds, tmp_path):
    # Chart 2.0.0's checksum/secrets hashed the Secrets with their helm.sh/chart label: every
    # chart bump changed the pod template, so Kubernetes rolled coderd (and ran migrations).
    bumped, version = bumped_chart(tmp_path)
    values = values_for("defaults")
    with installed(crds, values):
        before = stored(crds, "Deployment", "coder")
        with helm_config(crds) as config, helm.Chart.load(bumped) as chart:
            config.upgrade(chart, RELEASE, values, namespace=NS)
        after = stored(crds, "Deployment", "coder")
        # The upgrade reached the server (the object's own labels name the new chart) ...
        assert after["metadata"]["labels"]["helm.sh/chart"] == f"coder-{version}"
        assert before["metadata"]["labels"]["helm.sh/chart"] != f"coder-{version}"
        # ... and left the pod template alone: no new ReplicaSet, no restart.
        assert after["spec"]["template"] == before["spec"]["template"]
        assert after["metadata"]["generation"] == before["metadata"]["generation"]


# --- upgrade from chart 1.1.0 -------------------------------------------------------------------


def chart_at(commit: str, dest: Path) -> Path:
    """The chart folder as committed at ``commit``."""
    archive = subprocess.run(["git", "archive", commit, "chart"], cwd=REPO, capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive.stdout, check=True)
    return dest / "chart"


GUARD = "code-coder-namespace-guard"


def apply_past_stale_guard(api: KubeAPI, body: dict[str, Any], user: str) -> Any:
    """Apply as ``user`` once the namespace guard of an uninstalled release stops applying.

    Chart 1.1.0 has no ValidatingAdmissionPolicy, but an earlier test's release had one: the
    admission plugin drops a deleted policy from its informer cache moments after the delete
    (seen in CI: a denial naming the policy right after ``helm uninstall``). Only that denial,
    for a policy the API no longer serves, is waited out.
    """
    policy = f"/apis/admissionregistration.k8s.io/v1/validatingadmissionpolicies/{GUARD}"
    assert api.request("GET", policy).status_code == 404, "chart 1.1.0 has no namespace guard"
    deadline = time.monotonic() + 30
    while (answer := api.apply(body, as_user=user)).status_code == 403 and GUARD in answer.text:
        assert time.monotonic() < deadline, answer.text
        time.sleep(0.5)
    return answer


def test_upgrade_from_1_1_0_keeps_existing_workspaces_working(crds, tmp_path):
    old = chart_at(CHART_1_1_0, tmp_path)
    assert "version: 1.1.0" in (old / "Chart.yaml").read_text()
    values = values_for("defaults") | {"serviceMonitor": {"enabled": False}}
    ws, sa = "coder-ws-upgrade", "system:serviceaccount:coder-workspaces:coder-upgrade"
    try:
        with helm_config(crds) as config:
            ensure_namespace(crds, NS)
            with helm.Chart.load(old) as chart:
                config.install(chart, RELEASE, values, namespace=NS)
            # A workspace built under 1.1: its namespace and RoleBinding, made by coderd.
            made = apply_past_stale_guard(
                crds, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ws}}, CODERD
            )
            assert made.ok, made.text
            bound = crds.apply(developer_binding(ws, DEVELOPER), as_user=CODERD)
            assert bound.ok, bound.text
            assert can(crds, sa, "create", "deployments", ws, group="apps")
            with helm.Chart.load(CHART) as chart:
                config.upgrade(chart, RELEASE, values, namespace=NS)
            # The developer role the old binding names is still there, and so is access.
            assert crds.request("GET", f"/apis/rbac.authorization.k8s.io/v1/clusterroles/{DEVELOPER}").ok
            assert can(crds, sa, "create", "deployments", ws, group="apps")
            # coderd's next build of that workspace labels the namespace as the template now does.
            relabel = crds.apply(workload_namespace(ws), as_user=CODERD)
            assert relabel.ok, relabel.text
            # The guard reads the namespace's labels from the admission plugin's informer: a
            # relabel shows there within moments (a brand-new namespace is looked up live).
            deadline = time.monotonic() + 30
            while not (rebound := crds.apply(developer_binding(ws, DEVELOPER), as_user=CODERD)).ok:
                assert time.monotonic() < deadline, rebound.text
                time.sleep(0.5)
    finally:
        with helm_config(crds) as config:
            config.uninstall(RELEASE, ignore_not_found=True)


# The `helm` deploy runs: tests/standin/helm_cli.py (Helm's SDK behind the CLI's interface).
HELM_CLI = Path(__file__).resolve().parent / "standin" / "helm_cli.py"


def test_deploy_warns_when_the_installed_release_crosses_changed_defaults(crds, tmp_path):
    # A 1.x install with Traefik in `traefik` lost all traffic on 2.0 (the NetworkPolicy's ingress
    # peer default became `ingress`) with no word; deploy now reads the release the server holds
    # and prints the upgrade notes it crosses before upgrading.
    old = chart_at(CHART_1_1_0, tmp_path)
    values_file = CHART / "ci" / "defaults-values.yaml"
    values = values_for("defaults")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "helm").write_text(f"#!{sys.executable}\n" + HELM_CLI.read_text(encoding="utf-8"))
    (bin_dir / "helm").chmod(0o755)
    env = {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "KUBECONFIG": str(crds.kubeconfig),
    }
    target = yaml.safe_load((CHART / "Chart.yaml").read_text())["version"]

    def deploy() -> subprocess.CompletedProcess[str]:
        argv = [sys.executable, "-m", "coderbundle", "--root", str(REPO), "deploy", "-f", str(values_file)]
        return subprocess.run(argv, capture_output=True, text=True, check=False, env=env, timeout=600)

    try:
        with helm_config(crds) as config:
            ensure_namespace(crds, NS)
            with helm.Chart.load(old) as chart:
                config.install(chart, RELEASE, values, namespace=NS)
            proc = deploy()
            assert proc.returncode == 0, proc.stderr
            assert f"upgrading chart 1.1.0 -> {target}: " in proc.stderr
            assert "from `traefik` to `ingress`" in proc.stderr
            (release,) = [r for r in config.list() if r["name"] == RELEASE]
            assert release["chart_version"] == target  # deploy went on to upgrade it
            # Run again: the release is current, nothing is crossed, nothing is printed.
            again = deploy()
            assert again.returncode == 0, again.stderr
            assert "upgrading chart" not in again.stderr
    finally:
        with helm_config(crds) as config:
            config.uninstall(RELEASE, ignore_not_found=True)
        guard_gone(crds)


# --- security by impersonation ------------------------------------------------------------------


def workload_namespace(name: str, level: str | None = "restricted") -> dict[str, Any]:
    labels = {"pod-security.kubernetes.io/enforce": level} if level else {}
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}}


def developer_binding(namespace: str, role: str, sa: str = "coder-upgrade") -> dict[str, Any]:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": "coder-workspace", "namespace": namespace},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
        "subjects": [{"kind": "ServiceAccount", "name": sa, "namespace": "coder-workspaces"}],
    }


def can(  # noqa: PLR0913 - one access review's fields
    api: KubeAPI, user: str, verb: str, resource: str, namespace: str, *, group: str = ""
) -> bool:
    review = {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SelfSubjectAccessReview",
        "spec": {
            "resourceAttributes": {"verb": verb, "resource": resource, "group": group, "namespace": namespace}
        },
    }
    answer = api.request(
        "POST", "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", review, as_user=user
    )
    assert answer.ok, answer.text
    return bool(answer.json()["status"]["allowed"])


def pod(namespace: str, **spec: Any) -> dict[str, Any]:
    container = {"name": "c", "image": "busybox", **spec.pop("container", {})}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "probe", "namespace": namespace},
        "spec": {"containers": [container], **spec},
    }


RESTRICTED_POD: dict[str, Any] = {
    "securityContext": {
        "runAsNonRoot": True,
        "runAsUser": 1000,
        "seccompProfile": {"type": "RuntimeDefault"},
    },
    "container": {"securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}},
}
NODE_TAKEOVER: dict[str, dict[str, Any]] = {
    "privileged": {"container": {"securityContext": {"privileged": True}}},
    "hostNetwork": {"hostNetwork": True},
    "hostPID": {"hostPID": True},
    "hostPath": {
        "volumes": [{"name": "root", "hostPath": {"path": "/"}}],
        "container": {"volumeMounts": [{"name": "root", "mountPath": "/host"}]},
    },
}


@pytest.fixture(scope="module")
def guarded(crds: KubeAPI) -> Iterator[KubeAPI]:
    """The default install with a shared workload namespace ``team`` beside per-workspace ones."""
    values = values_for("defaults") | {"rbac": {"workloadNamespaces": {"shared": ["team"]}}}
    with installed(crds, values):
        # The admission plugin sees a new policy and binding through its informers: wait until
        # it refuses what this install's guard refuses and allows what only it allows (the
        # shared namespace `team`), dry runs that create nothing.
        deadline = time.monotonic() + 60
        while (
            crds.apply(workload_namespace("guard-probe"), as_user=CODERD, dry_run=True).ok
            or not crds.apply(developer_binding("team", SHARED_DEVELOPER), as_user=CODERD, dry_run=True).ok
        ):
            assert time.monotonic() < deadline, "the namespace guard never took effect"
            time.sleep(0.5)
        assert guard_decides(crds)  # the probe guard_gone waits on sees a guard that is there
        yield crds


def refused(response: Any, text: str) -> bool:
    return response.status_code in {403, 422} and text in response.json().get("message", "")


def test_coderd_manages_only_namespaces_under_the_prefix(guarded):
    assert refused(
        guarded.apply(workload_namespace("vault"), as_user=CODERD),
        "coderd may only manage namespaces named coder-ws-*",
    )
    assert guarded.apply(workload_namespace("coder-ws-a"), as_user=CODERD).ok
    gone = guarded.request("DELETE", "/api/v1/namespaces/kube-system", as_user=CODERD)
    assert gone.status_code == 403


def test_coderd_cannot_create_a_namespace_that_weakens_pod_security(guarded):
    for level in (None, "privileged"):
        answer = guarded.apply(workload_namespace("coder-ws-weak", level), as_user=CODERD)
        assert refused(answer, "with label pod-security.kubernetes.io/enforce=restricted"), answer.text
    # ... nor weaken one it made.
    assert guarded.apply(workload_namespace("coder-ws-b"), as_user=CODERD).ok
    weakened = guarded.apply(workload_namespace("coder-ws-b", "baseline"), as_user=CODERD)
    assert refused(weakened, "pod-security.kubernetes.io/enforce=restricted"), weakened.text
    older = workload_namespace("coder-ws-b")
    older["metadata"]["labels"]["pod-security.kubernetes.io/enforce-version"] = "v1.22"
    assert refused(guarded.apply(older, as_user=CODERD), "no older enforce-version")


def test_coderd_binds_the_right_role_in_the_right_namespace_only(guarded):
    assert guarded.apply(workload_namespace("coder-ws-c"), as_user=CODERD).ok
    assert guarded.apply(developer_binding("coder-ws-c", DEVELOPER), as_user=CODERD).ok
    # The full developer role (Secrets, exec) never in a shared namespace.
    shared = guarded.apply(developer_binding("team", DEVELOPER), as_user=CODERD)
    assert refused(shared, f"coderd may only bind ClusterRole {SHARED_DEVELOPER} in team"), shared.text
    assert guarded.apply(developer_binding("team", SHARED_DEVELOPER), as_user=CODERD).ok
    # Not in the release namespace (the database URL lives there), not cluster-admin.
    assert guarded.apply(developer_binding(NS, DEVELOPER), as_user=CODERD).status_code == 403
    assert guarded.apply(developer_binding("coder-ws-c", "cluster-admin"), as_user=CODERD).status_code == 403
    # Not into a namespace that does not enforce Pod Security (one an admin made, say).
    ensure_namespace(guarded, "coder-ws-unlabelled")
    loose = guarded.apply(developer_binding("coder-ws-unlabelled", DEVELOPER), as_user=CODERD)
    assert refused(loose, "coderd may only bind developers in a namespace labelled"), loose.text


def test_a_developer_cannot_escalate_or_leave_their_namespace(guarded):
    assert guarded.apply(workload_namespace("coder-ws-d"), as_user=CODERD).ok
    assert guarded.apply(developer_binding("coder-ws-d", DEVELOPER, sa="dev"), as_user=CODERD).ok
    dev = "system:serviceaccount:coder-workspaces:dev"
    assert can(guarded, dev, "create", "deployments", "coder-ws-d", group="apps")
    assert not can(guarded, dev, "create", "deployments", "coder-ws-c", group="apps")
    assert not can(guarded, dev, "get", "secrets", NS)
    assert not can(guarded, dev, "patch", "namespaces", "")
    # RBAC's escalation check: the developer may edit RoleBindings but not grant more than it holds.
    escalate = developer_binding("coder-ws-d", "cluster-admin", sa="dev")
    answer = guarded.apply(escalate, as_user=dev)
    assert answer.status_code == 403
    assert "is attempting to grant RBAC permissions not currently held" in answer.json()["message"]
    # Nor relabel its namespace to privileged.
    relabel = guarded.apply(workload_namespace("coder-ws-d", "privileged"), as_user=dev)
    assert relabel.status_code == 403


@pytest.mark.parametrize("attack", sorted(NODE_TAKEOVER))
def test_pod_security_refuses_node_takeover_in_workspace_namespaces(guarded, attack):
    assert guarded.apply(workload_namespace("coder-ws-e"), as_user=CODERD).ok
    guarded.default_service_account("coder-ws-e")
    assert guarded.apply(developer_binding("coder-ws-e", DEVELOPER, sa="dev"), as_user=CODERD).ok
    dev = "system:serviceaccount:coder-workspaces:dev"
    fine = guarded.apply(
        pod("coder-ws-e", **json.loads(json.dumps(RESTRICTED_POD))), as_user=dev, dry_run=True
    )
    assert fine.ok, fine.text
    bad = pod("coder-ws-e", **json.loads(json.dumps(NODE_TAKEOVER[attack])))
    answer = guarded.apply(bad, as_user=dev, dry_run=True)
    assert refused(answer, 'violates PodSecurity "restricted:latest"'), answer.text
    # The chart's own workspace namespace enforces baseline: the same pods are refused there
    # even for an admin (chart 2.0.0 labelled it with nothing: all four were admitted).
    guarded.default_service_account("coder-workspaces")
    admin = guarded.apply(
        pod("coder-workspaces", **json.loads(json.dumps(NODE_TAKEOVER[attack]))), dry_run=True
    )
    assert refused(admin, 'violates PodSecurity "baseline:latest"'), admin.text


def test_the_helm_test_pod_is_selected_by_no_service_or_budget(guarded):
    from coderbundle.deploy import OFFLINE_API_VERSIONS, render_chart  # noqa: PLC0415

    values = values_for("defaults") | {"podDisruptionBudget": {"enabled": True}}
    bodies = [
        m.body
        for m in render_chart(CHART, values, release=RELEASE, namespace=NS, api_versions=OFFLINE_API_VERSIONS)
    ]
    (test_pod,) = [b for b in bodies if b["kind"] == "Pod"]
    guarded.default_service_account(NS)
    created = guarded.apply(test_pod)
    assert created.ok, created.text
    selectors = [b["spec"]["selector"] for b in bodies if b["kind"] == "Service"]
    selectors += [b["spec"]["selector"]["matchLabels"] for b in bodies if b["kind"] == "PodDisruptionBudget"]
    assert selectors
    for selector in selectors:
        query = ",".join(f"{k}={v}" for k, v in selector.items())
        found = guarded.request("GET", f"/api/v1/namespaces/{NS}/pods", params={"labelSelector": query})
        assert found.ok, found.text
        assert [p["metadata"]["name"] for p in found.json()["items"]] == [], query
