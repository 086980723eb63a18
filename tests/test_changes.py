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


GIT = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com"]


def commit_all(root, message="base"):
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    if not (root / ".git").exists():
        subprocess.run([*GIT, "init", "-q"], cwd=root, check=True)
    subprocess.run([*GIT, "add", "-A"], cwd=root, check=True)
    subprocess.run([*GIT, "commit", "-qm", message], cwd=root, check=True)


def test_since_a_git_ref(bundle):
    root = bundle("good")
    commit_all(root)
    assert json.loads(cli(root, "changes", "--since", "HEAD", "--format", "json").stdout)[0]["unchanged"]
    (root / "templates" / "good" / "README.md").write_text("# Good\n\nChanged.\n")
    proc = cli(root, "changes", "--since", "HEAD", "--format", "json")
    assert proc.returncode == 0, proc.stderr
    (entry,) = json.loads(proc.stdout)
    assert entry["sources"] == ["templates/good/README.md"]
    assert entry["changed"] == ["README.md"]  # the rendered file, as against the plan
    bad = cli(root, "changes", "--since", "no-such-ref")
    assert bad.returncode == 2
    assert "not a commit" in bad.stderr


def test_since_a_git_ref_parameters_and_image(bundle):
    root = bundle(real=("python",))
    commit_all(root)
    main = root / "templates" / "python" / "main.tf.j2"
    old, new = 'data "coder_parameter" "jupyter"', 'data "coder_parameter" "jupyterlab"'
    main.write_text(main.read_text().replace(old, new, 1))
    dockerfile = root / "images" / "python" / "Dockerfile"
    dockerfile.write_text(dockerfile.read_text() + "# a change\n")
    proc = cli(root, "changes", "--since", "HEAD", "--format", "json")
    assert proc.returncode == 0, proc.stderr
    (entry,) = json.loads(proc.stdout)
    assert entry["parameters_added"] == ["jupyterlab"]
    assert entry["parameters_removed"] == ["jupyter"]
    assert "main.tf" in entry["changed"]
    assert entry["image"] == "python: images/python changed since HEAD; a new image on the next build"
    assert "images/python/Dockerfile" in entry["sources"]
    text = cli(root, "changes", "--since", "HEAD").stdout
    assert "parameter added: jupyterlab" in text
    assert "image: python: images/python changed" in text

    commit_all(root, "python image changed")
    base = root / "images" / "base" / "Dockerfile"
    base.write_text(base.read_text() + "# a change\n")
    (entry,) = json.loads(cli(root, "changes", "--since", "HEAD", "--format", "json").stdout)
    assert entry["image"] == "python: images/base changed since HEAD; a new image on the next build"

    toml = root / "templates" / "python" / "template.toml"
    toml.write_text(toml.read_text().replace('image = "python"', 'image = "go"'))
    (entry,) = json.loads(cli(root, "changes", "--since", "HEAD", "--format", "json").stdout)
    assert entry["image"] == "python -> go"


def test_since_the_plan_an_image_change(bundle):
    root = bundle(real=("python",))
    assert cli(root, "publish").returncode == 0
    plan = json.loads((root / "dist" / "publish-plan.json").read_text())
    before = plan["templates"][0]["image"]["effective"]
    reference = "127.0.0.1:5000/coderbundle/python@sha256:" + "ab" * 32
    manifest = {"images": {"python": {"pushed": True, "reference": reference}}}
    (root / "build" / "images.json").write_text(json.dumps(manifest))
    (entry,) = json.loads(cli(root, "changes", "--format", "json").stdout)
    assert entry["image"] == f"{before} -> {reference}"
    assert not entry["unchanged"]
    assert f"image: {before} -> {reference}" in cli(root, "changes").stdout
