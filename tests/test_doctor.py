"""`coderbundle doctor`: one table of what publish and deploy need.

The Coder checks are functions of a URL and a token: here they run against the
stand-in server (tests/standin/; its docstring says why: an expired key doctor can
still read, a CLI of another version, and no deployment needed for the rest).
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests

from bundle_files import set_values_file
from ci_skip import skip_or_fail
from coderbundle.doctor import (
    check_coder_cli,
    check_coder_server,
    check_registry,
    check_terraform,
    check_token,
    tool_provenance,
)
from coderbundle.settings import Settings, TerraformSettings
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


def test_a_typo_in_the_values_file_fails_two_rows_and_every_other_row_is_still_checked(
    bundle, coder, tmp_path
):
    root = bundle("good")
    shutil.copytree(REPO / "chart", root / "chart")
    (root / "coder.yaml").write_text("coder:\n  workspaces:\n    defaultResouces: {}\n")
    toml = root / "bundle.toml"
    toml.write_text(set_values_file(toml.read_text(), "coder.yaml"))
    cli = install_cli(tmp_path / "bin", sys.executable)
    env = {"CODER_URL": coder.url, "CODER_SESSION_TOKEN": coder.state.token, "CODERBUNDLE_CODER": str(cli)}
    proc = doctor(root, "--format", "json", **env)
    assert proc.returncode == 1
    rows = {c["name"]: c for c in json.loads(proc.stdout)["checks"]}
    # bundle.toml no longer loads (publish would stop): its row says why; so does the values row.
    assert rows["bundle.toml"]["status"] == "failed"
    assert "coder.yaml:3: unknown key coder.workspaces.defaultResouces" in rows["bundle.toml"]["detail"]
    assert rows["values file"]["status"] == "failed"
    assert "coder.yaml:3: unknown key coder.workspaces.defaultResouces" in rows["values file"]["detail"]
    # ...and the rest of the table is still there (the old doctor showed the one row).
    assert {
        "terraform",
        "Coder server",
        "session token",
        "coder CLI",
        "registry",
        "Docker",
        "kube context",
    } <= set(rows)
    assert rows["Coder server"]["status"] == "ok", rows["Coder server"]
    assert rows["session token"]["status"] == "ok", rows["session token"]
    assert rows["kube context"]["status"] == "not set"


def test_a_bundle_toml_that_does_not_parse_still_checks_the_environment(bundle, coder):
    root = bundle("good")
    (root / "bundle.toml").write_text("[workspace\ncpu_request = 1\n")
    env = {
        "CODER_URL": coder.url,
        "CODER_SESSION_TOKEN": coder.state.token,
        "CODERBUNDLE_TERRAFORM": sys.executable,  # runs; not terraform: its version is unknown
    }
    proc = doctor(root, "--format", "json", **env)
    assert proc.returncode == 1
    rows = {c["name"]: c for c in json.loads(proc.stdout)["checks"]}
    assert rows["bundle.toml"]["status"] == "failed"
    assert "bundle.toml: invalid TOML" in rows["bundle.toml"]["detail"]
    assert "the rows below use the environment alone" in rows["bundle.toml"]["detail"]
    assert rows["terraform"]["detail"].endswith("set by CODERBUNDLE_TERRAFORM")
    assert rows["Coder server"]["status"] == "ok"
    assert rows["session token"]["status"] == "ok"
    assert rows["values file"]["status"] == "unknown"
    assert "Docker" in rows
    assert "kube context" in rows


def test_a_wrong_environment_and_a_wrong_bundle_toml_are_two_rows(bundle):
    root = bundle("good")
    (root / "bundle.toml").write_text("[workspace\n")
    proc = doctor(root, "--format", "json", CODER_URL="ftp://coder.example.com")
    rows = {c["name"]: c for c in json.loads(proc.stdout)["checks"]}
    assert proc.returncode == 1
    assert "invalid TOML" in rows["bundle.toml"]["detail"]
    assert "CODER_URL='ftp://coder.example.com' has scheme 'ftp'" in rows["environment"]["detail"]
    assert {"Docker", "values file", "kube context"} <= set(rows)


def test_an_organization_template_admin_may_publish_in_that_organization_only(coder):
    coder.state.user["roles"] = []
    default, other = coder.state.orgs[0], coder.state.orgs[1]
    coder.state.org_roles = {default["id"]: ["organization-template-admin"]}
    check = check_token(coder.url, coder.state.token)  # the default organization, as publish uses
    assert check.status == "ok", check.detail
    assert "organization-template-admin in coder" in check.detail
    assert check_token(coder.url, coder.state.token, default["name"]).status == "ok"
    elsewhere = check_token(coder.url, coder.state.token, other["name"])
    assert elsewhere.status == "failed"
    assert "may not push templates to platform" in elsewhere.detail
    assert "organization-template-admin in platform" in elsewhere.detail
    unknown = check_token(coder.url, coder.state.token, "nope")
    assert unknown.status == "failed"
    assert "no organization 'nope'" in unknown.detail


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


# --- the registry row: "writable" only when an upload was accepted ------------------------------


class _Registry(BaseHTTPRequestHandler):
    """The registry API's answers doctor reads: /v2/ and an upload session, behind a login.

    ``mode``: ``basic`` (401 + Basic challenge), ``bearer`` (401 + a token service at /token),
    or ``open`` (no login).  ``user:password`` may push; ``reader`` is known but may not (403).
    """

    mode = "basic"
    log: list[str]

    def log_message(self, *_args):
        pass

    def _reply(self, code, headers=(), body=b""):
        self.send_response(code)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _who(self):
        auth = self.headers.get("Authorization", "")
        if auth.startswith("Basic "):
            return base64.b64decode(auth[6:]).decode().partition(":")[::2]
        if auth.startswith("Bearer "):
            return (auth[7:].removeprefix("token-for-"), "password")
        return None

    def _challenge(self):
        if self.mode == "bearer":
            realm = f"http://127.0.0.1:{self.server.server_port}/token"
            return ("WWW-Authenticate", f'Bearer realm="{realm}",service="test-registry"')
        return ("WWW-Authenticate", 'Basic realm="test-registry"')

    def do_GET(self):
        self.log.append(f"GET {self.path}")
        if self.path.startswith("/token"):
            who = self._who()
            if who is None or who[1] != "password":
                return self._reply(401)
            body = json.dumps({"token": f"token-for-{who[0]}"}).encode()
            return self._reply(200, [("Content-Type", "application/json")], body)
        if self.mode == "open":
            return self._reply(200)
        return self._reply(401, [self._challenge()])

    def do_POST(self):
        self.log.append(f"POST {self.path} {'auth' if self._who() else 'anonymous'}")
        who = self._who()
        if self.mode != "open" and (who is None or who[1] != "password"):
            return self._reply(401, [self._challenge()])
        if who is not None and who[0] == "reader":
            return self._reply(403)
        return self._reply(202, [("Location", "/v2/coderbundle/coderbundle-doctor/blobs/uploads/session-1")])

    def do_DELETE(self):
        self.log.append(f"DELETE {self.path}")
        self._reply(204)


@pytest.fixture
def registry():
    handler = type("Handler", (_Registry,), {"log": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield handler, f"127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()


def docker_login(home, host, user, password="password", **extra):  # noqa: S107 - a test login
    folder = home / ".docker"
    folder.mkdir(parents=True, exist_ok=True)
    auth = base64.b64encode(f"{user}:{password}".encode()).decode()
    (folder / "config.json").write_text(json.dumps({"auths": {f"http://{host}": {"auth": auth}}, **extra}))


@pytest.mark.parametrize("mode", ["basic", "bearer"])
def test_a_registry_behind_a_login_is_writable_only_with_the_login(registry, tmp_path, mode):
    handler, host = registry
    handler.mode = mode
    check = check_registry(host, "coderbundle", {}, tmp_path)  # no ~/.docker/config.json
    assert check.status == "unknown", check.detail  # the old doctor said "ok" to a 401
    assert "reachable; push rights not checked" in check.detail
    assert f"run `docker login {host}`" in check.detail
    assert not check.bad

    docker_login(tmp_path, host, "pusher")
    check = check_registry(host, "coderbundle", {}, tmp_path)
    assert check.status == "ok", check.detail
    assert f"writable as pusher (`docker login {host}`)" in check.detail
    assert "DELETE /v2/coderbundle/coderbundle-doctor/blobs/uploads/session-1" in handler.log  # cancelled
    assert "password" not in check.detail

    docker_login(tmp_path, host, "reader")
    check = check_registry(host, "coderbundle", {}, tmp_path)
    assert check.status == "failed", check.detail
    assert "refuses pushes to coderbundle/ with the credentials of reader" in check.detail

    docker_login(tmp_path, host, "pusher", password="wrong")  # noqa: S106 - a test login
    assert check_registry(host, "coderbundle", {}, tmp_path).status == "failed"


def test_docker_config_and_credential_helpers(registry, tmp_path):
    _, host = registry
    elsewhere = tmp_path / "elsewhere"
    docker_login(elsewhere, host, "pusher")
    check = check_registry(host, "coderbundle", {"DOCKER_CONFIG": str(elsewhere / ".docker")}, tmp_path)
    assert check.status == "ok", check.detail
    docker_login(tmp_path, host, "pusher", credHelpers={host: "pass"})
    check = check_registry(host, "coderbundle", {}, tmp_path)
    assert check.status == "unknown"
    assert "docker-credential-pass, which doctor does not run" in check.detail


def test_an_open_registry_and_the_cli_row(registry, bundle, tmp_path):
    handler, host = registry
    handler.mode = "open"
    check = check_registry(host, "coderbundle", {}, tmp_path)
    assert check.status == "ok"
    assert "writable without a login" in check.detail
    handler.mode = "basic"
    proc = doctor(bundle("good"), "--format", "json", CODERBUNDLE_REGISTRY=host)
    rows = {c["name"]: c for c in json.loads(proc.stdout)["checks"]}
    assert rows["registry"]["status"] == "unknown"


def test_the_local_registry_of_ci_takes_an_upload(tmp_path):
    """Debian's docker-registry that .ci/docker-setup.sh starts on 127.0.0.1:5000 (no login)."""
    try:
        requests.get("http://127.0.0.1:5000/v2/", timeout=2)
    except requests.RequestException:
        pytest.skip("no registry on 127.0.0.1:5000 (.ci/docker-setup.sh starts one)")
    check = check_registry("127.0.0.1:5000", "coderbundle", {}, tmp_path)
    assert check.status == "ok", check.detail
    assert "writable without a login: an upload to coderbundle/ was accepted" in check.detail


# --- terraform's provenance, as the mirror rows show theirs --------------------------------------


def _fake_tools(cache, kind):
    binary = cache / "terraform" / "1.2.3" / "terraform"
    binary.parent.mkdir(parents=True)
    binary.write_text(f'#!{sys.executable}\nprint(\'{{"terraform_version": "1.2.3"}}\')\n')
    binary.chmod(0o755)
    entry = {"kind": kind, "path": "terraform/1.2.3/terraform", "source": "a test", "version": "1.2.3"}
    (cache / "manifest.json").write_text(json.dumps({"terraform": entry}))
    return binary


def test_the_terraform_row_says_where_terraform_came_from(tmp_path, monkeypatch):
    binary = _fake_tools(tmp_path / "tools", "built from source")
    configured = Settings(
        tmp_path, terraform=TerraformSettings(binary=str(binary), binary_from="CODERBUNDLE_TERRAFORM")
    )
    (row,) = check_terraform(configured)[:1]
    assert row.status == "ok"
    assert (
        row.detail == f"{binary}: terraform 1.2.3, built from source (a test); set by CODERBUNDLE_TERRAFORM"
    )

    monkeypatch.setenv("PATH", f"{binary.parent}{os.pathsep}{os.environ['PATH']}")
    (row,) = check_terraform(Settings(tmp_path))[:1]
    assert row.detail.endswith("terraform 1.2.3, built from source (a test); from PATH"), row.detail

    other = tmp_path / "bin" / "terraform"
    other.parent.mkdir()
    shutil.copy(binary, other)
    (row,) = check_terraform(
        Settings(tmp_path, terraform=TerraformSettings(binary=str(other), binary_from="X"))
    )[:1]
    assert "terraform 1.2.3, not in a `nox -s tools` manifest; set by X" in row.detail


def test_a_stand_in_in_a_tools_cache_elsewhere_is_named(tmp_path):
    binary = _fake_tools(tmp_path / "cache", "stand-in")
    linked = tmp_path / "terraform"
    linked.symlink_to(binary)
    assert tool_provenance(str(linked)) == "stand-in (a test)"  # found beside the binary
    assert tool_provenance(str(linked), [tmp_path / "cache"]) == "stand-in (a test)"


def test_the_terraform_of_the_tools_cache_is_built_from_source():
    cache = Path(os.environ.get("CODERBUNDLE_TOOLS_CACHE", Path.home() / ".cache" / "coderbundle" / "tools"))
    if not (cache / "manifest.json").is_file():
        skip_or_fail(f"no `nox -s tools` cache in {cache} (CODERBUNDLE_TOOLS_CACHE)")
    entry = json.loads((cache / "manifest.json").read_text(encoding="utf-8"))["terraform"]
    binary = str(cache / entry["path"])
    assert tool_provenance(binary, [cache]) == f"{entry['kind']} ({entry['source']})"
