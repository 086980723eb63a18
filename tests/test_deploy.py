"""`coderbundle deploy`: offline render + validation, and the helm command it runs.

No helm binary or cluster can run here, so the non-dry-run tests put a
stand-in ``helm`` script (``fake_helm``) on PATH that records its argv; the
offline path uses the real Helm engine from helm-python-sdk.
"""

from __future__ import annotations

import copy
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from coderbundle.deploy import (
    HELM_TIMEOUT,
    Manifest,
    check_rules,
    find_kubeconfig,
    helm_commands,
    load_values,
    render_chart,
    secret_values,
    several_replicas,
    upgrade_notes,
)
from coderbundle.errors import DeployError

REPO = Path(__file__).resolve().parent.parent
CI = REPO / "chart" / "ci"
needs_helm_engine = pytest.mark.skipif(
    not all(importlib.util.find_spec(m) for m in ("helm_python", "kubernetes_validate")),
    reason="helm-python-sdk or kubernetes-validate is not installed",
)


def cli(*args, env=None):
    return subprocess.run(
        [sys.executable, "-m", "coderbundle", "--root", str(REPO), *args],
        capture_output=True,
        text=True,
        check=False,
        env=env,
    )


def one_error_line(proc):
    assert "Traceback" not in proc.stderr
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1, proc.stderr
    return errors[0]


@pytest.fixture
def fake_helm(tmp_path):
    """A stand-in `helm` on PATH that logs its argv; `fail=True` makes it echo argv and exit 1.

    Each `upgrade` run's argv goes to helm-argv.txt (the last one) and, one run per line, to
    helm-argv.txt.runs; `helm status` exits with FAKE_HELM_STATUS (default 1: no such release);
    `helm list` prints FAKE_HELM_LIST (default `[]`).
    """

    def make(*, fail: bool = False) -> dict[str, str]:
        bin_dir = tmp_path / "bin"
        bin_dir.mkdir()
        log = tmp_path / "helm-argv.txt"
        body = '[ "$1" = version ] && { echo "${FAKE_HELM_VERSION:-v3.16.2+g1a2b3c4}"; exit 0; }\n'
        body += '[ "$1" = status ] && exit "${FAKE_HELM_STATUS:-1}"\n'
        body += '[ "$1" = list ] && { echo "${FAKE_HELM_LIST:-[]}"; exit 0; }\n'
        body += 'printf "%s\\n" "$@" > "$FAKE_HELM_LOG"\n'
        body += 'echo "$*" >> "$FAKE_HELM_LOG.runs"\n'
        if fail:
            # Like a failing helm that quotes the values it was given.
            body += 'p=; for a in "$@"; do [ "$p" = --values ] && cat "$a" >&2; p=$a; done\n'
            body += "exit 1\n"
        script = bin_dir / "helm"
        script.write_text(f"#!/bin/sh\n{body}")
        script.chmod(0o755)
        kubeconfig = tmp_path / "kubeconfig"
        kubeconfig.write_text("apiVersion: v1\nkind: Config\n")
        return {
            **os.environ,
            "PATH": f"{bin_dir}{os.pathsep}/usr/bin:/bin",
            "KUBECONFIG": str(kubeconfig),
            "FAKE_HELM_LOG": str(log),
        }

    return make


def test_load_values_merges_like_helm(tmp_path):
    a = tmp_path / "a.yaml"
    b = tmp_path / "b.yaml"
    a.write_text("coder: {replicaCount: 1, config: {telemetry: false, accessUrl: x}}\n")
    b.write_text("coder: {config: {accessUrl: y}}\nimagePullSecrets: [{name: r}]\n")
    merged = load_values([a, b])
    assert merged["coder"] == {"replicaCount": 1, "config": {"telemetry": False, "accessUrl": "y"}}
    assert merged["imagePullSecrets"] == [{"name": "r"}]


