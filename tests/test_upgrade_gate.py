"""The upgrade gate's comparisons on their own (the real server's extraction: test_publish_real.py)."""

from __future__ import annotations

import io
import tarfile

import pytest

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
