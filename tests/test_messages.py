"""Messages that point at the right fix, with the exit code docs/errors.md gives (issue 21, item 4).

Vault's cases are in test_vault.py; the values file's schema error in test_chart_values.py.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest


def cli(root, *args, **env):
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("CODER_", "CODERBUNDLE_"))}
    environ.update(env)
    return subprocess.run(
        [sys.executable, "-m", "coderbundle", "--root", str(root), *args],
        capture_output=True,
        text=True,
        check=False,
        env=environ,
    )


def one_error(proc) -> str:
    assert "Traceback" not in proc.stderr
    (line,) = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    return line


@pytest.mark.parametrize("command", ["validate", "publish"])
def test_a_misspelt_terraform_setting_is_an_error_not_a_skip(bundle, command):
    proc = cli(bundle("good"), command, CODERBUNDLE_TERRAFORM="terrafrom")
    assert proc.returncode == 2, proc.stderr
    line = one_error(proc)
    assert "CODERBUNDLE_TERRAFORM is 'terrafrom': no such program on PATH" in line
    assert "valid" not in proc.stderr


def test_a_terraform_path_in_bundle_toml_that_does_not_exist(bundle):
    root = bundle("good")
    toml = root / "bundle.toml"
    toml.write_text(toml.read_text().replace('binary = "terraform"', 'binary = "bin/terraform"'))
    proc = cli(root, "validate")
    assert proc.returncode == 2, proc.stderr
    assert f"[terraform] binary in {toml} is '{root / 'bin' / 'terraform'}': no such file" in one_error(proc)


def test_a_coder_cli_path_that_does_not_exist_is_not_a_path_search(bundle):
    proc = cli(
        bundle("good"),
        "publish",
        CODERBUNDLE_TERRAFORM_VALIDATE="never",
        CODER_URL="http://127.0.0.1:9",
        CODER_SESSION_TOKEN="t",  # noqa: S106 - never sent: the CLI check comes first
        CODERBUNDLE_CODER="/nope/coder",
    )
    assert proc.returncode == 2, proc.stderr
    line = one_error(proc)
    assert "CODERBUNDLE_CODER is '/nope/coder': no such file" in line
    assert "PATH" not in line


class _NotCoder(BaseHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        del args

    def do_GET(self) -> None:
        body = b'{"message": "not found"}'
        self.send_response(404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def test_a_coder_url_that_is_not_coder_says_so(bundle):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _NotCoder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_port}"
        proc = cli(
            bundle("good"),
            "publish",
            "--dry-run",
            CODERBUNDLE_TERRAFORM_VALIDATE="never",
            CODER_URL=url,
            CODER_SESSION_TOKEN="t",  # noqa: S106
        )
    finally:
        server.shutdown()
        server.server_close()
    assert proc.returncode == 2, proc.stderr
    line = one_error(proc)
    assert "not a Coder server (GET /api/v2/organizations answered HTTP 404); set CODER_URL" in line
    assert "ORGANIZATION" not in line


def test_deploy_invalid_yaml_is_one_line_with_file_and_line(bundle, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("coder:\n  config:\n    accessUrl: [\n")
    proc = cli(bundle("good"), "deploy", "--dry-run", "-f", str(bad))
    assert proc.returncode == 1, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert one_error(proc).startswith(f"error: {bad}:4: invalid YAML (")


def test_a_misspelt_image_name_gets_a_did_you_mean(bundle):
    root = bundle("good")
    proc = cli(root, "images", "build", "pyhton")
    assert proc.returncode == 2, proc.stderr
    assert "unknown image 'pyhton'; did you mean 'python'?" in one_error(proc)


def test_the_plan_shows_durations_as_bundle_toml_writes_them(bundle):
    root = bundle("good")
    proc = cli(root, "publish", CODERBUNDLE_TERRAFORM_VALIDATE="never")
    assert proc.returncode == 0, proc.stderr
    plan = json.loads((root / "dist" / "publish-plan.json").read_text())
    (entry,) = plan["templates"]
    assert entry["settings"]["default_ttl_ms"] == 4 * 3600 * 1000
    assert entry["settings_readable"] == {
        "default_ttl": "4h",
        "activity_bump": "4h",
        "time_til_dormant_autodelete": "168h",
    }


def test_the_secrets_file_of_the_setup_guide_is_ignored_by_git():
    from conftest import REPO  # noqa: PLC0415

    if not (REPO / ".git").exists() or shutil.which("git") is None:
        pytest.skip("not a git checkout")
    assert "deploy/secrets.yaml" in (REPO / "docs" / "CODER_SETUP.md").read_text()
    proc = subprocess.run(
        ["git", "check-ignore", "-q", "deploy/secrets.yaml"], cwd=REPO, check=False, capture_output=True
    )
    assert proc.returncode == 0, "deploy/secrets.yaml would be committed: add it to .gitignore"


def test_the_mode_without_coder_says_what_it_is_and_the_docs_explain_it(bundle):
    from conftest import REPO  # noqa: PLC0415

    proc = cli(bundle("good"), "publish", "--format", "json", CODERBUNDLE_TERRAFORM_VALIDATE="never")
    assert json.loads(proc.stdout)["mode"] == "plan-only"
    assert "`plan-only` (no `CODER_URL`" in (REPO / "docs" / "publishing.md").read_text()


# --- failures `coderbundle doctor` predicts point at it (issue 21, New: doctor) -------------------

DOCTOR_LINE = "  `nox -s doctor` checks everything publish and deploy need"


def after_the_error(proc) -> list[str]:
    lines = proc.stderr.strip().splitlines()
    at = next(i for i, ln in enumerate(lines) if ln.startswith("error:"))
    return lines[at + 1 :]


@pytest.mark.parametrize("fault", ["rejected", "under-privileged"])
def test_doctor_is_named_after_a_token_coder_refuses(bundle, tmp_path, fault):
    from standin.server import CoderStandin, install_cli  # noqa: PLC0415 - tests/ module

    coder_cli = install_cli(tmp_path / "bin", sys.executable)
    with CoderStandin() as coder:
        token = coder.state.token
        if fault == "under-privileged":
            coder.state.forbidden = True  # 403: the token's user may not push templates
        else:  # Coder answers an expired key with 401, as it does a wrong one
            token = "wrong-token-value"  # noqa: S105 - a test value
        proc = cli(
            bundle("good"),
            "publish",
            CODERBUNDLE_TERRAFORM_VALIDATE="never",
            CODER_URL=coder.url,
            CODER_SESSION_TOKEN=token,
            CODERBUNDLE_CODER=str(coder_cli),
        )
    assert proc.returncode == 1, proc.stderr
    assert "CODER_SESSION_TOKEN" in one_error(proc)
    assert DOCTOR_LINE in after_the_error(proc), proc.stderr


def test_doctor_is_named_after_a_values_file_that_does_not_load(bundle):
    root = bundle("good")
    (root / "coder.yaml").write_text("coder:\n  workspaces: [\n")
    toml = root / "bundle.toml"
    toml.write_text(toml.read_text().replace("[workspace]", '[workspace]\nvalues_file = "coder.yaml"', 1))
    proc = cli(root, "validate")
    assert proc.returncode == 2, proc.stderr
    assert "coder.yaml:" in one_error(proc)
    assert after_the_error(proc) == [DOCTOR_LINE]


def test_doctor_is_not_named_after_a_template_finding(bundle):
    root = bundle("good")
    (root / "templates" / "good" / "template.toml").write_text("display_name = 3\n")
    proc = cli(root, "validate", CODERBUNDLE_TERRAFORM_VALIDATE="never")
    assert proc.returncode == 2, proc.stderr
    one_error(proc)
    assert DOCTOR_LINE not in proc.stderr


class _NeedsLogin(BaseHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        del args

    def do_GET(self) -> None:  # every request the daemon makes starts with GET /v2/
        self.send_response(401)
        self.send_header("WWW-Authenticate", 'Basic realm="test"')
        self.send_header("Content-Length", "0")
        self.end_headers()


def test_doctor_is_named_after_a_push_the_registry_refused(bundle, monkeypatch, capsys):
    """A real push by the real daemon to a registry that wants a login (only the build is skipped)."""
    docker = pytest.importorskip("docker")
    from coderbundle import docker_stream as ds  # noqa: PLC0415
    from coderbundle import images  # noqa: PLC0415
    from coderbundle.__main__ import main  # noqa: PLC0415
    from coderbundle.errors import ImageBuildError  # noqa: PLC0415

    try:
        client = ds.connect(os.environ)
        local = next(iter(client.images.list()), None)
    except (ImageBuildError, docker.errors.DockerException) as exc:
        pytest.skip(f"no Docker daemon: {exc}")
    if local is None:
        pytest.skip("the daemon has no image to push (.ci/docker-setup.sh makes one)")
    server = ThreadingHTTPServer(("127.0.0.1", 0), _NeedsLogin)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    repository = f"127.0.0.1:{server.server_port}/coderbundle/doctor-probe"

    def push_only(*_args, **_kwargs):
        local.tag(repository, "t")
        try:
            ds.push_image(client, repository, "t", lambda _line: None)
        finally:
            client.images.remove(f"{repository}:t")

    monkeypatch.setattr(images, "build_images", push_only)
    try:
        code = main(["--root", str(bundle("good")), "images", "build", "--push"])
    finally:
        server.shutdown()
        server.server_close()
        client.close()
    err = capsys.readouterr().err
    assert code == 1, err
    assert f"push {repository}:t failed: " in err, err  # "no basic auth credentials", or the 401
    assert DOCTOR_LINE in err.splitlines(), err
