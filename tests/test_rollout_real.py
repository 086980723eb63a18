"""Rollouts against a REAL Coder server with REAL agents (tests/rollout_fixtures.py).

Each workspace of the local-agent template is a `coder agent` process on this
machine, so "healthy" means what it means in production: the build succeeded and
the agent connected and finished its startup script (lifecycle `ready`).  Every
test publishes as a template admin of its own (coderd limits uploads per user).
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from coderbundle.__main__ import DOCTOR_HINT, main
from rollout_fixtures import agents, create_workspace, local_agent_bundle, wait_for_build, write_local_agent

REPO = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow

_USERS = itertools.count(1)


class Lab:
    """The deployment, one template admin, and a bundle with the local-agent template."""

    def __init__(self, deployment, root: Path) -> None:
        self.d = deployment
        n = next(_USERS)
        self.user = deployment.create_user(f"roller-{n}", roles=("template-admin",))
        self.name = f"la-{n}"  # templates are per organization: one of its own per test
        self.root = local_agent_bundle(root, (self.name,), deployment)
        self.org = deployment.default_org()

    def env(self) -> dict[str, str]:
        return {
            "CODER_URL": self.d.url,
            "CODER_SESSION_TOKEN": self.user.token,
            "CODERBUNDLE_CODER": str(self.d.binary),
            "CODERBUNDLE_TERRAFORM_VALIDATE": "never",
            "CODERBUNDLE_EXTERNAL_AUTH": "",
        }

    def write(self, **knobs) -> None:
        write_local_agent(self.root, self.name, self.d, **knobs)

    def api(self, method: str, path: str, body=None):
        return self.d.api(method, path, self.user.token, body)

    def template(self) -> dict:
        return self.api("GET", f"/organizations/{self.org}/templates/{self.name}")

    def active(self) -> dict:
        return self.api("GET", f"/templateversions/{self.template()['active_version_id']}")

    def workspace(self, name: str = "dev", **parameters: str) -> dict:
        return create_workspace(self.d, self.user.token, self.template()["id"], name, **parameters)

    def refresh(self, ws: dict) -> dict:
        return self.api("GET", f"/workspaces/{ws['id']}")

    def my_workspaces(self) -> list[dict]:
        return self.api("GET", f"/workspaces?q=owner:{self.user.username}")["workspaces"]


@pytest.fixture
def lab(coder_deployment, monkeypatch, tmp_path):
    found = Lab(coder_deployment, tmp_path / "bundle")
    for key, value in found.env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("CODER_CONFIG_DIR", str(tmp_path / "coder-config"))
    for name in (
        "CODER_ORGANIZATION",
        "CODERBUNDLE_REGISTRY",
        "CODERBUNDLE_CANARY",
        "CODERBUNDLE_CANARY_TIMEOUT",
    ):
        monkeypatch.delenv(name, raising=False)
    return found


def run(lab: Lab, capsys, *args: str) -> tuple[int, dict | None, str]:
    """``coderbundle ARGS --format json`` in the lab's bundle: exit code, JSON, stderr."""
    code = main(["--root", str(lab.root), *args, "--format", "json"])
    out, err = capsys.readouterr()
    return code, (json.loads(out) if out.strip() else None), err


def publish(lab: Lab, capsys, *args: str) -> tuple[int, dict, str]:
    code, summary, err = run(lab, capsys, "publish", "--allow-default-image", *args)
    assert summary is not None, err
    return code, summary, err


def only(summary: dict) -> dict:
    (row,) = summary["templates"]
    return row


def log_entries(lab: Lab, capsys) -> list[dict]:
    code, found, err = run(lab, capsys, "rollout-log", lab.name)
    assert code == 0, err
    return found["entries"]


def ready(ws: dict) -> bool:
    build = ws["latest_build"]
    return build["job"]["status"] == "succeeded" and all(a["lifecycle_state"] == "ready" for a in agents(ws))


# -- canary ------------------------------------------------------------------------------


def test_a_healthy_candidate_is_proved_on_the_users_workspace_then_promoted_and_logged(lab, capsys):
    code, summary, err = publish(lab, capsys)
    assert code == 0, err
    v1 = only(summary)["version"]
    ws = lab.workspace()
    assert ready(ws), ws["latest_build"]
    lab.write(marker="v2")
    code, summary, err = publish(lab, capsys, "--canary", "me")
    row = only(summary)
    assert code == 0, row
    assert row["status"] == "pushed"
    assert [(c["workspace"], c["result"], c["fresh"]) for c in row["canary"]] == [("dev", "ready", False)]
    assert lab.active()["name"] == row["version"] != v1
    after = lab.refresh(ws)
    assert after["latest_build"]["template_version_name"] == row["version"]
    assert ready(after)
    assert after["latest_build"]["build_number"] == 3
    entries = log_entries(lab, capsys)
    assert [(e["action"], e["version"], e["previous"]) for e in entries] == [
        ("created", v1, ""),
        ("canary", row["version"], v1),
    ]
    assert entries[-1]["active"]
    assert entries[-1]["by"] == lab.user.username


