"""Tests pass on a repository that follows docs/getting-started.md (issue 21, item 1).

Step 8 sets ``values_file = "deploy/coder.yaml"`` in bundle.toml; the test
bundles copied bundle.toml alone, so every test and the fuzzer failed to load
its settings.  Here a repository is built exactly as the guide says and the
fixtures are made from it.
"""

from __future__ import annotations

import re
import shutil

import pytest

import bundle_files
import conftest
import fuzz_harness
from bundle_files import set_values_file
from coderbundle.settings import load_settings

GUIDE = conftest.REPO / "docs" / "getting-started.md"


def _guide_values_file() -> str:
    """The ``deploy/coder.yaml`` step 3 of the guide writes (its heredoc)."""
    match = re.search(
        r"cat > deploy/coder.yaml <<'EOF'\n(.*?)\nEOF\n", GUIDE.read_text(encoding="utf-8"), re.DOTALL
    )
    assert match, "getting-started.md no longer writes deploy/coder.yaml with a heredoc"
    return match.group(1) + "\n"


def _guide_step_8() -> str:
    """The values_file line step 8 of the guide tells the reader to set."""
    match = re.search(
        r'```toml\n\[workspace\]\nvalues_file = "([^"]+)"\n```', GUIDE.read_text(encoding="utf-8")
    )
    assert match, "getting-started.md step 8 no longer sets [workspace] values_file"
    return match.group(1)


@pytest.fixture
def team_repo(tmp_path, monkeypatch):
    """A checkout whose bundle.toml follows step 8; the fixtures copy settings from it."""
    repo = tmp_path / "team"
    (repo / "deploy").mkdir(parents=True)
    (repo / "deploy" / "coder.yaml").write_text(_guide_values_file(), encoding="utf-8")
    text = (conftest.REPO / "bundle.toml").read_text(encoding="utf-8")
    (repo / "bundle.toml").write_text(set_values_file(text, _guide_step_8()), encoding="utf-8")
    monkeypatch.setattr(bundle_files, "REPO", repo)
    return repo


def test_the_guide_names_the_file_it_writes():
    assert _guide_step_8() == "deploy/coder.yaml"


def test_set_values_file_replaces_a_commented_or_set_line():
    assert (
        set_values_file('[workspace]\n# values_file = "a.yaml"\n', "b.yaml")
        == '[workspace]\nvalues_file = "b.yaml"\n'
    )
    assert (
        set_values_file('[workspace]\nvalues_file = "a.yaml"\n', "b.yaml")
        == '[workspace]\nvalues_file = "b.yaml"\n'
    )
    assert set_values_file("[workspace]\nx = 1\n", "b.yaml") == '[workspace]\nvalues_file = "b.yaml"\nx = 1\n'


def test_test_bundles_copy_the_values_file_bundle_toml_names(team_repo, tmp_path):
    root = conftest.make_bundle(tmp_path / "bundle", "good")
    assert (root / "deploy" / "coder.yaml").read_bytes() == (team_repo / "deploy" / "coder.yaml").read_bytes()
    settings = load_settings(root, {})
    assert settings.subdomain_apps is True  # the guide's values set coder.config.wildcardAccessUrl


def test_the_fuzzer_base_copies_the_values_file(team_repo, tmp_path):
    root = fuzz_harness.make_base(tmp_path / "fuzz")
    assert (root / "deploy" / "coder.yaml").is_file()
    load_settings(root, {})
    del team_repo


def test_a_missing_referenced_file_is_not_invented(team_repo, tmp_path):
    shutil.rmtree(team_repo / "deploy")
    bundle_files.copy_settings(tmp_path / "bundle")
    assert (tmp_path / "bundle" / "bundle.toml").is_file()
    assert not (tmp_path / "bundle" / "deploy").exists()
