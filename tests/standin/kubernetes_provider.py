"""Install THE hashicorp/kubernetes stand-in into a Terraform filesystem mirror.

The real provider 2.38.0 cannot be built here: the Go module proxy answers
"not available" for v2.38.0 and every pseudo-version of its tag commit.  For
that one component tests run real Terraform against a stand-in process
(``kubernetes_provider_server.py``) that serves the schema data the validator
already has over Terraform's plugin protocol 6.  ``install`` lays it out as
the mirror's ``hashicorp/kubernetes`` 2.38.0 package with a ``STANDIN.json``
saying what it is; it is never presented as the real provider.

Reproducible from the package registries alone: the protobuf stubs are
generated at install time (never committed) with grpcio-tools from
``tfplugin6.6.proto`` of Terraform v1.9.8's Go module (the Go module cache, or
``go mod download``); the TLS key pair the server shows Terraform is made here
with ``cryptography``.  Python packages: dependency group ``standin``.

Command line (``scripts/build_tools.py`` runs ``install``)::

    python tests/standin/kubernetes_provider.py install --mirror DIR --python PYTHON
"""

# ruff: noqa: T201 - a command-line program
from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
if __package__:  # imported by the tests as standin.kubernetes_provider
    from standin.kubernetes_provider_server import PROVIDER, STANDIN_NOTE, VERSION, Schema
else:  # run as a script: the server module is beside this file
    sys.path.insert(0, str(HERE))
    from kubernetes_provider_server import PROVIDER, STANDIN_NOTE, VERSION, Schema

__all__ = ["BINARY", "find_proto", "generate_stubs", "install", "main", "package_dir"]

REPO_SCHEMA = HERE.parent.parent / "tools" / "coderbundle" / "data" / "kubernetes.json"
SERVER = HERE / "kubernetes_provider_server.py"
PLATFORM = "linux_amd64"
BINARY = f"terraform-provider-kubernetes_v{VERSION}"
# The plugin protocol definition: Terraform's own, from the release we run.
PROTO_MODULE = "github.com/hashicorp/terraform"
PROTO_VERSION = "v1.9.8"
PROTO_FILE = "docs/plugin-protocol/tfplugin6.6.proto"


def package_dir(mirror: Path) -> Path:
    """The stand-in's package directory in a filesystem mirror (unpacked layout)."""
    return mirror / "registry.terraform.io" / PROVIDER / VERSION / PLATFORM


def server_key_pair() -> tuple[bytes, bytes]:
    """A self-signed TLS certificate for "localhost", as go-plugin makes its own: PEM key and cert."""
    try:
        from cryptography import x509  # noqa: PLC0415 - install only
        from cryptography.hazmat.primitives import hashes, serialization  # noqa: PLC0415
        from cryptography.hazmat.primitives.asymmetric import ec  # noqa: PLC0415
        from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID  # noqa: PLC0415
    except ImportError as exc:
        msg = f"{sys.executable} has no cryptography; install the dependency group standin"
        raise RuntimeError(msg) from exc

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(seconds=30))
        .not_valid_after(now + dt.timedelta(days=3650))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=True,
                key_cert_sign=True,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return key_pem, cert.public_bytes(serialization.Encoding.PEM)


# --- stubs and installation ------------------------------------------------------------------


def _go_mod_dir() -> Path | None:
    """Terraform's Go module directory: the module cache, else ``go mod download``."""
    go = shutil.which("go")
    cache = os.environ.get("GOMODCACHE")
    if not cache and go:
        cache = subprocess.run(
            [go, "env", "GOMODCACHE"], capture_output=True, text=True, check=True
        ).stdout.strip()
    if cache:
        candidate = Path(cache) / f"{PROTO_MODULE}@{PROTO_VERSION}"
        if (candidate / PROTO_FILE).is_file():
            return candidate
    if go is None:
        return None
    proc = subprocess.run(
        [go, "mod", "download", "-json", f"{PROTO_MODULE}@{PROTO_VERSION}"],
        capture_output=True,
        text=True,
        check=False,
        cwd=tempfile.gettempdir(),
    )
    if proc.returncode != 0:
        return None
    return Path(json.loads(proc.stdout)["Dir"])


def find_proto() -> Path:
    """``tfplugin6.6.proto`` of Terraform v1.9.8 from its Go module (raises if Go cannot get it)."""
    module = _go_mod_dir()
    if module is None or not (module / PROTO_FILE).is_file():
        msg = (
            f"cannot find {PROTO_FILE} of {PROTO_MODULE}@{PROTO_VERSION}: install Go and run "
            f"`go mod download {PROTO_MODULE}@{PROTO_VERSION}`"
        )
        raise FileNotFoundError(msg)
    return module / PROTO_FILE


RUNTIME_MODULES = ("grpc", "google.protobuf", "msgpack", "grpc_tools")