def test_a_broken_startup_script_stops_the_rollout_and_restores_the_workspace(lab, capsys):
    assert publish(lab, capsys)[0] == 0
    v1 = lab.active()["name"]
    ws = lab.workspace()
    lab.write(marker="broken", startup_script="echo starting; exit 1")
    code, summary, _err = publish(lab, capsys, "--canary", "me")
    row = only(summary)
    assert code == 1, row
    assert row["status"] == "failed"
    assert "canary failed" in row["detail"]
    assert "startup script failed (start_error)" in row["detail"]
    assert f"{v1} stays active" in row["detail"]
    assert row["canary"][0]["result"] == "failed; restored"
    assert lab.active()["name"] == v1
    after = lab.refresh(ws)
    assert after["latest_build"]["template_version_name"] == v1
    assert ready(after)
    assert [e["action"] for e in log_entries(lab, capsys)] == ["created"]  # nothing promoted


def test_an_agent_that_never_connects_times_out_and_nothing_is_promoted(lab, capsys):
    assert publish(lab, capsys)[0] == 0
    v1 = lab.active()["name"]
    lab.workspace()
    lab.write(marker="silent", start_agent=False)
    code, summary, _ = publish(lab, capsys, "--canary", "me", "--canary-timeout", "8s")
    row = only(summary)
    assert code == 1, row
    assert "not ready after 8 s" in row["detail"]
    assert "status connecting" in row["detail"]
    assert lab.active()["name"] == v1


def test_a_user_without_a_workspace_gets_a_fresh_test_workspace_that_is_deleted_after(lab, capsys):
    assert publish(lab, capsys)[0] == 0
    lab.write(marker="v2")
    code, summary, _ = publish(lab, capsys, "--canary", "me")
    row = only(summary)
    assert code == 0, row
    assert [(c["workspace"], c["fresh"], c["result"]) for c in row["canary"]] == [
        (f"canary-{lab.name}", True, "ready")
    ]
    assert lab.active()["name"] == row["version"]
    assert lab.my_workspaces() == []


def test_a_template_admin_cannot_prove_on_another_users_workspaces_and_says_who_can(lab, capsys):
    assert publish(lab, capsys)[0] == 0
    v1 = lab.active()["name"]
    lab.write(marker="v2")
    code, summary, _ = publish(lab, capsys, "--canary", "owner")
    row = only(summary)
    assert code == 1, row
    assert "may not create a test workspace for owner" in row["detail"]
    assert "Owner or organization admin" in row["detail"]
    assert lab.active()["name"] == v1


def test_canary_users_come_from_bundle_toml_and_a_bad_name_is_one_line(lab, capsys):
    toml = lab.root / "bundle.toml"
    toml.write_text(toml.read_text().replace("canary = []", 'canary = ["not a user!"]'))
    code, _, err = run(lab, capsys, "publish")
    assert code == 2
    first, *rest = err.strip().splitlines()
    assert f"{toml}: rollout.canary: 'not a user!' is not a Coder username" in first
    assert rest == [DOCTOR_HINT]  # doctor checks bundle.toml


def test_ctrl_c_during_a_canary_restores_the_workspace_and_promotes_nothing(lab):
    code = subprocess.run(
        [sys.executable, "-m", "coderbundle", "--root", str(lab.root), "publish", "--allow-default-image"],
        env=os.environ,
        capture_output=True,
        text=True,
        check=False,
    )
    assert code.returncode == 0, code.stderr
    v1 = lab.active()["name"]
    ws = lab.workspace()
    lab.write(marker="hangs", start_agent=False)
    argv = [sys.executable, "-m", "coderbundle", "--root", str(lab.root), "publish", "--allow-default-image"]
    proc = subprocess.Popen(
        [*argv, "--canary", "me", "--canary-timeout", "10m"],
        env=os.environ,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while lab.refresh(ws)["latest_build"]["template_version_name"] == v1:  # the canary build began
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.5)
    time.sleep(2)  # its agent would connect now: it never will
    proc.send_signal(signal.SIGINT)
    _out, err = proc.communicate(timeout=300)
    assert proc.returncode == 130, err
    assert lab.active()["name"] == v1
    after = wait_for_build(lab.d, lab.user.token, ws["id"])
    assert after["latest_build"]["template_version_name"] == v1
    assert ready(after)
    assert "Traceback" not in err


# -- rollback ----------------------------------------------------------------------------


