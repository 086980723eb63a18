"""Defects an operations review found in chart 2.0.0, each proven on the rendered chart.

The real-server side of these (Pod Security, the guard, installs and the 1.1.0 upgrade) is in
tests/test_chart_cluster.py; these need only the Helm engine.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from coderbundle.deploy import OFFLINE_API_VERSIONS, render_chart
from coderbundle.errors import DeployError

pytest.importorskip("helm_python", reason="helm-python-sdk is not installed")

pytestmark = pytest.mark.helm

REPO = Path(__file__).resolve().parent.parent
CHART = REPO / "chart"
CHART_1_1_0 = "2a167dc"  # git log --oneline -- chart/Chart.yaml
PS = "pod-security.kubernetes.io/enforce"


def values_for(case: str) -> dict:
    return yaml.safe_load((CHART / "ci" / f"{case}-values.yaml").read_text()) or {}


def render(
    values: dict, chart: Path = CHART, kube_version: str = "1.34.0", namespace: str = "code"
) -> list[dict]:
    return [
        m.body
        for m in render_chart(
            chart,
            values,
            release="coder",
            namespace=namespace,
            kube_version=kube_version,
            api_versions=OFFLINE_API_VERSIONS,
        )
    ]


def kinds(bodies: list[dict], kind: str) -> list[dict]:
    return [b for b in bodies if b["kind"] == kind]


def test_workspace_namespaces_enforce_pod_security():
    (ns,) = kinds(render(values_for("defaults")), "Namespace")
    labels = ns["metadata"]["labels"]
    assert labels[PS] == "baseline"
    assert labels["pod-security.kubernetes.io/warn"] == "restricted"
    # A namespace's own labels win: the docker template's dind sidecar is privileged.
    levels = {
        n["metadata"]["name"]: n["metadata"]["labels"][PS]
        for n in kinds(render(values_for("workspace-namespaces")), "Namespace")
    }
    assert levels == {"coder-workspaces": "baseline", "coder-docker": "privileged"}
    strict = values_for("defaults") | {
        "coder": values_for("defaults")["coder"] | {"workspaces": {"podSecurity": "restricted"}}
    }
    assert kinds(render(strict), "Namespace")[0]["metadata"]["labels"][PS] == "restricted"


def test_the_kubernetes_template_labels_its_namespaces_restricted():
    text = (REPO / "templates" / "kubernetes" / "main.tf.j2").read_text()
    block = text[text.index('resource "kubernetes_namespace_v1" "workload"') :]
    block = block[: block.index("\n}\n")]
    assert '"pod-security.kubernetes.io/enforce" = "restricted"' in block


def deleted_on_upgrade(kube_version: str, tmp_path: Path) -> set[tuple[str, str]]:
    """What helm upgrade deletes going from chart 1.1.0 to this chart: objects only the old renders."""
    archive = subprocess.run(
        ["git", "archive", CHART_1_1_0, "chart"], cwd=REPO, capture_output=True, check=True
    )
    subprocess.run(["tar", "-x", "-C", str(tmp_path)], input=archive.stdout, check=True)
    values = values_for("defaults")
    old = {(b["kind"], b["metadata"]["name"]) for b in render(values, tmp_path / "chart", kube_version)}
    new = {(b["kind"], b["metadata"]["name"]) for b in render(values, CHART, kube_version)}
    return old - new


@pytest.mark.parametrize("kube_version", ["1.24.0", "1.29.0", "1.34.0"])
def test_upgrading_1_1_keeps_the_developer_role_existing_workspaces_bind(kube_version, tmp_path):
    gone = deleted_on_upgrade(kube_version, tmp_path)
    assert ("ClusterRole", "coder-workspace-developer") not in gone
    if kube_version < "1.30":
        # The provisioner's unguarded cluster-wide rights go (no admission policy to confine
        # them): the upgrade notes and `coderbundle deploy` say so.
        assert ("ClusterRole", "code-coder-provisioner-workload") in gone
        notes = (CHART / "CHANGELOG.md").read_text()
        assert "perWorkspaceWithoutGuard" in notes


def test_the_helm_test_pod_is_not_selected_by_the_services_or_the_pdb():
    values = values_for("defaults") | {"podDisruptionBudget": {"enabled": True}}
    bodies = render(values)
    (test_pod,) = kinds(bodies, "Pod")
    labels = test_pod["metadata"]["labels"]
    selectors = [b["spec"]["selector"] for b in kinds(bodies, "Service")]
    selectors += [b["spec"]["selector"]["matchLabels"] for b in kinds(bodies, "PodDisruptionBudget")]
    selectors += [kinds(bodies, "Deployment")[0]["spec"]["selector"]["matchLabels"]]
    assert selectors
    for selector in selectors:
        assert not all(labels.get(k) == v for k, v in selector.items()), selector


def test_a_chart_bump_does_not_restart_coderd(tmp_path):
    bumped = tmp_path / "chart"
    shutil.copytree(CHART, bumped)
    chart_yaml = bumped / "Chart.yaml"
    meta = yaml.safe_load(chart_yaml.read_text())
    chart_yaml.write_text(chart_yaml.read_text().replace(f"version: {meta['version']}", "version: 99.0.0"))

    def checksum(chart: Path, values: dict) -> str:
        (deployment,) = kinds(render(values, chart), "Deployment")
        return deployment["spec"]["template"]["metadata"]["annotations"]["checksum/secrets"]

    values = values_for("defaults")
    assert checksum(bumped, values) == checksum(CHART, values)
    changed = values | {"coder": values["coder"] | {"database": {"url": "postgres://other@db/coder"}}}
    assert checksum(CHART, changed) != checksum(CHART, values)


def test_namespace_in_the_values_must_be_the_release_namespace():
    seed = values_for("seed")
    assert seed["namespace"] == "code"
    assert kinds(render(seed), "Deployment")
    with pytest.raises(
        DeployError, match=r'namespace: "code" in the values does not choose .* --namespace code'
    ):
        render(seed, namespace="coder")


@pytest.mark.parametrize(
    "extra",
    [{"autoscaling": {"enabled": True}}, {"coder": {"replicaCount": 2}}],
    ids=["autoscaling", "replicas"],
)
def test_several_replicas_need_a_declared_licence(extra):
    values = values_for("defaults")
    merged = values | {k: (values.get(k, {}) | v) for k, v in extra.items()}
    with pytest.raises(DeployError, match=r"needs a Coder Premium licence.*coder.licensed=true"):
        render(merged)
    merged["coder"] = merged["coder"] | {"licensed": True}
    assert kinds(render(merged), "Deployment")


def test_workspaces_can_reach_the_shared_namespaces_that_admit_them():
    values = values_for("workspace-namespaces")
    policies = {
        p["metadata"]["namespace"]: p
        for p in kinds(render(values), "NetworkPolicy")
        if p["metadata"]["name"] == "coder-workspaces"
    }
    shared = {
        "namespaceSelector": {
            "matchExpressions": [
                {"key": "kubernetes.io/metadata.name", "operator": "In", "values": ["k8s-workloads"]}
            ]
        }
    }
    # The shared namespace admits the workspace namespaces ...
    assert any(
        peer["namespaceSelector"]["matchExpressions"][0]["values"]
        == ["coder-workspaces", "coder-docker", "team-ml"]
        for rule in policies["k8s-workloads"]["spec"]["ingress"]
        for peer in rule["from"]
        if "matchExpressions" in peer.get("namespaceSelector", {})
    )
    # ... and each workspace namespace may now send there (chart 2.0.0 had no such egress rule).
    for ns in ("coder-workspaces", "coder-docker", "team-ml"):
        assert {"to": [shared]} in policies[ns]["spec"]["egress"], ns


def test_the_service_monitor_needs_the_operator_served():
    values = values_for("defaults")
    live = render_chart(CHART, values, release="coder", namespace="code", kube_version="1.34.0")
    assert not [m for m in live if m.body["kind"] == "ServiceMonitor"]
    assert kinds(render(values), "ServiceMonitor")
