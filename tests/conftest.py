"""Shared fixtures: a throw-away bundle built from real files, and tool markers."""

from __future__ import annotations

import os
import shutil
import signal
import tomllib
from pathlib import Path

import pytest

from bundle_files import copy_settings

REPO = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"


def pytest_configure(config):
    """Give SIGINT back its default when the suite was started with it ignored.

    A shell ignores SIGINT in the jobs it starts in the background (`nox -s tests &`,
    nohup), and an ignored signal is inherited: the coderbundle processes the Ctrl-C
    tests start would never see the Ctrl-C they send.  A terminal gives them the default.
    """
    del config
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def pytest_collection_modifyitems(config, items):
    """Skip tests whose external tool is missing, saying which."""
    del config
    if shutil.which("terraform") is None:
        skip = pytest.mark.skip(reason="terraform is not installed")
        for item in items:
            if "terraform" in item.keywords:
                item.add_marker(skip)


def case_settings(name: str) -> dict:
    """A fixture's ``case.toml`` (``{}`` for the good fixtures without one)."""
    path = FIXTURES / "templates" / name / "case.toml"
    return tomllib.loads(path.read_text()) if path.exists() else {}


def materialize_case(name: str, dest: Path) -> None:
    """Write fixture ``name`` as a template folder at ``dest``.

    A case with ``base = "good"`` is that fixture plus its ``[[replace]]`` edits
    to main.tf and its ``[template]`` overrides of template.toml, so each bad
    case shows exactly the one mistake it is about.
    """
    case = case_settings(name)
    source = FIXTURES / "templates" / case.get("base", name)
    shutil.copytree(source, dest, ignore=shutil.ignore_patterns("case.toml"))
    main = dest / "main.tf"
    for edit in case.get("replace", []):
        text = main.read_text()
        assert edit["old"] in text, f"{name}: {edit['old']!r} is not in {case['base']}/main.tf"
        main.write_text(text.replace(edit["old"], edit["new"], 1))
    if overrides := case.get("template"):
        settings = tomllib.loads((dest / "template.toml").read_text())
        settings.update(overrides)
        (dest / "template.toml").write_text(_toml(settings))
    # [images] <name> = "<Dockerfile text>": an image of the case's own beside the repo's.
    for image, dockerfile in case.get("images", {}).items():
        folder = dest.parent.parent / "images" / image
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "Dockerfile").write_text(dockerfile)


def _toml(data: dict) -> str:
    """Enough TOML for template.toml: strings, string lists, and [variables.x] tables."""
    lines, tables = [], []
    for key, value in data.items():
        if isinstance(value, dict):
            tables += [
                f"\n[{key}.{sub}]\n" + "".join(f'{k} = "{v}"\n' for k, v in spec.items())
                for sub, spec in value.items()
            ]
        elif isinstance(value, list):
            lines.append(f"{key} = [" + ", ".join(f'"{v}"' for v in value) + "]")
        else:
            lines.append(f'{key} = "{value}"')
    return "\n".join(lines) + "\n" + "".join(tables)


def make_bundle(root: Path, *fixtures: str, real: tuple[str, ...] = ()) -> Path:
    """A bundle at ``root``: the repo's bundle.toml, _shared and images, plus fixture or real templates."""
    (root / "templates").mkdir(parents=True)
    copy_settings(root)  # bundle.toml and the files it names (a values_file, getting-started step 8)
    shutil.copytree(REPO / "images", root / "images")  # the rules read the templates' image Dockerfiles
    shutil.copytree(REPO / "templates" / "_shared", root / "templates" / "_shared")
    for name in fixtures:
        materialize_case(name, root / "templates" / name)
    for name in real:
        shutil.copytree(REPO / "templates" / name, root / "templates" / name)
    return root


@pytest.fixture
def bundle(tmp_path):
    """Factory: ``bundle("good", "bad-fmt")`` returns a bundle root in tmp_path."""

    def factory(*fixtures: str, real: tuple[str, ...] = ()) -> Path:
        return make_bundle(tmp_path / "bundle", *fixtures, real=real)

    return factory


@pytest.fixture(scope="session")
def coder_deployment():
    """A real Coder deployment (tests/coder_deployment.py), one per test session.

    Skips, saying why, where the machine cannot run one (no Coder built by
    `nox -s tools`, no PostgreSQL); with CODERBUNDLE_REQUIRE_REAL_CODER=1 (.ci/run)
    that is a failure instead.
    """
    from coder_deployment import CoderDeployment, Unavailable  # noqa: PLC0415 - tests/ module

    try:
        deployment = CoderDeployment()
    except Unavailable as exc:
        if os.environ.get("CODERBUNDLE_REQUIRE_REAL_CODER"):
            pytest.fail(f"real Coder server required: {exc}")
        pytest.skip(f"real Coder server: {exc}")
    with deployment:
        yield deployment
