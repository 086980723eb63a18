"""The Coder server chart, rendered by the real Helm engine (helm-python-sdk) over chart/ci/."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest
import yaml

from coderbundle.deploy import (
    KUBE_VERSIONS,
    OFFLINE_API_VERSIONS,
    Manifest,
    check_rules,
    render_chart,
    validate_manifests,
)
from coderbundle.errors import DeployError
from coderbundle.settings import WorkspaceDefaults, load_settings

helm = pytest.importorskip("helm_python", reason="helm-python-sdk is not installed")
pytest.importorskip("kubernetes_validate", reason="kubernetes-validate is not installed")

pytestmark = pytest.mark.helm

REPO = Path(__file__).resolve().parent.parent
CHART = REPO / "chart"
CASES = sorted(p.name.removesuffix("-values.yaml") for p in (CHART / "ci").glob("*-values.yaml"))
CRD_SCHEMAS = json.loads((CHART / "ci" / "crd-schemas.json").read_text())

# Seed README keys and defaults: the documented interface users' values files rely on.
SEED_DEFAULTS = {
    "coder.replicaCount": 1,
    "coder.config.accessUrl": "https://coder.localhost",
    "coder.config.wildcardAccessUrl": "*.workspace.coder.localhost",
    "coder.config.telemetry": False,
    "coder.config.provisionerDaemons": 3,
    "resources.requests.cpu": "1",
    "resources.requests.memory": "2Gi",
    "resources.limits.cpu": "2",
    "resources.limits.memory": "4Gi",
    "coder.workspaces.defaultResources.requests.cpu": "500m",
    "coder.workspaces.defaultResources.requests.memory": "1Gi",
    "coder.workspaces.storage.size": "50Gi",
    "coder.workspaces.inactivityTimeout": "4h",
    "coder.workspaces.ttl": "168h",
    "coder.oidc.enabled": False,
    "coder.oidc.issuerUrl": "",
    "coder.oidc.clientId": "",
    "coder.oidc.clientSecret": "",
    "coder.oidc.scopes": "openid profile email groups",
    "coder.gitlab.enabled": False,
    "coder.gitlab.url": "",
    "coder.gitlab.clientId": "",
    "coder.gitlab.clientSecret": "",
    "coder.agentapi.enabled": True,
    "coder.agentapi.tokenLifetime": "720h",
    "serviceMonitor.enabled": True,
    "serviceMonitor.interval": "30s",
    "autoscaling.enabled": False,
    "autoscaling.minReplicas": 1,
    "autoscaling.maxReplicas": 3,
    "autoscaling.targetCPUUtilizationPercentage": 80,
}

# Metric names from Coder's Prometheus docs (docs/admin/integrations/prometheus.md).
CODER_METRICS = {
    "coderd_api_requests_processed_total",
    "coderd_api_request_latencies_seconds_bucket",
    "coderd_api_total_user_count",
    "coderd_api_active_users_duration_hour",
    "coderd_api_workspace_latest_build",
    "coderd_workspace_latest_build_status",
    "coderd_workspace_builds_total",
    "coderd_agents_up",
    "coderd_agents_connections",
    "coderd_provisionerd_jobs_current",
    "coderd_provisionerd_num_daemons",
    "coderd_build_info",
}
KUBELET_METRICS = {"container_cpu_usage_seconds_total", "container_memory_working_set_bytes"}


def values_for(case: str) -> dict:
    return yaml.safe_load((CHART / "ci" / f"{case}-values.yaml").read_text()) or {}


@cache
def rendered(case: str, kube_version: str | None = None) -> tuple[Manifest, ...]:
    """The case rendered like a live install on ``kube_version`` (default: the engine's, 1.30+)."""
    return tuple(
        render_chart(
            CHART,
            values_for(case),
            release="coder",
            namespace="code",
            kube_version=kube_version,
            api_versions=OFFLINE_API_VERSIONS,
        )
    )


def render(values: dict, kube_version: str | None = None) -> list[dict]:
    return [
        m.body
        for m in render_chart(
            CHART,
            values,
            release="coder",
            namespace="code",
            kube_version=kube_version,
            api_versions=OFFLINE_API_VERSIONS,
        )
    ]


def with_values(case: str, extra: dict) -> dict:
    """The case's values with ``extra`` deep-merged in (like a second -f file)."""

    def merge(a: dict, b: dict) -> dict:
        out = dict(a)
        for k, v in b.items():
            out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
        return out

    return merge(values_for(case), extra)


def objects(case: str, kind: str) -> list[dict]:
    return [m.body for m in rendered(case) if m.body["kind"] == kind]


def one(case: str, kind: str, name: str = "coder") -> dict:
    found = [o for o in objects(case, kind) if o["metadata"]["name"] == name]
    assert len(found) == 1, f"{case}: expected one {kind}/{name}, got {len(found)}"
    return found[0]


def container_env(case: str) -> dict[str, dict]:
    container = one(case, "Deployment")["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e for e in container["env"]}


def test_ci_cases_cover_the_matrix():
    assert {"defaults", "oidc-gitlab", "autoscaling", "vault", "existing-secrets"} <= set(CASES)
    assert "workspace-namespaces" in CASES


@pytest.mark.parametrize("case", CASES)
def test_every_manifest_is_valid_for_oldest_and_newest_kubernetes(case):
    assert KUBE_VERSIONS == ("1.25.0", "1.37.0")
    for version in KUBE_VERSIONS:
        manifests = rendered(case, version)
        problems, crds = validate_manifests(manifests, CRD_SCHEMAS, (version,))
        assert problems == []
        # ...and nothing the API server's own validation code would reject (schemas miss it).
        assert check_rules(manifests) == []
        # Custom resources are checked against the hand schemas, never silently skipped.
        kinds = {m.body["kind"] for m in manifests}
        assert {ref.split(": ")[1].split("/")[0] for ref in crds} == kinds & set(CRD_SCHEMAS)


@pytest.mark.parametrize("case", CASES)
def test_helm_lint_is_clean(case):
    for kube_version in ("v1.25.0", "v1.37.0"):
        report = helm.lint(CHART, values_for(case), strict=True, kube_version=kube_version)
        assert report["errors"] == []
        assert [m for m in report["messages"] if m["severity"] >= 2] == []


def test_seed_keys_keep_their_defaults():
    with helm.Chart.load(CHART) as chart:
        defaults = chart.values
    for dotted, expected in SEED_DEFAULTS.items():
        value = defaults
        for part in dotted.split("."):
            value = value[part]
        assert value == expected, dotted


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"coder": {"replicaCount": "two"}}, "/coder/replicaCount"),
        ({"coder": {"replicas": 2}}, "additional properties 'replicas' not allowed"),
        ({"resources": {"requests": {"cpu": "lots"}}}, "/resources/requests/cpu"),
        ({"vault": {"mode": "sidecar"}}, "/vault/mode"),
        (
            {"autoscaling": {"scaleDownStabilizationSeconds": 7200}},
            "/autoscaling/scaleDownStabilizationSeconds",
        ),
        ({"coder": {"strategy": {"type": "Blue"}}}, "/coder/strategy/type"),
        ({"coder": {"workspaces": {"namespaces": [{"name": "Bad_NS"}]}}}, "namespaces/0/name"),
    ],
)
def test_schema_rejects_bad_values_with_the_key(values, message):
    values = {"coder": {"database": {"existingSecret": "db"}}} | values
    with pytest.raises(DeployError, match=re.escape(message)) as info:
        render_chart(CHART, values, release="coder", namespace="code")
    assert "values.schema.json" in str(info.value)
    assert "\n" not in str(info.value)


