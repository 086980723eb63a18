"""The CLI as users meet it: real processes, one-line errors, exit codes, no tracebacks."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest


def cli(root, *args, env=None):
    return subprocess.run(
        [sys.executable, "-m", "coderbundle", "--root", str(root), *args],
        capture_output=True,
        text=True,
        check=False,
        env=env,
    )


def assert_one_line_error(proc, code, *needles):
    assert proc.returncode == code, proc.stderr
    assert "Traceback" not in proc.stderr
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1, proc.stderr
    for needle in needles:
        assert needle in errors[0]


@pytest.mark.terraform
def test_validate_clean_exits_0_and_json_is_stable(bundle):
    root = bundle("good")
    proc = cli(root, "validate", "--format", "json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["ok"] is True
    (entry,) = report["templates"]
    assert set(entry) == {"name", "path", "terraform_validate", "verdict", "checks", "cached", "problems"}
    assert entry["terraform_validate"] != "not run"


@pytest.mark.terraform
def test_validate_findings_exit_1_with_file_and_line(bundle):
    root = bundle("good", "bad-app-slug", "two-agents")
    proc = cli(root, "validate")
    assert proc.returncode == 1
    assert "bad-app-slug/main.tf:87: CB108" in proc.stderr
    assert "two-agents/main.tf" in proc.stderr
    assert "CB102" in proc.stderr
    if "terraform validate passed" in proc.stderr:  # real terraform ran (offline mirrors):
        # the coder provider rejects the slug too, at the same line.
        assert "bad-app-slug/main.tf:87: CB003 terraform validate error" in proc.stderr
        assert "3 problem(s) in 3 template(s)" in proc.stderr
    else:
        assert "2 problem(s) in 3 template(s)" in proc.stderr


def test_unknown_template_name_is_a_usage_error(bundle):
    proc = cli(bundle("good"), "render", "nope")
    assert_one_line_error(proc, 2, "unknown template 'nope'", "available: good")


def test_missing_settings_file(bundle):
    root = bundle("good")
    (root / "templates" / "good" / "template.toml").unlink()
    proc = cli(root, "render")
    assert_one_line_error(proc, 2, "good/template.toml", "missing settings file")


def test_broken_partial_names_file_and_line(bundle):
    root = bundle("good")
    (root / "templates" / "_shared" / "broken.tf.j2").write_text("a = 1\n{% if %}\n")
    (root / "templates" / "good" / "extra.tf.j2").write_text('{% include "broken.tf.j2" %}\n')
    proc = cli(root, "render")
    assert_one_line_error(proc, 1, "broken.tf.j2:2", "jinja2 syntax error")


def test_undefined_variable_names_file_and_line(bundle):
    root = bundle("good")
    (root / "templates" / "good" / "extra.tf.j2").write_text("# ok\n# {{ template.nmae }}\n")
    proc = cli(root, "render")
    assert_one_line_error(proc, 1, "extra.tf.j2:2", "nmae")


def test_no_bundle_toml(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "coderbundle", "render"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert_one_line_error(proc, 2, "no bundle.toml")


def test_console_script_is_installed():
    script = Path(sys.executable).parent / "coderbundle"
    proc = subprocess.run([str(script), "--version"], capture_output=True, text=True, check=False)
    assert proc.returncode == 0
    assert proc.stdout.startswith("coderbundle ")
