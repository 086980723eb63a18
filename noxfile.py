"""Entry points for people and CI: `nox -s publish`, `nox -s tests`, `nox -s validate`, ...

Every session calls `python -m coderbundle <verb>` (or pytest), so a local run
and CI take the same path.  `publish`, `deploy` and `images` never run by accident.
"""

from __future__ import annotations

from pathlib import Path

import nox

nox.needs_version = ">=2024.10.9"
nox.options.default_venv_backend = "venv"
nox.options.reuse_venv = "yes"
nox.options.sessions = ["lint", "tests", "validate"]

PYPROJECT = nox.project.load_toml("pyproject.toml")
TEST_DEPS = nox.project.dependency_groups(PYPROJECT, "test")
LINT_DEPS = nox.project.dependency_groups(PYPROJECT, "lint")
IMAGES_DEPS = nox.project.dependency_groups(PYPROJECT, "images")


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
    _install(session, *TEST_DEPS)
    session.run("pytest", *session.posargs)


@nox.session
def render(session: nox.Session) -> None:
    """Render templates into build/templates/ (`nox -s render -- nodejs`)."""
    _install(session)
    session.run("python", "-m", "coderbundle", "render", *session.posargs)


@nox.session
def validate(session: nox.Session) -> None:
    """Render and validate every template (`-- --format json` for CI)."""
    _install(session)
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
    _install(session, *TEST_DEPS)
    session.run("python", "scripts/bench_validate.py")
    session.run("python", "scripts/bench_publish.py")
    if "images" in session.posargs:
        session.run("python", "scripts/bench_images.py")


@nox.session(default=False)
def fuzz(session: nox.Session) -> None:
    """Fuzz validation with mutated templates (`-- --count 10000 --seed 1`); 0 crashes, 0 hangs expected."""
    _install(session, *TEST_DEPS)
    session.env["CODERBUNDLE_TERRAFORM_VALIDATE"] = "never"
    session.run("python", "tests/fuzz_harness.py", *(session.posargs or ["--count", "10000"]))
