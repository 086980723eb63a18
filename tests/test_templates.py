"""The five workspace templates, rendered and parsed: their wiring, not their text."""

from __future__ import annotations

import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest
import yaml

from coderbundle.discover import find_templates
from coderbundle.hcl import Block, literal, parse_file, references
from coderbundle.render import load_versions, render_template
from coderbundle.settings import load_settings

ROOT = Path(__file__).resolve().parents[1]
TEMPLATES = ("docker", "go", "kubernetes", "nodejs", "python")
START_COUNT = "data.coder_workspace.me.start_count"
AI_AGENTS = {"claude-code": "claude-code", "goose": "goose", "aider": "aider", "copilot": "copilot"}


@pytest.fixture(scope="module")
def settings():
    return load_settings(ROOT, {})


@pytest.fixture(scope="module")
def rendered(settings, tmp_path_factory):
    out = tmp_path_factory.mktemp("templates")
    return {
        t.name: render_template(t, settings, out) for t in find_templates(settings.templates_dir, TEMPLATES)
    }


@pytest.fixture(scope="module")
def trees(rendered):
    return {name: parse_file(r.path / "main.tf") for name, r in rendered.items()}


@pytest.fixture(params=TEMPLATES)
def tree(request, trees) -> Block:
    return trees[request.param]


def find(root: Block, kind: str, *labels: str) -> list[Block]:
    """Top-level blocks of one kind whose labels start with ``labels``."""
    return [b for b in root.blocks if b.type == kind and b.labels[: len(labels)] == labels]


def one(root: Block, kind: str, *labels: str) -> Block:
    (block,) = find(root, kind, *labels)
    return block


def deployment(root: Block) -> Block:
    return one(root, "resource", "kubernetes_deployment_v1", "main")


def pod_spec(root: Block) -> Block:
    spec = deployment(root).child("spec", "template", "spec")
    assert spec is not None
    return spec


def dev_container(root: Block) -> Block:
    (dev,) = [c for c in pod_spec(root).children("container") if literal(c.get("name")) == "dev"]
    return dev


def parameters(root: Block) -> dict[str, Block]:
    return {b.labels[1]: b for b in find(root, "data", "coder_parameter")}


def count_of(block: Block) -> str:
    return str(block.get("count", ""))


def test_every_template_renders_main_tf_and_readme(rendered):
    assert sorted(rendered) == sorted(TEMPLATES)
    for r in rendered.values():
        assert {"main.tf", "README.md"} <= set(r.files)


def test_agent_token_and_init_script_reach_the_container(tree):
    dev = dev_container(tree)
    assert dev.get("command") == ['"sh"', '"-c"', "${coder_agent.main.init_script}"]
    env = {literal(e.get("name")): e.get("value") for e in dev.children("env")}
    assert env["CODER_AGENT_TOKEN"] == "${coder_agent.main.token}"  # noqa: S105 - a reference
    assert literal(dev.get("image")) == "${var.image}"
    agent = one(tree, "resource", "coder_agent", "main")
    assert agent.get("arch") == "${data.coder_provisioner.me.arch}"


def test_start_count_is_on_compute_only(tree):
    dep = deployment(tree)
    assert count_of(dep) == "${" + START_COUNT + "}"
    assert dep.get("wait_for_rollout") is False
    assert literal(dep.child("spec", "strategy").get("type")) == "Recreate"
    for block in find(tree, "resource"):
        if block.labels[0].startswith("kubernetes_") and block is not dep:
            assert START_COUNT not in count_of(block), block.address
    # Modules come and go with the workspace's compute.
    for module in find(tree, "module"):
        assert START_COUNT in count_of(module), module.address


def test_home_volume_persists_and_is_mounted(tree):
    pvc = one(tree, "resource", "kubernetes_persistent_volume_claim_v1", "home")
    assert pvc.get("count") is None
    assert literal(pvc.child("metadata").get("name")) == "coder-${data.coder_workspace.me.id}-home"
    assert pvc.child("lifecycle").get("ignore_changes") == "all"
    assert pvc.get("wait_until_bound") is False
    mounts = {
        literal(m.get("mount_path")): literal(m.get("name"))
        for m in dev_container(tree).children("volume_mount")
    }
    assert mounts["/home/coder"] == "home"
    (home,) = [v for v in pod_spec(tree).children("volume") if literal(v.get("name")) == "home"]
    claim = home.child("persistent_volume_claim").get("claim_name")
    assert "kubernetes_persistent_volume_claim_v1.home" in references(claim)


def test_pod_runs_as_uid_1000_with_labels_and_soft_anti_affinity(tree):
    spec = pod_spec(tree)
    sc = spec.child("security_context")
    assert (sc.get("run_as_user"), sc.get("fs_group"), sc.get("run_as_non_root")) == (1000, 1000, True)
    dep = deployment(tree)
    assert dep.child("metadata").get("labels") == "${local.labels}"
    assert dep.child("spec", "selector").get("match_labels") == "${local.selector_labels}"
    assert dep.child("metadata").get("annotations") == "${local.annotations}"
    anti = spec.child("affinity", "pod_anti_affinity")
    assert anti.children("preferred_during_scheduling_ignored_during_execution")
    assert not anti.children("required_during_scheduling_ignored_during_execution")
    (local_block,) = [b for b in find(tree, "locals") if "labels" in b.attributes]
    labels = str(local_block.get("labels"))
    for key in ("app.kubernetes.io/part-of", "com.coder.workspace.id", "com.coder.user.id"):
        assert key in labels


