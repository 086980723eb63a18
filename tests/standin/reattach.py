"""Run a command with ONE long-lived kubernetes stand-in that every terraform reattaches to.

    python tests/standin/reattach.py [--mirror DIR] -- COMMAND ...

Terraform starts a managed provider several times per command (schema, validate,
plan; ``show`` once more), and the stand-in is a Python process, so a
``coderbundle test`` run of the kubernetes template spent most of its time
starting Python.  Here the stand-in in the provider mirror (``DIR``, default
``CODERBUNDLE_PROVIDER_MIRROR``) is started once, and ``COMMAND`` runs with
``TF_REATTACH_PROVIDERS`` (Terraform's documented reattach mechanism) naming it.

``"Test": true`` in the reattach config is what keeps it alive across plans:
go-plugin's client then leaves the process alone (no ``Shutdown``, no kill) when
a terraform ends; this wrapper stops it when ``COMMAND`` ends (the stand-in also
exits when its parent, this process, goes away).  It serves plaintext gRPC on
127.0.0.1: a reattached provider gets no AutoMTLS.

This is test tooling beside the stand-in: the product never starts, names or
reattaches a provider (``coderbundle test`` only inherits the environment, and
``terraform init`` ignores the variable so the lock file holds every provider).
When the mirror has no stand-in (a real provider build), ``COMMAND`` runs as it is.

``COMMAND`` also runs with ``TF_DISABLE_PLUGIN_TLS=1`` (``FAST_ENV``): go-plugin's
AutoMTLS makes a fresh P-521 certificate on both sides of every provider start, four
starts a case (15-20 % of a template's CPU time in one measurement, within the noise on a
whole toolchain; docs/offline.md).  The plans are throwaway and
the plugins talk over 127.0.0.1; the plans are the same with or without it.
"""

# ruff: noqa: T201 - a command-line program
from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

HERE = Path(__file__).resolve().parent
if __package__:  # imported by the tests as standin.reattach
    from standin.kubernetes_provider import BINARY, package_dir
    from standin.kubernetes_provider_server import APP_PROTOCOL, MAGIC_COOKIE_KEY, MAGIC_COOKIE_VALUE
else:  # run as a script
    sys.path.insert(0, str(HERE))
    from kubernetes_provider import BINARY, package_dir
    from kubernetes_provider_server import APP_PROTOCOL, MAGIC_COOKIE_KEY, MAGIC_COOKIE_VALUE

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = ["ADDRESS", "FAST_ENV", "REATTACH_ENV", "reattached_standin", "standin_launcher"]

ADDRESS = "registry.terraform.io/hashicorp/kubernetes"
REATTACH_ENV = "TF_REATTACH_PROVIDERS"
FAST_ENV = {"TF_DISABLE_PLUGIN_TLS": "1"}
START_TIMEOUT = 60


def standin_launcher(mirror: Path) -> Path | None:
    """The stand-in's launcher in a provider mirror, or None when the mirror has none (STANDIN.json)."""
    pkg = package_dir(mirror)
    launcher = pkg / BINARY
    return launcher if (pkg / "STANDIN.json").is_file() and launcher.is_file() else None


@contextlib.contextmanager
def reattached_standin(launcher: Path) -> Iterator[str]:
    """Start the stand-in once; yield the ``TF_REATTACH_PROVIDERS`` value naming it; stop it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLUGIN_")}
    env |= {MAGIC_COOKIE_KEY: MAGIC_COOKIE_VALUE, "PLUGIN_PROTOCOL_VERSIONS": str(APP_PROTOCOL)}
    proc = subprocess.Popen([str(launcher)], stdout=subprocess.PIPE, env=env, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        # go-plugin's handshake line: core|app protocol|network|address|grpc|cert
        fields = line.split("|")
        if len(fields) < 5 or fields[1] != str(APP_PROTOCOL) or fields[4] != "grpc":
            msg = f"{launcher}: the stand-in printed no handshake line (got {line!r}, exit {proc.poll()})"
            raise RuntimeError(msg)
        config = {
            ADDRESS: {
                "Protocol": "grpc",
                "ProtocolVersion": APP_PROTOCOL,
                "Pid": proc.pid,
                "Test": True,
                "Addr": {"Network": fields[2], "String": fields[3]},
            }
        }
        yield json.dumps(config, sort_keys=True)
    finally:
        if proc.stdout is not None:
            proc.stdout.close()
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def main(argv: list[str] | None = None) -> int:
    """``[--mirror DIR] -- COMMAND ...``: run COMMAND with the stand-in reattached."""
    args = list(sys.argv[1:] if argv is None else argv)
    if "--" not in args or args.index("--") == len(args) - 1:
        print("usage: reattach.py [--mirror DIR] -- COMMAND ...", file=sys.stderr)
        return 2
    split = args.index("--")
    opts, command = args[:split], args[split + 1 :]
    mirror = (
        opts[opts.index("--mirror") + 1]
        if "--mirror" in opts
        else os.environ.get("CODERBUNDLE_PROVIDER_MIRROR", "")
    )
    launcher = standin_launcher(Path(mirror)) if mirror else None
    if launcher is None:
        print(
            f"reattach: no kubernetes stand-in in {mirror or 'no mirror'}; running as it is", file=sys.stderr
        )
        return subprocess.call(command, env={**os.environ, **FAST_ENV})
    with reattached_standin(launcher) as value:
        print(f"reattach: one kubernetes stand-in for every terraform ({launcher})", file=sys.stderr)
        return subprocess.call(command, env={**os.environ, **FAST_ENV, REATTACH_ENV: value})


if __name__ == "__main__":
    sys.exit(main())
