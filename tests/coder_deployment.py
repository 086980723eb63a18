"""A real Coder deployment on 127.0.0.1 for tests and by hand: PostgreSQL + ``coder server``.

    python tests/coder_deployment.py        # nox -s coder-server: prints URL and token, Ctrl-C stops

The ``coder`` binary is the one ``nox -s tools`` builds from source (the
manifest's ``coder-server`` entry: the chart's appVersion, or the newest
version the Go module proxy serves whole; ``CODERBUNDLE_CODER_SERVER``
overrides).  PostgreSQL comes from Debian's ``postgresql`` package: a
throw-away cluster per deployment, copied from a cached, already migrated
data directory (``~/.cache/coderbundle/coder-server/``), so only the very first
start pays for Coder's migrations.

The built-in provisioner runs the tools cache's terraform with a CLI config
that installs providers from the offline mirror and modules from a module
registry on 127.0.0.1 serving ``../shared/registry-modules`` (the real
coder/registry trees) when present, the stubs otherwise; imports therefore run
real ``terraform init`` + plan offline.  The deployment has GitLab external
auth configured as the chart does (``CODER_EXTERNAL_AUTH_0_ID=gitlab``);
``restart(...)`` brings the server back with other settings on the same database.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tools"))

from coderbundle import mirrors  # noqa: E402

TOOLS_CACHE = Path(
    os.environ.get("CODERBUNDLE_TOOLS_CACHE", Path.home() / ".cache" / "coderbundle" / "tools")
)
STATE_CACHE = Path(
    os.environ.get("CODERBUNDLE_CODER_STATE", Path.home() / ".cache" / "coderbundle" / "coder-server")
)
REAL_MODULES = REPO.parent / "shared" / "registry-modules"
# Where throw-away clusters live: PostgreSQL runs as the `postgres` user when we are
# root, so the folder must be reachable by it (pytest's tmp folders are not).
RUN_ROOT = Path(os.environ.get("CODERBUNDLE_CODER_RUN", "/var/tmp/coderbundle-coder"))  # noqa: S108
GITLAB_AUTH = {
    "CODER_EXTERNAL_AUTH_0_ID": "gitlab",
    "CODER_EXTERNAL_AUTH_0_TYPE": "gitlab",
    "CODER_EXTERNAL_AUTH_0_CLIENT_ID": "coderbundle-test",
    "CODER_EXTERNAL_AUTH_0_CLIENT_SECRET": "not-a-secret",  # never sent: no GitLab here
}


class Unavailable(Exception):
    """What this machine lacks to run a real deployment (tests skip with it)."""


def _manifest() -> dict[str, Any]:
    try:
        return json.loads((TOOLS_CACHE / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def coder_binary() -> tuple[Path, str]:
    """The built ``coder`` and its version, or ``Unavailable`` saying how to get it."""
    if override := os.environ.get("CODERBUNDLE_CODER_SERVER"):
        path = Path(override)
        version = subprocess.run(
            [str(path), "version", "--output", "json"], capture_output=True, text=True, check=False
        ).stdout
        return path, str(json.loads(version or "{}").get("version", "?")).lstrip("v")
    entry = _manifest().get("coder-server")
    if not entry or not (TOOLS_CACHE / entry["path"]).is_file():
        msg = "no Coder server built: run `nox -s tools` (builds it from the Go module proxy)"
        raise Unavailable(msg)
    return TOOLS_CACHE / entry["path"], str(entry["version"])


def _pg_bin() -> Path:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"), key=lambda p: int(p.parts[-3]))
    if not found:
        msg = "PostgreSQL is not installed: apt-get install postgresql (.ci/run does)"
        raise Unavailable(msg)
    return found[-1].parent


def _toolchain() -> tuple[Path, Path, Path]:
    """terraform, the provider mirror and the module mirror (real modules when present)."""
    manifest = _manifest()
    terraform = TOOLS_CACHE / manifest.get("terraform", {}).get("path", "-")
    providers = TOOLS_CACHE / "providers"
    if not terraform.is_file() or not providers.is_dir():
        msg = "no offline terraform toolchain: run `nox -s tools`"
        raise Unavailable(msg)
    modules = REAL_MODULES if REAL_MODULES.is_dir() else TOOLS_CACHE / "modules"
    return terraform, providers, modules


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _as_postgres(argv: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *argv] if os.geteuid() == 0 else argv


def _wait(check: Any, what: str, timeout: float, proc: subprocess.Popen[bytes] | None, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            tail = log.read_text(encoding="utf-8", errors="replace")[-3000:]
            msg = f"{what} exited with code {proc.returncode}:\n{tail}"
            raise RuntimeError(msg)
        with contextlib.suppress(OSError, requests.RequestException):
            if check():
                return
        time.sleep(0.2)
    tail = log.read_text(encoding="utf-8", errors="replace")[-3000:]
    msg = f"{what} did not answer within {timeout:.0f} s:\n{tail}"
    raise RuntimeError(msg)


def _stop(proc: subprocess.Popen[bytes] | None, sig: int = signal.SIGTERM, timeout: float = 20) -> None:
    if proc is None or proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=5)


@dataclass
class User:
    """A user of the deployment and a session token of theirs."""

    username: str
    email: str
    password: str = field(repr=False)
    token: str = field(repr=False)


class CoderDeployment:
    """PostgreSQL + ``coder server`` + an owner and a template admin; a context manager."""

    def __init__(self, *, external_auth: bool = True) -> None:
        """Prepare (nothing runs until ``start``); ``Unavailable`` when a part is missing."""
        self.binary, self.version = coder_binary()
        self.pg_bin = _pg_bin()
        self.terraform, self.provider_mirror, self.module_mirror = _toolchain()
        self.external_auth = external_auth
        RUN_ROOT.mkdir(parents=True, exist_ok=True)
        RUN_ROOT.chmod(0o755)
        self.workdir = Path(tempfile.mkdtemp(prefix="deployment-", dir=RUN_ROOT))
        self.workdir.chmod(0o755)
        self.pgdata = self.workdir / "pgdata"
        # Workspaces of tests/fixtures/rollout/local-agent: one agent process per workspace.
        self.agents_dir = self.workdir / "agents"
        self.pg_port = free_port()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.owner: User | None = None
        self.admin: User | None = None
        self._pg: subprocess.Popen[bytes] | None = None
        self._server: subprocess.Popen[bytes] | None = None
        self._registry: contextlib.ExitStack | None = None
        self._extra_env: dict[str, str] = {}
        self.started_in = 0.0

    # -- PostgreSQL -------------------------------------------------------------------
    @property
    def _template(self) -> Path:
        """The cached migrated data directory for this Coder version and PostgreSQL major."""
        return STATE_CACHE / f"pgdata-coder{self.version}-pg{self.pg_bin.parts[-2]}"

    def _chown(self, path: Path) -> None:
        if os.geteuid() == 0:
            subprocess.run(["chown", "-R", "postgres:postgres", str(path)], check=True)

    def _init_db(self) -> bool:
        """A data directory: a copy of the migrated template when cached; True when it was."""
        if (self._template / "PG_VERSION").is_file():
            shutil.copytree(self._template, self.pgdata, symlinks=True)
            self._chown(self.pgdata)
            self.pgdata.chmod(0o700)
            return True
        self.pgdata.mkdir(mode=0o700)
        self._chown(self.pgdata)
        argv = [str(self.pg_bin / "initdb"), "-D", str(self.pgdata), "-U", "coder", "--auth=trust"]
        subprocess.run(
            _as_postgres([*argv, "-E", "UTF8", "--no-sync"]), check=True, capture_output=True, cwd="/"
        )
        return False

    def _start_pg(self) -> None:
        log = self.workdir / "postgres.log"
        argv = [str(self.pg_bin / "postgres"), "-D", str(self.pgdata), "-h", "127.0.0.1"]
        argv += ["-p", str(self.pg_port), "-k", str(self.pgdata), "-c", "fsync=off"]
        argv += ["-c", "full_page_writes=off", "-c", "synchronous_commit=off", "-c", "max_connections=200"]
        with log.open("ab") as out:
            self._pg = subprocess.Popen(
                _as_postgres(argv), stdout=out, stderr=subprocess.STDOUT, start_new_session=True, cwd="/"
            )

        def ready() -> bool:
            with socket.create_connection(("127.0.0.1", self.pg_port), timeout=1):
                return True

        _wait(ready, "PostgreSQL", 30, self._pg, log)
        ready_argv = [str(self.pg_bin / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.pg_port)]
        _wait(
            lambda: subprocess.run(ready_argv, capture_output=True, check=False).returncode == 0,
            "PostgreSQL",
            30,
            self._pg,
            log,
        )

    def _stop_pg(self) -> None:
        _stop(self._pg, signal.SIGINT)  # fast shutdown: a consistent data directory
        self._pg = None

    # -- coder server -----------------------------------------------------------------
    @property
    def postgres_url(self) -> str:
        """The database URL coderd uses."""
        return f"postgres://coder@127.0.0.1:{self.pg_port}/postgres?sslmode=disable"

    def server_env(self) -> dict[str, str]:
        """The environment ``coder server`` runs with (terraform, mirrors, external auth)."""
        env = {
            "PATH": os.pathsep.join([str(self.terraform.parent), "/usr/local/bin", "/usr/bin", "/bin"]),
            "HOME": str(self.workdir / "home"),
            "CODER_HTTP_ADDRESS": f"127.0.0.1:{self.port}",
            "CODER_ACCESS_URL": self.url,
            "CODER_PG_CONNECTION_URL": self.postgres_url,
            "CODER_CACHE_DIRECTORY": str(self.workdir / "cache"),
            "CODER_TELEMETRY_ENABLE": "false",
            "CODER_UPDATE_CHECK": "false",
            "CODER_DERP_SERVER_STUN_ADDRESSES": "disable",
            "CODER_OAUTH2_GITHUB_DEFAULT_PROVIDER_ENABLE": "false",
            "CODER_VERBOSE": "false",
            "TF_CLI_CONFIG_FILE": str(self.workdir / "terraform.tfrc"),
            "CHECKPOINT_DISABLE": "1",
        }
        if self.external_auth:
            env.update(GITLAB_AUTH)
        env.update(self._extra_env)
        return {k: v for k, v in env.items() if v is not None}

    def _start_server(self) -> None:
        log = self.workdir / "coderd.log"
        (self.workdir / "home").mkdir(exist_ok=True)
        with log.open("ab") as out:
            self._server = subprocess.Popen(
                [str(self.binary), "server"],
                env=self.server_env(),
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                cwd=self.workdir,
            )

        def ready() -> bool:
            return requests.get(f"{self.url}/api/v2/buildinfo", timeout=2).ok

        _wait(ready, "coder server", 180, self._server, log)

    def _stop_server(self) -> None:
        _stop(self._server, signal.SIGINT, timeout=30)
        self._server = None

    def restart(self, *, external_auth: bool | None = None, env: dict[str, str] | None = None) -> None:
        """Stop ``coder server`` and start it again on the same database with other settings."""
        self._stop_server()
        if external_auth is not None:
            self.external_auth = external_auth
        self._extra_env = dict(env or {})
        self._start_server()

    def sql(self, statement: str) -> str:
        """Run SQL on coderd's database (psql, unaligned output): for faults only a test can set up."""
        argv = [str(self.pg_bin / "psql"), "-h", "127.0.0.1", "-p", str(self.pg_port), "-U", "coder"]
        argv += ["-d", "postgres", "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", statement]
        done = subprocess.run(argv, capture_output=True, text=True, check=False, cwd="/")
        if done.returncode != 0:
            msg = f"psql: {done.stderr.strip()[:500]}"
            raise RuntimeError(msg)
        return done.stdout

    # -- users ------------------------------------------------------------------------
    def api(self, method: str, path: str, token: str | None = None, body: Any = None) -> Any:
        """One REST call (raises on an error answer); the JSON body or None."""
        headers = {"Coder-Session-Token": token} if token else {}
        resp = requests.request(method, f"{self.url}/api/v2{path}", json=body, headers=headers, timeout=60)
        if resp.status_code >= 400:
            msg = f"{method} {path}: HTTP {resp.status_code}: {resp.text[:500]}"
            raise RuntimeError(msg)
        return resp.json() if resp.content else None

    def login(self, email: str, password: str) -> str:
        """A session token for the user."""
        return str(
            self.api("POST", "/users/login", body={"email": email, "password": password})["session_token"]
        )

    def create_user(self, username: str, *, roles: tuple[str, ...] = ()) -> User:
        """A password user in the default organization, with site ``roles``, logged in."""
        assert self.owner is not None
        password = "Pw-" + secrets.token_urlsafe(18)
        email = f"{username}@example.com"
        org = self.default_org()
        body = {"email": email, "username": username, "password": password, "organization_ids": [org]}
        self.api("POST", "/users", self.owner.token, body)
        if roles:
            self.api("PUT", f"/users/{username}/roles", self.owner.token, {"roles": list(roles)})
        return User(username, email, password, self.login(email, password))

    def default_org(self) -> str:
        """The default organization's id."""
        assert self.owner is not None
        orgs = self.api("GET", "/organizations", self.owner.token)
        return str(next(o["id"] for o in orgs if o.get("is_default")))

    def _first_user(self) -> None:
        password = "Pw-" + secrets.token_urlsafe(18)
        body = {
            "email": "owner@example.com",
            "username": "owner",
            "name": "Owner",
            "password": password,
            "trial": False,
        }
        self.api("POST", "/users/first", body=body)
        self.owner = User("owner", body["email"], password, self.login(body["email"], password))
        # Publishing runs as a Template Admin (docs/getting-started.md), not as the owner.
        self.admin = self.create_user("ci-publisher", roles=("template-admin",))

    # -- lifecycle --------------------------------------------------------------------
    def start(self) -> CoderDeployment:
        """Start everything; the first start on a machine also caches the migrated database."""
        began = time.monotonic()
        self._registry = contextlib.ExitStack()
        registry = self._registry.enter_context(mirrors.serve_modules(self.module_mirror))
        mirrors.cli_config(
            self.workdir / "terraform.tfrc",
            provider_mirror=self.provider_mirror,
            registry=registry,
            plugin_cache=None,
        )
        cached = self._init_db()
        self._start_pg()
        self._start_server()
        if not cached:  # snapshot the migrated database for the next deployment
            self._stop_server()
            self._stop_pg()
            STATE_CACHE.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(prefix=".pgdata-", dir=STATE_CACHE))
            shutil.rmtree(staging)
            shutil.copytree(self.pgdata, staging, symlinks=True)
            with contextlib.suppress(OSError):
                staging.rename(self._template)
            shutil.rmtree(staging, ignore_errors=True)
            self._start_pg()
            self._start_server()
        self._first_user()
        self.started_in = time.monotonic() - began
        return self

    def _stop_agents(self) -> None:
        """Stop the agent processes local-agent workspaces left running."""
        for pid_file in self.agents_dir.glob("*/agent.pid"):
            with contextlib.suppress(ValueError, OSError):
                os.kill(int(pid_file.read_text().strip()), signal.SIGTERM)

    def stop(self) -> None:
        """Stop the server and the database and remove the throw-away folder."""
        self._stop_agents()
        self._stop_server()
        self._stop_pg()
        if self._registry is not None:
            self._registry.close()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> CoderDeployment:  # noqa: PYI034 - start() returns self
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def log(self) -> str:
        """The server's log so far (for failure messages)."""
        return (self.workdir / "coderd.log").read_text(encoding="utf-8", errors="replace")


def main() -> int:
    """Run a deployment until Ctrl-C, printing how to reach it."""
    try:
        deployment = CoderDeployment()
    except Unavailable as exc:
        print(f"coder-server: {exc}", file=sys.stderr)  # noqa: T201
        return 2
    with deployment:
        assert deployment.admin is not None
        print(  # noqa: T201
            f"Coder {deployment.version} (built from source) is up in {deployment.started_in:.1f} s; "
            f"modules from {deployment.module_mirror}\n"
            f"export CODER_URL={deployment.url}\n"
            f"export CODER_SESSION_TOKEN={deployment.admin.token}   # template admin "
            f"{deployment.admin.username}\n"
            "Ctrl-C stops it and removes its database.",
            flush=True,
        )
        with contextlib.suppress(KeyboardInterrupt):
            while True:
                time.sleep(3600)
    return 0


if __name__ == "__main__":
    sys.exit(main())
