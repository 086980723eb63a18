"""One kubernetes stand-in per matrix run, reattached by every terraform (tests/standin/reattach.py):
the plans are the very ones a stand-in started by terraform gives, the process outlives each
terraform, terraform really talks to it, and init still locks every provider."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import pytest

from coderbundle import plantest, terraform
from coderbundle.pipeline import render_all
from coderbundle.settings import load_settings
from standin.reattach import FAST_ENV, REATTACH_ENV, main, reattached_standin, standin_launcher

TOOLS = ("CODERBUNDLE_TERRAFORM", "CODERBUNDLE_PROVIDER_MIRROR", "CODERBUNDLE_MODULE_MIRROR")
TOOLS_ENV = {k: os.environ[k] for k in TOOLS if os.environ.get(k)}
LAUNCHER = standin_launcher(Path(TOOLS_ENV["CODERBUNDLE_PROVIDER_MIRROR"])) if len(TOOLS_ENV) == 3 else None
needs_standin = pytest.mark.skipif(
    LAUNCHER is None,
    reason="no offline terraform toolchain with the kubernetes stand-in: `nox -s tools` builds it",
)
REPO = Path(__file__).resolve().parent.parent
CASE = plantest.Case("kubernetes", plantest.DEFAULTS, "start")


@pytest.fixture
def kubernetes(bundle, tmp_path):
    """The rendered kubernetes template, its toolchain and an initialised scratch folder."""
    root = bundle(real=("kubernetes",))
    if not (root / "images").exists():
        shutil.copytree(REPO / "images", root / "images")
    settings = load_settings(root, TOOLS_ENV)
    (rendered,) = render_all(settings, ["kubernetes"])
    with terraform.toolchain(settings) as tc:
        scratch = tmp_path / "scratch"
        assert terraform.init_dir(rendered.path, scratch, tc) is None
        yield rendered, scratch, tc


def _changes(plan: dict | str) -> list:
    assert isinstance(plan, dict), plan
    return sorted(
        ((c["address"], c["change"]["actions"], c["change"]["after"]) for c in plan["resource_changes"]),
        key=lambda c: c[0],
    )


@needs_standin
@pytest.mark.slow
def test_a_reattached_standin_plans_what_a_started_one_plans(kubernetes, monkeypatch):
    _rendered, scratch, tc = kubernetes
    started = plantest._plan(scratch, CASE, tc)
    assert LAUNCHER is not None
    with reattached_standin(LAUNCHER) as value:
        monkeypatch.setenv(REATTACH_ENV, value)
        for key, val in FAST_ENV.items():
            monkeypatch.setenv(key, val)
        pid = next(iter(json.loads(value).values()))["Pid"]
        first = plantest._plan(scratch, CASE, tc)
        second = plantest._plan(scratch, CASE, tc)
        # "Test": true: go-plugin leaves the process alone when a terraform ends.
        os.kill(pid, 0)
        assert _changes(first) == _changes(started) == _changes(second)
        assert any(a.startswith("kubernetes_") for a, _, _ in _changes(first))
        os.kill(pid, 9)
        os.waitpid(pid, 0)
        gone = plantest._plan(scratch, CASE, tc)
    # Terraform really used the reattached process: with it gone, the plan cannot be made.
    assert isinstance(gone, str), "terraform planned with the reattached stand-in killed"


@needs_standin
@pytest.mark.slow
def test_init_locks_the_kubernetes_provider_even_when_it_is_reattached(kubernetes, monkeypatch):
    rendered, scratch, tc = kubernetes
    assert LAUNCHER is not None
    with reattached_standin(LAUNCHER) as value:
        monkeypatch.setenv(REATTACH_ENV, value)
        assert terraform.init_dir(rendered.path, scratch, tc) is None
    lock = (scratch / ".terraform.lock.hcl").read_text(encoding="utf-8")
    # Under TF_REATTACH_PROVIDERS terraform init leaves a reattached provider out of the lock
    # file; a later run without it would then refuse to plan.
    assert 'provider "registry.terraform.io/hashicorp/kubernetes"' in lock
    monkeypatch.delenv(REATTACH_ENV)
    assert isinstance(plantest._plan(scratch, CASE, tc), dict)


def test_a_mirror_without_the_standin_runs_the_command_as_it_is(tmp_path, capfd):
    assert standin_launcher(tmp_path) is None
    probe = "import os; print(os.environ.get('TF_REATTACH_PROVIDERS'))"
    assert main(["--mirror", str(tmp_path), "--", sys.executable, "-c", probe]) == 0
    out, err = capfd.readouterr()
    assert "no kubernetes stand-in" in err
    assert out.strip() == str(os.environ.get("TF_REATTACH_PROVIDERS"))
    assert main(["--mirror", str(tmp_path)]) == 2


@needs_standin
def test_the_wrapper_hands_the_command_a_running_standin(capfd):
    probe = (
        "import json, os; c = json.loads(os.environ['TF_REATTACH_PROVIDERS']);"
        "p = c['registry.terraform.io/hashicorp/kubernetes']; os.kill(p['Pid'], 0);"
        "print(p['Test'], p['ProtocolVersion'], p['Addr']['Network'], os.environ['TF_DISABLE_PLUGIN_TLS'])"
    )
    code = main(["--", sys.executable, "-c", probe])
    out, _ = capfd.readouterr()
    assert code == 0
    assert out.split() == ["True", "6", "tcp", "1"]
