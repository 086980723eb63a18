"""A real Kubernetes API server for the chart tests: etcd + kube-apiserver on 127.0.0.1.

``kube_api`` (session scope) starts Debian's etcd and the kube-apiserver that
``nox -s tools`` builds from source (scripts/build_tools.py) with a fresh data
folder, its own CA, an admin client certificate in ``system:masters`` and a
service-account key; RBAC authorization, ValidatingAdmissionPolicy and
PodSecurity admission on (``--allow-privileged=true``, so only Pod Security can
refuse a privileged pod).  No controller manager runs: nothing creates the
``default`` ServiceAccounts, deletes namespaces or starts pods; objects are stored
and admitted, which is what the chart tests judge.

Tests get a ``KubeAPI``: ``request``/``apply`` as the admin or, with ``as_user``
(and ``as_group``), impersonating anyone (``Impersonate-User``/``-Group``), and
``kubeconfig`` for tools.  Without the binaries the tests skip saying why; under
``CI=true`` they fail instead (.ci/run provides both).

Register it in a test module with ``pytest_plugins = ("kube_fixtures",)``.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ci_skip import skip_or_fail

if TYPE_CHECKING:
    from collections.abc import Iterator

TOOLS_CACHE = Path(
    os.environ.get("CODERBUNDLE_TOOLS_CACHE", Path.home() / ".cache" / "coderbundle" / "tools")
)
READY_TIMEOUT = 180.0
FIELD_MANAGER = "coderbundle-tests"


def kube_apiserver_binary() -> Path | None:
    """``$CODERBUNDLE_KUBE_APISERVER``, else the tools cache's kube-apiserver."""
    if env := os.environ.get("CODERBUNDLE_KUBE_APISERVER"):
        return Path(env)
    try:
        manifest = json.loads((TOOLS_CACHE / "manifest.json").read_text(encoding="utf-8"))
        path = TOOLS_CACHE / manifest["kube-apiserver"]["path"]
    except (OSError, ValueError, KeyError):
        return None
    return path if path.is_file() else None


def _missing() -> str | None:
    """Why the API server cannot start here, or None."""
    if kube_apiserver_binary() is None:
        return "no kube-apiserver: run `nox -s tools` (scripts/build_tools.py builds it from source)"
    if shutil.which("etcd") is None:
        return "no etcd: install Debian's etcd-server package (.ci/run does)"
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _cert(  # noqa: PLR0913 - one certificate's fields
    subject: x509.Name,
    key: ec.EllipticCurvePrivateKey,
    issuer: x509.Name,
    issuer_key: ec.EllipticCurvePrivateKey,
    *,
    ca: bool = False,
    sans: list[x509.GeneralName] | None = None,
) -> bytes:
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return builder.sign(issuer_key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


def _name(cn: str, org: str | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, cn)]
    if org:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, org))
    return x509.Name(attrs)


def write_pki(folder: Path) -> dict[str, Path]:
    """A CA, the server's certificate, an admin client certificate and the service-account keys."""
    folder.mkdir(parents=True, exist_ok=True)
    ca_key, server_key, admin_key, sa_key = _key(), _key(), _key(), _key()
    ca_name = _name("coderbundle-tests-ca")
    sans: list[x509.GeneralName] = [
        x509.DNSName("localhost"),
        x509.DNSName("kubernetes.default.svc"),
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        x509.IPAddress(ipaddress.ip_address("10.0.0.1")),
    ]
    files = {
        "ca.crt": _cert(ca_name, ca_key, ca_name, ca_key, ca=True),
        "server.crt": _cert(_name("kube-apiserver"), server_key, ca_name, ca_key, sans=sans),
        "server.key": _pem_key(server_key),
        "admin.crt": _cert(_name("admin", "system:masters"), admin_key, ca_name, ca_key),
        "admin.key": _pem_key(admin_key),
        "sa.key": _pem_key(sa_key),
        "sa.pub": sa_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
    }
    paths = {}
    for name, data in files.items():
        path = folder / name
        path.write_bytes(data)
        path.chmod(0o600)
        paths[name] = path
    return paths


