"""The real coder/registry modules (../shared/registry-modules, test data beside the repository)
served on 127.0.0.1 to real terraform: what stubs hide (scripts, nested modules, validations)
is planned, and the reports say which modules ran."""

from __future__ import annotations

import csv
import os
import re
import shutil
import tomllib
from pathlib import Path

import pytest

from coderbundle import invariants, mirrors, plantest, terraform
from coderbundle.pipeline import render_all
from coderbundle.settings import load_settings

REPO = Path(__file__).resolve().parent.parent
REAL_MODULES = REPO.parent / "shared" / "registry-modules"
TOOLS = ("CODERBUNDLE_TERRAFORM", "CODERBUNDLE_PROVIDER_MIRROR", "CODERBUNDLE_MODULE_MIRROR")
TOOLS_ENV = {k: os.environ[k] for k in TOOLS if os.environ.get(k)}
MIRROR = Path(TOOLS_ENV.get("CODERBUNDLE_MODULE_MIRROR", "/nonexistent"))

needs_real_trees = pytest.mark.skipif(
    not (REAL_MODULES / mirrors.PROVENANCE_TSV).is_file(),
    reason=f"the real coder/registry module trees are not at {REAL_MODULES}",
)
needs_real_toolchain = pytest.mark.skipif(
    len(TOOLS_ENV) < len(TOOLS) or not (MIRROR / mirrors.PROVENANCE_TSV).is_file(),
    reason="no offline toolchain serving the real modules (`nox -s tools` and ../shared/registry-modules)",
)


def _pins() -> dict[str, str]:
    versions = tomllib.loads((REPO / "templates" / "_shared" / "versions.toml").read_text())
    return {spec["source"]: spec["version"] for spec in versions["modules"].values()}


@needs_real_trees
def test_the_real_trees_hold_every_pinned_module_and_every_module_they_call():
    with (REAL_MODULES / mirrors.PROVENANCE_TSV).open() as fh:
        provenance = {(row["module"], row["version"]) for row in csv.DictReader(fh, delimiter="\t")}
    wanted = dict(_pins())
    # Nested modules: every registry source a pinned tree calls, at the version it asks for.
    for source, version in list(wanted.items()):
        tree = REAL_MODULES.joinpath(*source.split("/"), version)
        for tf in tree.glob("*.tf"):
            text = tf.read_text()
            pattern = r'source\s*=\s*"(registry\.coder\.com/[^"]+)"\s*\n\s*version\s*=\s*"([^"]+)"'
            for m in re.finditer(pattern, text):
                wanted.setdefault(m.group(1), m.group(2))
    assert "registry.coder.com/coder/vscode-desktop-core/coder" in wanted
    for source, version in wanted.items():
        host, namespace, name, system = source.split("/")
        assert (REAL_MODULES / host / namespace / name / system / version / "main.tf").is_file(), source
        assert (f"{namespace}/{name}", version) in provenance, source


def test_reports_say_whether_the_modules_are_real_or_stubs(tmp_path):
    stubs = tmp_path / "stubs"
    spec = {"source": "registry.coder.com/coder/x/coder", "version": "1.0.0", "variables": {}, "outputs": []}
    mirrors.write_stub_module(stubs, spec)
    assert mirrors.describe_modules(stubs) == "modules: stubs (no module resources)"
    real = tmp_path / "real"
    (real / "registry.coder.com").mkdir(parents=True)
    (real / mirrors.PROVENANCE_TSV).write_text("module\tversion\ttag\tcommit\n")
    assert mirrors.describe_modules(real) == "modules: real, coder/registry at pinned tags"
    plain = tmp_path / "plain"
    plain.mkdir()
    assert mirrors.describe_modules(plain) == "modules: from the module mirror"


def _module(mirror: Path, marker: str) -> None:
    folder = mirror / "registry.coder.com" / "coder" / "marker" / "coder" / "1.0.0"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "main.tf").write_text(f'output "marker" {{\n  value = "{marker}"\n}}\n')


