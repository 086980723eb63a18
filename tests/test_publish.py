"""Publishing against THE Coder stand-in (tests/standin/): server + `coder` CLI on PATH.

The real server's tests are tests/test_publish_real.py (which also prove an
unchanged re-run sends only reads and a one-template change pushes only it).
These keep what it cannot do on demand (the stand-in's docstring lists it): a
licensed deployment that applies dormancy settings, 403s, a CLI that echoes the
token, exact fault sequences and the CLI's argv; and the offline plan, which
needs no server.
"""

from __future__ import annotations

import io
import json
import os
import sys
import tarfile
from typing import TYPE_CHECKING

import pytest

from coderbundle.__main__ import main
from coderbundle.publish import archive_directory, read_image_manifest
from coderbundle.settings import load_settings
from standin.bundle import API_KEY_ENV, make_bundle, write_template
from standin.server import CoderStandin, install_cli

if TYPE_CHECKING:
    from pathlib import Path

API_KEY = "sk-ant-standin-SECRET-api-key-42"
DIGEST = "sha256:" + "ab" * 32
IMAGE_REF = f"registry.example.com/coderbundle/base@{DIGEST}"
IMAGE_ENTRY = {
    "repository": "registry.example.com/coderbundle/base",
    "tag": "2026.11",
    "image_id": "sha256:" + "cd" * 32,
    "digest": DIGEST,
    "reference": IMAGE_REF,
    "pushed": True,
}


@pytest.fixture
def root(tmp_path, monkeypatch):
    monkeypatch.setenv("CODERBUNDLE_TERRAFORM_VALIDATE", "never")  # validation has its own tests
    bundle = make_bundle(tmp_path / "bundle", ("alpha", "beta", "gamma"), secret=("gamma",))
    write_manifest(bundle, base=IMAGE_ENTRY)  # a live publish ships only built images
    return bundle


@pytest.fixture
def coder(tmp_path, monkeypatch):
    """The stand-in server, its CLI first on PATH, and the environment pointing at it."""
    with CoderStandin() as server:
        install_cli(tmp_path / "bin", sys.executable)
        monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
        monkeypatch.setenv("CODER_URL", server.url)
        monkeypatch.setenv("CODER_SESSION_TOKEN", server.state.token)
        monkeypatch.setenv(API_KEY_ENV, API_KEY)
        monkeypatch.delenv("CODER_ORGANIZATION", raising=False)
        monkeypatch.setenv("CODERBUNDLE_CODER", "coder")
        yield server


def write_manifest(root: Path, **images: dict) -> None:
    """``build/images.json`` in the shape coderbundle.images writes."""
    (root / "build").mkdir(exist_ok=True)
    (root / "build" / "images.json").write_text(json.dumps({"version": 1, "images": images}))


def tar_files(data: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}


def publish(root: Path, *args: str) -> int:
    return main(["--root", str(root), "publish", *args])


def publish_json(root: Path, capsys, *args: str) -> tuple[int, dict]:
    code = publish(root, "--format", "json", *args)
    out = capsys.readouterr().out
    return code, json.loads(out)


def pushes(server) -> list[list[str]]:
    return [c["argv"] for c in server.state.cli_calls]


def test_first_publish_creates_every_template_with_settings(root, coder, capsys):
    code, summary = publish_json(root, capsys)
    assert code == 0, summary
    assert {t["name"]: t["status"] for t in summary["templates"]} == dict.fromkeys(
        ("alpha", "beta", "gamma"), "pushed"
    )
    state = coder.state
    assert sorted(t["name"] for t in state.templates.values()) == ["alpha", "beta", "gamma"]
    alpha = state.template_named("alpha")
    assert alpha["display_name"] == "Alpha"
    assert alpha["description"] == "Fixture template alpha for publishing tests"
    assert alpha["icon"] == "/icon/k8s.png"
    assert alpha["default_ttl_ms"] == alpha["activity_bump_ms"] == 4 * 3_600_000
    assert alpha["time_til_dormant_autodelete_ms"] == 168 * 3_600_000
    # PATCH replaces what it is not sent: the server's other defaults survive.
    assert alpha["allow_user_autostart"] is True
    assert alpha["allow_user_cancel_workspace_jobs"] is True
    version = state.active_version("alpha")
    assert "[content:" in version["message"]
    assert version["name"] == summary["templates"][0]["version"]


def test_push_argv_is_what_the_real_cli_expects(root, coder):
    assert publish(root, "gamma") == 0
    (argv,) = pushes(coder)
    assert argv[:4] == ["templates", "push", "gamma", "--directory"]
    assert argv[4] == str(root / "build" / "templates" / "gamma")
    assert "--yes" in argv
    assert argv[argv.index("--name") + 1].count("-") == 1
    assert "namespace=coder-workspaces" in argv
    assert "--variables-file" in argv
    assert not any(API_KEY in a or coder.state.token in a for a in argv)
    version = coder.state.active_version("gamma")
    values = coder.state.version_variables[version["id"]]
    assert values == {"anthropic_api_key": API_KEY, "image": IMAGE_REF, "namespace": "coder-workspaces"}


