"""The pure parts of `coderbundle impact`: parameter checks, plan reading, the provisioner environment.

The real-server tests (test_rollout_impact.py) prove the whole; these pin each rule.
"""

from __future__ import annotations

import hashlib

import pytest

from coderbundle.rollout import parameters
from coderbundle.rollout.workspace_plan import (
    Target,
    Volumes,
    changes_from_plan,
    provisioner_env,
    state_secrets,
)

WS = {"id": "ws-id", "name": "box", "owner_name": "alice", "owner_id": "owner-id"}
TARGET = Target(WS, "tpl-id", "nodejs", "cand-id", "v2", "https://coder.example.com")


def ids(findings) -> list[str]:
    return [f.id for f in findings]


def evaluated(name: str, value: str | None, *, errors: tuple[str, ...] = (), **extra) -> dict:
    return {
        "name": name,
        "value": {"value": value or "", "valid": value is not None},
        "diagnostics": [{"severity": "error", "summary": s, "detail": ""} for s in errors],
        **extra,
    }


def test_evaluation_flags_removed_invalid_and_missing_and_keeps_valid_values():
    answer = {
        "diagnostics": [],
        "parameters": [
            evaluated("region", "eu"),
            evaluated("size", None, errors=('the value "huge" must be defined as one of options',)),
            evaluated("new_required", None, required=True, mutable=False),
            evaluated("scratch", "x", ephemeral=True),
        ],
    }
    previous = {"region": "eu", "size": "huge", "old_name": "data"}
    found, values = parameters.from_evaluation(previous, answer)
    assert ids(found) == [
        "parameter-removed:old_name",
        "parameter-invalid:size",
        "parameter-missing:new_required",
    ]
    assert values == {"region": "eu"}  # not the ephemeral one, not the invalid one
    assert '"huge"' not in found[1].message  # the held value is not printed
    assert "immutable" in found[2].message


def test_evaluation_errors_of_the_whole_form_are_a_finding():
    answer = {"diagnostics": [{"severity": "error", "summary": "bad", "detail": "x y"}], "parameters": []}
    found, _ = parameters.from_evaluation({}, answer)
    assert ids(found) == ["parameters-error"]
    assert "bad: x y" in found[0].message


def rich(name: str, **extra) -> dict:
    return {"name": name, "type": "string", "mutable": False, "required": False, **extra}


@pytest.mark.parametrize(
    ("param", "value", "finding"),
    [
        (rich("p", options=[{"value": "a"}, {"value": "b"}]), "c", "parameter-invalid:p"),
        (rich("p", options=[{"value": "a"}]), "a", None),
        (rich("p", validation_regex="^[a-z]+$"), "ABC", "parameter-invalid:p"),
        (rich("p", type="number", validation_min=1, validation_max=4), "5", "parameter-invalid:p"),
        (rich("p", type="number", validation_min=1, validation_max=4), "3", None),
        (rich("p", type="number"), "three", "parameter-invalid:p"),
        (rich("p", type="bool"), "yes", "parameter-invalid:p"),
        (
            rich("p", type="list(string)", options=[{"value": "a"}, {"value": "b"}]),
            '["a","c"]',
            "parameter-invalid:p",
        ),
        (rich("p", type="list(string)", options=[{"value": "a"}, {"value": "b"}]), '["a","b"]', None),
    ],
)
def test_rich_parameters_check_the_held_value(param, value, finding):
    found, values = parameters.from_rich_parameters({"p": value}, [param])
    assert ids(found) == ([finding] if finding else [])
    assert values == ({} if finding else {"p": value})


def test_rich_parameters_removed_new_required_and_defaults():
    candidate = [
        rich("renamed", default_value="home"),
        rich("must", required=True),
        rich("eph", ephemeral=True),
    ]
    found, values = parameters.from_rich_parameters({"volume_name": "data"}, candidate)
    assert ids(found) == ["parameter-removed:volume_name", "parameter-missing:must"]
    assert values == {"renamed": "home"}


def resource_change(
    address: str, actions: list[str], *, kind: str = "", mode: str = "managed", **extra
) -> dict:
    return {
        "address": address,
        "mode": mode,
        "type": kind or address.split(".")[-2],
        "change": {"actions": actions, **extra},
    }


def test_changes_keep_replacements_and_destructions_volumes_first():
    plan = {
        "resource_changes": [
            resource_change("kubernetes_deployment.main", ["delete", "create"], replace_paths=[["spec", 0]]),
            resource_change("coder_agent.main", ["update"]),
            resource_change("kubernetes_config_map.x", ["delete"]),
            resource_change("terraform_data.home_volume", ["create", "delete"], replace_paths=[["input"]]),
            resource_change(
                "kubernetes_persistent_volume_claim.home[0]",
                ["delete"],
                kind="kubernetes_persistent_volume_claim",
            ),
            resource_change("data.coder_parameter.x", ["delete", "create"], mode="data"),
            resource_change("coder_app.new", ["create"]),
        ]
    }
    plan["resource_changes"][2]["action_reason"] = "delete_because_no_resource_config"
    changes = changes_from_plan(plan, Volumes(("terraform_data.home_volume",)))
    assert [(c.address, c.action, c.volume) for c in changes] == [
        ("terraform_data.home_volume", "replace", True),
        ("kubernetes_persistent_volume_claim.home[0]", "destroy", True),
        ("kubernetes_deployment.main", "replace", False),
        ("kubernetes_config_map.x", "destroy", False),
    ]
    assert changes[0].because == ("input",)
    assert changes[2].because == ("spec.0",)
    assert changes[3].because == ("no longer in the configuration",)


def test_volumes_match_types_and_addresses_without_instance_keys():
    volumes = Volumes(("docker_container", "module.home.terraform_data.disk"))
    assert volumes.holds_data("docker_volume.home", "docker_volume")  # built in
    assert volumes.holds_data("docker_container.ws[0]", "docker_container")
    assert volumes.holds_data('module.home["a"].terraform_data.disk[1]', "terraform_data")
    assert not volumes.holds_data("terraform_data.other", "terraform_data")


STATE = {
    "resources": [
        {
            "mode": "data",
            "type": "coder_workspace",
            "instances": [{"attributes": {"access_url": "https://real.example.com/"}}],
        },
        {
            "mode": "data",
            "type": "coder_workspace_owner",
            "instances": [
                {
                    "attributes": {
                        "email": "alice@example.com",
                        "full_name": "Alice",
                        "groups": ["Everyone"],
                        "session_token": "owner-session-token-123",
                        "ssh_private_key": "-----BEGIN KEY-----",
                        "rbac_roles": [{"name": "member", "org_id": "o"}],
                    }
                }
            ],
        },
        {
            "mode": "data",
            "type": "coder_external_auth",
            "instances": [{"attributes": {"id": "gitlab", "access_token": "fake-gitlab-access-token"}}],
        },
        {
            "mode": "managed",
            "type": "coder_agent",
            "instances": [{"attributes": {"token": "agent-token-abcdef", "auth": "token", "env": {}}}],
        },
    ]
}


def test_the_provisioner_environment_is_the_real_workspace_and_the_last_build():
    env = provisioner_env(TARGET, STATE, {"volume_name": "data"}, {"volume_name": "old"})
    assert env["CODER_WORKSPACE_ID"] == "ws-id"
    assert env["CODER_WORKSPACE_OWNER_ID"] == "owner-id"
    assert env["CODER_WORKSPACE_NAME"] == "box"
    assert env["CODER_WORKSPACE_OWNER"] == "alice"
    assert env["CODER_WORKSPACE_TEMPLATE_ID"] == "tpl-id"
    assert env["CODER_WORKSPACE_TEMPLATE_VERSION"] == "v2"
    assert env["CODER_WORKSPACE_TRANSITION"] == "start"
    assert env["CODER_AGENT_URL"] == "https://real.example.com/"  # the state's, not CODER_URL
    assert env["CODER_WORKSPACE_OWNER_EMAIL"] == "alice@example.com"
    assert env["CODER_WORKSPACE_OWNER_GROUPS"] == '["Everyone"]'
    assert env["CODER_WORKSPACE_OWNER_RBAC_ROLES"] == '[{"name": "member", "org_id": "o"}]'
    assert env["CODER_EXTERNAL_AUTH_ACCESS_TOKEN_gitlab"] == "fake-gitlab-access-token"  # noqa: S105 - test data
    digest = hashlib.sha256(b"volume_name").hexdigest()
    assert env[f"CODER_PARAMETER_{digest}"] == "data"
    assert env[f"CODER_PARAMETER_PREVIOUS_{digest}"] == "old"


def test_without_an_owner_data_source_the_user_stands_in():
    user = {
        "email": "bob@example.com",
        "name": "Bob",
        "login_type": "password",
        "roles": [{"name": "member"}],
    }
    env = provisioner_env(TARGET, {"resources": []}, {}, {}, user)
    assert env["CODER_WORKSPACE_OWNER_EMAIL"] == "bob@example.com"
    assert env["CODER_WORKSPACE_OWNER_NAME"] == "Bob"
    assert env["CODER_AGENT_URL"] == "https://coder.example.com/"


def test_state_secrets_are_every_token_and_key():
    assert state_secrets(STATE) == {
        "owner-session-token-123",
        "-----BEGIN KEY-----",
        "fake-gitlab-access-token",
        "agent-token-abcdef",
    }


def test_template_toml_upgrade_volumes_is_read_and_checked(bundle):
    from coderbundle.discover import find_templates  # noqa: PLC0415
    from coderbundle.errors import SettingsError  # noqa: PLC0415

    root = bundle("good")
    toml = root / "templates" / "good" / "template.toml"
    text = toml.read_text()
    toml.write_text(text + '\n[upgrade]\nvolumes = ["terraform_data.home_volume", "docker_container"]\n')
    (found,) = find_templates(root / "templates", ["good"])
    assert found.settings.volumes == ("terraform_data.home_volume", "docker_container")
    toml.write_text(text + '\n[upgrade]\nvolumes = "terraform_data.home_volume"\n')
    with pytest.raises(SettingsError, match="volumes"):
        find_templates(root / "templates", ["good"])


def test_impact_without_a_deployment_is_one_error_and_exit_2(bundle, monkeypatch, capsys):
    from coderbundle.__main__ import main  # noqa: PLC0415

    monkeypatch.delenv("CODER_URL", raising=False)
    code = main(["--root", str(bundle("good")), "impact", "good"])
    _, err = capsys.readouterr()
    assert code == 2
    first, *rest = err.strip().splitlines()
    assert first == "error: impact needs a Coder deployment: set CODER_URL and CODER_SESSION_TOKEN"
    assert rest == ["  `nox -s doctor` checks everything publish and deploy need"]  # as for every EnvError


@pytest.mark.parametrize("job", ["pending", "running", "canceling"])
def test_a_workspace_whose_build_is_unfinished_fails_without_asking_the_server(job):
    from coderbundle.rollout import impact  # noqa: PLC0415

    ws = {**WS, "latest_build": {"id": "b", "build_number": 3, "job": {"status": job}}}
    result = impact._one(None, ws)  # type: ignore[arg-type]  # no run: nothing may be called
    assert result.status == "failed"
    assert result.error == f"its latest build is {job}; run impact again when it has finished"