@pytest.mark.terraform
def test_init_starts_afresh_when_the_module_mirror_changes(tmp_path):
    # Old code kept .terraform across runs whatever the mirror served: after the mirror
    # changed, init found the module "already installed" and the plan used the old copy.
    terraform_bin = TOOLS_ENV.get("CODERBUNDLE_TERRAFORM") or shutil.which("terraform")
    assert terraform_bin
    mirror = tmp_path / "modules"
    _module(mirror, "first")
    template = tmp_path / "template"
    template.mkdir()
    (template / "main.tf").write_text(
        'module "m" {\n  source  = "registry.coder.com/coder/marker/coder"\n  version = "1.0.0"\n}\n'
    )
    (tmp_path / "bundle.toml").write_text("")
    env = {"CODERBUNDLE_TERRAFORM": terraform_bin, "CODERBUNDLE_MODULE_MIRROR": str(mirror)}
    scratch = tmp_path / "scratch"
    installed = scratch / ".terraform" / "modules" / "m" / "main.tf"
    for marker in ("first", "second"):
        _module(mirror, marker)
        settings = load_settings(tmp_path, env)
        with terraform.toolchain(settings) as tc:
            assert terraform.init_dir(template, scratch, tc) is None
        assert f'"{marker}"' in installed.read_text(), marker


def _case_plan(template: str, parameters: tuple[tuple[str, str], ...], bundle) -> dict:
    root = bundle(real=(template,))
    settings = load_settings(root, TOOLS_ENV)
    (rendered,) = render_all(settings)
    scratch = settings.build_dir / "plan"
    with terraform.toolchain(settings) as tc:
        assert "modules: real, coder/registry at pinned tags" in tc.summary
        assert terraform.init_dir(rendered.path, scratch, tc) is None
        plan = plantest._plan(scratch, plantest.Case(template, "copilot", "start", parameters=parameters), tc)
    assert isinstance(plan, dict), plan
    return plan


@needs_real_toolchain
@pytest.mark.slow
def test_copilot_plans_on_the_oldest_supported_terraform(bundle):
    # copilot 0.4.1 checks length(var.aibridge_proxy_*) behind `!enable || ...`: terraform < 1.12
    # evaluates both sides, so with the variables left null the plan failed ("length(null)").
    plan = _case_plan("nodejs", (("ai_agent", "copilot"),), bundle)
    assert terraform_version(plan) < (1, 12)
    resources = list(invariants._walk(plan["planned_values"]["root_module"]))
    addresses = {r["address"] for r in resources}
    assert any(a.startswith("module.copilot[0].") for a in addresses), sorted(addresses)
    # The nested agentapi 2.0.0 module is planned too: its chat app is on the workspace's agent.
    apps = [r for r in resources if r["type"] == "coder_app" and "copilot" in r["address"]]
    assert apps, sorted(addresses)


def terraform_version(plan: dict) -> tuple[int, ...]:
    """terraform's version from a plan's JSON."""
    return tuple(int(p) for p in plan["terraform_version"].split(".")[:2])


def test_two_open_toolchains_in_one_checkout_keep_their_own_configuration(tmp_path):
    # One shared cli.tfrc let the second run's mirrors and registry port replace the first's.
    (tmp_path / "bundle.toml").write_text("")
    first_mirror, second_mirror = tmp_path / "one", tmp_path / "two"
    _module(first_mirror, "first")
    _module(second_mirror, "second")
    one = load_settings(tmp_path, {"CODERBUNDLE_MODULE_MIRROR": str(first_mirror)})
    two = load_settings(tmp_path, {"CODERBUNDLE_MODULE_MIRROR": str(second_mirror)})
    with terraform.toolchain(one) as a, terraform.toolchain(two) as b:
        config_a = Path(a.env["TF_CLI_CONFIG_FILE"])
        config_b = Path(b.env["TF_CLI_CONFIG_FILE"])
        assert config_a != config_b
        assert config_a.read_text() != config_b.read_text()
        assert a.key != b.key
    assert not config_a.exists()
    assert not config_b.exists()
