"""One reader of the chart's values files for publish and deploy (issue 21, items 3 and 4).

A typo in the values file bundle.toml names was silently ignored by publish
(the CPU request stayed 500m) while `deploy --dry-run` rejected the same file;
and deploy's schema errors named chart/values.schema.json, not the user's file.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from bundle_files import set_values_file
from coderbundle import chart_values
from coderbundle.errors import DeployError, SettingsError
from coderbundle.settings import load_settings
from conftest import REPO

TYPO = """\
coder:
  workspaces:
    defaultResouces:
      requests:
        cpu: "2"
"""


def cli(root, *args):
    env = {k: v for k, v in os.environ.items() if k not in ("CODER_URL", "CODER_SESSION_TOKEN")}
    return subprocess.run(
        [sys.executable, "-m", "coderbundle", "--root", str(root), *args],
        capture_output=True,
        text=True,
        check=False,
        env=env,
    )


@pytest.fixture
def typo_bundle(bundle):
    root = bundle("good")
    shutil.copytree(REPO / "chart", root / "chart")
    (root / "deploy").mkdir()
    (root / "deploy" / "coder.yaml").write_text(TYPO)
    path = root / "bundle.toml"
    path.write_text(set_values_file(path.read_text(), "deploy/coder.yaml"))
    return root


def test_publish_rejects_a_typo_in_the_values_file(typo_bundle):
    with pytest.raises(SettingsError) as info:
        load_settings(typo_bundle, {})
    message = str(info.value)
    values = typo_bundle / "deploy" / "coder.yaml"
    assert f"{values}:3: unknown key coder.workspaces.defaultResouces" in message
    proc = cli(typo_bundle, "publish")
    assert proc.returncode == 2, proc.stderr
    assert "coder.yaml:3: unknown key coder.workspaces.defaultResouces" in proc.stderr
    assert not (typo_bundle / "dist").exists()


@pytest.mark.helm
def test_deploy_rejects_the_same_file_with_the_same_words(typo_bundle):
    proc = cli(typo_bundle, "deploy", "--dry-run", "-f", str(typo_bundle / "deploy" / "coder.yaml"))
    assert proc.returncode != 0
    assert "coder.yaml:3: unknown key coder.workspaces.defaultResouces" in proc.stderr
    assert "values.schema.json" not in proc.stderr


def test_schema_errors_name_the_file_that_sets_the_key(tmp_path):
    first, second = tmp_path / "a.yaml", tmp_path / "b.yaml"
    first.write_text("coder:\n  workspaces:\n    ttl: 1h\n")
    second.write_text("ingress:\n  enabled: true\n\ncoder:\n  workspaces:\n    ttl: [1]\n")
    with pytest.raises(DeployError) as info:
        chart_values.read_and_check([first, second], REPO / "chart", error=DeployError)
    assert str(info.value).startswith(f"{second}:6: coder.workspaces.ttl: ")


def test_invalid_yaml_is_one_line_with_file_and_line(tmp_path):
    path = tmp_path / "v.yaml"
    path.write_text("coder:\n  a: 1\n b: [\n")
    with pytest.raises(DeployError) as info:
        chart_values.read_values(path, error=DeployError)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"{path}:3: invalid YAML (")


def test_the_merge_is_helms(tmp_path):
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    a.write_text("coder:\n  x: 1\n  y: [1]\n")
    b.write_text("coder:\n  y: [2]\n")
    files = [chart_values.read_values(p, error=DeployError) for p in (a, b)]
    merged: dict = {}
    for vf in files:
        merged = chart_values.merge(merged, vf.data)
    assert merged == {"coder": {"x": 1, "y": [2]}}