def test_rollback_goes_back_to_the_version_before_and_a_second_one_undoes_it(lab, capsys):
    assert publish(lab, capsys)[0] == 0
    v1 = lab.active()["name"]
    lab.write(marker="v2")
    assert publish(lab, capsys)[0] == 0
    v2 = lab.active()["name"]
    code, answer, err = run(lab, capsys, "rollback", lab.name)
    assert code == 0, err
    assert answer == {"template": lab.name, "was": v2, "now": v1, "changed": True, "at": answer["at"]}
    assert lab.active()["name"] == v1
    assert [e["action"] for e in log_entries(lab, capsys)] == ["created", "promote", "rollback"]
    code, answer, _ = run(lab, capsys, "rollback", lab.name)
    assert (code, answer["now"]) == (0, v2)


def test_rollback_without_a_recorded_promotion_names_the_way_out(lab, capsys):
    assert publish(lab, capsys)[0] == 0
    code, _, err = run(lab, capsys, "rollback", lab.name)
    assert code == 2
    assert "was its first" in err
    assert "pass --to VERSION" in err
    code, _, err = run(lab, capsys, "rollback", lab.name, "--to", "no-such-version")
    assert code == 2
    assert "no version 'no-such-version'" in err
    code, _, err = run(lab, capsys, "rollback", "not-there")
    assert code == 2
    assert "has no template 'not-there'" in err


# -- outdated ----------------------------------------------------------------------------


def test_outdated_lists_stragglers_and_update_moves_them_keeping_stopped_ones_stopped(lab, capsys):
    assert publish(lab, capsys)[0] == 0
    v1 = lab.active()["name"]
    running, stopped = lab.workspace("running"), lab.workspace("stopped")
    lab.api("POST", f"/workspaces/{stopped['id']}/builds", {"transition": "stop"})
    wait_for_build(lab.d, lab.user.token, stopped["id"])
    lab.write(marker="v2")
    assert publish(lab, capsys)[0] == 0
    v2 = lab.active()["name"]
    code, found, _ = run(lab, capsys, "outdated")
    assert code == 0
    (fleet,) = found["templates"]
    assert fleet["active_version"] == v2
    rows = {(r["workspace"], r["version"], r["status"]) for r in fleet["outdated"]}
    assert rows == {("running", v1, "running"), ("stopped", v1, "stopped")}
    code, found, _ = run(lab, capsys, "outdated", "--update")
    assert code == 0, found
    assert {r["update"] for r in found["templates"][0]["outdated"]} == {"updated"}
    after_running, after_stopped = lab.refresh(running), lab.refresh(stopped)
    assert after_running["latest_build"]["template_version_name"] == v2
    assert ready(after_running)
    assert after_stopped["latest_build"]["template_version_name"] == v2
    assert after_stopped["latest_build"]["transition"] == "stop"
    assert run(lab, capsys, "outdated")[1]["count"] == 0


# -- diff --------------------------------------------------------------------------------


def test_diff_shows_changed_files_and_variables_whose_stored_value_drifted(lab, capsys):
    assert publish(lab, capsys)[0] == 0
    code, found, _ = run(lab, capsys, "diff", lab.name)
    assert (code, found["changed"], found["files"], found["variables"]) == (0, False, [], [])
    main_tf = lab.root / "templates" / lab.name / "main.tf"
    text = main_tf.read_text()
    old_dir = str(lab.d.agents_dir)
    # Coder keeps a variable's stored value when a new version changes its default (#12133).
    main_tf.write_text(text.replace(f'default     = "{old_dir}"', f'default     = "{old_dir}-moved"'))
    code, found, _ = run(lab, capsys, "diff", lab.name, "--exit-code")
    assert code == 1
    assert [(f["path"], f["change"]) for f in found["files"]] == [("main.tf", "changed")]
    assert f'+  default     = "{old_dir}-moved"' in found["files"][0]["patch"]
    assert found["variables"] == [{"name": "run_dir", "server": old_dir, "repository": f"{old_dir}-moved"}]


# -- archive -----------------------------------------------------------------------------


def test_archive_older_than_archives_unused_old_versions_and_keeps_those_in_use(lab, capsys):
    assert publish(lab, capsys)[0] == 0
    lab.workspace()  # keeps v1 in use
    for marker in ("v2", "v3"):
        lab.write(marker=marker)
        assert publish(lab, capsys)[0] == 0
    lab.write(marker="v4")
    code, summary, _ = publish(lab, capsys, "--archive-older-than", "0")
    row = only(summary)
    assert code == 0, row
    assert row["archived"] == 2
    assert "archived 2 old versions (1 in use, kept)" in row["detail"]
    left = lab.api("GET", f"/templates/{lab.template()['id']}/versions")
    assert len(left) == 2  # the one in use and the active one
    assert lab.active()["name"] == row["version"]
