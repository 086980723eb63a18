"""`coderbundle doctor`'s Coder checks against a REAL Coder server (tests/coder_deployment.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from coderbundle.doctor import check_coder_cli, check_coder_server, check_token

pytestmark = pytest.mark.slow


def test_server_token_and_cli_rows_on_a_real_deployment(coder_deployment):
    d = coder_deployment
    server, version = check_coder_server(d.url, d.admin.token)
    assert server.status == "ok", server.detail
    assert version.lstrip("v").startswith(d.version)

    token = check_token(d.url, d.admin.token)
    assert token.status == "ok", token.detail
    assert "ci-publisher (template-admin)" in token.detail
    assert "expires " in token.detail  # a real API key: its expiry was looked up

    assert check_coder_cli(str(d.binary), version).status == "ok"


def test_a_member_and_a_wrong_token_are_failed_rows_on_a_real_deployment(coder_deployment):
    d = coder_deployment
    member = d.create_user("doctor-member")
    check = check_token(d.url, member.token)
    assert check.status == "failed"
    assert "template-admin" in check.detail
    rejected = check_token(d.url, "xxxxxxxxxx-yyyyyyyyyyyyyyyyyyyyyyyy")
    assert rejected.status == "failed"
    assert "rejected the session token" in rejected.detail
    not_coder, _ = check_coder_server(d.url + "/not-coder", d.admin.token)
    assert not_coder.status == "failed"


def run_doctor_cli(root, d, token):
    """`coderbundle doctor --format json` as a user runs it, against the deployment."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CODER_", "KUBE"))}
    env.update(
        CODER_URL=d.url,
        CODER_SESSION_TOKEN=token,
        CODERBUNDLE_CODER=str(d.binary),
        HOME=str(root),  # no ~/.kube/config or ~/.docker/config.json of this machine
    )
    env.pop("CODERBUNDLE_REGISTRY", None)
    return subprocess.run(
        [sys.executable, "-m", "coderbundle", "--root", str(root), "doctor", "--format", "json"],
        capture_output=True,
        text=True,
        check=False,
        env=env,
        timeout=120,
    )


def test_the_doctor_command_end_to_end_on_a_real_deployment(coder_deployment, bundle):
    d = coder_deployment
    root = bundle("good")
    proc = run_doctor_cli(root, d, d.admin.token)
    report = json.loads(proc.stdout)
    rows = {c["name"]: c for c in report["checks"]}
    assert rows["Coder server"]["status"] == "ok", rows["Coder server"]
    assert f"Coder v{d.version.lstrip('v')}" in rows["Coder server"]["detail"]
    assert rows["session token"]["status"] == "ok", rows["session token"]
    assert "ci-publisher (template-admin)" in rows["session token"]["detail"]
    assert rows["coder CLI"]["status"] == "ok", rows["coder CLI"]
    assert "as the server" in rows["coder CLI"]["detail"]
    bad = [c for c in report["checks"] if c["status"] in ("failed", "missing")]
    assert proc.returncode == (1 if bad else 0), (bad, proc.stderr)

    member = d.create_user("doctor-e2e-member")
    proc = run_doctor_cli(root, d, member.token)
    assert proc.returncode == 1, proc.stderr
    rows = {c["name"]: c for c in json.loads(proc.stdout)["checks"]}
    assert rows["Coder server"]["status"] == "ok"
    assert rows["session token"]["status"] == "failed"
    assert "doctor-e2e-member (member) may not push templates" in rows["session token"]["detail"]


def test_an_organization_template_admin_passes_on_a_real_deployment(coder_deployment):
    d = coder_deployment
    user = d.create_user("doctor-org-admin")
    org = d.default_org()
    body = {"roles": ["organization-template-admin"]}
    d.api("PUT", f"/organizations/{org}/members/{user.username}/roles", d.owner.token, body)
    check = check_token(d.url, user.token)
    assert check.status == "ok", check.detail
    assert "organization-template-admin in coder" in check.detail
