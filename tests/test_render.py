"""Rendering is deterministic and writes exactly what Coder uploads."""

from __future__ import annotations

import re

import pytest
import yaml

from coderbundle.discover import Tool, find_templates
from coderbundle.errors import SettingsError
from coderbundle.pipeline import render_all
from coderbundle.settings import load_settings


def render(root):
    return render_all(load_settings(root, {}))


def test_render_is_byte_identical(bundle):
    root = bundle("good", "two-agents")
    first = {r.name: r.digest for r in render(root)}
    snapshot = {p: p.read_bytes() for p in (root / "build").rglob("*") if p.is_file()}
    second = {r.name: r.digest for r in render(root)}
    assert first == second
    assert snapshot == {p: p.read_bytes() for p in (root / "build").rglob("*") if p.is_file()}


def test_output_has_frontmatter_and_no_sources(bundle):
    root = bundle("good")
    (rendered,) = render(root)
    assert rendered.files == ("README.md", "main.tf")
    text = (rendered.path / "README.md").read_text()
    meta = yaml.safe_load(text.split("---\n")[1])
    assert meta == {
        "display_name": "Good fixture",
        "description": "A minimal, correct Coder template on Kubernetes",
        "icon": "/icon/k8s.png",
        "tags": ["kubernetes", "fixture"],
    }
    assert text.split("---\n", 2)[2].lstrip().startswith("# Good fixture")


def test_stale_output_is_removed(bundle):
    root = bundle("good")
    render(root)
    stale = root / "build" / "templates" / "good" / "old.tf"
    stale.write_text("# left over\n")
    render(root)
    assert not stale.exists()


def test_jinja_sources_render_with_context(bundle):
    root = bundle("good")
    (root / "templates" / "good" / "info.tf.j2").write_text(
        'locals {\n  cpu = "{{ workspace.cpu_request }}"\n  name = {{ template.name | tfstring }}\n}\n'
    )
    (rendered,) = render(root)
    text = (rendered.path / "info.tf").read_text()
    assert 'cpu = "500m"' in text
    assert 'name = "good"' in text
    assert "info.tf.j2" not in rendered.files


def _add_tools(root, text):
    settings = root / "templates" / "good" / "template.toml"
    settings.write_text(settings.read_text() + text)


def test_tools_reach_the_settings_and_the_readme_context(bundle):
    root = bundle("good")
    _add_tools(root, '\n[[tools]]\nname = "Git"\ncheck = "git --version"\n')
    (root / "templates" / "good" / "tools.md.j2").write_text(
        "{% for t in template.tools %}{{ t.name }}: {{ t.check }}\n{% endfor %}"
    )
    (rendered,) = render(root)
    assert rendered.template.settings.tools == (Tool("Git", "git --version"),)
    assert (rendered.path / "tools.md").read_text() == "Git: git --version\n"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('\ntools = "git"\n', "array of tables"),
        ('\n[[tools]]\nname = "Git"\n', "missing key 'tools[0].check'"),
        ('\n[[tools]]\nname = "Git"\ncheck = ""\n', "exactly a non-empty 'name' and 'check'"),
        (
            '\n[[tools]]\nname = "Git"\ncheck = "git --version"\nversion = "2"\n',
            "unknown key 'tools[0].version'",
        ),
        (
            (
                '\n[[tools]]\nname = "Git"\ncheck = "git --version"\n'
                '[[tools]]\nname = "Git"\ncheck = "git help"\n'
            ),
            "repeats the name 'Git'",
        ),
    ],
)
def test_bad_tools_entries_are_refused_with_the_file(bundle, text, message):
    root = bundle("good")
    _add_tools(root, text)
    with pytest.raises(SettingsError, match=re.escape(message)) as caught:
        find_templates(root / "templates")
    assert "template.toml" in str(caught.value)