@pytest.mark.parametrize(
    ("content", "needle"), [(None, "cannot read"), ("a: [", "invalid YAML"), ("- 1", "mapping")]
)
def test_load_values_errors_name_the_file(tmp_path, content, needle):
    path = tmp_path / "values.yaml"
    if content is not None:
        path.write_text(content)
    with pytest.raises(DeployError, match=needle) as info:
        load_values([path])
    assert str(path) in str(info.value)


def test_secret_values_include_the_database_password():
    values = yaml.safe_load((CI / "oidc-gitlab-values.yaml").read_text())
    found = secret_values(values)
    assert "pw" in found
    assert "oidc-secret-value" in found
    assert "gitlab-secret-value" in found


def test_find_kubeconfig(tmp_path):
    assert find_kubeconfig({"KUBECONFIG": "/a:/b"}, tmp_path) == Path("/a")
    assert find_kubeconfig({"KUBERNETES_SERVICE_HOST": "10.0.0.1"}, tmp_path) is None
    (tmp_path / ".kube").mkdir()
    (tmp_path / ".kube" / "config").write_text("")
    assert find_kubeconfig({}, tmp_path) == tmp_path / ".kube" / "config"
    with pytest.raises(DeployError, match="no kubeconfig"):
        find_kubeconfig({}, tmp_path / "nowhere")


@needs_helm_engine
@pytest.mark.helm
def test_dry_run_renders_and_validates_without_a_cluster():
    proc = cli("deploy", "--dry-run", "-f", str(CI / "oidc-gitlab-values.yaml"))
    assert proc.returncode == 0, proc.stderr
    assert "valid for Kubernetes 1.25.0 and 1.37.0" in proc.stderr
    assert "ServiceMonitor/coder: custom resource" in proc.stderr
    assert "oidc-secret-value" not in proc.stderr + proc.stdout


@needs_helm_engine
@pytest.mark.helm
def test_dry_run_with_bad_values_is_one_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("coder: {replicaCount: many}\n")
    proc = cli("deploy", "--dry-run", "-f", str(CI / "defaults-values.yaml"), "-f", str(bad))
    assert proc.returncode == 1
    assert f"{bad}:1: coder.replicaCount: " in one_error_line(proc)  # the user's file, not the schema


@needs_helm_engine
@pytest.mark.helm
def test_dry_run_without_required_values_says_what_to_set():
    proc = cli("deploy", "--dry-run")
    assert proc.returncode == 1
    assert "set coder.database.url or coder.database.existingSecret" in one_error_line(proc)


def test_deploy_without_helm_exits_2(tmp_path):
    env = {**os.environ, "PATH": str(tmp_path)}
    proc = cli("deploy", "-f", str(CI / "defaults-values.yaml"), env=env)
    assert proc.returncode == 2
    assert "helm: executable not found" in one_error_line(proc)


def test_deploy_without_kubeconfig_exits_2(fake_helm, tmp_path):
    env = fake_helm()
    del env["KUBECONFIG"]
    env["HOME"] = str(tmp_path / "home")
    env.pop("KUBERNETES_SERVICE_HOST", None)
    proc = cli("deploy", "-f", str(CI / "defaults-values.yaml"), env=env)
    assert proc.returncode == 2  # an environment error, as --help promises
    assert "no kubeconfig" in one_error_line(proc)


def test_deploy_runs_helm_upgrade_install_without_rollback(fake_helm, tmp_path):
    env = fake_helm()
    values = CI / "defaults-values.yaml"
    proc = cli("deploy", "-f", str(values), "--namespace", "dev", env=env)
    assert proc.returncode == 0, proc.stderr
    argv = (tmp_path / "helm-argv.txt").read_text().splitlines()
    assert argv[:4] == ["upgrade", "--install", "coder", str(REPO / "chart")]
    for flag in ("--wait", "--create-namespace"):
        assert flag in argv
    # A rollback would start the old coderd on a database already migrated forward.
    assert "--atomic" not in argv
    assert "--rollback-on-failure" not in argv
    assert argv[argv.index("--timeout") + 1] == HELM_TIMEOUT
    assert argv[argv.index("--namespace") + 1] == "dev"
    assert argv[argv.index("--values") + 1] == str(values)
    assert len((tmp_path / "helm-argv.txt.runs").read_text().splitlines()) == 1


