"""`coderbundle impact` against a REAL Coder server with REAL workspaces (tests/rollout_fixtures.py).

One template is published from a local-agent bundle and one workspace is built on it
for real, holding a non-default value of the immutable volume-naming parameter
(``volume_name = "data"``: its home volume is ``.../data``).  Each test then checks a
candidate against that workspace: the unchanged repository (clean), one that renames the
parameter (the value is dropped, the default ``home`` takes over, the volume is
replaced), one that changes the immutable parameter's options so the value no longer
holds, and a version pushed inactive by publish (``--version``).
"""

from __future__ import annotations

import itertools
import json
import logging
import shutil
import tempfile
from pathlib import Path

import pytest

from coderbundle.__main__ import main
from coderbundle.coder_api import CoderAPI
from rollout_fixtures import create_workspace, local_agent_bundle, write_local_agent

pytestmark = pytest.mark.slow

NAME = "impact-agent"
VOLUMES = '\n[upgrade]\nvolumes = ["terraform_data.home_volume"]\n'
OPTIONS = """  mutable     = false
  option {
    name  = "Home"
    value = "home"
  }
  option {
    name  = "Work"
    value = "work"
  }
"""
REGEX = """  mutable     = false
  validation {
    regex = "^(home|work)$"
    error = "home or work"
  }
"""
_USERS = itertools.count(1)


def _env(deployment, token: str, config: Path) -> dict[str, str]:
    return {
        "CODER_URL": deployment.url,
        "CODER_SESSION_TOKEN": token,
        "CODERBUNDLE_CODER": str(deployment.binary),
        "CODER_CONFIG_DIR": str(config),
        "CODERBUNDLE_TERRAFORM_VALIDATE": "never",  # validation has its own tests
        # impact plans locally with the deployment's own terraform and mirrors
        "CODERBUNDLE_TERRAFORM": str(deployment.terraform),
        "CODERBUNDLE_PROVIDER_MIRROR": str(deployment.provider_mirror),
        "CODERBUNDLE_MODULE_MIRROR": str(deployment.module_mirror),
    }


def write_template(root: Path, deployment, **knobs) -> None:
    """The local-agent template with its home volume declared as holding data."""
    folder = write_local_agent(root, NAME, deployment, **knobs)
    with (folder / "template.toml").open("a") as toml:
        toml.write(VOLUMES)


@pytest.fixture(scope="module")
def fleet(coder_deployment, tmp_path_factory):
    """The template published, and one workspace of a template admin built on it with ``volume_name=data``."""
    d = coder_deployment
    user = d.create_user(f"impact-{next(_USERS)}", roles=("template-admin",))
    tmp = tmp_path_factory.mktemp("impact")
    root = local_agent_bundle(tmp / "bundle", (), d)
    write_template(root, d)
    env = _env(d, user.token, tmp / "coder-config")
    with pytest.MonkeyPatch.context() as mp:
        for key, value in env.items():
            mp.setenv(key, value)
        for key in ("CODER_ORGANIZATION", "CODERBUNDLE_EXTERNAL_AUTH", "CODERBUNDLE_REGISTRY"):
            mp.delenv(key, raising=False)
        code = main(["--root", str(root), "publish", "--no-images", "--allow-default-image"])
    assert code == 0, d.log[-3000:]
    template = d.api("GET", f"/organizations/{d.default_org()}/templates/{NAME}", user.token)
    ws = create_workspace(d, user.token, template["id"], "box", volume_name="data")
    assert ws["latest_build"]["job"]["status"] == "succeeded", d.log[-3000:]
    # A plain member's workspace on the default: impact plans it with that owner's ids.
    member = d.create_user(f"impact-member-{next(_USERS)}")
    other = create_workspace(d, member.token, template["id"], "mine")
    assert other["latest_build"]["job"]["status"] == "succeeded", d.log[-3000:]
    return {
        "deployment": d,
        "user": user,
        "member": member,
        "root": root,
        "env": env,
        "workspace": ws,
        "other": other,
        "template": template,
    }


@pytest.fixture
def coder(fleet, monkeypatch, tmp_path):
    """The environment pointing coderbundle at the deployment as a template admin of the test's own.

    coderd limits uploads per user (12 a minute) and every impact of the repository uploads
    its candidate: a user per test keeps the tests from waiting on each other's budget.
    """
    runner = fleet["deployment"].create_user(f"impact-runner-{next(_USERS)}", roles=("template-admin",))
    for key, value in fleet["env"].items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("CODER_SESSION_TOKEN", runner.token)
    for key in ("CODER_ORGANIZATION", "CODERBUNDLE_EXTERNAL_AUTH", "CODERBUNDLE_REGISTRY"):
        monkeypatch.delenv(key, raising=False)
    # Every temporary folder impact makes lands here, so a test can see nothing is left.
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    return {**fleet, "runner": runner}