def _valid(param: Block, value: str) -> bool:
    options = [literal(o.get("value")) for o in param.children("option")]
    if options:
        return value in options
    validation = param.child("validation")
    if validation is not None and literal(param.get("type")) == "number":
        low, high = validation.get("min"), validation.get("max")
        return (low is None or low <= int(value)) and (high is None or int(value) <= high)
    return True


def test_parameters_are_described_ordered_and_defaults_valid(tree):
    params = parameters(tree)
    orders = [p.get("order") for p in params.values()]
    assert len(orders) == len(set(orders))
    for name, p in params.items():
        assert literal(p.get("name")) == name
        for attr in ("display_name", "description", "icon", "order", "default"):
            assert p.get(attr) is not None, f"{name}.{attr}"
        assert _valid(p, literal(p.get("default"))), name
        if p.child("validation") is not None and p.child("validation").get("regex"):
            assert p.child("validation").get("error")
    # A volume cannot shrink: sizes are fixed at creation.
    for name in ("home_disk_size", "docker_disk_size"):
        if name in params:
            assert params[name].get("mutable") is False


def test_presets_have_one_default_and_valid_values(tree):
    params = parameters(tree)
    presets = find(tree, "data", "coder_workspace_preset")
    assert len(presets) >= 3
    assert [p.get("default") for p in presets].count(True) == 1
    for preset in presets:
        for key, value in preset.get("parameters").items():
            name = literal(key)
            assert name in params, f"{preset.address}: unknown parameter {name}"
            assert _valid(params[name], literal(value)), f"{preset.address}: {name}={value}"


def test_each_ai_agent_is_present_and_gated_by_its_choice(tree):
    # GitHub Copilot CLI needs Node.js >= 22: only the nodejs image ships it.
    has_node = Path(tree.file).parent.name == "nodejs"
    agents = {c: m for c, m in AI_AGENTS.items() if c != "copilot" or has_node}
    params = parameters(tree)
    choices = {literal(o.get("value")) for o in params["ai_agent"].children("option")}
    assert choices == {"none", *agents}
    assert literal(params["ai_agent"].get("default")) == "none"
    (ai_locals,) = [b for b in find(tree, "locals") if "ai_agent" in b.attributes]
    assert ai_locals.get("ai_agent") == "${data.coder_parameter.ai_agent.value}"
    for choice, module_name in agents.items():
        module = one(tree, "module", module_name)
        assert f'local.ai_agent == "{choice}"' in count_of(module)
    assert bool(find(tree, "module", "copilot")) == has_node
    for name in ("claude-code", "copilot") if has_node else ("claude-code",):
        assert one(tree, "module", name).get("report_tasks") is False
    assert "data.coder_parameter.cursor" in references(one(tree, "module", "cursor").get("count"))
    # Coder Tasks is gone from Coder 2.37: no task resources.
    assert not find(tree, "resource", "coder_ai_task")
    assert not find(tree, "data", "coder_task")


def test_api_keys_are_sensitive_variables_from_template_toml(tree):
    name = Path(tree.file).parent.name
    declared = tomllib.loads((ROOT / "templates" / name / "template.toml").read_text())
    variables = {b.labels[0]: b for b in find(tree, "variable")}
    assert {"image", "namespace", "use_kubeconfig"} <= set(variables)
    for var_name in declared.get("variables", {}):
        assert var_name in variables, var_name
    for var_name, block in variables.items():
        if var_name.endswith(("_key", "_token")):
            assert block.get("sensitive") is True
            assert literal(block.get("default")) == ""


def test_git_clone_and_gitlab_auth(tree):
    auth = one(tree, "data", "coder_external_auth", "gitlab")
    assert literal(auth.get("id")) == "gitlab"
    assert auth.get("optional") is True
    clone = one(tree, "module", "git-clone")
    assert "data.coder_parameter.repo_url" in references(clone.get("count"))
    assert clone.get("url") == "${data.coder_parameter.repo_url.value}"
    assert find(tree, "module", "dotfiles")


def test_providers_and_modules_are_pinned_from_versions_toml(tree):
    versions = load_versions(ROOT / "templates")
    tf = tree.child("terraform")
    assert literal(tf.get("required_version")) == versions["terraform"]["required_version"]
    providers = tf.child("required_providers").attributes
    for name in ("coder", "kubernetes"):
        pinned = versions["providers"][name]
        got = {k: literal(v) for k, v in providers[name].value.items()}
        assert got == {"source": pinned["source"], "version": pinned["version"]}
    by_source = {m["source"]: m["version"] for m in versions["modules"].values()}
    for module in find(tree, "module"):
        source = literal(module.get("source"))
        assert by_source.get(source) == literal(module.get("version")), module.address


