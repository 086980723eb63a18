"""nox sessions install the package once, not on every run (issue 21, item 8).

Every session ran `pip install -e .` each time (4.7 s of a 7.2 s `nox -s publish`).
Real nox runs a session twice in a copy of the repository: the second skips the
install, a change to pyproject.toml brings it back.  The figures are in
`nox -s bench` (scripts/bench_nox.py).
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from test_ci_pipelines import copy_repo


def nox(repo, *args, **env):
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("CODER_", "NOX_", "CODERBUNDLE_"))}
    environ.update(env)
    return subprocess.run(
        [sys.executable, "-m", "nox", *args],
        cwd=repo, env=environ, capture_output=True, text=True, check=False, timeout=900,
    )


@pytest.mark.slow
def test_the_second_run_skips_the_install_until_pyproject_changes(tmp_path_factory):
    pytest.importorskip("nox", reason="nox is not installed here (it is in the test dependency group)")
    repo = copy_repo(tmp_path_factory, "install")
    first = nox(repo, "-s", "render", "--", "nodejs")
    assert first.returncode == 0, first.stderr[-3000:]
    second = nox(repo, "-s", "render", "--", "nodejs")
    assert second.returncode == 0, second.stderr[-3000:]
    assert "install skipped" in second.stderr
    assert "pip install" not in second.stderr
    forced = nox(repo, "-s", "render", "--", "nodejs", CODERBUNDLE_REINSTALL="1")
    assert "pip install" in forced.stderr
    pyproject = repo / "pyproject.toml"
    pyproject.write_text(pyproject.read_text() + "\n# changed\n")
    changed = nox(repo, "-s", "render", "--", "nodejs")
    assert changed.returncode == 0, changed.stderr[-3000:]
    assert "pip install" in changed.stderr


@pytest.mark.slow
def test_plain_nox_skips_test_templates_without_the_toolchain_but_ci_does_not(tmp_path_factory, tmp_path):
    """Item 9: the default sessions pass or skip with a reason on a fresh machine."""
    pytest.importorskip("nox", reason="nox is not installed here (it is in the test dependency group)")
    repo = copy_repo(tmp_path_factory, "fresh")
    empty = tmp_path / "no-tools"
    empty.mkdir()
    fresh = nox(repo, "-s", "test-templates", CODERBUNDLE_TOOLS_CACHE=str(empty), CI="")
    assert fresh.returncode == 0, fresh.stderr[-3000:]
    assert "Session test-templates skipped: no offline terraform toolchain" in fresh.stderr
    assert "nox -s tools" in fresh.stderr
    ci = nox(repo, "-s", "test-templates", CODERBUNDLE_TOOLS_CACHE=str(empty), CI="true")
    assert ci.returncode != 0  # in CI a missing toolchain is a failure, not a skip
    assert "skipped" not in ci.stderr