def candidate(fleet, tmp_path: Path, **knobs) -> Path:
    """A copy of the fleet's bundle whose template is the candidate ``knobs`` make."""
    root = tmp_path / "candidate"
    shutil.copytree(fleet["root"], root, ignore=shutil.ignore_patterns("build", "dist"))
    write_template(root, fleet["deployment"], **knobs)
    return root


def impact(root: Path, capsys, *args: str) -> tuple[int, str, str]:
    code = main(["--root", str(root), "impact", NAME, *args])
    out, err = capsys.readouterr()
    return code, out, err


def impact_json(root: Path, capsys, *args: str) -> tuple[int, dict, str]:
    code, out, err = impact(root, capsys, "--format", "json", *args)
    return code, json.loads(out), err


def the_workspace(result: dict, fleet) -> dict:
    (found,) = [w for w in result["workspaces"] if w["id"] == fleet["workspace"]["id"]]
    return found


def state_tokens(fleet) -> list[str]:
    """The agent token and the owner's build session token the workspace's state holds."""
    build = fleet["workspace"]["latest_build"]["id"]
    api = CoderAPI(fleet["deployment"].url, fleet["user"].token)
    state = json.loads(api.build_state(build))

    def attributes(kind: str) -> dict:
        (found,) = [r for r in state["resources"] if r["type"] == kind]
        return found["instances"][0]["attributes"]

    tokens = [attributes("coder_agent")["token"], attributes("coder_workspace_owner")["session_token"]]
    assert all(len(token) > 20 for token in tokens)
    return tokens


def test_the_unchanged_repository_is_clean(coder, tmp_path, capsys):
    code, result, err = impact_json(candidate(coder, tmp_path), capsys)
    assert code == 0, (result["workspaces"], err)
    assert result["ok"] is True
    assert result["parameter_check"] == "dynamic-parameters"
    assert result["counts"] == {"clean": 2}
    for ws in result["workspaces"]:
        assert ws["status"] == "clean", ws
        assert ws["findings"] == []
        assert ws["changes"] == []  # the real ids and owners: not even the agent is replaced
    assert list(Path(tempfile.gettempdir()).iterdir()) == []  # nothing left behind


def test_renaming_the_volume_parameter_flags_the_parameter_and_the_volume(coder, tmp_path, capsys):
    root = candidate(coder, tmp_path, volume_parameter="home_volume_name")
    code, result, err = impact_json(root, capsys)
    assert code == 1, (result, err)
    assert result["ok"] is False
    ws = the_workspace(result, coder)
    assert ws["status"] == "findings"
    ids = [f["id"] for f in ws["findings"]]
    # Volumes first: the home volume's replacement leads, then the dropped value.
    assert ids == ["volume-replaced:terraform_data.home_volume", "parameter-removed:volume_name"], ws
    (change,) = ws["changes"]
    assert change["address"] == "terraform_data.home_volume"
    assert change["action"] == "replace"
    assert change["volume"] is True
    assert "triggers_replace" in change["because"]

    code, _, err = impact(root, capsys)
    assert code == 1
    assert "volume-replaced:terraform_data.home_volume" in err
    assert "parameter-removed:volume_name" in err
    assert err.index("volume-replaced") < err.index("parameter-removed")


def test_the_member_keeps_the_default_name_so_a_rename_drops_the_value_but_keeps_the_volume(
    coder, tmp_path, capsys
):
    code, result, _ = impact_json(candidate(coder, tmp_path, volume_parameter="home_volume_name"), capsys)
    assert code == 1
    (ws,) = [w for w in result["workspaces"] if w["id"] == coder["other"]["id"]]
    # "home" was its value and is the renamed parameter's default: same path, same volume.
    assert [f["id"] for f in ws["findings"]] == ["parameter-removed:volume_name"]
    assert ws["changes"] == []


def test_owner_narrows_to_one_users_workspaces(coder, tmp_path, capsys):
    member = coder["member"].username
    code, result, _ = impact_json(candidate(coder, tmp_path), capsys, "--owner", member)
    assert code == 0
    assert [(w["owner"], w["name"], w["status"]) for w in result["workspaces"]] == [(member, "mine", "clean")]