def test_image_digest_from_the_manifest_is_passed_and_changes_the_hash(root, coder, capsys):
    (root / "build" / "images.json").unlink()
    assert publish(root, "alpha", "--allow-default-image") == 0
    write_manifest(root, base=IMAGE_ENTRY)
    code, summary = publish_json(root, capsys, "alpha")
    assert code == 0
    assert summary["counts"] == {"pushed": 1}
    assert f"image={IMAGE_REF}" in pushes(coder)[-1]


def test_failed_import_keeps_the_old_version_and_the_others_publish(root, coder, capsys):
    assert publish(root) == 0
    old = coder.state.active_version("beta")["id"]
    for name in ("alpha", "beta"):
        write_template(root, name, marker="-v2")
    coder.state.fail_imports.add("beta")
    code, summary = publish_json(root, capsys)
    assert code == 1
    status = {t["name"]: t for t in summary["templates"]}
    assert status["beta"]["status"] == "failed"
    assert "injected import failure" in status["beta"]["detail"]
    assert status["alpha"]["status"] == "pushed"
    assert status["gamma"]["status"] == "unchanged"
    assert coder.state.active_version("beta")["id"] == old
    assert "-v2" not in coder.state.active_version("beta")["message"]
    # Failing again: the failed version holds its name, the retry gets a fresh one.
    code, summary = publish_json(root, capsys, "beta")
    assert code == 1
    assert "injected import failure" in summary["templates"][0]["detail"]
    # Fixed on the server side: the same content now imports and becomes active.
    coder.state.fail_imports.clear()
    code, summary = publish_json(root, capsys, "beta")
    assert code == 0, summary
    active = coder.state.active_version("beta")
    assert active["id"] != old
    assert active["name"] == summary["templates"][0]["version"]
    assert active["name"].endswith("-r3")


@pytest.mark.parametrize("status", [401, 403])
def test_auth_failure_stops_with_a_clear_message(root, coder, capsys, monkeypatch, status):
    if status == 401:
        monkeypatch.setenv("CODER_SESSION_TOKEN", "wrong-token-value")
    else:
        coder.state.forbidden = True
    code = publish(root)
    err = capsys.readouterr().err
    assert code == 1
    assert f"HTTP {status}" in err
    assert "CODER_SESSION_TOKEN" in err
    assert "wrong-token-value" not in err
    assert pushes(coder) == []
    assert coder.state.templates == {}


def test_network_faults_and_5xx_recover_through_retries(root, coder, capsys):
    coder.state.faults = ["drop", 502, "drop"]  # three failed tries of four on one request
    code, summary = publish_json(root, capsys)
    assert code == 0, summary
    assert coder.state.faults == []
    assert len(coder.state.templates) == 3
    write_template(root, "alpha", marker="-v2")
    coder.state.faults = [  # now while templates are looked up and patched in parallel
        ("/templates/", 500),
        ("/templates/", "drop"),
        ("/templateversions/", 502),
        ("/templates/", 503),
        ("/templateversions/", "drop"),
    ]
    code, summary = publish_json(root, capsys)
    assert code == 0, summary
    assert summary["counts"] == {"pushed": 1, "unchanged": 2}
    assert coder.state.faults == []


def test_persistent_5xx_fails_after_bounded_retries(root, coder, capsys):
    coder.state.faults = [503] * 4
    code = publish(root)
    assert code == 1
    assert "HTTP 503" in capsys.readouterr().err
    assert pushes(coder) == []


def test_token_and_api_keys_never_printed_even_when_the_cli_echoes_them(root, coder, capsys):
    coder.state.echo_token = True
    coder.state.fail_imports.add("gamma")
    assert main(["-v", "--root", str(root), "publish"]) == 1
    out, err = capsys.readouterr()
    for secret in (coder.state.token, API_KEY):
        assert secret not in out
        assert secret not in err
    plan = (root / "dist" / "publish-plan.json").read_text()
    assert API_KEY not in plan
    assert coder.state.token not in plan
    gamma = next(t for t in json.loads(plan)["templates"] if t["name"] == "gamma")
    assert gamma["variables"]["anthropic_api_key"] == "set"


def test_dry_run_compares_and_pushes_nothing(root, coder, capsys):
    code, summary = publish_json(root, capsys, "--dry-run")
    assert code == 0
    assert summary["counts"] == {"would-push": 3}
    assert pushes(coder) == []


