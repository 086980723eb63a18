"""`coderbundle doctor`: one table of what publish and deploy need.

The Coder checks are functions of a URL and a token: here they run against the
stand-in server (tests/standin/; its docstring says why: an expired key doctor can
still read, a CLI of another version, and no deployment needed for the rest).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from bundle_files import set_values_file
from coderbundle.doctor import check_coder_cli, check_coder_server, check_token
from conftest import REPO
from standin.server import CoderStandin, install_cli

KEY_TOKEN = "abcdefghij-0123456789abcdefghijkl"  # noqa: S105 - Coder's <id>-<secret> form, a test value


@pytest.fixture
def coder():
    with CoderStandin() as server:
        yield server


def doctor(root, *args, **env):
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("CODER_", "CODERBUNDLE_", "KUBE"))}
    environ.update(env)
    environ["HOME"] = str(root)  # no ~/.kube/config of this machine
    return subprocess.run(
        [sys.executable, "-m", "coderbundle", "--root", str(root), "doctor", *args],
        capture_output=True,
        text=True,
        check=False,
        env=environ,
    )


def test_server_check_reports_the_version(coder):
    check, version = check_coder_server(coder.url, coder.state.token)
    assert check.status == "ok"
    assert version == "v2.37.1-standin"
    assert version in check.detail


def test_server_check_refuses_what_is_not_coder(coder):
    check, version = check_coder_server(coder.url + "/not-coder", coder.state.token)
    assert check.status == "failed"
    assert version == ""
    assert "not Coder's" in check.detail


def test_token_role_and_expiry(coder):
    coder.state.token = KEY_TOKEN
    coder.state.key_expires_at = "2099-01-01T00:00:00Z"
    check = check_token(coder.url, KEY_TOKEN)
    assert check.status == "ok", check.detail
    assert "coderbundle-ci (template-admin)" in check.detail
    assert "expires 2099-01-01" in check.detail


def test_expired_token_fails(coder):
    coder.state.token = KEY_TOKEN
    coder.state.key_expires_at = "2020-01-01T00:00:00Z"
    check = check_token(coder.url, KEY_TOKEN)
    assert check.status == "failed"
    assert "expired on 2020-01-01" in check.detail


def test_a_member_token_may_not_publish(coder):
    coder.state.user["roles"] = []
    check = check_token(coder.url, coder.state.token)
    assert check.status == "failed"
    assert "template-admin" in check.detail


def test_a_rejected_token_fails(coder):
    check = check_token(coder.url, "wrong-token")
    assert check.status == "failed"
    assert "rejected the session token" in check.detail


def test_cli_version_against_the_server(tmp_path, monkeypatch):
    cli = install_cli(tmp_path / "bin", sys.executable)
    assert check_coder_cli(str(cli), "v2.37.1").status == "ok"
    monkeypatch.setenv("STANDIN_CODER_CLI_VERSION", "v2.20.0")
    check = check_coder_cli(str(cli), "v2.37.1")
    assert check.status == "failed"
    assert "v2.20.0, the server is v2.37.1" in check.detail
    missing = check_coder_cli("/nope/coder", "v2.37.1", configured_by="CODERBUNDLE_CODER")
    assert missing.status == "missing"
    assert "CODERBUNDLE_CODER is '/nope/coder': no such file" in missing.detail


def test_the_cli_table_and_json_against_the_standin(bundle, coder, tmp_path):
    root = bundle("good")
    cli = install_cli(tmp_path / "bin", sys.executable)
    env = {"CODER_URL": coder.url, "CODER_SESSION_TOKEN": coder.state.token, "CODERBUNDLE_CODER": str(cli)}
    proc = doctor(root, "--format", "json", **env)
    report = json.loads(proc.stdout)
    rows = {c["name"]: c for c in report["checks"]}
    assert rows["Coder server"]["status"] == "ok"
    assert rows["session token"]["status"] == "ok"
    assert rows["coder CLI"]["status"] == "ok"
    assert rows["kube context"]["status"] == "not set"
    bad = [c for c in report["checks"] if c["status"] in ("failed", "missing")]
    assert proc.returncode == (1 if bad else 0), proc.stderr
    assert report["ok"] is (not bad)
    text = doctor(root, **env)
    assert "coderbundle doctor" in text.stderr
    assert "session token" in text.stderr


def test_a_typo_in_the_values_file_is_a_failed_row_and_exit_1(bundle):
    root = bundle("good")
    shutil.copytree(REPO / "chart", root / "chart")
    (root / "coder.yaml").write_text("coder:\n  workspaces:\n    defaultResouces: {}\n")
    toml = root / "bundle.toml"
    toml.write_text(set_values_file(toml.read_text(), "coder.yaml"))
    proc = doctor(root, "--format", "json")
    assert proc.returncode == 1
    rows = {c["name"]: c for c in json.loads(proc.stdout)["checks"]}
    # bundle.toml itself no longer loads (publish would stop): the first row says why.
    assert rows["bundle.toml"]["status"] == "failed"
    assert "coder.yaml:3: unknown key coder.workspaces.defaultResouces" in rows["bundle.toml"]["detail"]


def test_an_environment_failure_points_at_doctor(bundle):
    proc = subprocess.run(
        [sys.executable, "-m", "coderbundle", "--root", str(bundle("good")), "validate"],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "CODERBUNDLE_TERRAFORM": "terrafrom"},
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert lines[0].startswith("error: CODERBUNDLE_TERRAFORM is 'terrafrom'")
    assert "nox -s doctor" in lines[1]
