"""`coderbundle deploy`: offline render + validation, and the helm command it runs.

No helm binary or cluster can run here, so the non-dry-run tests put a
stand-in ``helm`` script (``fake_helm``) on PATH that records its argv; the
offline path uses the real Helm engine from helm-python-sdk.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from coderbundle.deploy import HELM_TIMEOUT, find_kubeconfig, load_values, rollback_flag, secret_values
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
    """A stand-in `helm` on PATH that logs its argv; `fail=True` makes it echo argv and exit 1."""

    def make(*, fail: bool = False) -> dict[str, str]:
        bin_dir = tmp_path / "bin"
        bin_dir.mkdir()
        log = tmp_path / "helm-argv.txt"
        body = '[ "$1" = version ] && { echo "${FAKE_HELM_VERSION:-v3.16.2+g1a2b3c4}"; exit 0; }\n'
        body += 'printf "%s\\n" "$@" > "$FAKE_HELM_LOG"\n'
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
    assert "/coder/replicaCount" in one_error_line(proc)


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


def test_deploy_runs_helm_upgrade_install_atomic(fake_helm, tmp_path):
    env = fake_helm()
    values = CI / "defaults-values.yaml"
    proc = cli("deploy", "-f", str(values), "--namespace", "dev", env=env)
    assert proc.returncode == 0, proc.stderr
    argv = (tmp_path / "helm-argv.txt").read_text().splitlines()
    assert argv[:4] == ["upgrade", "--install", "coder", str(REPO / "chart")]
    for flag in ("--atomic", "--wait", "--create-namespace"):
        assert flag in argv
    assert argv[argv.index("--timeout") + 1] == HELM_TIMEOUT
    assert argv[argv.index("--namespace") + 1] == "dev"
    assert argv[argv.index("--values") + 1] == str(values)


def test_helm_4_gets_rollback_on_failure(fake_helm, tmp_path):
    env = {**fake_helm(), "FAKE_HELM_VERSION": "v4.2.3+g9a8b7c6"}
    proc = cli("deploy", "-f", str(CI / "defaults-values.yaml"), env=env)
    assert proc.returncode == 0, proc.stderr
    argv = (tmp_path / "helm-argv.txt").read_text().splitlines()
    assert "--rollback-on-failure" in argv
    assert "--atomic" not in argv
    assert rollback_flag("v3.8.0") == "--atomic"


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
