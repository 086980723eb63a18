"""Shared fixtures: a throw-away bundle built from real files, and tool markers."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"


def pytest_collection_modifyitems(config, items):
    """Skip tests whose external tool is missing, saying which."""
    del config
    if shutil.which("terraform") is None:
        skip = pytest.mark.skip(reason="terraform is not installed")
        for item in items:
            if "terraform" in item.keywords:
                item.add_marker(skip)


def make_bundle(root: Path, *fixtures: str, real: tuple[str, ...] = ()) -> Path:
    """A bundle at ``root``: the repo's bundle.toml and _shared, plus fixture or real templates."""
    (root / "templates").mkdir(parents=True)
    shutil.copy(REPO / "bundle.toml", root / "bundle.toml")
    shutil.copytree(REPO / "templates" / "_shared", root / "templates" / "_shared")
    for name in fixtures:
        shutil.copytree(FIXTURES / "templates" / name, root / "templates" / name)
    for name in real:
        shutil.copytree(REPO / "templates" / name, root / "templates" / name)
    return root


@pytest.fixture
def bundle(tmp_path):
    """Factory: ``bundle("good", "bad-fmt")`` returns a bundle root in tmp_path."""

    def factory(*fixtures: str, real: tuple[str, ...] = ()) -> Path:
        return make_bundle(tmp_path / "bundle", *fixtures, real=real)

    return factory
