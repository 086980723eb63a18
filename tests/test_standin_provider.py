"""THE hashicorp/kubernetes stand-in (tests/standin/): its protocol answers, and real Terraform on it.

The real provider 2.38.0 cannot be built here, so ``terraform validate`` and
``terraform plan`` run against a stand-in serving our schema data.  These
tests prove it works with real Terraform (>= 1.9: ``CODERBUNDLE_TERRAFORM``,
else on PATH) and the real coder provider 2.18.0 (from
``CODERBUNDLE_PROVIDER_MIRROR``, else ``terraform-provider-coder`` on PATH),
each laid out in a filesystem mirror of its own: configurations validate and
plan, Terraform's own diagnostics catch a misspelled argument and a missing
required block, and the five rendered templates validate and plan.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

for _module, _why in (
    ("grpc", "grpcio"),
    ("grpc_tools", "grpcio-tools"),
    ("google.protobuf", "protobuf"),
    ("msgpack", "msgpack"),
    ("cryptography", "cryptography"),
):
    pytest.importorskip(_module, reason=f"the stand-in provider needs {_why} (dependency group standin)")

import grpc  # noqa: E402

from coderbundle.discover import find_templates  # noqa: E402
from coderbundle.render import render_template  # noqa: E402
from coderbundle.settings import load_settings  # noqa: E402
from standin import kubernetes_provider as installer  # noqa: E402
from standin import kubernetes_provider_server as standin  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TEMPLATES = ("docker", "go", "kubernetes", "nodejs", "python")
SCHEMA = json.loads(installer.REPO_SCHEMA.read_text())
CODER_VERSION = "2.18.0"

SMALL = """
terraform {
  required_providers {
    kubernetes = { source = "hashicorp/kubernetes", version = "~> 2.38.0" }
  }
}

provider "kubernetes" {
  config_path = "~/.kube/config"
}

resource "kubernetes_persistent_volume_claim_v1" "home" {
  metadata {
    name      = "coder-home"
    namespace = "workspaces"
  }
  spec {
    access_modes = ["ReadWriteOnce"]
    resources {
      requests = { storage = "10Gi" }
    }
  }
  wait_until_bound = false
}

resource "kubernetes_deployment_v1" "main" {
  metadata {
    name      = "coder-ws"
    namespace = "workspaces"
  }
  spec {
    replicas = 1
    selector {
      match_labels = { app = "ws" }
    }
    template {
      metadata {
        labels = { app = "ws" }
      }
      spec {
        container {
          name  = "dev"
          image = "codercom/example-base:ubuntu"
          resources {
            limits   = { cpu = "2", memory = "4Gi" }
            requests = { cpu = "250m", memory = "512Mi" }
          }
        }
        volume {
          name = "home"
          persistent_volume_claim {
            claim_name = kubernetes_persistent_volume_claim_v1.home.metadata[0].name
          }
        }
      }
    }
  }
}