def test_helm_4_gets_no_rollback_flag_either(fake_helm, tmp_path):
    env = {**fake_helm(), "FAKE_HELM_VERSION": "v4.2.3+g9a8b7c6"}
    proc = cli("deploy", "-f", str(CI / "defaults-values.yaml"), env=env)
    assert proc.returncode == 0, proc.stderr
    argv = (tmp_path / "helm-argv.txt").read_text().splitlines()
    assert "--rollback-on-failure" not in argv
    assert "--atomic" not in argv


def test_upgrading_several_replicas_scales_down_then_up(fake_helm, tmp_path):
    env = {**fake_helm(), "FAKE_HELM_STATUS": "0"}  # the release exists: an upgrade
    values = CI / "workspace-namespaces-values.yaml"  # replicaCount: 2
    proc = cli("deploy", "-f", str(values), env=env)
    assert proc.returncode == 0, proc.stderr
    runs = (tmp_path / "helm-argv.txt.runs").read_text().splitlines()
    assert len(runs) == 2
    assert runs[0].endswith("--set coder.replicaCount=1 --set autoscaling.enabled=false")
    assert "--set" not in runs[1]
    assert runs[1].startswith("upgrade --install coder")


def test_first_install_of_several_replicas_is_one_run(fake_helm, tmp_path):
    env = fake_helm()  # helm status fails: no release yet
    proc = cli("deploy", "-f", str(CI / "autoscaling-values.yaml"), env=env)
    assert proc.returncode == 0, proc.stderr
    assert len((tmp_path / "helm-argv.txt.runs").read_text().splitlines()) == 1


def test_helm_commands_and_several_replicas():
    assert several_replicas({"coder": {"replicaCount": 3}})
    assert several_replicas({"autoscaling": {"enabled": True}})
    assert not several_replicas({})
    one, two = helm_commands(Path("c"), [Path("v.yaml")], release="r", namespace="n", scale_down_first=True)
    assert one[: len(two)] == two
    assert one[len(two) :] == ["--set", "coder.replicaCount=1", "--set", "autoscaling.enabled=false"]
    (only,) = helm_commands(Path("c"), [], release="r", namespace="n", scale_down_first=False)
    assert only == [a for a in two if a not in {"--values", "v.yaml"}]


def test_failed_helm_output_never_shows_secrets(fake_helm, tmp_path):
    env = fake_helm(fail=True)
    secret = tmp_path / "secret.yaml"
    secret.write_text(
        "coder:\n  database:\n    url: postgres://u:hunter2@db:5432/coder\n"
        "  oidc: {enabled: true, issuerUrl: 'https://a/application/o/c/', clientId: c,"
        " clientSecret: 'hunter2'}\n"
    )
    proc = cli("deploy", "-f", str(secret), "-f", str(secret), env=env)
    assert proc.returncode == 1
    assert "helm exited with code 1" in one_error_line(proc)
    assert "hunter2" not in proc.stderr + proc.stdout


def test_secret_values_include_the_original_readme_secrets_block():
    values = yaml.safe_load((CI / "seed-values.yaml").read_text())
    found = secret_values(values)
    assert {"secure-password", "your-oidc-secret", "your-gitlab-secret"} <= set(found)