def check_python(python: str) -> None:
    """Fail unless ``python`` runs and has what the server and the stub generator import."""
    code = (
        "import importlib.util, sys\n"
        "def ok(m):\n"
        "    try:\n"
        "        return importlib.util.find_spec(m) is not None\n"
        "    except ImportError:\n"
        "        return False\n"
        "sys.exit(', '.join(m for m in sys.argv[1:] if not ok(m)) or None)\n"
    )
    try:
        proc = subprocess.run(
            [python, "-c", code, *RUNTIME_MODULES], capture_output=True, text=True, check=False, timeout=60
        )
    except OSError as exc:
        msg = f"cannot run --python {python}: {exc.strerror}"
        raise RuntimeError(msg) from exc
    if proc.returncode != 0:
        missing = proc.stderr.strip() or f"exit {proc.returncode}"
        msg = f"--python {python} lacks {missing}; install the dependency group standin into it"
        raise RuntimeError(msg)


def generate_stubs(proto: Path, out: Path, python: str) -> Path:
    """Generate ``tfplugin6_pb2*.py`` into ``out`` with ``python``'s grpcio-tools; ``out`` returned."""
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        shutil.copyfile(proto, Path(tmp) / "tfplugin6.proto")  # an importable module name
        proc = subprocess.run(
            [
                python,
                "-m",
                "grpc_tools.protoc",
                f"-I{tmp}",
                f"--python_out={out}",
                f"--grpc_python_out={out}",
                "tfplugin6.proto",
            ],
            capture_output=True,
            text=True,
            check=False,
        )
    if proc.returncode != 0:
        msg = (
            f"{python} -m grpc_tools.protoc failed (is grpcio-tools installed? `dependency group standin`): "
        )
        raise RuntimeError(msg + proc.stderr.strip())
    return out


LAUNCHER = """#!/bin/sh
# STAND-IN for {provider} {version}: NOT the real provider.  See STANDIN.json beside it.
cd '{code}' && exec '{python}' -I -B -c \\
  'import sys; sys.path.insert(0, "."); import kubernetes_provider_server as s; sys.exit(s.main())' \\
  serve --schema kubernetes.json --stubs stubs --tls .
"""


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def install(mirror: Path, python: str, *, schema: Path = REPO_SCHEMA, proto: Path | None = None) -> Path:
    """Lay the stand-in into a Terraform filesystem mirror; return the launcher's path.

    ``package_dir(mirror)`` gets the launcher ``terraform-provider-kubernetes_v2.38.0``
    (a shell script running the server with ``python``, which needs grpcio,
    protobuf and msgpack), ``standin/`` with the server, the schema data, the
    generated stubs and a TLS key pair, and ``STANDIN.json`` saying what it is.
    It is built beside the package and renamed into place, replacing an older
    one whole, so nothing half-written stays behind.
    """
    python = str(Path(python).absolute())
    Schema.load(schema)  # fail before writing anything
    check_python(python)
    proto = proto or find_proto()
    package = package_dir(mirror.absolute())
    package.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".standin-", dir=package.parent))
    try:
        code = staging / "standin"
        generate_stubs(proto, code / "stubs", python)
        shutil.copyfile(SERVER, code / SERVER.name)
        shutil.copyfile(schema, code / "kubernetes.json")
        key_pem, cert_pem = server_key_pair()
        (code / "server.pem").write_bytes(cert_pem)
        key = code / "server.key"
        key.touch(mode=0o600)
        key.write_bytes(key_pem)
        # Byte-compile now (the launcher runs with -B): files appearing later would change
        # the package checksum `terraform init` records in .terraform.lock.hcl.
        subprocess.run([python, "-m", "compileall", "-q", str(code)], check=True, capture_output=True)
        launcher = staging / BINARY
        launcher.write_text(
            LAUNCHER.format(provider=PROVIDER, version=VERSION, python=python, code=package / "standin")
        )
        launcher.chmod(0o755)
        provenance = {
            "standin": True,
            "note": STANDIN_NOTE,
            "provider": PROVIDER,
            "version": VERSION,
            "schema": "tools/coderbundle/data/kubernetes.json",
            "schema_sha256": _sha256(schema),
            "server": "tests/standin/kubernetes_provider_server.py",
            "server_sha256": _sha256(SERVER),
            "protocol": f"tfplugin6.6 from {PROTO_MODULE}@{PROTO_VERSION} {PROTO_FILE}",
            "python": python,
        }
        (staging / "STANDIN.json").write_text(json.dumps(provenance, indent=2) + "\n")
        if package.exists():
            shutil.rmtree(package)
        staging.rename(package)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return package / BINARY


def main(argv: list[str] | None = None) -> int:
    """``install --mirror DIR --python PYTHON``."""
    parser = argparse.ArgumentParser(prog="kubernetes_provider.py", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    inst = sub.add_parser("install", help="lay the stand-in into a Terraform filesystem mirror")
    inst.add_argument("--mirror", type=Path, required=True, help="filesystem mirror directory")
    inst.add_argument(
        "--python", required=True, help="interpreter with grpcio, protobuf, msgpack, grpcio-tools"
    )
    inst.add_argument("--proto", type=Path, help="tfplugin6.6.proto (default: Terraform v1.9.8's Go module)")
    args = parser.parse_args(argv)
    try:
        launcher = install(args.mirror, args.python, proto=args.proto)
    except (OSError, ValueError, RuntimeError, subprocess.CalledProcessError) as exc:
        print(f"kubernetes_provider.py install: {exc}", file=sys.stderr)
        return 1
    print(f"installed the {PROVIDER} {VERSION} stand-in (not the real provider) at {launcher}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