DB = {"database": {"existingSecret": "db"}}


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({}, "coder.database: set coder.database.url or coder.database.existingSecret"),
        ({"coder": {**DB, "oidc": {"enabled": True}}}, "coder.oidc.enabled: set coder.oidc.issuerUrl"),
        (
            {"coder": {**DB, "gitlab": {"enabled": True, "url": "https://g.example", "clientId": "x"}}},
            "coder.gitlab.enabled: set coder.gitlab.clientSecret",
        ),
        (
            {"coder": {**DB, "config": {"wildcardAccessUrl": "*.*.example.com"}}},
            "/coder/config/wildcardAccessUrl",
        ),
    ],
)
def test_missing_required_values_fail_with_what_to_set(values, message):
    with pytest.raises(DeployError, match=re.escape(message)) as info:
        render_chart(CHART, values, release="coder", namespace="code")
    assert "execution error" not in str(info.value)


def pod_specs(case: str) -> list[dict]:
    specs = [d["spec"]["template"]["spec"] for d in objects(case, "Deployment")]
    return specs + [p["spec"] for p in objects(case, "Pod")]


@pytest.mark.parametrize("case", CASES)
def test_pods_meet_the_restricted_pod_security_profile(case):
    for spec in pod_specs(case):
        pod_sc = spec.get("securityContext", {})
        for host_namespace in ("hostNetwork", "hostPID", "hostIPC"):
            assert not spec.get(host_namespace)
        assert all("hostPath" not in v for v in spec.get("volumes", []))
        for c in spec["containers"] + spec.get("initContainers", []):
            sc = c.get("securityContext", {})
            assert sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot")) is True
            assert sc.get("runAsUser", pod_sc.get("runAsUser", 1)) != 0
            assert sc["allowPrivilegeEscalation"] is False
            assert not sc.get("privileged")
            assert sc["capabilities"]["drop"] == ["ALL"]
            assert set(sc["capabilities"].get("add", [])) <= {"NET_BIND_SERVICE"}
            seccomp = sc.get("seccompProfile", pod_sc.get("seccompProfile", {}))
            assert seccomp.get("type") in {"RuntimeDefault", "Localhost"}


@pytest.mark.parametrize("case", CASES)
def test_probes_never_kill_a_migrating_pod(case):
    container = one(case, "Deployment")["spec"]["template"]["spec"]["containers"][0]
    assert container["readinessProbe"]["httpGet"]["path"] == "/healthz"
    if "livenessProbe" in container:
        startup = container["startupProbe"]
        assert startup["periodSeconds"] * startup["failureThreshold"] >= 1800
    assert one(case, "Deployment")["spec"]["progressDeadlineSeconds"] >= 1800


def test_liveness_is_off_by_default():
    container = one("defaults", "Deployment")["spec"]["template"]["spec"]["containers"][0]
    assert "livenessProbe" not in container
    assert (
        "livenessProbe" in one("existing-secrets", "Deployment")["spec"]["template"]["spec"]["containers"][0]
    )