@needs_helm_engine
@pytest.mark.helm
def test_dry_run_writes_the_rendered_manifests_to_a_folder(tmp_path):
    out = tmp_path / "rendered"
    proc = cli("deploy", "--dry-run", "-f", str(CI / "seed-values.yaml"), "--output-dir", str(out))
    assert proc.returncode == 0, proc.stderr
    deployment = yaml.safe_load((out / "coder" / "templates" / "deployment.yaml").read_text())
    assert deployment["kind"] == "Deployment"
    kinds = {
        doc["kind"] for path in out.rglob("*.yaml") for doc in yaml.safe_load_all(path.read_text()) if doc
    }
    assert {"Deployment", "Secret", "NetworkPolicy", "ValidatingAdmissionPolicy"} <= kinds


def test_output_dir_without_dry_run_is_refused(fake_helm, tmp_path):
    proc = cli(
        "deploy", "-f", str(CI / "defaults-values.yaml"), "--output-dir", str(tmp_path), env=fake_helm()
    )
    assert proc.returncode == 2  # usage (docs/errors.md)
    assert "add --dry-run" in one_error_line(proc)


@needs_helm_engine
@pytest.mark.helm
@pytest.mark.parametrize(
    ("values", "needle"),
    [
        ("podLabels: {team: " + "x" * 64 + "}\n", "must be at most 63"),
        ("coder: {env: [{name: 1-bad, value: x}]}\n", "must be a valid environment variable name"),
    ],
)
def test_dry_run_rejects_what_the_schema_lets_through(tmp_path, values, needle):
    bad = tmp_path / "bad.yaml"
    bad.write_text(values)
    proc = cli("deploy", "--dry-run", "-f", str(CI / "defaults-values.yaml"), "-f", str(bad))
    assert proc.returncode == 1
    line = one_error_line(proc)
    assert needle in line
    assert "Deployment/coder" in line


@pytest.fixture(scope="module")
def base() -> list[Manifest]:
    if not importlib.util.find_spec("helm_python"):
        pytest.skip("helm-python-sdk is not installed")
    values = yaml.safe_load((CI / "workspace-namespaces-values.yaml").read_text())
    values["autoscaling"] = {"enabled": True}
    return render_chart(REPO / "chart", values, release="coder", namespace="code", kube_version="1.37.0")


def _mutated(base: list[Manifest], kind: str, change) -> list[Manifest]:
    out = []
    done = False
    for m in base:
        body = copy.deepcopy(m.body)
        if body["kind"] == kind and not done:
            change(body)
            done = True
        out.append(Manifest(m.template, body))
    assert done, kind
    return out


def _container(body):
    return body["spec"]["template"]["spec"]["containers"][0]


# Each: what Kubernetes' validation code rejects (pkg/apis/*/validation) although the OpenAPI
# schema that kubernetes-validate checks accepts it.
RULE_CASES = [
    ("Deployment", lambda b: b["spec"]["strategy"].update(type="Recreate"), "'Recreate'"),
    (
        "Deployment",
        lambda b: b["spec"]["strategy"].update(rollingUpdate={"maxSurge": 0, "maxUnavailable": 0}),
        "may not be 0 when maxSurge is 0",
    ),
    (
        "Deployment",
        lambda b: b["spec"]["template"]["metadata"]["labels"].update({"app.kubernetes.io/name": "other"}),
        "`selector` does not match template `labels`",
    ),
    ("Deployment", lambda b: _container(b)["env"].append({"name": "A B", "value": "x"}), "environment"),
    (
        "Deployment",
        lambda b: _container(b).setdefault("volumeMounts", []).append({"name": "nope", "mountPath": "/x"}),
        "not found in the pod's volumes",
    ),
    ("Deployment", lambda b: b["spec"].update(progressDeadlineSeconds=0), "minReadySeconds"),
    (
        "Deployment",
        lambda b: _container(b)["resources"]["requests"].update(memory="8Gi"),
        "less than or equal to the memory limit",
    ),
    ("HorizontalPodAutoscaler", lambda b: b["spec"].update(minReplicas=5, maxReplicas=3), "minReplicas"),
    (
        "HorizontalPodAutoscaler",
        lambda b: b["spec"]["behavior"]["scaleDown"].update(stabilizationWindowSeconds=7200),
        "between 0 and 3600",
    ),
    ("PodDisruptionBudget", lambda b: b["spec"].update(minAvailable=1), "cannot both be set"),
    (
        "NetworkPolicy",
        lambda b: b["spec"]["egress"][0]["ports"][0].update(endPort=10),
        "needs a numeric port",
    ),
    (
        "NetworkPolicy",
        lambda b: b["spec"]["egress"].append(
            {"to": [{"ipBlock": {"cidr": "10.0.0.0/8", "except": ["11.0.0.0/8"]}}]}
        ),
        "strict subset",
    ),
    ("Ingress", lambda b: b["spec"]["rules"][0].update(host="coder.*.example.com"), "leading '*.'"),
    ("ConfigMap", lambda b: b["metadata"]["labels"].update({"team": "a/b"}), "value 'a/b'"),
    ("Role", lambda b: b["rules"][0].update(verbs=[]), "at least one verb"),
    ("ConfigMap", lambda b: b.update(data={"bad key": "x"}), "alphanumerics"),
    ("Namespace", lambda b: b["metadata"].update(name="Coder_WS"), "DNS-1123 label"),
    ("Service", lambda b: b["metadata"].update(name="1coder"), "DNS-1035 label"),
]


