"""`coderbundle test` with real terraform and the offline mirrors: every invariant holds on the
templates, and each one fails, clearly, on a template broken on purpose."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from coderbundle import invariants, mirrors
from coderbundle.pipeline import render_all
from coderbundle.plantest import parameter_env, plan_templates
from coderbundle.settings import load_settings

TOOLS = ("CODERBUNDLE_TERRAFORM", "CODERBUNDLE_PROVIDER_MIRROR", "CODERBUNDLE_MODULE_MIRROR")
TOOLS_ENV = {k: os.environ[k] for k in TOOLS if os.environ.get(k)}
needs_tools = pytest.mark.skipif(
    len(TOOLS_ENV) < len(TOOLS),
    reason="no offline terraform toolchain: `nox -s tools` (needs Go) builds terraform and the providers",
)

# One deliberate mistake per invariant, as an edit to the rendered python template's source.
BROKEN = {
    "stop-keeps-what-developers-own": (
        "templates/_shared/workspace.tf.j2",
        "  count            = data.coder_workspace.me.start_count\n  depends_on",
        "  count            = 1\n  depends_on",
    ),
    "start-pod-matches-parameters": (
        "templates/_shared/base.tf.j2",
        '"cpu_limit": "data.coder_parameter.cpu.value",',
        '"cpu_limit": \'"1"\',',
    ),
    "env-keeps-image-values": (
        "templates/python/main.tf.j2",
        'name     = "POETRY_VIRTUALENVS_IN_PROJECT"\n  value    = "true"',
        'name     = "LANG"\n  value    = "C"',
    ),
    "everything-has-its-agent": (
        "templates/python/main.tf.j2",
        'resource "coder_env" "poetry_in_project" {\n',
        (
            'resource "coder_agent" "spare" {\n'
            "  count = data.coder_workspace.me.start_count\n"
            '  os    = "linux"\n'
            '  arch  = "amd64"\n'
            "}\n\n"
            'resource "coder_env" "spare" {\n'
            '  agent_id = try(coder_agent.spare[0].id, "")\n'
            '  name     = "SPARE"\n'
            '  value    = "1"\n'
            "}\n\n"
            'resource "coder_env" "poetry_in_project" {\n'
        ),
    ),
    "presets-are-accepted": (
        "templates/_shared/base.tf.j2",
        '"parameters": {"cpu": "4", "memory": "8", "home_disk_size": disk_default}},',
        '"parameters": {"cpu": "4", "memory": "8", "home_disk_size": disk_default, "cpus": "4"}},',
    ),
    "workspaces-never-share-objects": (
        "templates/_shared/workspace.tf.j2",
        '    name        = "coder-${data.coder_workspace.me.id}"\n    namespace   = var.namespace\n',
        '    name        = "coder-workspace"\n    namespace   = var.namespace\n',
    ),
    # The modules' resources: these fire only with the real module trees (stubs create nothing).
    "apps-have-unique-slugs": (
        "templates/python/main.tf.j2",
        'resource "coder_env" "poetry_in_project" {\n',
        (
            'resource "coder_app" "twin" {\n'
            "  count        = data.coder_workspace.me.start_count\n"
            "  agent_id     = coder_agent.main.id\n"
            '  slug         = "code-server"\n'
            '  display_name = "Twin"\n'
            '  url          = "http://localhost:1/"\n'
            "}\n\n"
            'resource "coder_env" "poetry_in_project" {\n'
        ),
    ),
    "parameters-are-ordered-and-described": (
        "templates/_shared/git.tf.j2",
        "  coder_parameter_order = 21\n",
        "",
    ),
}
NEEDS_REAL_MODULES = {"apps-have-unique-slugs", "parameters-are-ordered-and-described"}
# Broken in a copy of the module trees, not in a template: (module folder, old, new).
BROKEN_MODULES = {
    "module-resources-use-the-callers-agent": (
        "registry.coder.com/coder/code-server/coder/1.5.2",
        "agent_id     = var.agent_id",
        'agent_id     = "00000000-0000-0000-0000-000000000000"',
    ),
}


REPO = Path(__file__).resolve().parent.parent


def _settings(root: Path):
    if not (root / "images").exists():  # the invariants read the images' ENV
        shutil.copytree(REPO / "images", root / "images")
    return load_settings(root, TOOLS_ENV)


@needs_tools
@pytest.mark.slow
def test_every_invariant_holds_on_a_real_template(bundle):
    root = bundle(real=("python",))
    settings = _settings(root)
    report = plan_templates(render_all(settings), settings)
    assert report.ok, [str(f) for c in report.cases for f in c.failures]
    labels = {c.case.label for c in report.cases}
    assert {
        "python/defaults/start",
        "python/defaults/stop",
        "python/Small/start",
        "python/Large/stop",
    } <= labels
    assert "terraform 1.9.8" in report.toolchain
    # Real trees (../shared/registry-modules) when they are there, stubs otherwise: said either way.
    assert mirrors.describe_modules(Path(TOOLS_ENV["CODERBUNDLE_MODULE_MIRROR"])) in report.toolchain
    # the pod really carries the preset's parameters
    assert all(c.resources > 0 for c in report.cases)


@needs_tools
@pytest.mark.slow
def test_each_invariant_fails_on_its_broken_template(bundle, tmp_path):
    failures: dict[str, list[str]] = {}
    real = (Path(TOOLS_ENV["CODERBUNDLE_MODULE_MIRROR"]) / mirrors.PROVENANCE_TSV).is_file()
    for invariant, (rel, old, new) in BROKEN.items():
        if invariant in NEEDS_REAL_MODULES and not real:
            continue
        root = tmp_path / invariant
        root.mkdir()
        shutil.copytree(bundle(real=("python",)), root, dirs_exist_ok=True)
        shutil.rmtree(tmp_path / "bundle")
        path = root / rel
        text = path.read_text()
        assert old in text, f"{invariant}: the edit no longer applies to {rel}"
        path.write_text(text.replace(old, new, 1))
        settings = _settings(root)
        presets = invariant == "presets-are-accepted"
        report = plan_templates(render_all(settings), settings, presets=presets)
        failures[invariant] = [str(f) for c in report.cases for f in c.failures]
    for invariant, found in failures.items():
        named = [f for f in found if f.startswith(f"[{invariant}]")]
        assert named, f"{invariant} did not fire: {found}"
        assert all("; fix: " in f for f in named)


def test_every_invariant_is_documented():
    docs = (Path(__file__).resolve().parent.parent / "docs" / "rules.md").read_text()
    for invariant in invariants.INVARIANTS:
        assert f"### {invariant.name}" in docs, invariant.name
        assert invariant.doc
    assert set(BROKEN) | set(BROKEN_MODULES) == {i.name for i in invariants.INVARIANTS}


@needs_tools
@pytest.mark.slow
def test_each_module_invariant_fails_on_its_broken_module(bundle, tmp_path):
    source = Path(TOOLS_ENV["CODERBUNDLE_MODULE_MIRROR"])
    if not (source / mirrors.PROVENANCE_TSV).is_file():
        pytest.skip("the module mirror holds stubs: no module resources to break")
    for invariant, (folder, old, new) in BROKEN_MODULES.items():
        mirror = tmp_path / invariant / "modules"
        shutil.copytree(source, mirror)  # a scratch copy of the test data, edited below
        main = mirror / folder / "main.tf"
        text = main.read_text()
        assert old in text, f"{invariant}: the edit no longer applies to {folder}"
        main.write_text(text.replace(old, new, 1))
        root = tmp_path / invariant / "bundle"
        shutil.copytree(bundle(real=("python",)), root)
        shutil.rmtree(tmp_path / "bundle")
        settings = load_settings(root, {**TOOLS_ENV, "CODERBUNDLE_MODULE_MIRROR": str(mirror)})
        report = plan_templates(render_all(settings), settings, presets=False)
        found = [str(f) for c in report.cases for f in c.failures]
        named = [f for f in found if f.startswith(f"[{invariant}]")]
        assert named, f"{invariant} did not fire: {found}"
        assert all("; fix: " in f for f in named)


def test_parameter_values_reach_the_provider_as_the_provisioner_passes_them():
    # terraform-provider-coder provider/parameter.go: CODER_PARAMETER_ + hex(sha256(name))
    assert (
        parameter_env("cpu")
        == "CODER_PARAMETER_68ab84f7c6d0f5781585eb1b5289499fb29081b918f71ebddb5f72021c9ef9c5"
    )


def test_image_env_reads_base_and_child_dockerfiles(tmp_path):
    (tmp_path / "base").mkdir()
    (tmp_path / "base" / "Dockerfile").write_text("ENV PATH=/usr/bin:/bin \\\n    LANG=C.UTF-8\n")
    (tmp_path / "go").mkdir()
    (tmp_path / "go" / "Dockerfile").write_text(
        "ARG BASE_IMAGE=base\nFROM ${BASE_IMAGE}\nENV PATH=/usr/local/go/bin:${PATH}\nENV GOFLAGS=-mod=mod\n"
    )
    assert invariants.image_env(tmp_path, "go") == {
        "PATH": "/usr/local/go/bin:/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "GOFLAGS": "-mod=mod",
    }


def test_module_registry_serves_stubs_to_real_terraform(tmp_path):
    terraform = TOOLS_ENV.get("CODERBUNDLE_TERRAFORM") or shutil.which("terraform")
    if terraform is None:
        pytest.skip("terraform is not installed")
    spec = {
        "source": "registry.coder.com/coder/example/coder",
        "version": "1.2.3",
        "variables": {
            "agent_id": {"type": "string", "required": True},
            "folder": {"type": "string", "required": False},
        },
        "outputs": ["url"],
    }
    mirror = tmp_path / "modules"
    mirrors.write_stub_module(mirror, spec)
    work = tmp_path / "work"
    work.mkdir()
    (work / "main.tf").write_text(
        'module "example" {\n  source   = "registry.coder.com/coder/example/coder"\n'
        '  version  = "1.2.3"\n  agent_id = "x"\n  folder   = "/home/coder"\n}\n'
        'output "url" { value = module.example.url }\n'
    )
    with mirrors.serve_modules(mirror) as registry:
        config = mirrors.cli_config(
            tmp_path / "tf.rc", provider_mirror=None, registry=registry, plugin_cache=None
        )
        env = {**os.environ, "TF_CLI_CONFIG_FILE": str(config)}
        init = subprocess.run(
            [terraform, "init", "-backend=false", "-no-color"],
            cwd=work,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        assert init.returncode == 0, init.stderr
        assert "1.2.3" in init.stdout
        (work / "main.tf").write_text(
            (work / "main.tf")
            .read_text()
            .replace('folder   = "/home/coder"\n', 'folder   = "/home/coder"\n  typo = 1\n')
        )
        check = subprocess.run(
            [terraform, "validate", "-json", "-no-color"],
            cwd=work,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
    diagnostics = json.loads(check.stdout)["diagnostics"]
    assert any("typo" in d["detail"] for d in diagnostics), diagnostics


def test_cli_test_refuses_clearly_without_a_toolchain(bundle):
    root = bundle(real=("python",))
    env = {k: v for k, v in os.environ.items() if not k.startswith("CODERBUNDLE_")}
    env["CODERBUNDLE_TERRAFORM"] = "no-such-terraform"
    proc = subprocess.run(
        [sys.executable, "-m", "coderbundle", "--root", str(root), "test"],
        capture_output=True,
        text=True,
        check=False,
        env=env,
    )
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "nox -s tools" in proc.stderr


@needs_tools
def test_terraform_validate_runs_offline_and_points_at_the_template_source(bundle):
    root = bundle(real=("python",))
    source = root / "templates" / "python" / "main.tf.j2"
    text = source.read_text()
    text = text.replace(
        'name     = "POETRY_VIRTUALENVS_IN_PROJECT"', 'name     = upper("poetry_virtualenvs_in_project", 1)'
    )
    source.write_text(text)
    line = next(i for i, ln in enumerate(text.splitlines(), 1) if "upper(" in ln)
    settings = load_settings(root, {**TOOLS_ENV, "CODERBUNDLE_TERRAFORM_VALIDATE": "always"})
    from coderbundle.validate import validate_templates  # noqa: PLC0415

    report = validate_templates(render_all(settings), settings, use_cache=False)
    (result,) = report.results
    assert result.terraform_validate == "failed"
    (cb003,) = [p for p in result.problems if p.rule == "CB003"]
    assert "upper" in cb003.message
    assert f"(from templates/python/main.tf.j2:{line})" in cb003.message
    assert re.search(r"coder/coder 2\.\d+\.\d+ built from source", report.toolchain), report.toolchain
    assert "hashicorp/kubernetes 2.38.0 stand-in" in report.toolchain


@needs_tools
def test_shared_workload_namespace_binds_the_chart_shared_developer_role(bundle):
    # The chart lets the provisioner bind only sharedDeveloperClusterRole in shared namespaces.
    from coderbundle import plantest, terraform  # noqa: PLC0415

    settings = _settings(bundle(real=("kubernetes",)))
    (rendered,) = render_all(settings)
    scratch = settings.build_dir / "plan"
    with terraform.toolchain(settings) as tc:
        assert terraform.init_dir(rendered.path, scratch, tc) is None
        bindings, policies = {}, {}
        for shared in ("", "team-sandbox"):
            case = plantest.Case(
                "kubernetes", "defaults", "start", variables=(("workload_namespace", shared),)
            )
            plan = plantest._plan(scratch, case, tc)
            assert isinstance(plan, dict), plan
            (binding,) = [
                r
                for r in invariants._walk(plan["planned_values"]["root_module"])
                if r["type"] == "kubernetes_role_binding_v1"
            ]
            bindings[shared] = binding["values"]["role_ref"][0]["name"]
            policies[shared] = [
                r["values"]
                for r in invariants._walk(plan["planned_values"]["root_module"])
                if r["type"] == "kubernetes_network_policy_v1"
            ]
    assert bindings == {"": "coder-workspace-developer", "team-sandbox": "coder-workspace-developer-shared"}
    # Its own namespace gets the isolation policy (a shared one has the chart's).
    assert policies["team-sandbox"] == []
    (policy,) = policies[""]
    assert policy["metadata"][0]["namespace"].startswith("coder-ws-")
    spec = policy["spec"][0]
    assert spec["policy_types"] == ["Ingress", "Egress"]
    blocks = [to["ip_block"][0] for rule in spec["egress"] for to in rule["to"] if to["ip_block"]]
    (internet,) = blocks
    assert internet["cidr"] == "0.0.0.0/0"
    assert {"10.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12", "192.168.0.0/16"} <= set(internet["except"])
