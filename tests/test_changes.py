"""`coderbundle changes`: per template, what changed since the last publish plan or a git ref (offline)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest


def cli(root, *args):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CODER_", "CODERBUNDLE_"))}
    env["CODERBUNDLE_TERRAFORM_VALIDATE"] = "never"
    return subprocess.run(
        [sys.executable, "-m", "coderbundle", "--root", str(root), *args],
        capture_output=True,
        text=True,
        check=False,
        env=env,
    )


def test_since_the_plan_files_and_parameters(bundle):
    root = bundle(real=("python",))
    assert cli(root, "publish").returncode == 0
    unchanged = json.loads(cli(root, "changes", "--format", "json").stdout)
    assert unchanged == [{**unchanged[0], "name": "python", "unchanged": True}]
    main = root / "templates" / "python" / "main.tf.j2"
    text = main.read_text()
    old, new = 'data "coder_parameter" "jupyter"', 'data "coder_parameter" "jupyterlab"'
    main.write_text(text.replace(old, new, 1))
    (root / "templates" / "python" / "extra.tf").write_text('locals {\n  x = "y"\n}\n')
    proc = cli(root, "changes", "--format", "json")
    assert proc.returncode == 0, proc.stderr
    (entry,) = json.loads(proc.stdout)
    assert entry["added"] == ["extra.tf"]
    assert "main.tf" in entry["changed"]
    assert entry["parameters_added"] == ["jupyterlab"]
    assert entry["parameters_removed"] == ["jupyter"]
    text_out = cli(root, "changes").stdout
    assert "parameter added: jupyterlab" in text_out


def test_without_a_plan_it_says_what_to_do(bundle):
    proc = cli(bundle("good"), "changes")
    assert proc.returncode == 2
    assert "no publish plan yet; run `nox -s publish` once, or give --since" in proc.stderr


def test_since_a_git_ref(bundle):
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    root = bundle("good")
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run([*git, "init", "-q"], cwd=root, check=True)
    subprocess.run([*git, "add", "-A"], cwd=root, check=True)
    subprocess.run([*git, "commit", "-qm", "base"], cwd=root, check=True)
    (root / "templates" / "good" / "README.md").write_text("# Good\n\nChanged.\n")
    proc = cli(root, "changes", "--since", "HEAD", "--format", "json")
    assert proc.returncode == 0, proc.stderr
    (entry,) = json.loads(proc.stdout)
    assert entry["changed"] == ["templates/good/README.md"]
    bad = cli(root, "changes", "--since", "no-such-ref")
    assert bad.returncode == 2
    assert "not a commit" in bad.stderr