@pytest.mark.parametrize(("kind", "change", "needle"), RULE_CASES)
def test_check_rules_catches_what_schema_validation_misses(base, kind, change, needle):
    assert check_rules(base) == []
    problems = check_rules(_mutated(base, kind, change))
    assert len(problems) >= 1
    assert any(needle in p for p in problems), problems
    assert all(f"{kind}/" in p for p in problems), problems


def test_check_rules_finds_an_object_rendered_twice():
    # Port names, role references and the admission policy are the chart's own: the real
    # API server judges them (tests/test_chart_cluster.py), not check_rules.
    twice = check_rules([Manifest("t", {"kind": "ConfigMap", "metadata": {"name": "a"}})] * 2)
    assert twice == ["t: ConfigMap/a: rendered twice: another object has the same kind, namespace and name"]


def test_upgrade_notes_cover_the_versions_an_upgrade_crosses():
    changelog = (REPO / "chart" / "CHANGELOG.md").read_text()
    target = yaml.safe_load((REPO / "chart" / "Chart.yaml").read_text())["version"]
    from_1 = upgrade_notes(changelog, "1.1.0", target)
    assert any("from `traefik` to `ingress`" in n for n in from_1)
    assert any("`vault.address` changed" in n for n in from_1)
    assert any("pod-security.kubernetes.io/enforce: baseline" in n for n in from_1)
    from_2 = upgrade_notes(changelog, "2.0.0", target)
    assert from_2
    assert not any("traefik" in n for n in from_2)
    assert upgrade_notes(changelog, target, target) == []


def test_deploy_warns_when_an_upgrade_crosses_changed_defaults(fake_helm):
    listed = '[{"name": "coder", "namespace": "code", "chart": "coder-1.1.0", "status": "deployed"}]'
    env = {**fake_helm(), "FAKE_HELM_STATUS": "0", "FAKE_HELM_LIST": listed}
    proc = cli("deploy", "-f", str(CI / "defaults-values.yaml"), env=env)
    assert proc.returncode == 0, proc.stderr
    assert "upgrading chart 1.1.0 -> " in proc.stderr
    assert "from `traefik` to `ingress`" in proc.stderr
    # A first install (no release listed) has nothing to cross.
    fresh = cli("deploy", "-f", str(CI / "defaults-values.yaml"), env={**env, "FAKE_HELM_LIST": "[]"})
    assert fresh.returncode == 0, fresh.stderr
    assert "upgrading chart" not in fresh.stderr