def test_image_is_pinned_to_app_version_and_listens_on_all_interfaces():
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    container = one("defaults", "Deployment")["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == f"ghcr.io/coder/coder:v{chart['appVersion']}"
    env = container_env("defaults")
    assert env["CODER_HTTP_ADDRESS"]["value"] == "0.0.0.0:8080"
    assert env["CODER_PROMETHEUS_ADDRESS"]["value"] == "0.0.0.0:2112"
    assert env["CODER_TELEMETRY_ENABLE"]["value"] == "false"
    assert env["CODER_PROVISIONER_DAEMONS"]["value"] == "3"
    assert env["CODER_DEFAULT_TOKEN_LIFETIME"]["value"] == "720h"
    assert env["CODER_PG_CONNECTION_URL"]["valueFrom"]["secretKeyRef"] == {
        "name": "coder-database",
        "key": "url",
    }
    assert "CODER_DERP_SERVER_RELAY_URL" not in env


def test_oidc_and_gitlab_env():
    env = container_env("oidc-gitlab")
    assert env["CODER_OIDC_SCOPES"]["value"] == "openid,profile,email,groups"
    assert env["CODER_OIDC_IGNORE_EMAIL_VERIFIED"]["value"] == "true"
    assert env["CODER_OIDC_CLIENT_SECRET"]["valueFrom"]["secretKeyRef"]["name"] == "coder-oidc"
    assert env["CODER_EXTERNAL_AUTH_0_ID"]["value"] == "gitlab"
    assert env["CODER_EXTERNAL_AUTH_0_TYPE"]["value"] == "gitlab"
    gitlab = "https://gitlab.zeizel.localhost"
    assert env["CODER_EXTERNAL_AUTH_0_AUTH_URL"]["value"] == f"{gitlab}/oauth/authorize"
    assert env["CODER_EXTERNAL_AUTH_0_TOKEN_URL"]["value"] == f"{gitlab}/oauth/token"
    assert env["CODER_EXTERNAL_AUTH_0_VALIDATE_URL"]["value"] == f"{gitlab}/oauth/token/info"
    assert env["CODER_EXTERNAL_AUTH_0_REVOKE_URL"]["value"] == f"{gitlab}/oauth/revoke"
    regex = re.compile(env["CODER_EXTERNAL_AUTH_0_REGEX"]["value"])
    assert regex.search("https://gitlab.zeizel.localhost/team/app.git")
    assert regex.search("git@gitlab.zeizel.localhost:team/app.git")
    assert not regex.search("https://gitlabXzeizel.localhost/x")
    # Secrets are referenced, never inlined in the pod spec.
    text = yaml.safe_dump(one("oidc-gitlab", "Deployment"))
    assert "oidc-secret-value" not in text
    assert "gitlab-secret-value" not in text


def test_ingress_has_one_tls_entry_for_access_and_wildcard_hosts():
    ingress = one("oidc-gitlab", "Ingress")
    hosts = ["coder.zeizel.localhost", "*.workspace.coder.zeizel.localhost"]
    assert ingress["spec"]["tls"] == [{"secretName": "coder-tls", "hosts": hosts}]
    assert [r["host"] for r in ingress["spec"]["rules"]] == hosts
    assert ingress["metadata"]["annotations"]["cert-manager.io/cluster-issuer"] == "letsencrypt-dns"
    assert ingress["spec"]["ingressClassName"] == "traefik"


def test_suffix_wildcard_becomes_an_ingress_wildcard():
    ingress = one("autoscaling", "Ingress")
    assert ingress["spec"]["tls"][0]["hosts"] == ["coder.example.com", "*.example.com"]
    assert container_env("autoscaling")["CODER_WILDCARD_ACCESS_URL"]["value"] == "*-apps.example.com"


def test_without_a_wildcard_url_only_the_access_host_is_routed():
    values = {"coder": {**DB, "config": {"wildcardAccessUrl": ""}}}
    manifests = render_chart(CHART, values, release="coder", namespace="code")
    (ingress,) = [m.body for m in manifests if m.body["kind"] == "Ingress"]
    assert ingress["spec"]["tls"][0]["hosts"] == ["coder.localhost"]
    assert [r["host"] for r in ingress["spec"]["rules"]] == ["coder.localhost"]


def test_autoscaling_scales_down_slowly_and_sets_the_relay_url():
    hpa = one("autoscaling", "HorizontalPodAutoscaler")
    down = hpa["spec"]["behavior"]["scaleDown"]
    assert down["stabilizationWindowSeconds"] >= 600
    assert down["policies"] == [{"type": "Pods", "value": 1, "periodSeconds": 600}]
    assert "replicas" not in one("autoscaling", "Deployment")["spec"]
    env = container_env("autoscaling")
    assert env["CODER_DERP_SERVER_RELAY_URL"]["value"] == "http://$(KUBE_POD_IP):8080"
    assert env["KUBE_POD_IP"]["valueFrom"]["fieldRef"]["fieldPath"] == "status.podIP"
    assert one("autoscaling", "PodDisruptionBudget")["spec"]["maxUnavailable"] == 1


WRITE = {"create", "delete", "get", "list", "watch", "patch", "update"}
READ = {"get", "list", "watch"}
# What the templates create in the workspace namespace (Deployment, PVCs, the kubernetes
# template's ServiceAccount) and read (pods), nothing else.
WORKSPACE_RULES = {
    ("", "pods"): READ,
    ("", "persistentvolumeclaims"): WRITE,
    ("", "serviceaccounts"): WRITE,
    ("apps", "deployments"): WRITE,
}


def granted(rules: list[dict]) -> dict[tuple[str, str], set[str]]:
    out: dict[tuple[str, str], set[str]] = {}
    for rule in rules:
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                out.setdefault((group, resource), set()).update(rule["verbs"])
    return out


EDIT = {"get", "list", "watch", "create", "update", "patch", "delete", "deletecollection"}
# What every developer ClusterRole shares: workloads, read-only NetworkPolicies (the chart's
# isolation policy must stay), events and endpoint slices.
WORKLOAD_RULES = {
    **{("apps", r): EDIT for r in ("deployments", "statefulsets", "daemonsets", "replicasets")},
    ("batch", "jobs"): EDIT,
    ("batch", "cronjobs"): EDIT,
    **{
        (g, r): EDIT
        for g in ("autoscaling", "policy")
        for r in ("horizontalpodautoscalers", "poddisruptionbudgets")
    },
    ("networking.k8s.io", "ingresses"): EDIT,
    ("networking.k8s.io", "networkpolicies"): READ,
    **{(g, r): READ for g in ("events.k8s.io", "discovery.k8s.io") for r in ("events", "endpointslices")},
}
# What a developer may do in their own workload namespace: the chart's developer ClusterRole,
# which the kubernetes template binds there (docs/chart.md, "RBAC"). Explicit verbs only.
DEVELOPER_RULES = {
    **WORKLOAD_RULES,
    **{
        ("", r): EDIT
        for r in ("pods", "services", "configmaps", "secrets", "persistentvolumeclaims", "serviceaccounts")
    },
    **{("", r): {"get", "create"} for r in ("pods/exec", "pods/attach", "pods/portforward")},
    **{("", r): READ for r in ("pods/log", "endpoints", "events")},
    ("rbac.authorization.k8s.io", "roles"): EDIT,
    ("rbac.authorization.k8s.io", "rolebindings"): EDIT,
}
# A workload namespace shared by several developers: nothing reaching another's Secrets or
# processes, no ServiceAccounts or RBAC.
SHARED_DEVELOPER_RULES = {
    **WORKLOAD_RULES,
    **{("", r): EDIT for r in ("pods", "services", "configmaps", "persistentvolumeclaims")},
    **{("", r): READ for r in ("pods/log", "endpoints", "events", "serviceaccounts")},
}
BINDINGS = {"create", "get", "update", "patch", "delete"}
DEVELOPER = "coder-workspace-developer"
SHARED_DEVELOPER = "coder-workspace-developer-shared"
TEMPLATE = REPO / "templates" / "kubernetes" / "main.tf.j2"


def template_binding() -> tuple[str, dict[str, str]]:
    """The kubernetes template's RoleBinding: role_ref kind and the defaults of the role variables."""
    source = TEMPLATE.read_text()
    binding = source[source.index('resource "kubernetes_role_binding_v1" "workspace"') :]
    ref = re.search(r"role_ref \{(.*?)\n  \}", binding, re.DOTALL).group(1)
    kind = re.search(r'kind\s*=\s*"([^"]*)"', ref).group(1)
    name = re.search(r"name\s*=\s*(.*)", ref).group(1)
    defaults = {}
    for variable in re.findall(r"var\.(\w+_role)\b", name):
        block = source[source.index(f'variable "{variable}"') :]
        defaults[variable] = re.search(r'default\s*=\s*"([^"]*)"', block).group(1)
    return kind, defaults


def rendered_with(workload_namespaces: dict) -> list[dict]:
    """The defaults case with ``rbac.workloadNamespaces`` keys set."""
    values = values_for("defaults")
    values.setdefault("rbac", {}).setdefault("workloadNamespaces", {}).update(workload_namespaces)
    return [m.body for m in render_chart(CHART, values, release="coder", namespace="code")]


def bind_rules(rules: list[dict]) -> list[dict]:
    return [r for r in rules if "bind" in r["verbs"]]


def provisioner_cluster_rules(case: str) -> list[dict]:
    """Every rule the provisioner holds cluster-wide (ClusterRoles bound by a ClusterRoleBinding)."""
    names = {
        b["roleRef"]["name"]
        for b in objects(case, "ClusterRoleBinding")
        if {"kind": "ServiceAccount", "name": "coder", "namespace": "code"} in b["subjects"]
    }
    return [
        rule for r in objects(case, "ClusterRole") if r["metadata"]["name"] in names for rule in r["rules"]
    ]


def role(case: str, kind: str, name: str, namespace: str | None = None) -> dict[tuple[str, str], set[str]]:
    found = [
        o
        for o in objects(case, kind)
        if o["metadata"]["name"] == name and o["metadata"].get("namespace") == namespace
    ]
    assert len(found) == 1, f"{case}: {kind}/{name} in {namespace}"
    return granted(found[0]["rules"])


@pytest.mark.parametrize("case", CASES)
def test_workspace_namespaces_get_exactly_what_the_templates_create(case):
    for r in objects(case, "Role"):
        if r["metadata"]["name"] == "coder-provisioner":
            assert granted(r["rules"]) == WORKSPACE_RULES
    for binding in objects(case, "RoleBinding") + objects(case, "ClusterRoleBinding"):
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "coder", "namespace": "code"}]


def test_the_developer_cluster_role_is_what_the_kubernetes_template_binds():
    assert role("defaults", "ClusterRole", DEVELOPER) == DEVELOPER_RULES
    assert role("workspace-namespaces", "ClusterRole", SHARED_DEVELOPER) == SHARED_DEVELOPER_RULES
    for case in ("defaults", "workspace-namespaces"):
        # Nobody holds them cluster-wide; the template binds them per namespace.
        for b in objects(case, "ClusterRoleBinding"):
            assert b["roleRef"]["name"] not in {DEVELOPER, SHARED_DEVELOPER}
    if TEMPLATE.is_file():
        # Its own namespace: the developer role; a shared workload namespace: the shared one.
        assert template_binding() == (
            "ClusterRole",
            {"developer_cluster_role": DEVELOPER, "shared_developer_cluster_role": SHARED_DEVELOPER},
        )
    # Renamed in the values: the ClusterRole and the provisioner's `bind` follow.
    manifests = rendered_with({"developerClusterRole": "team-a-developer"})
    names = {m["metadata"]["name"] for m in manifests if m["kind"] == "ClusterRole"}
    assert "team-a-developer" in names
    assert DEVELOPER not in names
    (provisioner,) = [
        m
        for m in manifests
        if m["kind"] == "ClusterRole" and m["metadata"]["name"] == "code-coder-provisioner-workload"
    ]
    rules = provisioner["rules"]
    assert [r["resourceNames"] for r in bind_rules(rules)] == [["team-a-developer"]]


@pytest.mark.parametrize("case", CASES)
def test_the_provisioner_holds_no_workload_rights_cluster_wide(case):
    rules = provisioner_cluster_rules(case)
    held = granted(rules)
    if case == "workspace-namespaces":  # shared workload namespace only: nothing cluster-wide
        assert held == {}
        return
    assert held == {
        ("", "namespaces"): {"create", "get", "patch", "delete"},
        # the kubernetes template's isolation policy in the namespaces it creates
        ("networking.k8s.io", "networkpolicies"): {"create", "get", "patch", "delete"},
        ("rbac.authorization.k8s.io", "rolebindings"): BINDINGS,
        ("rbac.authorization.k8s.io", "clusterroles"): {"bind"},
    }
    assert not any(res in {"secrets", "pods", "pods/exec", "*"} for res in {r for _, r in held})
    assert all("*" not in r["verbs"] and "escalate" not in r["verbs"] for r in rules)
    (bind,) = bind_rules(rules)
    assert bind["resourceNames"] == [DEVELOPER]