@dataclass
class KubeAPI:
    """A running API server: admin access, impersonation, server-side apply."""

    url: str
    pki: dict[str, Path]
    kubeconfig: Path
    session: requests.Session = field(default_factory=requests.Session)
    _resources: dict[tuple[str, str], tuple[str, bool]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Not the machine's proxy or CA bundle (REQUESTS_CA_BUNDLE would replace our CA).
        self.session.trust_env = False
        self.session.verify = str(self.pki["ca.crt"])
        self.session.cert = (str(self.pki["admin.crt"]), str(self.pki["admin.key"]))

    def request(  # noqa: PLR0913 - an HTTP call's options
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        as_user: str | None = None,
        as_group: str | None = None,
        params: dict[str, str] | None = None,
        content_type: str = "application/json",
    ) -> requests.Response:
        """One call as the admin, or as ``as_user`` (in ``as_group``) by impersonation.

        An impersonated ServiceAccount gets its ``system:serviceaccounts*`` groups and any
        user ``system:authenticated`` from the server itself.
        """
        headers = {"Content-Type": content_type}
        if as_user:
            headers["Impersonate-User"] = as_user
        if as_group:
            headers["Impersonate-Group"] = as_group
        data = None if body is None else json.dumps(body)
        return self.session.request(
            method, self.url + path, data=data, headers=headers, params=params, timeout=60
        )

    def resource(self, api_version: str, kind: str) -> tuple[str, bool]:
        """``(plural, namespaced)`` for a kind, from the server's discovery."""
        key = (api_version, kind)
        if key not in self._resources:
            base = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
            found = self.request("GET", base)
            found.raise_for_status()
            for res in found.json()["resources"]:
                if "/" not in res["name"]:
                    self._resources[(api_version, res["kind"])] = (res["name"], res["namespaced"])
        return self._resources[key]

    def path(self, body: dict[str, Any], namespace: str | None = None) -> str:
        """The object's URL path (``namespace`` for namespaced objects that name none)."""
        api_version, kind = body["apiVersion"], body["kind"]
        plural, namespaced = self.resource(api_version, kind)
        base = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
        ns = body.get("metadata", {}).get("namespace") or namespace
        scope = f"/namespaces/{ns}" if namespaced else ""
        return f"{base}{scope}/{plural}/{body['metadata']['name']}"

    def apply(
        self,
        body: dict[str, Any],
        *,
        namespace: str | None = None,
        as_user: str | None = None,
        as_group: str | None = None,
        dry_run: bool = False,
    ) -> requests.Response:
        """Server-side apply of one object (``force``: the tests own every field)."""
        params = {"fieldManager": FIELD_MANAGER, "force": "true"}
        if dry_run:
            params["dryRun"] = "All"
        return self.request(
            "PATCH",
            self.path(body, namespace),
            body,
            as_user=as_user,
            as_group=as_group,
            params=params,
            content_type="application/apply-patch+yaml",
        )

    def default_service_account(self, namespace: str) -> None:
        """The namespace's ``default`` ServiceAccount, as the controller manager (not run here) makes it.

        The ServiceAccount admission plugin refuses a pod whose ServiceAccount does not exist.
        """
        body = {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": "default", "namespace": namespace},
        }
        answer = self.apply(body)
        assert answer.ok, answer.text

    def forget_discovery(self) -> None:
        """Re-read discovery (after a CustomResourceDefinition is created)."""
        self._resources.clear()


def _write_kubeconfig(path: Path, url: str, pki: dict[str, Path]) -> None:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": "test", "cluster": {"server": url, "certificate-authority": str(pki["ca.crt"])}}
        ],
        "users": [
            {
                "name": "admin",
                "user": {"client-certificate": str(pki["admin.crt"]), "client-key": str(pki["admin.key"])},
            }
        ],
        "contexts": [{"name": "test", "context": {"cluster": "test", "user": "admin"}}],
        "current-context": "test",
    }
    path.write_text(json.dumps(config, indent=1), encoding="utf-8")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


def _wait_ready(api: KubeAPI, procs: dict[str, subprocess.Popen[bytes]], logs: Path) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        for name, proc in procs.items():
            if proc.poll() is not None:
                tail = (logs / f"{name}.log").read_text(encoding="utf-8", errors="replace")[-3000:]
                pytest.fail(f"{name} exited with code {proc.returncode}:\n{tail}")
        try:
            if api.request("GET", "/readyz").status_code == 200:
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.5)
    pytest.fail(f"kube-apiserver not ready after {READY_TIMEOUT:.0f}s; logs in {logs}")


@pytest.fixture(scope="session")
def kube_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KubeAPI]:
    """etcd + kube-apiserver for the whole session; stopped (and waited for) at the end."""
    if reason := _missing():
        skip_or_fail(reason)
    apiserver = kube_apiserver_binary()
    assert apiserver is not None
    root = tmp_path_factory.mktemp("kube")
    pki = write_pki(root / "pki")
    etcd_port, peer_port, api_port = _free_port(), _free_port(), _free_port()
    etcd_url = f"http://127.0.0.1:{etcd_port}"
    peer_url = f"http://127.0.0.1:{peer_port}"
    etcd_cmd = [
        shutil.which("etcd") or "etcd",
        "--name=test",
        f"--data-dir={root / 'etcd'}",
        f"--listen-client-urls={etcd_url}",
        f"--advertise-client-urls={etcd_url}",
        f"--listen-peer-urls={peer_url}",
        f"--initial-advertise-peer-urls={peer_url}",
        f"--initial-cluster=test={peer_url}",
        "--unsafe-no-fsync=true",
    ]
    api_cmd = [
        str(apiserver),
        f"--etcd-servers={etcd_url}",
        "--bind-address=127.0.0.1",
        "--advertise-address=127.0.0.1",
        f"--secure-port={api_port}",
        f"--tls-cert-file={pki['server.crt']}",
        f"--tls-private-key-file={pki['server.key']}",
        f"--client-ca-file={pki['ca.crt']}",
        f"--service-account-key-file={pki['sa.pub']}",
        f"--service-account-signing-key-file={pki['sa.key']}",
        "--service-account-issuer=https://kubernetes.default.svc",
        "--service-cluster-ip-range=10.0.0.0/24",
        "--authorization-mode=RBAC",
        "--enable-admission-plugins=PodSecurity,ValidatingAdmissionPolicy",
        "--allow-privileged=true",
        "--endpoint-reconciler-type=none",
        "--profiling=false",
    ]
    procs: dict[str, subprocess.Popen[bytes]] = {}
    try:
        for name, cmd in (("etcd", etcd_cmd), ("kube-apiserver", api_cmd)):
            with (root / f"{name}.log").open("wb") as out:
                procs[name] = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
        url = f"https://127.0.0.1:{api_port}"
        api = KubeAPI(url=url, pki=pki, kubeconfig=root / "kubeconfig")
        _write_kubeconfig(api.kubeconfig, url, pki)
        _wait_ready(api, procs, root)
        yield api
        api.session.close()
    finally:
        for proc in reversed(procs.values()):
            _stop(proc)
