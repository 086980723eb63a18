"""The upgrade gate's comparisons on their own (the real server's extraction: test_publish_real.py)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import tarfile
from pathlib import Path

import pytest

from coderbundle import mirrors
from coderbundle.errors import PublishError
from coderbundle.upgrade_gate import check_upgrade, compare_parameters, compare_volumes, tf_files

PVC = """
resource "kubernetes_persistent_volume_claim_v1" "home" {
  count = %s
  metadata {
    name      = "coder-${data.coder_workspace.me.id}-home"
    namespace = var.namespace
  }
  spec {
    access_modes = ["ReadWriteOnce"]
    resources {
      requests = { storage = "%s" }
    }
  }
}
"""


def param(name, **kw):
    return {"name": name, "type": "string", "mutable": True, "required": False, "options": [], **kw}


def test_new_parameters_block_only_when_immutable_and_without_default():
    old = [param("a")]
    new = [
        param("a"),
        param("b", required=True),  # mutable: the update asks once, the developer can change it later
        param("c", mutable=False),  # has a default
        param("d", required=True, mutable=False, ephemeral=True),  # ephemeral: asked at every start
        param("e", required=True, mutable=False),
    ]
    assert [f.id for f in compare_parameters(old, new)] == ["parameter-new-immutable:e"]


def test_options_removed_block_but_a_parameter_turned_free_text_does_not():
    opts = [{"value": "1"}, {"value": "2"}]
    assert [f.id for f in compare_parameters([param("n", options=opts)], [param("n", options=opts[:1])])] == [
        "option-removed:n=2"
    ]
    assert compare_parameters([param("n", options=opts)], [param("n")]) == []


def test_volume_size_may_grow_but_count_and_removal_replace_it():
    base = {"main.tf": PVC % ("data.coder_workspace.me.start_count", "10Gi")}
    assert compare_volumes(base, {"main.tf": PVC % ("data.coder_workspace.me.start_count", "20Gi")}) == []
    (found,) = compare_volumes(base, {"main.tf": PVC % ("1", "10Gi")})
    assert found.id == "volume-replaced:kubernetes_persistent_volume_claim_v1.home"
    assert "count" in found.message
    (gone,) = compare_volumes(base, {"main.tf": ""})
    assert "removed or renamed" in gone.message


MOVED = """
moved {
  from = kubernetes_persistent_volume_claim_v1.home
  to   = kubernetes_persistent_volume_claim_v1.workspace
}
"""
FORGET = """
removed {
  from = kubernetes_persistent_volume_claim_v1.home
  lifecycle {
    destroy = false
  }
}
"""
GOOD_PVC = """
resource "kubernetes_persistent_volume_claim_v1" "home" {
  metadata {
    name      = "coder-${data.coder_workspace.me.id}-%s"
    namespace = var.namespace
  }
  spec {
    access_modes = ["ReadWriteOnce"]
  }
  lifecycle {
    ignore_changes = %s
  }
}
"""


def test_ignore_changes_all_means_no_attribute_edit_replaces_the_volume():
    """As the templates write their claims (templates/_shared/macros.j2): terraform plans no change."""
    base = {"main.tf": GOOD_PVC % ("home", "all")}
    assert compare_volumes(base, {"main.tf": GOOD_PVC % ("data", "all")}) == []
    # The candidate's lifecycle is what Terraform plans with: dropping it lets the edit through.
    (found,) = compare_volumes(base, {"main.tf": (GOOD_PVC % ("data", "all")).replace("= all", "= []")})
    assert "metadata.name" in found.message


def test_ignore_changes_lists_skip_the_attributes_they_name_and_nothing_else():
    base = {"main.tf": GOOD_PVC % ("home", "[]")}
    for ignored in ("[metadata[0].name]", "[metadata]"):
        assert compare_volumes(base, {"main.tf": GOOD_PVC % ("data", ignored)}) == [], ignored
    (found,) = compare_volumes(base, {"main.tf": GOOD_PVC % ("data", "[spec]")})
    assert "metadata.name" in found.message


def test_ignore_changes_all_does_not_cover_count_removal_or_a_rename():
    base = {"main.tf": GOOD_PVC % ("home", "all")}
    counted = (GOOD_PVC % ("home", "all")).replace("{\n  metadata", "{\n  count = 1\n  metadata", 1)
    (found,) = compare_volumes(base, {"main.tf": counted})
    assert "count" in found.message
    (gone,) = compare_volumes(base, {"main.tf": ""})
    assert "removed or renamed" in gone.message
    renamed = (GOOD_PVC % ("home", "all")).replace('"home" {', '"workspace" {')
    (moved_away,) = compare_volumes(base, {"main.tf": renamed})
    assert moved_away.id == "volume-replaced:kubernetes_persistent_volume_claim_v1.home"


def test_a_moved_block_carries_the_volume_and_removed_without_destroy_forgets_it():
    base = {"main.tf": GOOD_PVC % ("home", "[]")}
    renamed = (GOOD_PVC % ("home", "[]")).replace('"home" {', '"workspace" {')
    moved = renamed + MOVED
    assert compare_volumes(base, {"main.tf": moved}) == []
    (found,) = compare_volumes(base, {"main.tf": moved.replace('-home"', '-data"')})
    assert "moved to kubernetes_persistent_volume_claim_v1.workspace" in found.message
    assert compare_volumes(base, {"main.tf": FORGET}) == []
    assert len(compare_volumes(base, {"main.tf": FORGET.replace("false", "true")})) == 1


def test_accepting_one_finding_leaves_the_others_blocking():
    blocking, accepted = check_upgrade(
        active_parameters=[param("a"), param("b")],
        candidate_parameters=[],
        active_files={},
        candidate_files={},
        accepted=["parameter-removed:a"],
    )
    assert [f.id for f in blocking] == ["parameter-removed:b"]
    assert [f.id for f in accepted] == ["parameter-removed:a"]


def test_archives_are_read_for_their_top_level_tf_files_and_garbage_is_one_error():
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in (("main.tf", b"# main\n"), ("sub/x.tf", b"# nested\n"), ("README.md", b"hi")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    assert tf_files(buf.getvalue()) == {"main.tf": "# main\n"}
    with pytest.raises(PublishError, match="not a tar file"):
        tf_files(b"<html>not a tar</html>" * 40)


# -- the gate's volume verdicts against real terraform -----------------------------------

TERRAFORM = os.environ.get("CODERBUNDLE_TERRAFORM", "")
PROVIDER_MIRROR = os.environ.get("CODERBUNDLE_PROVIDER_MIRROR", "")
REQUIRED = """
terraform {
  required_providers {
    kubernetes = {
      source  = "hashicorp/kubernetes"
      version = "2.38.0"
    }
  }
}
"""
CLAIM = """
resource "kubernetes_persistent_volume_claim_v1" "%(label)s" {
  metadata {
    name      = "%(name)s"
    namespace = "coder"
  }
  wait_until_bound = false
  spec {
    access_modes = ["ReadWriteOnce"]
    resources {
      requests = {
        storage = "10Gi"
      }
    }
  }
  lifecycle {
    ignore_changes = all
  }
}
"""
ACTIVE = CLAIM % {"label": "home", "name": "coder-ws-home"}
RENAMED = CLAIM % {"label": "workspace", "name": "coder-ws-home"}
CANDIDATES = {  # the candidate's resources, and whether terraform plans to delete the claim
    "name-edited-under-ignore-changes-all": (CLAIM % {"label": "home", "name": "coder-ws-data"}, False),
    "renamed-without-moved": (RENAMED, True),
    "renamed-with-moved": (RENAMED + MOVED, False),
    "removed": ("", True),
    "removed-with-destroy-false": (FORGET, False),
}


@pytest.fixture(scope="module")
def applied_claim(tmp_path_factory):
    """A directory holding real terraform's state of ACTIVE, as if a workspace had applied it.

    The kubernetes provider is the stand-in (it cannot apply): the state is its planned
    values with an id, which is what the real provider's apply records for these fields.
    """
    if not (TERRAFORM and PROVIDER_MIRROR):
        pytest.skip("no offline terraform toolchain: `nox -s tools` builds terraform and the providers")
    work = tmp_path_factory.mktemp("claim")
    config = mirrors.cli_config(
        work / "tf.rc", provider_mirror=Path(PROVIDER_MIRROR), registry=None, plugin_cache=None
    )
    env = {
        **os.environ,
        "TF_CLI_CONFIG_FILE": str(config),
        "TF_IN_AUTOMATION": "1",
        "CHECKPOINT_DISABLE": "1",
    }
    (work / "main.tf").write_text(REQUIRED + ACTIVE)
    terraform(work, env, "init", "-input=false", "-backend=false")
    terraform(work, env, "plan", "-input=false", "-out=active.plan")
    (resource,) = json.loads(terraform(work, env, "show", "-json", "active.plan"))["planned_values"][
        "root_module"
    ]["resources"]
    state = {
        "version": 4,
        "terraform_version": "1.9.8",
        "serial": 1,
        "lineage": "00000000-0000-4000-8000-000000000018",
        "outputs": {},
        "resources": [
            {
                "mode": "managed",
                "type": resource["type"],
                "name": resource["name"],
                "provider": 'provider["registry.terraform.io/hashicorp/kubernetes"]',
                "instances": [
                    {
                        "schema_version": resource["schema_version"],
                        "attributes": {**resource["values"], "id": "coder/coder-ws-home"},
                        "sensitive_attributes": [],
                    }
                ],
            }
        ],
        "check_results": None,
    }
    (work / "terraform.tfstate").write_text(json.dumps(state))
    return work, env


def terraform(work: Path, env: dict, *args: str) -> str:
    done = subprocess.run(
        [TERRAFORM, *args, "-no-color"], cwd=work, env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return done.stdout


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(CANDIDATES))
def test_the_gate_blocks_exactly_the_volume_edits_real_terraform_plans_to_delete(applied_claim, case):
    work, env = applied_claim
    resources, deletes = CANDIDATES[case]
    (work / "main.tf").write_text(REQUIRED + resources)
    terraform(work, env, "plan", "-input=false", "-refresh=false", "-lock=false", "-out=candidate.plan")
    plan = json.loads(terraform(work, env, "show", "-json", "candidate.plan"))
    actions = {c["address"]: c["change"]["actions"] for c in plan.get("resource_changes", [])}
    planned_delete = "delete" in actions.get("kubernetes_persistent_volume_claim_v1.home", [])
    assert planned_delete is deletes, actions
    found = compare_volumes({"main.tf": ACTIVE}, {"main.tf": resources})
    assert [f.id for f in found] == (
        ["volume-replaced:kubernetes_persistent_volume_claim_v1.home"] if deletes else []
    )
