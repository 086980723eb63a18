"""The real API server fixture itself: up, RBAC on, impersonation, admission plugins on."""

from __future__ import annotations

pytest_plugins = ("kube_fixtures",)


def test_the_server_is_kubernetes_1_34_with_rbac_and_the_admission_apis(kube_api):
    version = kube_api.request("GET", "/version").json()
    assert (version["major"], version["minor"]) == ("1", "34")
    groups = {g["name"] for g in kube_api.request("GET", "/apis").json()["groups"]}
    assert {"rbac.authorization.k8s.io", "admissionregistration.k8s.io"} <= groups
    plural, namespaced = kube_api.resource("admissionregistration.k8s.io/v1", "ValidatingAdmissionPolicy")
    assert (plural, namespaced) == ("validatingadmissionpolicies", False)


def test_impersonated_users_get_only_what_rbac_grants(kube_api):
    assert kube_api.request("GET", "/api/v1/namespaces").status_code == 200
    denied = kube_api.request("GET", "/api/v1/namespaces", as_user="someone")
    assert denied.status_code == 403
    assert 'User "someone" cannot list resource "namespaces"' in denied.json()["message"]
    sa = kube_api.request("GET", "/api/v1/secrets", as_user="system:serviceaccount:default:x")
    assert sa.status_code == 403
    # system:masters through impersonation too: the header reaches the authorizer.
    assert kube_api.request("GET", "/api/v1/namespaces", as_user="x", as_group="system:masters").ok


def test_pod_security_admission_enforces_namespace_labels(kube_api):
    ns = {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": "fixture-ps", "labels": {"pod-security.kubernetes.io/enforce": "baseline"}},
    }
    assert kube_api.apply(ns).ok
    kube_api.default_service_account("fixture-ps")
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p", "namespace": "fixture-ps"},
        "spec": {"hostNetwork": True, "containers": [{"name": "c", "image": "busybox"}]},
    }
    refused = kube_api.apply(pod, dry_run=True)
    assert refused.status_code == 403
    assert 'violates PodSecurity "baseline:latest": host namespaces' in refused.json()["message"]