def test_readme_has_frontmatter_and_one_h1(rendered):
    for r in rendered.values():
        text = (r.path / "README.md").read_text()
        _, front, body = text.split("---\n", 2)
        meta = yaml.safe_load(front)
        assert {"display_name", "description", "icon", "tags"} <= set(meta)
        assert meta["icon"].startswith("/icon/")
        assert len(meta.get("agent_description", "")) <= 2048
        assert len(re.findall(r"^# ", body, flags=re.MULTILINE)) == 1


def test_only_the_kubernetes_template_mounts_a_service_account_token(trees):
    for name, root in trees.items():
        spec = pod_spec(root)
        if name == "kubernetes":
            assert spec.get("automount_service_account_token") is True
            assert "kubernetes_service_account_v1.workspace" in references(spec.get("service_account_name"))
        else:
            assert spec.get("automount_service_account_token") is False


def test_kubernetes_rbac_lives_as_long_as_the_workspace(trees):
    root = trees["kubernetes"]
    for kind in ("kubernetes_service_account_v1", "kubernetes_role_binding_v1"):
        assert one(root, "resource", kind, "workspace").get("count") is None
    binding = one(root, "resource", "kubernetes_role_binding_v1", "workspace")
    assert binding.child("metadata").get("namespace") == "${local.workload_namespace}"
    subject = binding.child("subject")
    assert literal(subject.get("kind")) == "ServiceAccount"
    assert subject.get("namespace") == "${var.namespace}"
    assert binding.child("lifecycle", "precondition") is not None
    namespace = one(root, "resource", "kubernetes_namespace_v1", "workload")
    assert START_COUNT not in count_of(namespace)


def test_kubernetes_binds_the_chart_developer_cluster_role(trees):
    root = trees["kubernetes"]
    # No Role of its own: creating one would need the provisioner to hold all its rights.
    assert find(root, "resource", "kubernetes_role_v1") == []
    assert find(root, "resource", "kubernetes_cluster_role_v1") == []
    assert find(root, "resource", "kubernetes_cluster_role_binding_v1") == []
    ref = one(root, "resource", "kubernetes_role_binding_v1", "workspace").child("role_ref")
    assert literal(ref.get("kind")) == "ClusterRole"
    assert literal(ref.get("api_group")) == "rbac.authorization.k8s.io"
    assert ref.get("name") == "${var.developer_cluster_role}"
    variable = one(root, "variable", "developer_cluster_role")
    assert variable.get("type") == "string"
    assert variable.get("description")
    # The chart's default name (chart/values.yaml, rbac.workloadNamespaces.developerClusterRole).
    assert literal(variable.get("default")) == "coder-workspace-developer"


def test_docker_defaults_to_sysbox_with_a_marked_dind_sidecar(trees):
    root = trees["docker"]
    mode = one(root, "variable", "docker_mode")
    assert literal(mode.get("default")) == "sysbox"
    spec = pod_spec(root)
    assert '"sysbox-runc"' in spec.get("runtime_class_name")
    annotations = deployment(root).child("spec", "template", "metadata").get("annotations")
    assert "local.sysbox_annotations" in references(annotations)
    (sidecar,) = spec.children("dynamic")
    assert 'var.docker_mode == "dind"' in sidecar.get("for_each")
    assert sidecar.child("content", "security_context").get("privileged") is True
    env = one(root, "resource", "coder_env", "docker_host")
    assert literal(env.get("name")) == "DOCKER_HOST"
    docker_pvc = one(root, "resource", "kubernetes_persistent_volume_claim_v1", "docker")
    assert docker_pvc.get("count") is None
    mounts = {literal(m.get("mount_path")) for m in dev_container(root).children("volume_mount")}
    assert "/var/lib/docker" in mounts


def test_language_specifics(trees):
    envs = {
        name: {literal(e.get("name")): literal(e.get("value")) for e in find(root, "resource", "coder_env")}
        for name, root in trees.items()
    }
    assert envs["go"]["GOPATH"] == "/home/coder/go"
    assert envs["go"]["GOMODCACHE"].startswith("/home/coder/")
    assert envs["go"]["GOCACHE"].startswith("/home/coder/")
    node = parameters(trees["nodejs"])["node_version"]
    assert {"22", "24"} <= {literal(o.get("value")) for o in node.children("option")}
    app = one(trees["nodejs"], "resource", "coder_app", "dev-server")
    assert "data.coder_parameter.dev_server_port" in references(app.get("url"))
    jupyter = one(trees["python"], "module", "jupyterlab")
    assert "data.coder_parameter.jupyter" in references(jupyter.get("count"))


def test_render_is_byte_identical(settings, rendered, tmp_path):
    for template in find_templates(settings.templates_dir, TEMPLATES):
        again = render_template(template, settings, tmp_path)
        assert again.digest == rendered[template.name].digest, template.name


@pytest.mark.terraform
@pytest.mark.skipif(shutil.which("terraform") is None, reason="terraform is not installed")
def test_rendered_terraform_is_fmt_clean(rendered):
    folder = next(iter(rendered.values())).path.parent
    result = subprocess.run(
        ["terraform", "fmt", "-check", "-diff", "-recursive", str(folder)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout
