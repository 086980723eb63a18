"""Subdomain apps: one setting that publish passes to every template as `subdomain_apps`."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from bundle_files import VALUES_FILE_LINE
from coderbundle.errors import SettingsError
from coderbundle.pipeline import render_all
from coderbundle.publish_plan import plan_templates
from coderbundle.settings import load_settings

REPO = Path(__file__).resolve().parent.parent
TEMPLATES = ("docker", "go", "kubernetes", "nodejs", "python")


@pytest.fixture
def bundle(tmp_path):
    """The real templates and bundle.toml in a throw-away root."""
    shutil.copytree(REPO / "templates", tmp_path / "templates")
    # About the keys' meaning: the team's own values_file (getting-started step 8) is left out.
    text = (REPO / "bundle.toml").read_text()
    (tmp_path / "bundle.toml").write_text(VALUES_FILE_LINE.sub("", text))
    return tmp_path


def _with_workspace_keys(root: Path, lines: str) -> None:
    path = root / "bundle.toml"
    path.write_text(path.read_text().replace("[workspace]\n", "[workspace]\n" + lines, 1))


def _values(root: Path, wildcard: str) -> None:
    (root / "coder.yaml").write_text(f'coder:\n  config:\n    wildcardAccessUrl: "{wildcard}"\n')


def test_default_is_path_apps(bundle):
    assert load_settings(bundle, {}).subdomain_apps is False


def test_bundle_toml_key_turns_it_on(bundle):
    _with_workspace_keys(bundle, "subdomain_apps = true\n")
    assert load_settings(bundle, {}).subdomain_apps is True


def test_environment_wins_over_bundle_toml(bundle):
    _with_workspace_keys(bundle, "subdomain_apps = true\n")
    assert load_settings(bundle, {"CODERBUNDLE_SUBDOMAIN_APPS": "false"}).subdomain_apps is False


def test_an_empty_environment_value_counts_as_unset(bundle):
    _with_workspace_keys(bundle, "subdomain_apps = true\n")
    assert load_settings(bundle, {"CODERBUNDLE_SUBDOMAIN_APPS": ""}).subdomain_apps is True


def test_derived_from_the_chart_values_wildcard_url(bundle):
    _values(bundle, "*.workspace.coder.example.com")
    _with_workspace_keys(bundle, 'values_file = "coder.yaml"\n')
    assert load_settings(bundle, {}).subdomain_apps is True


def test_empty_wildcard_url_in_values_means_path_apps(bundle):
    _values(bundle, "")
    _with_workspace_keys(bundle, 'values_file = "coder.yaml"\n')
    assert load_settings(bundle, {}).subdomain_apps is False


def test_explicit_key_wins_over_the_values_file(bundle):
    _values(bundle, "*.workspace.coder.example.com")
    _with_workspace_keys(bundle, 'values_file = "coder.yaml"\nsubdomain_apps = false\n')
    assert load_settings(bundle, {}).subdomain_apps is False


def test_a_quoted_value_is_refused_with_the_fix(bundle):
    _with_workspace_keys(bundle, 'subdomain_apps = "yes"\n')
    expected = r"bundle.toml: workspace.subdomain_apps must be true or false, not the string 'yes'"
    with pytest.raises(SettingsError, match=expected):
        load_settings(bundle, {})


def test_a_bad_environment_value_is_refused(bundle):
    with pytest.raises(SettingsError, match="CODERBUNDLE_SUBDOMAIN_APPS='maybe' is not a boolean"):
        load_settings(bundle, {"CODERBUNDLE_SUBDOMAIN_APPS": "maybe"})


@pytest.mark.parametrize(
    ("env", "expected"), [({}, "false"), ({"CODERBUNDLE_SUBDOMAIN_APPS": "true"}, "true")]
)
def test_publish_passes_it_to_every_template(bundle, env, expected):
    settings = load_settings(bundle, env)
    _, plans = plan_templates(render_all(settings), settings, images={}, env={})
    assert sorted(p.name for p in plans) == list(TEMPLATES)
    assert {p.name: p.variables["subdomain_apps"] for p in plans} == dict.fromkeys(TEMPLATES, expected)


def test_changing_it_changes_the_content_hash(bundle):
    hashes = []
    for value in ("false", "true"):
        settings = load_settings(bundle, {"CODERBUNDLE_SUBDOMAIN_APPS": value})
        _, plans = plan_templates(render_all(settings, ["go"]), settings, images={}, env={})
        hashes.append(plans[0].content_hash)
    assert hashes[0] != hashes[1]