def test_a_new_default_for_an_immutable_parameter_spares_workspaces_holding_a_value(coder, tmp_path, capsys):
    root = candidate(coder, tmp_path)
    main_tf = root / "templates" / NAME / "main.tf"
    text = main_tf.read_text()
    assert '  default     = "home"\n' in text
    main_tf.write_text(text.replace('  default     = "home"\n', '  default     = "elsewhere"\n', 1))
    code, result, err = impact_json(root, capsys)
    assert code == 0, (result["workspaces"], err)  # both keep the value their builds recorded
    assert result["counts"] == {"clean": 2}


def test_without_the_volumes_list_the_replacement_is_reported_but_not_a_volume(coder, tmp_path, capsys):
    root = candidate(coder, tmp_path, volume_parameter="home_volume_name")
    toml = root / "templates" / NAME / "template.toml"
    toml.write_text(toml.read_text().replace(VOLUMES, ""))
    code, result, _ = impact_json(root, capsys)
    assert code == 1  # the parameter is still dropped
    ws = the_workspace(result, coder)
    assert [f["id"] for f in ws["findings"]] == ["parameter-removed:volume_name"]
    assert [(c["address"], c["volume"]) for c in ws["changes"]] == [("terraform_data.home_volume", False)]


def _options_candidate(coder, tmp_path: Path, restriction: str = OPTIONS) -> Path:
    root = candidate(coder, tmp_path)
    main_tf = root / "templates" / NAME / "main.tf"
    text = main_tf.read_text()
    assert "  mutable     = false\n" in text
    main_tf.write_text(text.replace("  mutable     = false\n", restriction, 1))
    return root


@pytest.mark.parametrize("restriction", [OPTIONS, REGEX], ids=["options", "validation"])
def test_an_immutable_parameter_that_no_longer_allows_the_workspace_value_is_flagged(
    coder, tmp_path, capsys, restriction
):
    code, result, err = impact_json(_options_candidate(coder, tmp_path, restriction), capsys)
    assert code == 1, (result, err)
    ws = the_workspace(result, coder)
    assert [f["id"] for f in ws["findings"]] == ["parameter-invalid:volume_name"], ws
    # The build would stop on the parameter: nothing is planned, nothing claimed about volumes.
    assert ws["changes"] == []
    assert "parameters" in ws["not_planned"]
    message = ws["findings"][0]["message"]
    assert "no longer allows the value this workspace holds" in message
    assert '"data"' not in message


def test_the_rich_parameters_comparison_agrees_where_evaluation_is_missing(
    coder, tmp_path, capsys, monkeypatch
):
    monkeypatch.setattr(CoderAPI, "evaluate_parameters", lambda *_a, **_k: None)
    code, result, _ = impact_json(_options_candidate(coder, tmp_path), capsys)
    assert code == 1
    assert result["parameter_check"] == "rich-parameters"
    assert "rich-parameters" in result["notes"][0]
    ws = the_workspace(result, coder)
    assert [f["id"] for f in ws["findings"]] == ["parameter-invalid:volume_name"]


def test_a_version_publish_left_inactive_is_checked_with_version(coder, tmp_path, capsys):
    root = candidate(coder, tmp_path, volume_parameter="home_volume_name")
    code = main(["--root", str(root), "publish", "--format", "json", "--no-images", "--allow-default-image"])
    summary = json.loads(capsys.readouterr().out)
    assert code == 1  # the upgrade gate blocks it: pushed, not activated
    (entry,) = summary["templates"]
    assert entry["status"] == "blocked"

    # --version needs no repository template: impact it from a bundle without one.
    bare = local_agent_bundle(tmp_path / "bare", (), coder["deployment"])
    code, result, err = impact_json(bare, capsys, "--version", entry["version"])
    assert code == 1, (result, err)
    assert result["candidate"] == {
        "name": entry["version"],
        "id": result["candidate"]["id"],
        "source": "version",
    }
    ws = the_workspace(result, coder)
    # No template.toml here: the terraform_data is replaced but not known as a volume.
    assert [f["id"] for f in ws["findings"]] == ["parameter-removed:volume_name"]
    assert ws["changes"][0]["address"] == "terraform_data.home_volume"