output "pvc_id" {
  value = kubernetes_persistent_volume_claim_v1.home.id
}
"""


# --- installation ------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def proto():
    try:
        return installer.find_proto()
    except FileNotFoundError as exc:
        pytest.skip(f"no tfplugin6 protocol definition: {exc}")


@pytest.fixture(scope="session")
def mirror(proto, tmp_path_factory):
    root = tmp_path_factory.mktemp("mirror")
    installer.install(root, sys.executable, proto=proto)  # this interpreter has the standin group
    return root


def test_install_writes_a_labelled_standin_package(mirror):
    package = installer.package_dir(mirror)
    launcher = package / installer.BINARY
    assert package.name == "linux_amd64"
    assert launcher.relative_to(mirror).as_posix() == (
        "registry.terraform.io/hashicorp/kubernetes/2.38.0/linux_amd64/terraform-provider-kubernetes_v2.38.0"
    )
    assert os.access(launcher, os.X_OK)
    assert "STAND-IN" in launcher.read_text()
    assert "NOT the real provider" in launcher.read_text()
    provenance = json.loads((package / "STANDIN.json").read_text())
    assert provenance["standin"] is True
    assert provenance["version"] == "2.38.0"
    assert provenance["schema"] == "tools/coderbundle/data/kubernetes.json"
    assert "not the real provider" in provenance["note"]
    assert oct((package / "standin" / "server.key").stat().st_mode & 0o777) == "0o600"
    assert not list(package.parent.glob(".standin-*")), "staging directory left behind"


def test_install_fails_before_writing_on_schema_data_of_another_version(proto, tmp_path):
    bad = tmp_path / "kubernetes.json"
    bad.write_text(json.dumps({**SCHEMA, "version": "2.37.1"}))
    with pytest.raises(ValueError, match=r"2\.37\.1, not 2\.38\.0"):
        installer.install(tmp_path / "mirror", "python3", schema=bad, proto=proto)
    assert not (tmp_path / "mirror").exists()


def test_install_names_what_the_python_lacks_and_writes_nothing(proto, tmp_path):
    bare = tmp_path / "bare-python"  # this interpreter without site-packages
    bare.write_text(f"#!/bin/sh\nexec '{sys.executable}' -I -S \"$@\"\n")
    bare.chmod(0o755)
    with pytest.raises(RuntimeError, match=r"lacks grpc, google\.protobuf, msgpack, grpc_tools; install"):
        installer.install(tmp_path / "mirror", str(bare), proto=proto)
    assert not (tmp_path / "mirror").exists()


def test_install_cli_replaces_the_package_whole(mirror, tmp_path, proto):
    target = tmp_path / "m"
    argv = ["install", "--mirror", str(target), "--python", sys.executable, "--proto", str(proto)]
    assert installer.main(argv) == 0
    stray = installer.package_dir(target) / "left-over"
    stray.write_text("old")
    assert installer.main(argv) == 0
    assert not stray.exists()
    assert sorted(p.name for p in installer.package_dir(target).iterdir()) == sorted(
        p.name for p in installer.package_dir(mirror).iterdir()
    )


def test_launcher_refuses_to_run_outside_terraform(mirror):
    launcher = installer.package_dir(mirror) / installer.BINARY
    env = {k: v for k, v in os.environ.items() if k != standin.MAGIC_COOKIE_KEY}
    proc = subprocess.run([launcher], capture_output=True, text=True, env=env, check=False, timeout=30)
    assert proc.returncode == 1
    assert "Terraform starts it" in proc.stderr
    assert "stand-in" in proc.stderr


def _running(pid):
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def test_launcher_serves_and_exits_when_terraform_dies(mirror, tmp_path):
    launcher = installer.package_dir(mirror) / installer.BINARY
    env = {
        **os.environ,
        standin.MAGIC_COOKIE_KEY: standin.MAGIC_COOKIE_VALUE,
        "PLUGIN_PROTOCOL_VERSIONS": "5,6",
    }
    env["PLUGIN_CLIENT_CERT"] = (installer.package_dir(mirror) / "standin" / "server.pem").read_text()
    handshake = tmp_path / "handshake"
    handshake.touch()
    # A parent that starts the plugin, waits for its handshake and dies, as a killed Terraform would.
    script = f"'{launcher}' > '{handshake}' 2>/dev/null & echo $!; read -r _"
    with subprocess.Popen(
        ["sh", "-c", script], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE
    ) as parent:
        pid = int(parent.stdout.readline())
        deadline = time.monotonic() + 30
        while not handshake.read_text() and time.monotonic() < deadline:
            time.sleep(0.05)
        parent.communicate(b"\n", timeout=10)
    fields = handshake.read_text().strip().split("|")
    assert fields[:3] == ["1", "6", "tcp"]
    assert fields[3].startswith("127.0.0.1:")
    assert fields[4] == "grpc"
    assert len(fields[5]) > 50  # the server certificate, base64 DER without padding
    assert "=" not in fields[5]
    try:
        while _running(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _running(pid), "the stand-in outlived its parent"
    finally:
        if _running(pid):
            os.kill(pid, signal.SIGKILL)


# --- the protocol, in process --------------------------------------------------------------------


@pytest.fixture(scope="module")
def stubs(mirror):
    return standin.load_stubs(installer.package_dir(mirror) / "standin" / "stubs")


@pytest.fixture(scope="module")
def provider(stubs):
    pb, pb_grpc = stubs
    from concurrent import futures  # noqa: PLC0415

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    servicer = standin.make_servicer(pb, pb_grpc, standin.Schema.load(installer.REPO_SCHEMA))
    pb_grpc.add_ProviderServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    yield pb, pb_grpc.ProviderStub(channel)
    channel.close()
    server.stop(0)


def _block(schema_block):
    return (
        {a.name: a for a in schema_block.attributes},
        {b.type_name: b for b in schema_block.block_types},
    )


def test_schema_serves_every_resource_and_data_source_of_the_data(provider):
    pb, client = provider
    resp = client.GetProviderSchema(pb.GetProviderSchema.Request())
    assert sorted(resp.resource_schemas) == sorted(SCHEMA["resources"])
    assert sorted(resp.data_source_schemas) == sorted(SCHEMA["data"])
    assert resp.server_capabilities.get_provider_schema_optional
    assert not resp.diagnostics


def test_schema_blocks_attributes_and_types_follow_the_data(provider):
    pb, client = provider
    resp = client.GetProviderSchema(pb.GetProviderSchema.Request())
    attrs, blocks = _block(resp.resource_schemas["kubernetes_deployment_v1"].block)
    assert attrs["id"].optional
    assert attrs["id"].computed
    assert json.loads(attrs["wait_for_rollout"].type) == "bool"
    assert not attrs["wait_for_rollout"].computed
    meta = blocks["metadata"]
    assert (meta.nesting, meta.min_items, meta.max_items) == (pb.Schema.NestedBlock.LIST, 1, 1)
    assert blocks["timeouts"].min_items == 0
    meta_attrs, _ = _block(meta.block)
    assert json.loads(meta_attrs["labels"].type) == ["map", "string"]
    assert not any(a.computed for a in meta_attrs.values())  # only the top-level id is computed
    _, spec_blocks = _block(blocks["spec"].block)
    _, template_blocks = _block(spec_blocks["template"].block)
    _, pod_blocks = _block(template_blocks["spec"].block)
    container = pod_blocks["container"]
    assert (container.min_items, container.max_items) == (0, 0)  # as the data has it: any number
    container_attrs, _ = _block(container.block)
    assert container_attrs["name"].required
    assert json.loads(container_attrs["args"].type) == ["list", "string"]


def _same(block, node, where):
    """The served block says exactly what the data node says, all the way down."""
    attrs, blocks = _block(block)
    assert sorted(attrs) == sorted(node.get("a", {})), where
    assert sorted(blocks) == sorted(node.get("b", {})), where
    required = set(node.get("r", ()))
    for name, attr in attrs.items():
        assert json.loads(attr.type) == standin.parse_type(node["a"][name]), f"{where}.{name}"
        assert (attr.required, attr.optional) == (name in required, name not in required), f"{where}.{name}"
    for name, nested in blocks.items():
        child, min_items, max_items = node["b"][name]
        assert (nested.min_items, nested.max_items) == (min_items, max_items), f"{where}.{name}"
        _same(nested.block, SCHEMA["nodes"][child], f"{where}.{name}")


def test_every_served_schema_matches_the_data(provider):
    pb, client = provider
    resp = client.GetProviderSchema(pb.GetProviderSchema.Request())
    for kind, served in (("resources", resp.resource_schemas), ("data", resp.data_source_schemas)):
        for name, node_id in SCHEMA[kind].items():
            _same(served[name].block, SCHEMA["nodes"][node_id], name)


def test_schema_has_the_real_provider_arguments(provider):
    pb, client = provider
    resp = client.GetProviderSchema(pb.GetProviderSchema.Request())
    attrs, blocks = _block(resp.provider.block)
    for name in ("config_path", "config_context", "host", "token", "cluster_ca_certificate"):
        assert attrs[name].optional
        assert json.loads(attrs[name].type) == "string"
    assert json.loads(attrs["config_paths"].type) == ["list", "string"]
    exec_attrs, _ = _block(blocks["exec"].block)
    assert exec_attrs["command"].required
    assert blocks["exec"].max_items == 1


def _object(schema, type_name, **values):
    """An object of the resource's type with every attribute, ``values`` set."""
    _, attrs = schema.object_type(schema.node(type_name))
    return {name: values.get(name) for name in attrs}