def test_a_shared_workload_namespace_only_lets_the_provisioner_bind_the_shared_developer_role():
    rules = [
        o["rules"]
        for o in objects("workspace-namespaces", "Role")
        if o["metadata"]["name"] == "coder-provisioner-workload"
    ]
    assert [
        o["metadata"]["namespace"]
        for o in objects("workspace-namespaces", "Role")
        if o["metadata"]["name"] == "coder-provisioner-workload"
    ] == ["k8s-workloads"]
    assert granted(rules[0]) == {
        ("rbac.authorization.k8s.io", "rolebindings"): BINDINGS,
        ("rbac.authorization.k8s.io", "clusterroles"): {"bind"},
    }
    (bind,) = bind_rules(rules[0])
    assert bind["resourceNames"] == [SHARED_DEVELOPER]


def test_migrate_roles_adds_only_get_and_delete_on_roles():
    manifests = rendered_with({"migrateRoles": True, "shared": ["k8s-workloads"]})
    for kind, name in (
        ("ClusterRole", "code-coder-provisioner-workload"),
        ("Role", "coder-provisioner-workload"),
    ):
        (found,) = [m for m in manifests if m["kind"] == kind and m["metadata"]["name"] == name]
        assert granted(found["rules"])[("rbac.authorization.k8s.io", "roles")] == {"get", "delete"}


def test_workspace_namespaces_each_get_a_role():
    roles = {
        r["metadata"]["namespace"]
        for r in objects("workspace-namespaces", "Role")
        if r["metadata"]["name"] == "coder-provisioner"
    }
    assert roles == {"coder-workspaces", "coder-docker", "team-ml"}
    created = {n["metadata"]["name"] for n in objects("workspace-namespaces", "Namespace")}
    assert created == {"coder-workspaces", "coder-docker"}
    assert all(
        n["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
        for n in objects("workspace-namespaces", "Namespace")
    )


def test_network_policy_limits_ingress_and_egress():
    policy = one("oidc-gitlab", "NetworkPolicy")["spec"]
    assert policy["policyTypes"] == ["Ingress", "Egress"]
    ports = [{p["port"] for p in rule.get("ports", [])} for rule in policy["ingress"]]
    assert ports == [{"http"}, {"http"}, {"prometheus-http"}]
    egress_ports = [{p["port"] for p in rule.get("ports", [])} for rule in policy["egress"]]
    assert {53} in egress_ports
    assert {5432} in egress_ports
    # A rule with neither ports nor peers would allow everything.
    assert all(rule.get("ports") or rule.get("to") for rule in policy["egress"])


def test_vault_operator_syncs_every_secret_the_deployment_reads():
    synced = {s["spec"]["destination"]["name"]: s["spec"] for s in objects("vault", "VaultStaticSecret")}
    assert set(synced) == {"coder-database", "coder-oidc", "coder-gitlab"}
    assert {s["path"] for s in synced.values()} == {"coder/database", "coder/oidc", "coder/gitlab"}
    assert objects("vault", "Secret") == []
    refs = {
        e["valueFrom"]["secretKeyRef"]["name"]
        for e in container_env("vault").values()
        if "secretKeyRef" in e.get("valueFrom", {})
    }
    assert refs == set(synced)
    assert one("vault", "VaultAuth")["spec"]["kubernetes"]["serviceAccount"] == "coder"


def test_vault_agent_injects_secrets_without_kubernetes_secrets():
    deployment = one("vault-agent", "Deployment")
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert annotations["vault.hashicorp.com/agent-inject"] == "true"
    assert annotations["vault.hashicorp.com/role"] == "coder"
    template = annotations["vault.hashicorp.com/agent-inject-template-coder.env"]
    assert 'secret "secret/data/coder/database"' in template
    lines = template.strip().splitlines()
    assert [ln.split("export ")[1].split("=")[0] for ln in lines] == [
        "CODER_PG_CONNECTION_URL",
        "CODER_OIDC_CLIENT_SECRET",
    ]
    assert all(ln.startswith("{{ with secret") and ln.endswith("'{{ end }}") for ln in lines)
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["command"][-1] == ". /vault/secrets/coder.env && exec /opt/coder server"
    assert not any("secretKeyRef" in e.get("valueFrom", {}) for e in container["env"])
    assert objects("vault-agent", "Secret") == []


def test_existing_secrets_are_referenced_not_created():
    assert objects("existing-secrets", "Secret") == []
    env = container_env("existing-secrets")
    assert env["CODER_PG_CONNECTION_URL"]["valueFrom"]["secretKeyRef"] == {
        "name": "coder-db-url",
        "key": "connection-url",
    }
    secret_ref = env["CODER_EXTERNAL_AUTH_0_CLIENT_SECRET"]["valueFrom"]["secretKeyRef"]
    assert secret_ref == {"name": "coder-gitlab", "key": "application-secret"}
    assert one("existing-secrets", "Ingress")["spec"]["tls"][0]["secretName"] == "coder-wildcard-tls"
    mounts = one("existing-secrets", "Deployment")["spec"]["template"]["spec"]["containers"][0]
    assert {m["mountPath"] for m in mounts["volumeMounts"]} == {"/tmp", "/home/coder"}  # noqa: S108


def test_inline_secrets_land_in_chart_secrets():
    secrets = {s["metadata"]["name"]: s["stringData"] for s in objects("oidc-gitlab", "Secret")}
    assert secrets["coder-oidc"] == {"client-secret": "oidc-secret-value"}
    assert secrets["coder-gitlab"] == {"client-secret": "gitlab-secret-value"}


def test_service_monitor_scrapes_the_private_metrics_service():
    monitor = one("defaults", "ServiceMonitor")
    metrics = one("defaults", "Service", "coder-metrics")
    assert metrics["spec"]["clusterIP"] == "None"
    assert monitor["spec"]["endpoints"][0]["port"] == metrics["spec"]["ports"][0]["name"]
    assert monitor["spec"]["endpoints"][0]["interval"] == "30s"
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert selector.items() <= metrics["metadata"]["labels"].items()
    main_ports = {p["port"] for p in one("defaults", "Service")["spec"]["ports"]}
    assert main_ports == {80}


def test_dashboard_uses_real_coder_metrics():
    config_map = one("defaults", "ConfigMap", "coder-dashboard")
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    dashboard = json.loads(config_map["data"]["coder.json"])
    titles = {p["title"] for p in dashboard["panels"]}
    assert {
        "Active workspaces",
        "Total users",
        "API request rate",
        "Workspace CPU usage",
        "Build success rate",
    } <= titles
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    names = {n for e in exprs for n in re.findall(r"\b([a-z_]+)\s*(?:\{|\[|\))", e)}
    metric_names = {n for n in names if n.startswith(("coder", "container_"))}
    assert metric_names <= CODER_METRICS | KUBELET_METRICS
    assert {"coderd_workspace_builds_total", "coderd_api_requests_processed_total"} <= metric_names
    # coderd_agents_up counts the agents of latest builds, connected or not (coderd/prometheusmetrics,
    # v2.30.0: "The number of active agents per workspace"); connections carry the status.
    (agents,) = [p for p in dashboard["panels"] if p["title"] == "Connected agents"]
    (expr,) = [t["expr"] for t in agents["targets"]]
    assert "coderd_agents_up" not in expr
    assert 'coderd_agents_connections{status="connected"}' in expr


def test_workspace_defaults_reach_the_templates_through_bundle_toml(tmp_path):
    values = tmp_path / "coder.yaml"
    values.write_text(
        yaml.safe_dump({"coder": {"workspaces": {"storage": {"size": "80Gi"}, "inactivityTimeout": "2h"}}})
    )
    (tmp_path / "bundle.toml").write_text(f'[workspace]\nvalues_file = "{values.name}"\n')
    settings = load_settings(tmp_path, {})
    assert settings.workspace.home_disk_size == "80Gi"
    assert settings.workspace.inactivity_timeout == "2h"
    defaults = WorkspaceDefaults()  # the chart's defaults equal the bundle's
    chart_ws = yaml.safe_load((CHART / "values.yaml").read_text())["coder"]["workspaces"]
    assert chart_ws["storage"]["size"] == defaults.home_disk_size
    assert chart_ws["ttl"] == defaults.dormancy_deletion
    (tmp_path / "bundle.toml").write_text(f'[workspace]\nvalues_file = "{CHART / "values.yaml"}"\n')
    assert load_settings(tmp_path, {}).workspace == defaults
    config_map = one("defaults", "ConfigMap", "coder-workspace-defaults")
    assert config_map["data"]["home_disk_size"] == "50Gi"


def test_notes_give_the_access_url_and_callbacks():
    with helm.Chart.load(CHART) as chart:
        notes = chart.render(values_for("oidc-gitlab"), name="coder", namespace="code")
    text = notes["coder/templates/NOTES.txt"]
    assert "https://coder.zeizel.localhost/api/v2/users/oidc/callback" in text
    assert "https://coder.zeizel.localhost/external-auth/gitlab/callback" in text
    test_pod = one("oidc-gitlab", "Pod", "coder-test-healthz")
    assert test_pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    assert test_pod["spec"]["containers"][0]["command"][-1] == "http://coder.code.svc:80/healthz"


def test_readme_values_table_is_current():
    proc = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "chart_values_table.py"), "--check", str(CHART)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr


# --- Issue 13: install on the original chart README's cluster, least privilege, isolation ---


def deployment_of(manifests: list[dict]) -> dict:
    (dep,) = [b for b in manifests if b["kind"] == "Deployment"]
    return dep


def coder_container(manifests: list[dict]) -> dict:
    return deployment_of(manifests)["spec"]["template"]["spec"]["containers"][0]


def env_of(manifests: list[dict]) -> dict[str, dict]:
    return {e["name"]: e for e in coder_container(manifests)["env"]}


def as_manifests(bodies: list[dict]) -> list[Manifest]:
    return [Manifest("t", b) for b in bodies]


GO_ROOTS = Path("/usr/local/go/src/crypto/x509/root_linux.go")


def test_ca_bundles_are_mounted_where_go_reads_them():
    values = with_values(
        "oidc-gitlab",
        {
            "coder": {
                "certs": {"secrets": [{"name": "zeizel-ca", "key": "ca.crt"}]},
                "extraVolumes": [{"name": "extra", "configMap": {"name": "extra"}}],
                "extraVolumeMounts": [{"name": "extra", "mountPath": "/extra"}],
            }
        },
    )
    manifests = render(values)
    spec = deployment_of(manifests)["spec"]["template"]["spec"]
    mounts = {m["mountPath"]: m for m in coder_container(manifests)["volumeMounts"]}
    assert mounts["/etc/ssl/certs/zeizel-ca.crt"] == {
        "name": "ca-cert-zeizel-ca",
        "mountPath": "/etc/ssl/certs/zeizel-ca.crt",
        "subPath": "ca.crt",
        "readOnly": True,
    }
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert volumes["ca-cert-zeizel-ca"]["secret"] == {
        "secretName": "zeizel-ca",
        "items": [{"key": "ca.crt", "path": "ca.crt"}],
    }
    assert mounts["/extra"]["name"] == "extra"
    assert volumes["extra"]["configMap"] == {"name": "extra"}
    assert check_rules(as_manifests(manifests)) == []
    if GO_ROOTS.is_file():  # Go's TLS reads every file in these directories on Linux
        directories = GO_ROOTS.read_text().split("certDirectories = []string{")[1].split("}")[0]
        assert '"/etc/ssl/certs"' in directories


def test_recreate_strategy_renders_without_rolling_update():
    values = with_values("defaults", {"coder": {"strategy": {"type": "Recreate"}}})
    for version in KUBE_VERSIONS:
        manifests = render(values, version)
        assert deployment_of(manifests)["spec"]["strategy"] == {"type": "Recreate"}
        assert check_rules(as_manifests(manifests)) == []
    # One replica is replaced, never overlapped: two coderd versions must not run side by side
    # while migrations run (chart 2.0.0 used maxSurge 1 here).
    rolling = deployment_of(render(values_for("defaults")))["spec"]["strategy"]
    assert rolling == {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1}}
    several = deployment_of(render(values_for("workspace-namespaces")))["spec"]["strategy"]
    assert several == {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}
    chosen = with_values("defaults", {"coder": {"strategy": {"rollingUpdate": {"maxSurge": "25%"}}}})
    assert deployment_of(render(chosen))["spec"]["strategy"]["rollingUpdate"] == {
        "maxSurge": "25%",
        "maxUnavailable": 1,
    }


@pytest.mark.parametrize("url", ["https://*.ws.example.com", "http://*.ws.example.com/", "*.ws.example.com"])
def test_wildcard_url_with_a_scheme_is_normalised(url):
    manifests = render(with_values("defaults", {"coder": {"config": {"wildcardAccessUrl": url}}}))
    # coderd: "hostname pattern must not contain a scheme".
    assert env_of(manifests)["CODER_WILDCARD_ACCESS_URL"]["value"] == "*.ws.example.com"
    (ingress,) = [b for b in manifests if b["kind"] == "Ingress"]
    assert ingress["spec"]["rules"][1]["host"] == "*.ws.example.com"


def test_wildcard_url_with_a_path_is_refused():
    values = with_values(
        "defaults", {"coder": {"config": {"wildcardAccessUrl": "https://*.ws.example.com/a"}}}
    )
    with pytest.raises(DeployError, match="wildcardAccessUrl") as info:
        render(values)
    assert "\n" not in str(info.value)


FORBIDDEN_VERBS = {"*", "escalate", "bind", "impersonate"}


@pytest.mark.parametrize("case", CASES)
def test_developer_roles_have_explicit_verbs_and_no_escalation(case):
    for name in (DEVELOPER, SHARED_DEVELOPER):
        for cluster_role in objects(case, "ClusterRole"):
            if cluster_role["metadata"]["name"] != name:
                continue
            for rule in cluster_role["rules"]:
                assert not FORBIDDEN_VERBS & set(rule["verbs"]), rule
                assert "*" not in rule["resources"]
                assert "*" not in rule["apiGroups"]


def test_shared_workload_namespaces_keep_developers_apart():
    held = role("workspace-namespaces", "ClusterRole", SHARED_DEVELOPER)
    for resource in ("secrets", "pods/exec", "pods/attach", "pods/portforward"):
        assert ("", resource) not in held
    assert ("", "serviceaccounts") in held
    assert held[("", "serviceaccounts")] == READ
    assert ("rbac.authorization.k8s.io", "rolebindings") not in held
    # The full developer role exists (1.1 workspaces bound it) but the provisioner may bind
    # only the shared one here (test_a_shared_workload_namespace_only_lets_...).


def guard(manifests: list[dict]) -> tuple[list[dict], list[dict]]:
    policies = [b for b in manifests if b["kind"] == "ValidatingAdmissionPolicy"]
    bindings = [b for b in manifests if b["kind"] == "ValidatingAdmissionPolicyBinding"]
    return policies, bindings


def cluster_namespace_rules(manifests: list[dict]) -> list[dict]:
    return [
        rule
        for b in manifests
        if b["kind"] == "ClusterRole"
        for rule in b["rules"]
        if "namespaces" in rule.get("resources", [])
    ]


