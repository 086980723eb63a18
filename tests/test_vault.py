"""`coderbundle vault-setup` against a stand-in Vault.

Debian ships no Vault server and nothing here may download one, so
``VaultStandIn`` is a small HTTP server implementing the few Vault endpoints
hvac calls (token lookup, sys/mounts, KV v2 data, sys/policy, sys/auth,
kubernetes auth config and roles) with Vault's status codes and JSON shapes.
The real hvac client talks to it over HTTP.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
import yaml

from coderbundle.errors import DeployError
from coderbundle.settings import Settings
from coderbundle.vault import (
    VaultTarget,
    apply_plan,
    database_url,
    plan_vault,
    policy_hcl,
    secrets_from_values,
    setup_vault,
    target_from_values,
)

hvac = pytest.importorskip("hvac", reason="hvac is not installed")

REPO = Path(__file__).resolve().parent.parent
TOKEN = "root-token"  # noqa: S105 - the stand-in's fixed token


class VaultStandIn(BaseHTTPRequestHandler):
    """Stand-in for the Vault HTTP API (only what vault-setup uses)."""

    state: ClassVar[dict[str, Any]]
    writes: ClassVar[list[str]]

    def log_message(self, *args: object) -> None:
        del args

    def _reply(self, code: int, body: dict | None = None) -> None:
        payload = json.dumps(body).encode() if body is not None else b""
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _body(self) -> dict:
        length = int(self.headers.get("Content-Length") or 0)
        return json.loads(self.rfile.read(length) or b"{}")

    def _authorized(self) -> bool:
        if self.headers.get("X-Vault-Token") != TOKEN:
            # Vault says 403; a proxy in front of it may say 401 (the state picks).
            self._reply(self.state.get("bad_token_status", 403), {"errors": ["permission denied"]})
            return False
        return True

    def do_GET(self) -> None:  # noqa: PLR0911 - one return per endpoint
        path = self.path.removeprefix("/v1/").split("?")[0]
        if path == "sys/health":  # unauthenticated in Vault
            return self._reply(200, {"initialized": True, "sealed": False, "standby": False})
        if not self._authorized():
            return None
        s = self.state
        if path == "auth/token/lookup-self":
            return self._reply(200, {"data": {"id": TOKEN}})
        if path == "sys/mounts":
            return self._reply(200, {"data": s["mounts"], **s["mounts"]})
        if path == "sys/auth":
            return self._reply(200, {"data": s["auth"], **s["auth"]})
        if path.startswith("sys/policy/"):
            name = path.removeprefix("sys/policy/")
            if name in s["policies"]:
                rules = s["policies"][name]
                return self._reply(200, {"name": name, "rules": rules, "data": {"rules": rules}})
            return self._reply(404, {"errors": []})
        if path in s["kv"]:
            return self._reply(200, {"data": {"data": s["kv"][path], "metadata": {"version": 1}}})
        if path in s["auth_objects"]:
            return self._reply(200, {"data": s["auth_objects"][path]})
        return self._reply(404, {"errors": []})

    def do_POST(self) -> None:
        if not self._authorized():
            return None
        path = self.path.removeprefix("/v1/")
        body = self._body()
        self.writes.append(path)
        s = self.state
        if path.startswith("sys/mounts/"):
            s["mounts"][path.removeprefix("sys/mounts/") + "/"] = {
                "type": body["type"],
                "options": body.get("options") or {},
            }
        elif path.startswith("sys/auth/"):
            s["auth"][path.removeprefix("sys/auth/") + "/"] = {"type": body["type"]}
        elif path.startswith("sys/policy/"):
            s["policies"][path.removeprefix("sys/policy/")] = body["policy"]
        elif "/data/" in path:
            mount, _ = path.split("/data/", 1)
            if f"{mount}/" not in s["mounts"]:
                return self._reply(404, {"errors": ["no handler for route"]})
            s["kv"][path] = body["data"]
            return self._reply(200, {"data": {"version": 1}})
        elif path.startswith("auth/"):
            if "/role/" in path:
                body["token_policies"] = body.pop("policies", [])
            s["auth_objects"][path] = body
        return self._reply(204)

    def do_PUT(self) -> None:
        self.do_POST()


@pytest.fixture
def vault():
    """A running stand-in; yields (address, state, writes)."""
    handler = type(
        "Handler",
        (VaultStandIn,),
        {
            "state": {"mounts": {}, "auth": {}, "policies": {}, "kv": {}, "auth_objects": {}},
            "writes": [],
        },
    )
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}", handler.state, handler.writes
    server.shutdown()
    server.server_close()


VALUES = {
    "coder": {
        "database": {"url": "postgres://coder:pw@db:5432/coder"},
        "oidc": {"enabled": True, "clientSecret": "oidc-secret"},
        "gitlab": {"enabled": True, "existingSecret": "x"},
    },
    "vault": {"mode": "operator"},
}


def client(address: str):
    return hvac.Client(url=address, token=TOKEN)


def target(address: str) -> VaultTarget:
    return target_from_values(VALUES, address=address, namespace="code", release="coder")


def test_target_and_secrets_follow_the_chart_values():
    t = target("http://v")
    assert (t.kv_mount, t.path, t.role, t.service_account) == ("secret", "coder", "coder", "coder")
    assert target_from_values({}, address="", namespace="n", release="x").service_account == "x-coder"
    secrets, missing = secrets_from_values(VALUES)
    assert secrets == {
        "database": {"url": "postgres://coder:pw@db:5432/coder"},
        "oidc": {"client-secret": "oidc-secret"},
    }
    assert missing == ["gitlab"]
    assert 'path "secret/data/coder/*"' in policy_hcl(t)
    assert 'capabilities = ["read"]' in policy_hcl(t)


def test_first_run_creates_everything_second_run_nothing(vault):
    address, state, writes = vault
    secrets, missing = secrets_from_values(VALUES)
    plan = plan_vault(client(address), target(address), secrets, missing)
    assert [a.kind for a in plan.actions] == [
        "enable-kv-v2",
        "write-secret",
        "write-secret",
        "write-policy",
        "enable-auth-kubernetes",
        "configure-auth",
        "write-role",
    ]
    apply_plan(client(address), target(address), secrets, plan)
    assert state["mounts"]["secret/"]["options"] == {"version": "2"}
    assert state["kv"]["secret/data/coder/oidc"] == {"client-secret": "oidc-secret"}
    role = state["auth_objects"]["auth/kubernetes/role/coder"]
    assert role["bound_service_account_names"] == ["coder"]
    assert role["bound_service_account_namespaces"] == ["code"]
    assert role["token_policies"] == ["coder"]
    assert state["policies"]["coder"] == policy_hcl(target(address))

    writes.clear()
    again = plan_vault(client(address), target(address), secrets, missing)
    assert again.empty
    assert len(again.unchanged) == 4
    apply_plan(client(address), target(address), secrets, again)
    assert writes == []


def test_only_a_changed_secret_is_rewritten(vault):
    address, state, _ = vault
    secrets, _ = secrets_from_values(VALUES)
    apply_plan(
        client(address), target(address), secrets, plan_vault(client(address), target(address), secrets)
    )
    state["kv"]["secret/data/coder/database"] = {"url": "postgres://old"}
    state["auth_objects"]["auth/kubernetes/role/coder"]["bound_service_account_namespaces"] = ["x"]
    plan = plan_vault(client(address), target(address), secrets)
    assert [(a.kind, a.path) for a in plan.actions] == [
        ("write-secret", "secret/coder/database"),
        ("write-role", "auth/kubernetes/role/coder"),
    ]


def test_kv_version_1_mount_is_refused(vault):
    address, state, _ = vault
    state["mounts"]["secret/"] = {"type": "kv", "options": {"version": "1"}}
    with pytest.raises(DeployError, match="not a KV version 2 mount"):
        plan_vault(client(address), target(address), {})


def test_setup_vault_reports_bad_tokens_and_unreachable_vault(vault, tmp_path):
    address, _, _ = vault
    settings = Settings(root=tmp_path)
    with pytest.raises(DeployError, match="rejected the token"):
        setup_vault(settings, address=address, token="wrong")  # noqa: S106
    with pytest.raises(DeployError, match="no Vault token"):
        setup_vault(settings, address=address, token="")
    with pytest.raises(DeployError, match="cannot reach Vault"):
        setup_vault(settings, address="http://127.0.0.1:9", token=TOKEN)


def test_cli_dry_run_then_apply_never_prints_secrets(vault, tmp_path):
    address, state, _ = vault
    values = tmp_path / "values.yaml"
    values.write_text(json.dumps(VALUES))
    env = {**os.environ, "VAULT_ADDR": address, "VAULT_TOKEN": TOKEN}
    argv = [sys.executable, "-m", "coderbundle", "--root", str(REPO), "vault-setup", "-f", str(values)]
    dry = subprocess.run([*argv, "--dry-run"], capture_output=True, text=True, env=env, check=False)
    assert dry.returncode == 0, dry.stderr
    assert "would change: write-secret secret/coder/database" in dry.stderr
    assert state["kv"] == {}
    real = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
    assert real.returncode == 0, real.stderr
    assert "not in the values files: gitlab" in real.stderr
    for secret in ("pw@db", "oidc-secret"):
        assert secret not in dry.stderr + dry.stdout + real.stderr + real.stdout
    again = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
    assert not [ln for ln in again.stderr.splitlines() if ln.startswith(("changed:", "would"))]
    assert "unchanged: secret/coder/database" in again.stderr


def test_defaults_use_tls_and_bind_the_role_to_a_token_audience(vault):
    t = target_from_values({}, address="", namespace="code", release="coder")
    assert t.address == "https://vault.service.svc:8200"
    assert t.audience == "vault"
    address, state, _ = vault
    live = target(address)
    secrets, missing = secrets_from_values(VALUES)
    apply_plan(client(address), live, secrets, plan_vault(client(address), live, secrets, missing))
    assert state["auth_objects"]["auth/kubernetes/role/coder"]["audience"] == "vault"
    # A role without the audience (written by an older vault-setup) is rewritten.
    del state["auth_objects"]["auth/kubernetes/role/coder"]["audience"]
    plan = plan_vault(client(address), live, secrets, missing)
    assert [(a.kind, a.path) for a in plan.actions] == [("write-role", "auth/kubernetes/role/coder")]


def test_the_original_readme_secrets_block_feeds_vault():
    seed = yaml.safe_load(
        (Path(__file__).resolve().parent.parent / "chart" / "ci" / "seed-values.yaml").read_text()
    )
    secrets, missing = secrets_from_values(seed)
    assert missing == []
    assert secrets == {
        "database": {
            "url": "postgres://postgres:secure-password@postgres-postgresql.db.svc:5432/coder?sslmode=disable"
        },
        "oidc": {"client-secret": "your-oidc-secret"},
        "gitlab": {"client-secret": "your-gitlab-secret"},
    }
    assert database_url({"coder": {"database": {"url": "postgres://x"}}}) == "postgres://x"
    assert database_url({}) == ""


def test_a_401_is_a_rejected_token_not_a_bug(vault, tmp_path):
    address, state, _ = vault
    state["bad_token_status"] = 401
    with pytest.raises(DeployError, match=r"rejected the token \(HTTP 401\); check VAULT_TOKEN") as info:
        setup_vault(Settings(root=tmp_path), address=address, token="wrong")  # noqa: S106
    assert info.value.exit_code == 2


def test_an_address_that_is_not_vault_says_so(tmp_path):
    """A web server that is not Vault (404 everywhere) is named as such, not as a rejected token."""

    class NotVault(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            del args

        def do_GET(self) -> None:
            self.send_response(404)
            self.send_header("Content-Length", "9")
            self.end_headers()
            self.wfile.write(b"not found")

    server = ThreadingHTTPServer(("127.0.0.1", 0), NotVault)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        address = f"http://127.0.0.1:{server.server_port}"
        with pytest.raises(DeployError) as info:
            setup_vault(Settings(root=tmp_path), address=address, token=TOKEN)
    finally:
        server.shutdown()
        server.server_close()
    message = str(info.value)
    assert "is not a Vault server" in message
    assert "HTTP 404" in message
    assert "VAULT_ADDR" in message
    assert "token" not in message.split(";", maxsplit=1)[0]
    assert info.value.exit_code == 2