def test_plan_create_marks_id_unknown_and_keeps_the_config(provider):
    pb, client = provider
    schema = standin.Schema.load(installer.REPO_SCHEMA)
    proposed = _object(schema, "kubernetes_namespace_v1", metadata=[_object_meta(schema, name="ws")])
    resp = client.PlanResourceChange(
        pb.PlanResourceChange.Request(
            type_name="kubernetes_namespace_v1",
            prior_state=pb.DynamicValue(msgpack=standin.encode(None)),
            proposed_new_state=pb.DynamicValue(msgpack=standin.encode(proposed)),
            config=pb.DynamicValue(msgpack=standin.encode(proposed)),
        )
    )
    assert not resp.diagnostics
    planned = standin.decode(resp.planned_state.msgpack)
    assert planned["id"] is standin.UNKNOWN
    assert planned["metadata"][0]["name"] == "ws"
    # cty's msgpack for a wholly unknown value
    assert b"\xd4\x00\x00" in resp.planned_state.msgpack


def _object_meta(schema, **values):
    node = schema.nodes[schema.node("kubernetes_namespace_v1")["b"]["metadata"][0]]
    return {name: values.get(name) for name in node["a"]}


def test_plan_update_keeps_the_id_and_delete_plans_null(provider):
    pb, client = provider
    schema = standin.Schema.load(installer.REPO_SCHEMA)
    prior = _object(schema, "kubernetes_namespace_v1", id="ws")
    prior["metadata"] = [_object_meta(schema, name="ws")]
    proposed = {**prior, "id": None, "metadata": [_object_meta(schema, name="ws", labels={"a": "b"})]}

    def plan(new):
        return client.PlanResourceChange(
            pb.PlanResourceChange.Request(
                type_name="kubernetes_namespace_v1",
                prior_state=pb.DynamicValue(msgpack=standin.encode(prior)),
                proposed_new_state=pb.DynamicValue(msgpack=standin.encode(new)),
                config=pb.DynamicValue(msgpack=standin.encode(new)),
            )
        )

    updated = standin.decode(plan(proposed).planned_state.msgpack)
    assert updated["id"] == "ws"
    assert updated["metadata"][0]["labels"] == {"a": "b"}
    assert standin.decode(plan(None).planned_state.msgpack) is None


