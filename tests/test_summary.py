"""validate and publish say what ran and with which terraform (issue 21, item 2).

"valid" only where terraform validate ran; "checked without terraform" otherwise,
in the text summary, the JSON and dist/publish-plan.json.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest


def cli(root, *args, **env):
    environ = {**os.environ, **env}
    for key in ("CODER_URL", "CODER_SESSION_TOKEN", "CODERBUNDLE_REGISTRY"):
        environ.pop(key, None)
    return subprocess.run(
        [sys.executable, "-m", "coderbundle", "--root", str(root), *args],
        capture_output=True,
        text=True,
        check=False,
        env=environ,
    )


NEVER = {"CODERBUNDLE_TERRAFORM_VALIDATE": "never"}


def test_validate_without_terraform_never_says_valid(bundle):
    proc = cli(bundle("good"), "validate", **NEVER)
    assert proc.returncode == 0, proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert "checked without terraform" in last
    assert "disabled by CODERBUNDLE_TERRAFORM_VALIDATE=never" in last
    assert "all 1 template(s) valid" not in proc.stderr
    assert "good: checked without terraform;" in proc.stderr


def test_validate_json_says_what_ran(bundle):
    proc = cli(bundle("good"), "validate", "--format", "json", **NEVER)
    report = json.loads(proc.stdout)
    (entry,) = report["templates"]
    assert entry["verdict"] == "checked without terraform"
    assert "terraform validate" not in entry["checks"]
    assert entry["checks"][:3] == ["parse", "rules", "schemas"]
    assert "checked without terraform" in report["summary"]


def test_publish_summary_json_and_plan_say_terraform_was_skipped(bundle):
    root = bundle("good")
    text = cli(root, "publish", **NEVER)
    assert text.returncode == 0, text.stderr
    assert "validation: 1 template(s) checked without terraform" in text.stderr
    proc = cli(root, "publish", "--format", "json", **NEVER)
    result = json.loads(proc.stdout)
    assert result["checks"]["templates"]["good"]["verdict"] == "checked without terraform"
    plan = json.loads((root / "dist" / "publish-plan.json").read_text())
    assert plan["checks"]["templates"]["good"]["terraform_validate"].startswith("skipped: ")
    assert "checked without terraform" in plan["checks"]["summary"]


@pytest.mark.terraform
def test_valid_only_where_terraform_validate_ran(bundle):
    proc = cli(bundle("good"), "validate", "--format", "json", CODERBUNDLE_TERRAFORM_VALIDATE="always")
    report = json.loads(proc.stdout)
    (entry,) = report["templates"]
    if entry["terraform_validate"] != "passed":
        pytest.skip(f"terraform validate cannot run here: {entry['terraform_validate']}")
    assert entry["verdict"] == "valid"
    assert "terraform validate" in entry["checks"]
    assert report["summary"] == "all 1 template(s) valid (terraform validate ran)"
    assert report["toolchain"].startswith("terraform ")