def test_organization_by_name_is_resolved_to_its_id(root, coder, monkeypatch):
    monkeypatch.setenv("CODER_ORGANIZATION", "platform")
    assert publish(root, "alpha") == 0
    argv = pushes(coder)[-1]
    assert argv[argv.index("-O") + 1] == "0c0de000-0000-4000-8000-000000000002"
    assert coder.state.template_named("alpha")["organization_name"] == "platform"


def test_embedded_default_writes_tar_and_plan_and_exits_0(root, monkeypatch, capsys):
    monkeypatch.delenv("CODER_URL", raising=False)
    monkeypatch.delenv("CODER_SESSION_TOKEN", raising=False)
    monkeypatch.delenv(API_KEY_ENV, raising=False)
    (root / "build" / "images.json").unlink()
    assert publish(root) == 0
    err = capsys.readouterr().err
    assert "CODER_URL" in err
    assert "CODER_SESSION_TOKEN" in err
    plan = json.loads((root / "dist" / "publish-plan.json").read_text())
    assert [t["name"] for t in plan["templates"]] == ["alpha", "beta", "gamma"]
    for entry in plan["templates"]:
        tar = root / entry["archive"]
        assert tar.name == f"{entry['name']}-{entry['version']}.tar"
        assert tar.read_bytes() == archive_directory(root / "build" / "templates" / entry["name"])
        assert entry["image"]["value"] is None
        assert "template default" in entry["image"]["source"]
        assert entry["image"]["effective"] == "codercom/example-base:ubuntu"
        assert entry["image"]["pinned"] is False
    gamma = plan["templates"][2]
    assert gamma["variables"]["anthropic_api_key"] == "unset"


def test_archive_is_deterministic_and_equals_the_rendered_dir(root):
    assert main(["--root", str(root), "render", "alpha"]) == 0
    rendered = root / "build" / "templates" / "alpha"
    (rendered / ".terraform").mkdir()
    (rendered / ".terraform" / "junk").write_text("x")
    (rendered / "terraform.tfstate").write_text("{}")
    (rendered / ".terraform.lock.hcl").write_text("# lock\n")
    first = archive_directory(rendered)
    os.utime(rendered / "main.tf", (1, 1))
    assert archive_directory(rendered) == first
    with tarfile.open(fileobj=io.BytesIO(first)) as tar:
        members = {m.name: m for m in tar.getmembers()}
        assert sorted(members) == [".terraform.lock.hcl", "README.md", "main.tf"]
        for name in ("README.md", "main.tf"):
            assert tar.extractfile(members[name]).read() == (rendered / name).read_bytes()
            assert (members[name].mtime, members[name].uid, members[name].mode) == (0, 0, 0o644)


def test_uploaded_archive_matches_the_dist_tar(root, coder):
    assert publish(root, "alpha") == 0
    (ours,) = (root / "dist" / "templates").glob("alpha-*.tar")
    (uploaded,) = coder.state.files.values()
    assert tar_files(ours.read_bytes()) == tar_files(uploaded)


def test_missing_token_and_missing_cli_are_clear(root, coder, monkeypatch, capsys):
    monkeypatch.delenv("CODER_SESSION_TOKEN")
    assert publish(root) == 2  # an environment error, as --help promises
    assert "CODER_SESSION_TOKEN is not set" in capsys.readouterr().err
    monkeypatch.setenv("CODER_SESSION_TOKEN", coder.state.token)
    monkeypatch.setenv("CODERBUNDLE_CODER", "coder-not-installed")
    assert publish(root) == 2
    assert "CODERBUNDLE_CODER is 'coder-not-installed': no such program on PATH" in capsys.readouterr().err


def test_image_manifest_reader_keeps_only_pushed_digests(root):
    settings = load_settings(root, {})
    (root / "build" / "images.json").unlink()
    assert read_image_manifest(settings) == {}
    write_manifest(
        root,
        base={"repository": "r/base", "reference": IMAGE_REF, "pushed": True},
        node={"repository": "r/node", "reference": "r/node:local", "pushed": False},
    )
    assert read_image_manifest(settings) == {"base": IMAGE_REF}


def test_settings_drift_is_repaired_without_a_push(root, coder, capsys):
    assert publish(root, "alpha") == 0
    alpha = coder.state.template_named("alpha")
    alpha.update(display_name="Renamed in the UI", failure_ttl_ms=7_200_000, allow_user_autostop=False)
    code, summary = publish_json(root, capsys, "alpha")
    assert code == 0
    (entry,) = summary["templates"]
    assert entry["status"] == "unchanged"
    assert entry["settings_changed"] == ["display_name"]
    assert alpha["display_name"] == "Alpha"
    assert alpha["failure_ttl_ms"] == 7_200_000  # an admin's other settings stay
    assert alpha["allow_user_autostop"] is False
    assert len(pushes(coder)) == 1