def test_upgrade_state_fills_every_attribute(provider):
    pb, client = provider
    raw = json.dumps({"id": "ws/home", "metadata": [{"name": "home", "namespace": "ws"}]}).encode()
    resp = client.UpgradeResourceState(
        pb.UpgradeResourceState.Request(
            type_name="kubernetes_persistent_volume_claim_v1", raw_state=pb.RawState(json=raw)
        )
    )
    assert not resp.diagnostics
    state = standin.decode(resp.upgraded_state.msgpack)
    assert state["id"] == "ws/home"
    assert state["spec"] is None
    assert state["metadata"][0]["labels"] is None
    assert state["metadata"][0]["name"] == "home"


def test_apply_import_and_data_reads_refuse_saying_it_is_a_standin(provider):
    pb, client = provider
    answers = [
        client.ApplyResourceChange(pb.ApplyResourceChange.Request(type_name="kubernetes_namespace_v1")),
        client.ImportResourceState(
            pb.ImportResourceState.Request(type_name="kubernetes_namespace_v1", id="x")
        ),
        client.ReadDataSource(pb.ReadDataSource.Request(type_name="kubernetes_namespace_v1")),
    ]
    for resp in answers:
        (diag,) = resp.diagnostics
        assert diag.severity == pb.Diagnostic.ERROR
        assert "stand-in" in diag.summary
        assert "not the real provider" in diag.detail


def test_metadata_lists_the_types_and_stop_answers(provider):
    pb, client = provider
    meta = client.GetMetadata(pb.GetMetadata.Request())
    assert sorted(r.type_name for r in meta.resources) == sorted(SCHEMA["resources"])
    assert sorted(d.type_name for d in meta.data_sources) == sorted(SCHEMA["data"])
    assert not client.GetFunctions(pb.GetFunctions.Request()).functions
    assert client.StopProvider(pb.StopProvider.Request()).Error == ""


def test_unknown_resource_type_is_an_error(provider):
    pb, client = provider
    resp = client.ValidateResourceConfig(pb.ValidateResourceConfig.Request(type_name="kubernetes_nope_v1"))
    (diag,) = resp.diagnostics
    assert "kubernetes_nope_v1" in diag.summary


def test_value_from_json_handles_dynamic_values():
    ty = standin.parse_type("map(any)")
    assert ty == "dynamic"
    value = standin.value_from_json({"type": ["object", {"a": "string"}], "value": {"a": "b"}}, ty)
    assert value == [b'["object", {"a": "string"}]', {"a": "b"}]


# --- real Terraform --------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def terraform():
    path = os.environ.get("CODERBUNDLE_TERRAFORM") or shutil.which("terraform")
    if path is None:
        pytest.skip("terraform is not installed (neither CODERBUNDLE_TERRAFORM nor terraform on PATH)")
    version = json.loads(subprocess.run([path, "version", "-json"], capture_output=True, check=True).stdout)
    major, minor = (int(x) for x in version["terraform_version"].split(".")[:2])
    if (major, minor) < (1, 9):
        pytest.skip(f"terraform {version['terraform_version']} is older than 1.9")
    return path


def coder_provider():
    """The real coder provider binary: from scripts/build_tools.py's mirror, else on PATH."""
    mirror = os.environ.get("CODERBUNDLE_PROVIDER_MIRROR")
    if mirror:
        built = Path(mirror, "registry.terraform.io/coder/coder", CODER_VERSION, "linux_amd64")
        binary = built / f"terraform-provider-coder_v{CODER_VERSION}"
        if binary.is_file():
            return str(binary)
    return shutil.which("terraform-provider-coder")


@pytest.fixture(scope="session")
def tf_env(mirror, tmp_path_factory):
    coder = coder_provider()
    if coder:
        package = mirror / "registry.terraform.io" / "coder" / "coder" / CODER_VERSION / "linux_amd64"
        package.mkdir(parents=True, exist_ok=True)
        shutil.copy2(coder, package / f"terraform-provider-coder_v{CODER_VERSION}")
    rc = tmp_path_factory.mktemp("tfrc") / "terraform.rc"
    rc.write_text(f'provider_installation {{\n  filesystem_mirror {{\n    path = "{mirror}"\n  }}\n}}\n')
    return {
        **os.environ,
        "TF_CLI_CONFIG_FILE": str(rc),
        "TF_IN_AUTOMATION": "1",
        "CHECKPOINT_DISABLE": "1",
        "TF_INPUT": "0",
        "HOME": str(rc.parent),
    }


def tf(terraform, env, cwd, *args, check=True):
    proc = subprocess.run(
        [terraform, *args, "-no-color"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if check:
        assert proc.returncode == 0, f"terraform {args[0]} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc


@pytest.fixture
def small(terraform, tf_env, tmp_path):
    (tmp_path / "main.tf").write_text(SMALL)
    tf(terraform, tf_env, tmp_path, "init")
    return tmp_path


def _files(directory):
    return sorted(str(p.relative_to(directory)) for p in directory.rglob("*"))


@pytest.mark.terraform
def test_init_and_validate_pass_on_deployment_and_claim(terraform, tf_env, small, mirror):
    before = _files(installer.package_dir(mirror))
    proc = tf(terraform, {**tf_env, "TF_LOG": "debug"}, small, "validate")
    assert "Success! The configuration is valid." in proc.stdout
    # Terraform stops it through plugin.GRPCController/Shutdown, not by killing it after 2 s.
    assert "plugin exited" in proc.stderr
    assert "plugin failed to exit gracefully" not in proc.stderr
    lock = (small / ".terraform.lock.hcl").read_text()
    assert 'provider "registry.terraform.io/hashicorp/kubernetes"' in lock
    assert 'version     = "2.38.0"' in lock
    assert _files(installer.package_dir(mirror)) == before, "running the stand-in changed its package"


@pytest.mark.terraform
def test_validate_without_plugin_tls(terraform, tf_env, small):
    # TF_DISABLE_PLUGIN_TLS: Terraform sends no client certificate; the stand-in serves plain gRPC.
    proc = tf(terraform, {**tf_env, "TF_DISABLE_PLUGIN_TLS": "1"}, small, "validate")
    assert "Success! The configuration is valid." in proc.stdout


@pytest.mark.terraform
def test_validate_reports_a_misspelled_argument(terraform, tf_env, small):
    main = small / "main.tf"
    main.write_text(main.read_text().replace('image = "codercom', 'imagee = "codercom'))
    proc = tf(terraform, tf_env, small, "validate", check=False)
    assert proc.returncode == 1
    assert "Error: Unsupported argument" in proc.stderr
    assert 'An argument named "imagee" is not expected here. Did you mean "image"?' in proc.stderr


@pytest.mark.terraform
def test_validate_reports_a_missing_required_block(terraform, tf_env, small):
    main = small / "main.tf"
    text = main.read_text()
    start = text.index('resource "kubernetes_persistent_volume_claim_v1"')
    spec = text.index("  spec {", start)
    end = text.index("\n  }\n", spec) + len("\n  }\n")
    main.write_text(text[:spec] + text[end:])
    proc = tf(terraform, tf_env, small, "validate", check=False)
    assert proc.returncode == 1
    assert "Error: Insufficient spec blocks" in proc.stderr
    assert 'At least 1 "spec" blocks are required.' in proc.stderr


@pytest.mark.terraform
def test_plan_gives_configured_values_and_unknown_ids(terraform, tf_env, small):
    tf(terraform, tf_env, small, "plan", "-out=plan.bin")
    show = json.loads(tf(terraform, tf_env, small, "show", "-json", "plan.bin").stdout)
    changes = {c["address"]: c["change"] for c in show["resource_changes"]}
    assert sorted(changes) == ["kubernetes_deployment_v1.main", "kubernetes_persistent_volume_claim_v1.home"]
    for change in changes.values():
        assert change["actions"] == ["create"]
        assert change["after_unknown"]["id"] is True
        assert "id" not in change["after"]
    pvc = changes["kubernetes_persistent_volume_claim_v1.home"]["after"]
    assert pvc["metadata"][0]["name"] == "coder-home"
    assert pvc["spec"][0]["resources"][0]["requests"] == {"storage": "10Gi"}
    assert pvc["wait_until_bound"] is False
    deployment = changes["kubernetes_deployment_v1.main"]["after"]
    container = deployment["spec"][0]["template"][0]["spec"][0]["container"][0]
    assert container["resources"][0]["limits"] == {"cpu": "2", "memory": "4Gi"}
    assert container["resources"][0]["requests"] == {"cpu": "250m", "memory": "512Mi"}
    volume = deployment["spec"][0]["template"][0]["spec"][0]["volume"][0]
    assert volume["persistent_volume_claim"][0]["claim_name"] == "coder-home"  # known: set in config
    assert show["planned_values"]["outputs"]["pvc_id"].get("value") is None  # known after apply


EXISTING = """
terraform {
  required_providers {
    kubernetes = { source = "hashicorp/kubernetes", version = "~> 2.38.0" }
  }
}

resource "kubernetes_namespace_v1" "ws" {
  metadata {
    name   = "ws"
    labels = { team = "platform" }
  }
}
"""


def _state_resource(type_name, name, attributes):
    return {
        "mode": "managed",
        "type": type_name,
        "name": name,
        "provider": 'provider["registry.terraform.io/hashicorp/kubernetes"]',
        "instances": [{"schema_version": 0, "attributes": attributes, "sensitive_attributes": []}],
    }


@pytest.mark.terraform
def test_plan_updates_and_deletes_objects_from_existing_state(terraform, tf_env, tmp_path):
    (tmp_path / "main.tf").write_text(EXISTING)
    state = {
        "version": 4,
        "terraform_version": "1.9.8",
        "serial": 1,
        "lineage": "5e0f7c1a-0000-4000-8000-000000000001",
        "outputs": {},
        "resources": [
            _state_resource(
                "kubernetes_namespace_v1",
                "ws",
                {"id": "ws", "metadata": [{"name": "ws", "labels": {"team": "apps"}}], "timeouts": []},
            ),
            _state_resource(
                "kubernetes_config_map_v1",
                "gone",
                {"id": "ws/gone", "metadata": [{"name": "gone", "namespace": "ws"}], "data": {"a": "b"}},
            ),
        ],
    }
    (tmp_path / "terraform.tfstate").write_text(json.dumps(state))
    tf(terraform, tf_env, tmp_path, "init")
    tf(terraform, tf_env, tmp_path, "plan", "-out=plan.bin")  # UpgradeResourceState, ReadResource, plan
    show = json.loads(tf(terraform, tf_env, tmp_path, "show", "-json", "plan.bin").stdout)
    changes = {c["address"]: c["change"] for c in show["resource_changes"]}
    ws = changes["kubernetes_namespace_v1.ws"]
    assert ws["actions"] == ["update"]
    assert ws["before"]["metadata"][0]["labels"] == {"team": "apps"}
    assert ws["after"]["metadata"][0]["labels"] == {"team": "platform"}
    assert ws["after"]["id"] == "ws"  # an existing object keeps its id
    assert changes["kubernetes_config_map_v1.gone"]["actions"] == ["delete"]


# --- the rendered templates ----------------------------------------------------------------------

_MODULE_BLOCK = re.compile(r'^module "[^"]+" \{\n.*?^\}\n', re.MULTILINE | re.DOTALL)
_MODULE_REF = re.compile(r"module\.[\w-]+(?:\[\d+\])?\.\w+")


def without_modules(text: str) -> str:
    """The template minus its registry modules (unreachable here), their outputs read as ""."""
    return _MODULE_REF.sub('""', _MODULE_BLOCK.sub("", text))


@pytest.fixture(scope="module")
def templates(terraform, tf_env, tmp_path_factory):
    if not coder_provider():
        pytest.skip(
            "the real coder provider is missing "
            "(neither CODERBUNDLE_PROVIDER_MIRROR nor terraform-provider-coder on PATH)"
        )
    settings = load_settings(ROOT, {})
    out = tmp_path_factory.mktemp("rendered")
    work = {}
    for template in find_templates(settings.templates_dir, TEMPLATES):
        rendered = render_template(template, settings, out)
        text = (rendered.path / "main.tf").read_text()
        assert _MODULE_BLOCK.search(text), f"{template.name}: expected registry modules to strip"
        folder = tmp_path_factory.mktemp(template.name)
        (folder / "main.tf").write_text(without_modules(text))
        tf(terraform, tf_env, folder, "init")
        work[template.name] = folder
    return work


@pytest.mark.terraform
@pytest.mark.slow
@pytest.mark.parametrize("name", TEMPLATES)
def test_rendered_template_validates_and_plans(terraform, tf_env, templates, name):
    folder = templates[name]
    assert "Success!" in tf(terraform, tf_env, folder, "validate").stdout
    tf(terraform, tf_env, folder, "plan", "-out=plan.bin")
    show = json.loads(tf(terraform, tf_env, folder, "show", "-json", "plan.bin").stdout)
    kube = [c for c in show["resource_changes"] if c["type"].startswith("kubernetes_")]
    assert kube, f"{name}: no kubernetes resource planned"
    for change in kube:
        assert change["change"]["actions"] == ["create"], change["address"]
        assert change["change"]["after_unknown"]["id"] is True, change["address"]
        assert change["change"]["after"]["metadata"][0]["name"], change["address"]
