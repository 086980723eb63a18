"""Entry points for people and CI: `nox -s publish`, `nox -s tests`, `nox -s validate`, ...

Every session calls `python -m coderbundle <verb>` (or pytest), so a local run
and CI take the same path.  `publish`, `deploy` and `images` never run by accident.
`nox -s cli -- <args>` runs any coderbundle command (`nox -s cli -- --help`).

coderbundle's progress and messages go to stderr and its `--format json`
report to stdout; nox would merge the two, so the sessions keep stderr apart
(`stderr=None`) and `nox -s validate -- --format json > report.json` parses.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import nox

nox.needs_version = ">=2024.10.9"
# uv creates the virtualenvs and installs from PyPI when nox can find it (the
# `uv` package beside nox, or on PATH); plain venv + pip otherwise.
nox.options.default_venv_backend = "uv|venv"
# uv trusts only its bundled roots unless told otherwise; behind a TLS-intercepting
# proxy the machine's store (where .ci/run's local CAs are) is the one that works.
os.environ.setdefault("UV_SYSTEM_CERTS", "1")
nox.options.reuse_venv = "yes"
nox.options.sessions = ["lint", "tests", "validate", "test-templates"]

PYPROJECT = nox.project.load_toml("pyproject.toml")
TEST_DEPS = nox.project.dependency_groups(PYPROJECT, "test")
LINT_DEPS = nox.project.dependency_groups(PYPROJECT, "lint")
IMAGES_DEPS = nox.project.dependency_groups(PYPROJECT, "images")
STANDIN_DEPS = nox.project.dependency_groups(PYPROJECT, "standin")
# Where `nox -s tools` builds terraform, the providers and the module stubs (scripts/build_tools.py).
TOOLS_CACHE = Path(
    os.environ.get("CODERBUNDLE_TOOLS_CACHE", Path.home() / ".cache" / "coderbundle" / "tools")
)

# The real coder/registry module trees at the pinned tags (test data beside the repository,
# never copied into it): the module registry on 127.0.0.1 serves them in place of the stubs.
REAL_MODULES = Path(__file__).resolve().parent.parent / "shared" / "registry-modules"


def _module_mirror() -> Path:
    """The real module trees when they are here, the stubs of `nox -s tools` otherwise."""
    return REAL_MODULES if (REAL_MODULES / "PROVENANCE.tsv").is_file() else TOOLS_CACHE / "modules"


def _tools_env() -> dict[str, str]:
    """The offline terraform settings of the tools cache, when `nox -s tools` has built it.

    Variables already set in the environment win; without a cache nothing is set
    and terraform validate runs where it can, or says why it skipped.
    """
    try:
        manifest = json.loads((TOOLS_CACHE / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    found = {
        "CODERBUNDLE_TERRAFORM": str(TOOLS_CACHE / manifest.get("terraform", {}).get("path", "-")),
        "CODERBUNDLE_PROVIDER_MIRROR": str(TOOLS_CACHE / "providers"),
        "CODERBUNDLE_MODULE_MIRROR": str(_module_mirror()),
    }
    if not all(Path(v).exists() for v in found.values()):
        return {}
    found = {k: v for k, v in found.items() if k not in os.environ}
    # Tests and tools that call `terraform` by name get the one built from source.
    terraform = found.get("CODERBUNDLE_TERRAFORM") or os.environ.get("CODERBUNDLE_TERRAFORM", "")
    terraform_dir = str(Path(terraform).parent)
    found["PATH"] = os.pathsep.join([terraform_dir, os.environ.get("PATH", "")])
    return found
SCHEMAS_DEPS = nox.project.dependency_groups(PYPROJECT, "schemas")
# Debian keeps locally added CA certificates here (what .ci/run passes to image builds).
LOCAL_CA_DIR = Path("/usr/local/share/ca-certificates")


# What an install depends on: when none of it changed since the last one, the install is skipped.
INSTALL_INPUTS = (Path("pyproject.toml"), Path("tools/coderbundle/__init__.py"))
INSTALL_STAMP = ".coderbundle-install-stamp"


def _install_key(package: str, extra: tuple[str, ...]) -> str:
    """A hash of what the install reads: pyproject.toml, the version, the package spec and extras."""
    digest = hashlib.sha256(json.dumps([package, *extra]).encode())
    for path in INSTALL_INPUTS:
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _install(session: nox.Session, *extra: str, package: str = ".") -> None:
    """`pip install -e` once per change of its inputs (the package is editable: code needs none).

    A stamp in the session's virtualenv holds the inputs' hash; a recreated
    virtualenv (`nox -r`) has none, and `CODERBUNDLE_REINSTALL=1` forces the install.
    """
    location = getattr(session.virtualenv, "location", None)
    stamp = Path(location) / INSTALL_STAMP if location else None
    key = _install_key(package, extra)
    fresh = os.environ.get("CODERBUNDLE_REINSTALL", "") not in ("", "0")
    if stamp is not None and not fresh and stamp.is_file() and stamp.read_text(encoding="utf-8") == key:
        session.log("install skipped: pyproject.toml and the package spec are unchanged since the last one")
        return
    session.install("-e", package, *extra)
    if stamp is not None:
        stamp.write_text(key, encoding="utf-8")


def _coderbundle(session: nox.Session, *args: str) -> None:
    """`python -m coderbundle ...` with stderr kept apart from the stdout report."""
    session.env.update(_tools_env())
    session.run("python", "-m", "coderbundle", *args, *session.posargs, stderr=None)


def local_ca_env(ca_dir: Path = LOCAL_CA_DIR, build_dir: Path = Path("build")) -> dict[str, str]:
    """Behind a TLS-intercepting proxy image builds need the machine's local CAs, as in .ci/run.

    Returns ``{"CODERBUNDLE_EXTRA_CA_CERT": <bundle>}`` when ``ca_dir`` holds ``*.crt``
    files and the variable is not set already; an empty dict otherwise.
    """
    certs = sorted(ca_dir.glob("*.crt"))
    if os.environ.get("CODERBUNDLE_EXTRA_CA_CERT") or not certs:
        return {}
    pems = [c.read_text(encoding="utf-8") for c in certs]
    bundle = build_dir / "extra-ca.pem"
    bundle.parent.mkdir(parents=True, exist_ok=True)
    bundle.write_text("".join(p if p.endswith("\n") else p + "\n" for p in pems), encoding="utf-8")
    return {"CODERBUNDLE_EXTRA_CA_CERT": str(bundle.resolve())}


@nox.session
def lint(session: nox.Session) -> None:
    """Run ruff and mypy (strict) over the tool and the tests."""
    _install(session, *LINT_DEPS)
    session.run("ruff", "check", "tools", "tests", "noxfile.py", "scripts", *session.posargs)
    session.run("mypy")


@nox.session
def tests(session: nox.Session) -> None:
    """Run the test suite (Docker tests run when a daemon answers: see .ci/docker-setup.sh)."""
    _install(session, *TEST_DEPS, *STANDIN_DEPS)
    session.env.update(_tools_env())
    session.run("pytest", *session.posargs, env=local_ca_env())


@nox.session(default=False)
def tools(session: nox.Session) -> None:
    """Build terraform and the providers from source (needs Go) and the module stubs, once per version."""
    session.run("python", "scripts/build_tools.py", *session.posargs)


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(".") if part.isdigit())


def matrix_toolchains(cache: Path = TOOLS_CACHE) -> list[dict[str, str]]:
    """The plan matrix's toolchains `nox -s tools` built: each terraform x each coder provider mirror.

    Oldest terraform first, then the lowest provider first; ``[]`` without a built matrix
    (`matrix/MATRIX.json`, scripts/build_tools.py).
    """
    return [env for env, _ in _matrix(cache)]


def matrix_schedule(cache: Path = TOOLS_CACHE) -> list[tuple[dict[str, str], tuple[str, ...]]]:
    """What `test-templates` plans on each toolchain: (environment, extra `coderbundle test` arguments).

    Every choice (every agent, repository, dotfiles, option, pairwise) on the oldest terraform
    with the lowest coder provider and on the newest terraform with the highest, so each
    choice meets both ends of both ranges; the two mixed pairs plan the defaults and every
    preset, start and stop (`--no-choices`).  `scripts/bench_matrix.py` measures it against
    every choice on all four.
    """
    found = _matrix(cache)
    if not found:
        return []
    ends = {(found[0][1][0], found[0][1][1]), (found[-1][1][0], found[-1][1][1])}
    return [(env, () if key in ends else ("--no-choices",)) for env, key in found]


def _matrix(cache: Path) -> list[tuple[dict[str, str], tuple[str, str]]]:
    try:
        data = json.loads((cache / "matrix" / "MATRIX.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    return [
        (
            {"CODERBUNDLE_TERRAFORM": str(cache / tf), "CODERBUNDLE_PROVIDER_MIRROR": str(cache / mirror)},
            (tf_version, provider),
        )
        for tf_version, tf in sorted(data["terraform"].items(), key=lambda kv: _version(kv[0]))
        for provider, mirror in sorted(data["provider_mirrors"].items(), key=lambda kv: _version(kv[0]))
    ]


def _no_toolchain_reason() -> str:
    """Why `test-templates` cannot run here ('' when the offline toolchain or a mirror is set)."""
    if _tools_env() or os.environ.get("CODERBUNDLE_PROVIDER_MIRROR"):
        return ""
    return f"no offline terraform toolchain in {TOOLS_CACHE}: `nox -s tools` builds it (Go; docs/offline.md)"


@nox.session(name="test-templates")
def test_templates(session: nox.Session) -> None:
    """Plan every template x (presets, defaults, every agent and option) x start/stop, and check the
    invariants, on the oldest and newest terraform and the lowest and highest coder provider
    (every choice on both ends of both ranges; defaults and presets on the mixed pairs)."""
    # Plain `nox` on a fresh machine skips with the reason; CI (CI=true) must have the toolchain.
    if (reason := _no_toolchain_reason()) and os.environ.get("CI", "").lower() != "true":
        session.skip(reason)
    _install(session)
    session.env.update(_tools_env())
    # One kubernetes stand-in process per toolchain run, reattached by every terraform
    # (tests/standin/reattach.py; runs the command as it is when the mirror has no stand-in).
    reattach = ("python", "tests/standin/reattach.py", "--")
    for toolchain, extra in matrix_schedule() or [({}, ())]:
        session.env.update(toolchain)
        session.run(*reattach, "python", "-m", "coderbundle", "test", *extra, *session.posargs, stderr=None)


@nox.session
def render(session: nox.Session) -> None:
    """Render templates into build/templates/ (`nox -s render -- nodejs`)."""
    _install(session)
    _coderbundle(session, "render")


@nox.session
def validate(session: nox.Session) -> None:
    """Render and validate every template (`-- --format json` for CI)."""
    _install(session)
    _coderbundle(session, "validate")


@nox.session(default=False)
def images(session: nox.Session) -> None:
    """Lint the Dockerfiles and build the images (`nox -s images -- --push python`)."""
    _install(session, *IMAGES_DEPS)
    dockerfiles = sorted(str(p) for p in Path("images").glob("*/Dockerfile"))
    session.run("hadolint", "--config", "images/.hadolint.yaml", *dockerfiles)
    _coderbundle(session, "images", "build")


@nox.session(default=False)
def publish(session: nox.Session) -> None:
    """The main job: render, validate, build and push images, push changed templates to Coder.

    Without CODER_URL it writes dist/ (what would be uploaded, and the plan) and pushes nothing.
    """
    _install(session)
    _coderbundle(session, "publish")


@nox.session
def chart(session: nox.Session) -> None:
    """Check the server chart: values table current, then the Helm-engine tests."""
    _install(session, *TEST_DEPS)
    session.run("python", "scripts/chart_values_table.py", "--check")
    session.run("pytest", "tests/test_chart.py", "tests/test_deploy.py", *session.posargs)


@nox.session(default=False)
def deploy(session: nox.Session) -> None:
    """Deploy the server chart (`nox -s deploy -- -f values.yaml [--dry-run]`)."""
    _install(session, package=".[deploy]")
    _coderbundle(session, "deploy")


@nox.session(default=False)
def bench(session: nox.Session) -> None:
    """Benchmarks: validation, publishing, impact, images (images need a Docker daemon)."""
    _install(session, *TEST_DEPS)
    session.env.update(_tools_env())
    session.run("python", "scripts/bench_validate.py")
    session.run("python", "scripts/bench_publish.py")
    session.run("python", "scripts/bench_rollout.py")  # push to promotion with one canary workspace
    session.run("python", "scripts/bench_nox.py")  # nox runs with and without the install (item 8)
    if session.env.get("CODERBUNDLE_PROVIDER_MIRROR") or os.environ.get("CODERBUNDLE_PROVIDER_MIRROR"):
        session.run("python", "scripts/bench_terraform.py")
        session.run("python", "scripts/bench_matrix.py")
        session.run("python", "scripts/bench_impact.py")  # `impact` on 20 real workspaces
    else:
        session.log("bench_terraform skipped: no offline toolchain (run `nox -s tools`)")
    if "images" in session.posargs:
        session.run("python", "scripts/bench_images.py")


@nox.session(name="coder-server", default=False)
def coder_server(session: nox.Session) -> None:
    """A real Coder deployment on 127.0.0.1 (built by `nox -s tools`); prints URL and token, Ctrl-C stops."""
    _install(session, *TEST_DEPS)
    session.run("python", "tests/coder_deployment.py", *session.posargs)


@nox.session(default=False)
def doctor(session: nox.Session) -> None:
    """What publish and deploy need, and whether it is there (`-- --format json`)."""
    _install(session, package=".[deploy]")
    _coderbundle(session, "doctor")


@nox.session(name="vault-setup", default=False)
def vault_setup(session: nox.Session) -> None:
    """Write the chart's secrets, policy and auth role to Vault (`-- -f secrets.yaml --dry-run`)."""
    _install(session)
    _coderbundle(session, "vault-setup")


@nox.session(default=False)
def cli(session: nox.Session) -> None:
    """Any coderbundle command: `nox -s cli -- validate nodejs`, `nox -s cli -- --help`."""
    _install(session, package=".[deploy]")
    _coderbundle(session)


@nox.session(default=False)
def schemas(session: nox.Session) -> None:
    """Regenerate tools/coderbundle/data/*.json (`-- --provider-git-dir ... --registry-git-dir ...`)."""
    _install(session, *SCHEMAS_DEPS)
    session.run("python", "scripts/gen_schemas.py", *session.posargs)


@nox.session(default=False)
def mistakes(session: nox.Session) -> None:
    """Run the mistake catalogue through the validator and `terraform fmt` (docs/schemas.md)."""
    _install(session)
    session.run("python", "scripts/mistake_catalogue.py", *session.posargs)


@nox.session(default=False)
def fuzz(session: nox.Session) -> None:
    """Fuzz validation with mutated templates (`-- --count 10000 --seed 1`); 0 crashes, 0 hangs expected."""
    _install(session, *TEST_DEPS)
    session.env["CODERBUNDLE_TERRAFORM_VALIDATE"] = "never"
    session.run("python", "tests/fuzz_harness.py", *(session.posargs or ["--count", "10000"]))