def test_validation_failure_publishes_nothing(root, coder, capsys):
    (root / "templates" / "beta" / "main.tf").write_text('resource "coder_agent" "main" {\n')
    assert publish(root) == 1
    assert "nothing was published" in capsys.readouterr().err
    assert pushes(coder) == []
    assert coder.state.templates == {}


def test_archive_over_coders_limit_stops_before_any_push(root, coder, capsys):
    (root / "templates" / "beta" / "big.sh").write_bytes(b"#" * (1 << 20))
    assert publish(root) != 0
    err = capsys.readouterr().err
    assert "nothing was published" in err or "at most 1048576" in err
    assert pushes(coder) == []


def test_unknown_organization_and_wrong_url_are_clear(root, coder, monkeypatch, capsys):
    monkeypatch.setenv("CODER_ORGANIZATION", "nope")
    assert publish(root) == 2  # environment errors exit 2
    assert "no organization 'nope'; known: coder, platform" in capsys.readouterr().err
    monkeypatch.delenv("CODER_ORGANIZATION")
    monkeypatch.setenv("CODER_URL", coder.url + "/not-coder")
    assert publish(root) == 2
    err = capsys.readouterr().err
    assert "not a Coder server (GET /api/v2/organizations answered HTTP 404); set CODER_URL" in err
    assert "CODER_ORGANIZATION" not in err  # the organization is not what is wrong
    assert pushes(coder) == []


def test_tfvars_files_count_as_passed_variables(root, monkeypatch, capsys):
    monkeypatch.delenv("CODER_URL", raising=False)
    assert publish(root, "alpha") == 0
    before = json.loads((root / "dist" / "publish-plan.json").read_text())["templates"][0]
    (root / "templates" / "alpha" / "extra.auto.tfvars").write_text('namespace = "other"\n')
    assert publish(root, "alpha") == 0
    after = json.loads((root / "dist" / "publish-plan.json").read_text())["templates"][0]
    assert after["archive_sha256"] == before["archive_sha256"]  # not uploaded ...
    assert after["content_hash"] != before["content_hash"]  # ... but sent as values
    capsys.readouterr()


pytest_plugins = ("docker_fixtures",)


@pytest.mark.docker
@pytest.mark.usefixtures("remove_test_images")
def test_publish_builds_pushes_and_pins_the_image_by_digest(
    root, coder, upstream_image, local_registry, monkeypatch
):
    """The main job end to end: a real build and push, then the template pinned to the digest."""
    import shutil  # noqa: PLC0415

    from docker_fixtures import IMAGE_FIXTURES  # noqa: PLC0415

    shutil.copytree(IMAGE_FIXTURES / "tiny", root / "images")
    # The tiny image ships no curl, which code-server's install script needs (CB125):
    # this template does without the IDE module.
    main = root / "templates" / "alpha" / "main.tf"
    text = main.read_text()
    start = text.index('module "code-server" {')
    main.write_text(text[:start] + text[text.index("\n}\n", start) + 3 :])
    monkeypatch.setenv("CODERBUNDLE_REGISTRY", local_registry)
    monkeypatch.setenv("CODERBUNDLE_REPOSITORY_PREFIX", "cbtest")
    monkeypatch.setenv("CODERBUNDLE_UPSTREAM_IMAGE", upstream_image)
    assert publish(root, "alpha") == 0
    (argv,) = pushes(coder)
    image = next(a for a in argv if a.startswith("image="))
    manifest = read_image_manifest(load_settings(root, os.environ))
    assert image == f"image={manifest['base']}"
    assert image.startswith(f"image={local_registry}/cbtest/base@sha256:")
    # Unchanged: no build, no push of the image, no template push.
    assert publish(root, "alpha") == 0
    assert len(pushes(coder)) == 1


def test_the_servers_module_archive_race_is_retried_under_a_fresh_version_name(root, coder, capsys):
    race = (
        "internal provisionerserver error: insert template version terraform modules: pq: duplicate key "
        'value violates unique constraint "files_hash_created_by_key"'
    )
    coder.state.fail_once["beta"] = race  # a new template: the failed import is nobody's version
    code, summary = publish_json(root, capsys)
    assert code == 0, summary
    beta = next(t for t in summary["templates"] if t["name"] == "beta")
    assert beta["status"] == "pushed"
    assert "retried 1x (files_hash_created_by_key)" in beta["detail"]
    write_template(root, "beta", marker="-v2")  # a new version: the failed import keeps its name
    coder.state.fail_once["beta"] = race
    code, summary = publish_json(root, capsys, "beta")
    assert code == 0, summary
    assert summary["templates"][0]["version"].endswith("-r2")
    assert "retried 1x (files_hash_created_by_key)" in summary["templates"][0]["detail"]