def test_json_shape(coder, tmp_path, capsys):
    code, result, _ = impact_json(candidate(coder, tmp_path, volume_parameter="renamed"), capsys)
    assert code == 1
    assert set(result) == {
        "ok",
        "template",
        "candidate",
        "active_version",
        "parameter_check",
        "volumes",
        "server_version",
        "api_requests",
        "seconds",
        "counts",
        "notes",
        "workspaces",
    }
    assert result["template"] == NAME
    assert result["volumes"] == ["terraform_data.home_volume"]
    assert result["candidate"]["source"] == "repository"
    assert (
        result["active_version"]
        == coder["deployment"].api(
            "GET", f"/templateversions/{coder['template']['active_version_id']}", coder["user"].token
        )["name"]
    )
    assert result["counts"] == {"findings": 2}  # the member's loses its parameter value too
    ws = the_workspace(result, coder)
    assert set(ws) == {
        "id",
        "name",
        "owner",
        "build",
        "status",
        "findings",
        "changes",
        "error",
        "not_planned",
    }
    assert ws["name"] == "box"
    assert ws["owner"] == coder["user"].username
    assert set(ws["build"]) == {"number", "version", "transition", "status"}
    assert ws["build"]["number"] == 1
    assert set(ws["changes"][0]) == {"address", "type", "action", "volume", "because"}


def test_a_template_the_server_does_not_have_is_one_line_and_exit_2(coder, capsys):
    code = main(["--root", str(coder["root"]), "impact", "no-such-template"])
    out, err = capsys.readouterr()
    assert code == 2
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "no template 'no-such-template'" in lines[0]
    assert "Traceback" not in err


def test_an_unknown_version_is_one_line_and_exit_2(coder, capsys):
    code = main(["--root", str(coder["root"]), "impact", NAME, "--version", "no-such-version"])
    _, err = capsys.readouterr()
    assert code == 2
    assert len(err.strip().splitlines()) == 1, err
    assert "no version 'no-such-version'" in err


def test_no_secret_reaches_the_output_and_no_state_is_left(coder, tmp_path, capsys, caplog):
    secrets = [*state_tokens(coder), coder["user"].token, coder["runner"].token]
    root = candidate(coder, tmp_path, volume_parameter="renamed")
    for args in ((), ("--format", "json")):
        code, out, err = impact(root, capsys, *args)
        assert code == 1
        for secret in secrets:
            assert secret not in out
            assert secret not in err
    # -v logs every command run (terraform plan with its -var values and the state's path)
    with caplog.at_level(logging.DEBUG):
        code = main(["-v", "--root", str(root), "impact", NAME])
    out, err = capsys.readouterr()
    assert code == 1
    assert "-refresh=false" in caplog.text  # the plans were logged
    for secret in secrets:
        assert secret not in out + err + caplog.text
    assert list(Path(tempfile.gettempdir()).iterdir()) == []  # the states were deleted


def test_a_plan_that_fails_is_a_failed_workspace_not_a_clean_one(coder, tmp_path, capsys):
    root = candidate(coder, tmp_path)
    main_tf = root / "templates" / NAME / "main.tf"
    # A resource whose plan fails on the workspace's real values only: the server's import
    # (a new workspace, volume_name = "home") passes, this workspace ("data") does not.
    main_tf.write_text(
        main_tf.read_text()
        + '\nresource "terraform_data" "check" {\n'
        + "  lifecycle {\n    precondition {\n"
        + '      condition     = data.coder_parameter.volume_name.value == "home"\n'
        + '      error_message = "only home volumes"\n    }\n  }\n}\n'
    )
    code, result, _ = impact_json(root, capsys)
    assert code == 1
    ws = the_workspace(result, coder)
    assert ws["status"] == "failed"
    assert "only home volumes" in ws["error"] or "precondition" in ws["error"].lower(), ws


KEY_TF = """variable "api_key" {
  type      = string
  sensitive = true
}

resource "terraform_data" "uses_key" {
  input = sha256(var.api_key)
}
"""


def test_a_sensitive_variable_reaches_the_plan_and_is_never_printed(
    coder, tmp_path, capsys, caplog, monkeypatch
):
    secret = "fake-impact-variable-value-0123456789"  # noqa: S105 - test data
    monkeypatch.setenv("IMPACT_TEST_API_KEY", secret)
    root = candidate(coder, tmp_path)
    folder = root / "templates" / NAME
    (folder / "secret.tf").write_text(KEY_TF)
    with (folder / "template.toml").open("a") as toml:
        toml.write('\n[variables.api_key]\nenv = "IMPACT_TEST_API_KEY"\n')
    with caplog.at_level(logging.DEBUG):
        code = main(["-v", "--root", str(root), "impact", NAME, "--format", "json"])
    out, err = capsys.readouterr()
    # Without the value the plan would stop ("No value for required variable"): exit 0 says it got it.
    assert code == 0, (out, err)
    assert json.loads(out)["notes"] == []
    assert "-var=api_key=***" in caplog.text
    assert secret not in out + err + caplog.text