def test_namespace_guard_is_on_by_default_where_kubernetes_has_it():
    values = values_for("defaults")
    policies, bindings = guard(render(values, "1.37.0"))
    assert [p["metadata"]["name"] for p in policies] == ["code-coder-namespace-guard"]
    assert bindings[0]["spec"] == {"policyName": "code-coder-namespace-guard", "validationActions": ["Deny"]}
    assert policies[0]["spec"]["failurePolicy"] == "Fail"
    assert cluster_namespace_rules(render(values, "1.37.0"))
    # A live 1.29 cluster: no v1 policy, so no cluster-wide namespace rights either ...
    old = render(values, "1.29.0")
    assert guard(old) == ([], [])
    assert cluster_namespace_rules(old) == []
    # The developer ClusterRole stays (1.1 workspaces' RoleBindings name it): unbound it grants nothing.
    assert DEVELOPER in {b["metadata"]["name"] for b in old if b["kind"] == "ClusterRole"}
    # ... unless asked for explicitly.
    opted = with_values("defaults", {"rbac": {"workloadNamespaces": {"perWorkspaceWithoutGuard": True}}})
    assert cluster_namespace_rules(render(opted, "1.29.0"))
    assert guard(render(opted, "1.29.0")) == ([], [])
    # Discovery of a live 1.30+ cluster lists the kind itself.
    live = render_chart(
        CHART,
        values,
        release="coder",
        namespace="code",
        kube_version="1.29.0",
        api_versions=["admissionregistration.k8s.io/v1/ValidatingAdmissionPolicy"],
    )
    assert len(guard([m.body for m in live])[0]) == 1


RESTRICTED = {"pod-security.kubernetes.io/enforce": "restricted"}


def admit(policy: dict, request: dict, obj: dict | None, namespace_labels: dict | None = None) -> bool:
    """Evaluate the policy's CEL like the API server: match condition, variables, validations.

    ``namespace_labels``: the labels of the request's namespace (``namespaceObject``),
    by default a namespace enforcing Pod Security ``restricted``.
    """
    celpy = pytest.importorskip("celpy", reason="cel-python is not installed")
    env = celpy.Environment()
    spec = policy["spec"]
    labels = RESTRICTED if namespace_labels is None else namespace_labels
    context = {
        "request": celpy.json_to_cel(request),
        "object": celpy.json_to_cel(obj),
        "namespaceObject": celpy.json_to_cel({"metadata": {"labels": labels}}),
    }
    for cond in spec["matchConditions"]:
        if not env.program(env.compile(cond["expression"])).evaluate(context):
            return True  # not coderd: the policy does not apply
    variables = {
        v["name"]: env.program(env.compile(v["expression"])).evaluate(context) for v in spec["variables"]
    }
    context["variables"] = celpy.json_to_cel({})
    context["variables"] = celpy.celtypes.MapType(
        {celpy.celtypes.StringType(k): v for k, v in variables.items()}
    )
    return all(bool(env.program(env.compile(v["expression"])).evaluate(context)) for v in spec["validations"])


CODERD = "system:serviceaccount:code:coder"


def ns_request(operation: str, name: str, user: str = CODERD) -> dict:
    return {
        "operation": operation,
        "name": name,
        "namespace": "",
        "resource": {"group": "", "version": "v1", "resource": "namespaces"},
        "userInfo": {"username": user},
    }


def binding(
    namespace: str, role: str = DEVELOPER, sa_namespace: str = "coder-workspaces"
) -> tuple[dict, dict]:
    request = {
        "operation": "CREATE",
        "name": "coder-ws",
        "namespace": namespace,
        "resource": {"group": "rbac.authorization.k8s.io", "version": "v1", "resource": "rolebindings"},
        "userInfo": {"username": CODERD},
    }
    obj = {
        "metadata": {"name": "coder-ws", "namespace": namespace},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
        "subjects": [{"kind": "ServiceAccount", "name": "coder-1", "namespace": sa_namespace}],
    }
    return request, obj


def test_namespace_guard_confines_coderd_to_workspace_namespaces():
    (policy,), _ = guard(
        render(with_values("defaults", {"rbac": {"workloadNamespaces": {"shared": ["team"]}}}))
    )
    ws = "coder-ws-0b7c9f6e-1a2b-4c3d-8e9f-001122334455"
    assert admit(policy, ns_request("CREATE", ws), {"metadata": {"name": ws, "labels": RESTRICTED}})
    # Pod Security: a namespace coderd creates must enforce restricted (no node takeover).
    assert not admit(policy, ns_request("CREATE", ws), {"metadata": {"name": ws}})
    privileged = {"pod-security.kubernetes.io/enforce": "privileged"}
    assert not admit(policy, ns_request("UPDATE", ws), {"metadata": {"name": ws, "labels": privileged}})
    assert not admit(policy, *binding(ws), namespace_labels={})
    assert admit(policy, ns_request("DELETE", ws), None)
    assert not admit(policy, ns_request("DELETE", "kube-system"), None)
    assert not admit(policy, ns_request("CREATE", "vault"), {"metadata": {"name": "vault"}})
    assert not admit(policy, ns_request("UPDATE", "code"), {"metadata": {"name": "code"}})
    # Anyone else is left to RBAC.
    assert admit(policy, ns_request("DELETE", "kube-system", user="admin"), None)
    assert admit(policy, *binding(ws))
    assert admit(policy, *binding("team", SHARED_DEVELOPER))
    assert not admit(policy, *binding("code"))  # where the database URL lives
    assert not admit(policy, *binding("vault"))
    assert not admit(policy, *binding(ws, "cluster-admin"))
    # Role and namespace pair up: the full developer role only in a namespace of one's own.
    assert not admit(policy, *binding("team", DEVELOPER))
    assert not admit(policy, *binding(ws, SHARED_DEVELOPER))
    assert not admit(policy, *binding(ws, sa_namespace="code"))  # coderd binding itself
    # The kubernetes template's isolation policy: in its own namespaces only (not, say,
    # one that opens PostgreSQL's namespace).
    assert admit(policy, *network_policy(ws))
    assert admit(policy, network_policy(ws)[0] | {"operation": "DELETE"}, None)
    assert not admit(policy, *network_policy("db"))
    assert not admit(policy, *network_policy("code"))


def network_policy(namespace: str) -> tuple[dict, dict]:
    request = {
        "operation": "CREATE",
        "name": "coder-workspace-isolation",
        "namespace": namespace,
        "resource": {"group": "networking.k8s.io", "version": "v1", "resource": "networkpolicies"},
        "userInfo": {"username": CODERD},
    }
    return request, {"metadata": {"name": "coder-workspace-isolation", "namespace": namespace}}


def egress_allows(policy: dict, ip: str, port: int) -> bool:
    """Whether any ipBlock egress rule of ``policy`` lets traffic to ip:port out."""
    import ipaddress  # noqa: PLC0415

    address = ipaddress.ip_address(ip)
    for rule in policy["spec"]["egress"]:
        ports = {p["port"] for p in rule.get("ports", [])}
        if ports and port not in ports:
            continue
        for peer in rule.get("to", []):
            block = peer.get("ipBlock")
            if not block:
                continue
            net = ipaddress.ip_network(block["cidr"])
            if address.version != net.version or address not in net:
                continue
            if not any(address in ipaddress.ip_network(e) for e in block.get("except", [])):
                return True
    return False


def workspace_policies(case: str) -> dict[str, dict]:
    return {
        p["metadata"]["namespace"]: p
        for p in objects(case, "NetworkPolicy")
        if p["metadata"]["name"] == "coder-workspaces"
    }


CODERD_PEER = {
    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "code"}},
    "podSelector": {
        "matchLabels": {"app.kubernetes.io/name": "coder", "app.kubernetes.io/instance": "coder"}
    },
}


def test_workspace_namespaces_are_isolated_by_default():
    (policy,) = workspace_policies("defaults").values()
    assert policy["metadata"]["namespace"] == "coder-workspaces"
    assert policy["spec"]["podSelector"] == {}
    assert policy["spec"]["policyTypes"] == ["Ingress", "Egress"]
    # Ingress from coderd only: no other workspace, namespace or node.
    assert policy["spec"]["ingress"] == [{"from": [CODERD_PEER]}]
    egress = policy["spec"]["egress"]
    assert {"to": [CODERD_PEER]} in egress
    assert any({p["port"] for p in r.get("ports", [])} == {53} for r in egress)
    for ip, port in [
        ("169.254.169.254", 80),  # cloud metadata
        ("10.43.0.1", 443),  # Kubernetes API Service
        ("10.42.3.7", 5432),  # PostgreSQL pod
        ("172.16.5.5", 8200),  # Vault
        ("192.168.1.20", 22),
        ("127.0.0.1", 80),
        ("fd00::1", 443),
    ]:
        assert not egress_allows(policy, ip, port), ip
    assert egress_allows(policy, "140.82.112.3", 443)
    # The API server endpoints for kubectl in kubernetes-template workspaces.
    assert egress_allows(policy, "192.168.1.5", 6443)
    closed = with_values("defaults", {"networkPolicy": {"workspaces": {"apiServerPorts": []}}})
    (closed_policy,) = [
        b
        for b in render(closed)
        if b["kind"] == "NetworkPolicy" and b["metadata"]["name"] == "coder-workspaces"
    ]
    assert not egress_allows(closed_policy, "192.168.1.5", 6443)
    assert egress_allows(policy, "2606:4700::6810:85e5", 443)
    # The access URL through the ingress controller (Traefik in `ingress`).
    ingress_rule = [r for r in egress if r.get("to") == values_for_default_access_url()]
    assert {p["port"] for p in ingress_rule[0]["ports"]} >= {443, 8443}


def values_for_default_access_url() -> list[dict]:
    defaults = yaml.safe_load((CHART / "values.yaml").read_text())
    return defaults["networkPolicy"]["workspaces"]["accessUrl"]


def test_every_workspace_and_shared_namespace_gets_a_policy_with_knobs():
    policies = workspace_policies("workspace-namespaces")
    assert set(policies) == {"coder-workspaces", "coder-docker", "team-ml", "k8s-workloads"}
    shared = policies["k8s-workloads"]["spec"]["ingress"]
    assert shared[1]["from"][0]["namespaceSelector"]["matchExpressions"][0]["values"] == [
        "coder-workspaces",
        "coder-docker",
        "team-ml",
    ]
    gitlab_ssh = {"to": [{"ipBlock": {"cidr": "10.0.20.5/32"}}], "ports": [{"port": 22, "protocol": "TCP"}]}
    values = with_values("defaults", {"networkPolicy": {"workspaces": {"extraEgress": [gitlab_ssh]}}})
    (policy,) = [
        b
        for b in render(values)
        if b["kind"] == "NetworkPolicy" and b["metadata"]["name"] == "coder-workspaces"
    ]
    assert policy["spec"]["egress"][-1] == gitlab_ssh
    assert egress_allows(policy, "10.0.20.5", 22)
    # Workspaces in the release namespace: only workspace pods are selected, never coderd.
    values = with_values("defaults", {"coder": {"workspaces": {"namespaces": []}}})
    (policy,) = [
        b
        for b in render(values)
        if b["kind"] == "NetworkPolicy" and b["metadata"]["name"] == "coder-workspaces"
    ]
    assert policy["metadata"]["namespace"] == "code"
    assert policy["spec"]["podSelector"] == {"matchLabels": {"app.kubernetes.io/name": "coder-workspace"}}


def test_coderd_network_policy_is_on_by_default_and_fits_the_original_cluster():
    policy = one("defaults", "NetworkPolicy")["spec"]
    ingress_from = policy["ingress"][0]["from"]
    assert {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress"}}} in ingress_from
    # Replica to replica: the DERP relay URL is http://<pod IP>:8080, the `http` port.
    relay = policy["ingress"][1]
    assert relay["ports"] == [{"port": "http", "protocol": "TCP"}]
    assert relay["from"] == [{"podSelector": {"matchLabels": CODERD_PEER["podSelector"]["matchLabels"]}}]
    container = one("defaults", "Deployment")["spec"]["template"]["spec"]["containers"][0]
    assert {"name": "http", "containerPort": 8080, "protocol": "TCP"} in container["ports"]
    egress = policy["egress"]
    database = [r for r in egress if {p["port"] for p in r.get("ports", [])} == {5432}]
    assert database[0]["to"] == [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "db"}}}
    ]
    https = [r for r in egress if 8443 in {p["port"] for p in r.get("ports", [])}]
    assert {p["port"] for p in https[0]["ports"]} == {443, 6443, 8200, 8443}


def test_gitlab_regex_is_anchored_like_coders_default():
    regex = re.compile(container_env("oidc-gitlab")["CODER_EXTERNAL_AUTH_0_REGEX"]["value"])
    assert regex.pattern.startswith("^")
    assert regex.pattern.endswith("$")
    for url in (
        "https://gitlab.zeizel.localhost/team/app.git",
        "git@gitlab.zeizel.localhost:team/app.git",
        "ssh://git@gitlab.zeizel.localhost:2222/team/app.git",
        "gitlab.zeizel.localhost/team/app",
    ):
        assert regex.search(url), url
    for url in (
        "https://evil.example/gitlab.zeizel.localhost/x",
        "https://gitlab.zeizel.localhost.evil.example/x",
        "https://evilgitlab.zeizel.localhost/x",
    ):
        assert not regex.search(url), url


def test_vault_defaults_use_tls_and_a_token_audience():
    defaults = yaml.safe_load((CHART / "values.yaml").read_text())["vault"]
    assert defaults["address"].startswith("https://")
    assert one("vault", "VaultAuth")["spec"]["kubernetes"]["audiences"] == ["vault"]
    deployment = one("vault-agent", "Deployment")["spec"]["template"]
    annotations = deployment["metadata"]["annotations"]
    assert annotations["vault.hashicorp.com/agent-service-account-token-volume-name"] == "vault-token"
    volumes = {v["name"]: v for v in deployment["spec"]["volumes"]}
    token = volumes["vault-token"]["projected"]["sources"][0]["serviceAccountToken"]
    assert token["audience"] == "vault"


def test_root_filesystem_is_read_only_by_default_and_the_image_can_be_pinned():
    container = one("defaults", "Deployment")["spec"]["template"]["spec"]["containers"][0]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert {m["mountPath"] for m in container["volumeMounts"]} == {"/tmp", "/home/coder"}  # noqa: S108
    digest = "sha256:" + "a" * 64
    manifests = render(with_values("defaults", {"image": {"digest": digest}}))
    assert coder_container(manifests)["image"].endswith(f":v2.37.0@{digest}")


def test_gitlab_scopes_are_space_separated():
    values = with_values("oidc-gitlab", {"coder": {"gitlab": {"scopes": "read_api write_repository"}}})
    assert env_of(render(values))["CODER_EXTERNAL_AUTH_0_SCOPES"]["value"] == "read_api write_repository"
    values = with_values("oidc-gitlab", {"coder": {"gitlab": {"scopes": "read_api,write_repository"}}})
    assert env_of(render(values))["CODER_EXTERNAL_AUTH_0_SCOPES"]["value"] == "read_api write_repository"


def test_json_logs_replace_the_human_ones():
    env = env_of(render(with_values("defaults", {"coder": {"config": {"jsonLogs": True}}})))
    assert env["CODER_LOGGING_JSON"]["value"] == "/dev/stderr"
    assert env["CODER_LOGGING_HUMAN"]["value"] == "/dev/null"
    assert "CODER_LOGGING_HUMAN" not in container_env("defaults")


def test_token_lifetimes_are_consistent():
    env = container_env("defaults")
    assert env["CODER_DEFAULT_TOKEN_LIFETIME"]["value"] == "720h"
    assert env["CODER_MAX_TOKEN_LIFETIME"]["value"] == "720h"
    values = with_values("defaults", {"coder": {"agentapi": {"tokenLifetime": "721h"}}})
    with pytest.raises(DeployError, match=r"tokenLifetime \(721h\) exceeds coder.agentapi.maxTokenLifetime"):
        render(values)
    longer = with_values(
        "defaults", {"coder": {"agentapi": {"tokenLifetime": "8760h", "maxTokenLifetime": "8760h"}}}
    )
    assert env_of(render(longer))["CODER_MAX_TOKEN_LIFETIME"]["value"] == "8760h"
    assert render(
        with_values(
            "defaults", {"coder": {"agentapi": {"tokenLifetime": "1h30m", "maxTokenLifetime": "90m"}}}
        )
    )


# The original chart README's "Configure Values" and "Set Secrets" blocks, as written there.
ORIGINAL_BLOCKS = """namespace: code

coder:
  config:
    accessUrl: "https://coder.zeizel.localhost"
    wildcardAccessUrl: "*.workspace.coder.zeizel.localhost"
  
  oidc:
    enabled: true
    issuerUrl: "https://authentik.zeizel.localhost/application/o/coder/"
    clientId: "{{ .Values.secrets.coderOidcClientId }}"
    clientSecret: "{{ .Values.secrets.coderOidcClientSecret }}"
  
  gitlab:
    enabled: true
    url: "https://gitlab.zeizel.localhost"

secrets:
  coderPostgresPassword: "secure-password"
  coderOidcClientId: "coder-client"
  coderOidcClientSecret: "your-oidc-secret"
  coderGitlabClientId: "your-gitlab-client-id"
  coderGitlabClientSecret: "your-gitlab-secret"
"""  # noqa: W293 - the original has indented blank lines


def test_seed_values_file_is_the_original_readme_blocks_verbatim():
    assert (CHART / "ci" / "seed-values.yaml").read_text() == ORIGINAL_BLOCKS


def test_the_original_readme_values_install_as_they_are():
    for version in KUBE_VERSIONS:
        manifests = rendered("seed", version)
        assert validate_manifests(manifests, CRD_SCHEMAS, (version,))[0] == []
        assert check_rules(manifests) == []
        # No helmfile expression reaches the cluster (the dashboard's own legends aside).
        assert not any("{{" in yaml.safe_dump(m.body) for m in manifests if m.body["kind"] != "ConfigMap")
    secrets = {s["metadata"]["name"]: s["stringData"] for s in objects("seed", "Secret")}
    # The database from the original README's backup commands: postgres-postgresql-0 in `db`,
    # user postgres, database coder.
    assert secrets["coder-database"] == {
        "url": "postgres://postgres:secure-password@postgres-postgresql.db.svc:5432/coder?sslmode=disable"
    }
    assert secrets["coder-oidc"] == {"client-secret": "your-oidc-secret"}
    assert secrets["coder-gitlab"] == {"client-secret": "your-gitlab-secret"}
    env = container_env("seed")
    assert env["CODER_OIDC_CLIENT_ID"]["value"] == "coder-client"
    assert env["CODER_EXTERNAL_AUTH_0_CLIENT_ID"]["value"] == "your-gitlab-client-id"
    assert "your-oidc-secret" not in yaml.safe_dump(one("seed", "Deployment"))


def test_composed_database_url_encodes_the_password():
    values = {
        "secrets": {"coderPostgresPassword": "p@ss word/+:"},
        "coder": {"database": {"sslMode": "require"}},
    }
    (secret,) = [b for b in render(values) if b["kind"] == "Secret"]
    url = secret["stringData"]["url"]
    assert (
        url
        == "postgres://postgres:p%40ss%20word%2F%2B%3A@postgres-postgresql.db.svc:5432/coder?sslmode=require"
    )
    from urllib.parse import unquote, urlsplit  # noqa: PLC0415

    assert unquote(urlsplit(url).password) == "p@ss word/+:"
    from coderbundle.vault import database_url  # noqa: PLC0415

    assert database_url(values) == url


def test_a_secrets_reference_to_a_missing_key_says_what_to_add():
    values = {
        "coder": {
            "database": {"existingSecret": "db"},
            "oidc": {
                "enabled": True,
                "issuerUrl": "https://a/",
                "clientId": "{{ .Values.secrets.coderOidcClientId }}",
                "existingSecret": "o",
            },
        },
    }
    with pytest.raises(
        DeployError, match=r"refers to secrets.coderOidcClientId, which the values do not set"
    ):
        render(values)


def test_docs_versions_agree_with_chart_yaml():
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    operations = (REPO / "docs" / "operations.md").read_text()
    versions = re.findall(r"^\s+version:\s*([0-9][^\s#]*)", operations, re.MULTILINE)
    assert versions == [chart["version"]]
    for doc in ("chart.md", "operations.md"):
        text = (REPO / "docs" / doc).read_text()
        # Coder releases (2.x.y) and chart versions named in the docs are the ones Chart.yaml has.
        assert set(re.findall(r"\bv?(2\.\d+\.\d+)\b", text)) <= {chart["appVersion"], chart["version"]}, doc
    assert f"version {chart['version']}" in (REPO / "docs" / "chart.md").read_text()


def test_chart_yaml_cites_only_files_the_project_has():
    text = (CHART / "Chart.yaml").read_text()
    cited = re.findall(r"\b([\w./-]+\.md)\b", text)
    assert cited
    assert all((REPO / path).is_file() for path in cited), cited


def test_dashboard_namespace_variable_follows_the_values():
    def variable(case: str) -> dict:
        dashboard = json.loads(one(case, "ConfigMap", "coder-dashboard")["data"]["coder.json"])
        (var,) = [v for v in dashboard["templating"]["list"] if v["name"] == "workspace_namespace"]
        return var

    assert variable("defaults")["query"] == "coder-workspaces|coder-ws-.+"
    var = variable("workspace-namespaces")
    assert var["query"] == "coder-workspaces|coder-docker|team-ml|k8s-workloads"
    assert var["current"]["value"] == var["query"]


def _checkov() -> str | None:
    """checkov lives in its own venv (its pins clash with ours): CHECKOV, that venv, or PATH."""
    import os  # noqa: PLC0415
    import shutil  # noqa: PLC0415

    venv = "/var/tmp/checkov-venv/bin/checkov"  # noqa: S108 - the documented venv, not a temp file
    for candidate in (os.environ.get("CHECKOV", ""), venv):
        if candidate and Path(candidate).is_file():
            return candidate
    return shutil.which("checkov")


def test_every_checkov_finding_is_justified_in_the_docs(tmp_path):
    checkov = _checkov()
    if checkov is None:
        pytest.skip("checkov is not installed (python3 -m venv /var/tmp/checkov-venv; pip install checkov)")
    from coderbundle.deploy import write_manifests  # noqa: PLC0415

    for case in CASES:
        write_manifests(rendered(case, KUBE_VERSIONS[-1]), tmp_path / case)
    proc = subprocess.run(
        [checkov, "-d", str(tmp_path), "--framework", "kubernetes", "--quiet", "--compact", "-o", "json"],
        capture_output=True,
        text=True,
        check=False,
    )
    report = json.loads(proc.stdout)
    report = report[0] if isinstance(report, list) else report
    failed = {
        (r["check_id"], r["resource"].split(".")[0], r["resource"].split(".")[-1])
        for r in report["results"]["failed_checks"]
    }
    assert report["summary"]["passed"] > 0
    # The triage table in docs/chart.md: one row per check, naming the objects it fails on.
    rows = {
        line.split("|")[1].strip().split()[0]: line
        for line in (REPO / "docs" / "chart.md").read_text().split("## checkov findings")[1].splitlines()
        if line.startswith("| CKV")
    }
    for check_id, kind, name in failed:
        assert check_id in rows, f"{check_id} on {kind}/{name}: add it to docs/chart.md, 'checkov findings'"
        assert f"{kind} `{name}`" in rows[check_id], f"{check_id}: {kind} `{name}` is not in its docs row"
