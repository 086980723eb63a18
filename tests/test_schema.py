"""The schema checker: the mistake catalogue, the silent cases, the data files, the load time."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest

from coderbundle import hcl, schema
from coderbundle.schema_blocks import type_matches

ROOT = Path(__file__).resolve().parent.parent
CATALOGUE = ROOT / "tests" / "fixtures" / "mistakes"
VERSIONS = tomllib.loads((ROOT / "templates" / "_shared" / "versions.toml").read_text("utf-8"))
CASES = sorted(p.name for p in CATALOGUE.iterdir() if (p / "main.tf").is_file())


def expected_rules(case: str) -> list[str]:
    lines = (CATALOGUE / case / "expected").read_text("utf-8").splitlines()
    return sorted(line.strip() for line in lines if line.strip() and not line.startswith("#"))


def check_text(text: str) -> list[str]:
    problems = schema.check_schemas({"main.tf": hcl.parse_text(text, "main.tf")}, VERSIONS)
    return sorted(p.rule for p in problems)


def test_catalogue_has_at_least_20_mistakes_and_good_cases():
    mistakes = [c for c in CASES if expected_rules(c)]
    assert len(mistakes) >= 20
    assert any(not expected_rules(c) for c in CASES)


@pytest.mark.parametrize("case", CASES)
def test_each_case_fires_exactly_its_rules(case):
    path = CATALOGUE / case / "main.tf"
    problems = schema.check_schemas({str(path): hcl.parse_file(path)}, VERSIONS)
    assert sorted(p.rule for p in problems) == expected_rules(case), [str(p) for p in problems]
    for p in problems:
        assert p.file == str(path)
        assert p.line > 0
        assert "\n" not in p.message
        assert ";" in p.message  # what is wrong; what to do


@pytest.mark.parametrize("case", [c for c in CASES if (CATALOGUE / c / "fixed").is_dir()])
def test_each_fixed_case_is_silent(case):
    path = CATALOGUE / case / "fixed" / "main.tf"
    assert schema.check_schemas({str(path): hcl.parse_file(path)}, VERSIONS) == []


def test_did_you_mean_names_the_right_attribute():
    text = 'resource "coder_app" "a" {\n  agent_id = "x"\n  slug = "a"\n  subdomian = true\n}\n'
    (problem,) = schema.check_schemas({"main.tf": hcl.parse_text(text, "main.tf")}, VERSIONS)
    assert problem.line == 4
    assert problem.message == 'unknown attribute "subdomian" in coder_app; did you mean "subdomain"?'


def test_misplaced_field_points_at_its_block():
    text = """resource "kubernetes_pod_v1" "p" {
  metadata {}
  spec {
    run_as_non_root = true
  }
}
"""
    (problem,) = schema.check_schemas({"main.tf": hcl.parse_text(text, "main.tf")}, VERSIONS)
    assert 'it belongs in the nested block "security_context"' in problem.message


def test_dynamic_block_counts_as_the_required_block():
    text = """resource "kubernetes_persistent_volume_claim_v1" "h" {
  metadata {}
  spec {
    access_modes = ["ReadWriteOnce"]
    dynamic "resources" {
      for_each = [1]
      content {
        requests = { storage = "1Gi" }
      }
    }
  }
}
"""
    assert check_text(text) == []


def test_dynamic_on_an_attribute_is_cs103():
    text = """resource "coder_agent" "a" {
  os   = "linux"
  arch = "amd64"
  dynamic "env" {
    for_each = {}
    content {}
  }
}
"""
    assert check_text(text) == ["CS103"]


def test_unknown_types_of_other_providers_and_unlisted_kubernetes_types_are_silent():
    text = """resource "random_id" "x" { bogus = 1 }
resource "kubernetes_csi_driver_v1" "c" { bogus = 1 }
data "http" "x" { nope = true }
"""
    assert check_text(text) == []


def test_module_outside_versions_toml_is_cs204():
    text = 'module "m" {\n  source = "registry.coder.com/coder/nope/coder"\n  version = "1.0.0"\n}\n'
    assert check_text(text) == ["CS204"]


def test_module_without_version_is_checked_against_the_pin_and_left_to_cb115():
    source = "registry.coder.com/coder/code-server/coder"
    text = f'module "c" {{\n  source = "{source}"\n  agent_id = "x"\n  foo = 1\n}}\n'
    assert check_text(text) == ["CS201"]


def test_expressions_are_never_type_errors():
    text = """resource "coder_agent" "a" {
  os             = "linux"
  arch           = var.arch
  order          = var.order
  env            = merge(local.env, { A = "b" })
  startup_script = "echo ${var.x}"
}
"""
    assert check_text(text) == []


@pytest.mark.parametrize(
    ("value", "tf_type", "ok"),
    [
        (1, "string", True),
        (True, "string", True),
        (['"a"'], "string", False),
        ('"1.5"', "number", True),
        ('"two"', "number", False),
        (True, "number", False),
        ('"true"', "bool", True),
        (1, "bool", False),
        ({"a": 1}, "map(string)", True),
        (['"a"'], "map(string)", False),
        (['"a"', 1], "list(string)", True),
        ([{"a": 1}], "list(string)", False),
        ('"--depth 1"', "list(string)", False),
        ("${var.x}", "number", True),
        (None, "bool", True),
        ({"a": 1}, "object({a = number})", True),
    ],
)
def test_type_matches_follows_terraform_conversions(value, tf_type, ok):
    assert type_matches(value, tf_type) is ok


def test_data_files_record_versions_and_match_versions_toml():
    data = ROOT / "tools" / "coderbundle" / "data"
    coder = json.loads((data / "coder.json").read_text("utf-8"))
    kubernetes = json.loads((data / "kubernetes.json").read_text("utf-8"))
    modules = json.loads((data / "modules.json").read_text("utf-8"))["modules"]
    assert coder["version"] == "2.18.0"
    # A git commit, or the go.sum hash of the module zip the docs were read from.
    assert len(coder["source_commit"]) == 40 or coder["source_commit"].startswith("h1:")
    assert kubernetes["version"] == "2.38.0"
    pins = VERSIONS["modules"]
    assert {k: (v["source"], v["version"]) for k, v in pins.items()} == {
        k: (v["source"], v["version"]) for k, v in modules.items()
    }
    assert sum(p.stat().st_size for p in data.glob("*.json")) < 1_000_000


def test_loading_is_cached():
    assert schema.load_providers() is schema.load_providers()
    assert schema.load_modules() is schema.load_modules()


MUTATIONS = [
    ('type = "Recreate"', 'type = "RollingUpdatee"'),
    ('access_modes       = ["ReadWriteOnce"]', 'access_modes       = ["ReadWriteOne"]'),
    ('fs_group_change_policy = "OnRootMismatch"', 'fs_group_change_policy = "OnMismatch"'),
    ('startup_script_behavior = "blocking"', 'startup_script_behavior = "block"'),
    ("threshold = 90", "threshold = 190"),
    ('kind      = "ClusterRole"', 'kind      = "Clusterrole"'),
    ('name        = "coder-ws-${', 'name        = "Coder_ws-${'),
]


@pytest.fixture(scope="module")
def kubernetes_main(tmp_path_factory):
    from coderbundle.discover import find_templates  # noqa: PLC0415
    from coderbundle.render import render_template  # noqa: PLC0415
    from coderbundle.settings import load_settings  # noqa: PLC0415

    settings = load_settings(ROOT, {})
    (template,) = find_templates(settings.templates_dir, ["kubernetes"])
    rendered = render_template(template, settings, tmp_path_factory.mktemp("rendered"))
    return (rendered.path / "main.tf").read_text("utf-8")


@pytest.mark.parametrize(("old", "new"), MUTATIONS)
def test_provider_validators_reach_the_real_templates_values(kubernetes_main, old, new):
    """CS110's paths match the real template's structure: one wrong literal, one CS110."""
    assert check_text(kubernetes_main) == []
    assert old in kubernetes_main
    assert check_text(kubernetes_main.replace(old, new, 1)).count("CS110") >= 1
    assert set(check_text(kubernetes_main.replace(old, new, 1))) == {"CS110"}


def test_validator_data_records_its_sources_and_every_check_kind_is_implemented():
    from coderbundle import schema_values  # noqa: PLC0415

    data = json.loads((ROOT / "tools" / "coderbundle" / "data" / "validators.json").read_text("utf-8"))
    assert data["providers"]["coder/coder"]["version"] == "2.18.0"
    assert data["providers"]["hashicorp/kubernetes"]["version"] == "2.38.0"
    kinds = {c["check"] for p in data["providers"].values() for c in p["checks"]}
    source = Path(schema_values.__file__).read_text("utf-8")
    for kind in kinds:
        assert f'"{kind}"' in source, f"check kind {kind} has no implementation"
    for provider in data["providers"].values():
        for check in provider["checks"]:
            assert check["from"], check


@pytest.mark.parametrize(
    ("cron", "seconds", "ok"),
    [
        ("0 0 22 * * *", True, True),
        ("*/5 * * * *", True, True),  # five fields parse too: day of week is optional
        ("@daily", True, True),
        ("0 0 24 * * *", True, False),
        ("0 0 22 * * MON-FRI", True, True),
        ("0 0 22 * * XYZ", True, False),
        ("* 8-18 * * 1-5", False, True),
        ("* 8-18 * *", False, False),
    ],
)
def test_cron_grammar_follows_robfig_cron(cron, seconds, ok):
    from coderbundle.schema_values import cron_problem  # noqa: PLC0415

    assert (cron_problem(cron, seconds=seconds, descriptors=seconds) == "") is ok


@pytest.mark.parametrize(
    ("key", "ok"),
    [
        ("app.kubernetes.io/name", True),
        ("com.coder.workspace.id", True),
        ("name", True),
        ("/name", False),
        ("Example.COM/name", False),
        ("-name", False),
        ("a" * 64, False),
    ],
)
def test_label_keys_are_qualified_names(key, ok):
    from coderbundle.schema_values import qualified_name  # noqa: PLC0415

    assert (qualified_name(key) == "") is ok


def test_parameter_rules_wait_for_a_type_that_is_an_expression():
    text = """data "coder_parameter" "n" {
  name = "n"
  type = var.kind
  validation {
    min = 1
  }
}
"""
    assert check_text(text) == []
