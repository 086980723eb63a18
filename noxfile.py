"""Entry points for people and CI: `nox -s publish`, `nox -s tests`, `nox -s validate`, ...

Every session calls `python -m coderbundle <verb>` (or pytest), so a local run
and CI take the same path.  `publish`, `deploy` and `images` never run by accident.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import nox

nox.needs_version = ">=2024.10.9"
nox.options.default_venv_backend = "venv"
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
        "CODERBUNDLE_MODULE_MIRROR": str(TOOLS_CACHE / "modules"),
    }
    if not all(Path(v).exists() for v in found.values()):
        return {}
    found = {k: v for k, v in found.items() if k not in os.environ}
    # Tests and tools that call `terraform` by name get the one built from source.
    terraform = found.get("CODERBUNDLE_TERRAFORM") or os.environ.get("CODERBUNDLE_TERRAFORM", "")
    terraform_dir = str(Path(terraform).parent)
    found["PATH"] = os.pathsep.join([terraform_dir, os.environ.get("PATH", "")])
    return found


def _install(session: nox.Session, *extra: str, package: str = ".") -> None:
    session.install("-e", package, *extra)


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
    session.run("pytest", *session.posargs)


@nox.session(default=False)
def tools(session: nox.Session) -> None:
    """Build terraform and the providers from source (needs Go) and the module stubs, once per version."""
    session.install(*STANDIN_DEPS)
    session.run("python", "scripts/build_tools.py", *session.posargs)


@nox.session(name="test-templates")
def test_templates(session: nox.Session) -> None:
    """Plan every template x preset x start/stop with real terraform and check the invariants."""
    _install(session)
    session.env.update(_tools_env())
    session.run("python", "-m", "coderbundle", "test", *session.posargs)


@nox.session
def render(session: nox.Session) -> None:
    """Render templates into build/templates/ (`nox -s render -- nodejs`)."""
    _install(session)
    session.run("python", "-m", "coderbundle", "render", *session.posargs)


@nox.session
def validate(session: nox.Session) -> None:
    """Render and validate every template (`-- --format json` for CI)."""
    _install(session)
    session.env.update(_tools_env())
    session.run("python", "-m", "coderbundle", "validate", *session.posargs)


@nox.session(default=False)
def images(session: nox.Session) -> None:
    """Lint the Dockerfiles and build the images (`nox -s images -- --push python`)."""
    _install(session, *IMAGES_DEPS)
    dockerfiles = sorted(str(p) for p in Path("images").glob("*/Dockerfile"))
    session.run("hadolint", "--config", "images/.hadolint.yaml", *dockerfiles)
    session.run("python", "-m", "coderbundle", "images", "build", *session.posargs)


@nox.session(default=False)
def publish(session: nox.Session) -> None:
    """The main job: render, validate, build and push images, push changed templates to Coder.

    Without CODER_URL it writes dist/ (what would be uploaded, and the plan) and pushes nothing.
    """
    _install(session)
    session.env.update(_tools_env())
    session.run("python", "-m", "coderbundle", "publish", *session.posargs)


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
    session.run("python", "-m", "coderbundle", "deploy", *session.posargs)


@nox.session(default=False)
def bench(session: nox.Session) -> None:
    """Benchmarks: validation, publishing, images (images need a Docker daemon)."""
    _install(session, *TEST_DEPS, "checkov")
    session.env.update(_tools_env())
    session.run("python", "scripts/bench_validate.py")
    session.run("python", "scripts/bench_publish.py")
    if session.env.get("CODERBUNDLE_PROVIDER_MIRROR") or os.environ.get("CODERBUNDLE_PROVIDER_MIRROR"):
        session.run("python", "scripts/bench_terraform.py")
    else:
        session.log("bench_terraform skipped: no offline toolchain (run `nox -s tools`)")
    if "images" in session.posargs:
        session.run("python", "scripts/bench_images.py")
