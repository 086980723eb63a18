"""The five workspace templates, rendered and parsed: their wiring, not their text."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import textwrap
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
# What the Coder agent starts with: the image's PATH.
IMAGE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


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
    # Every image ships Node.js >= 22, so GitHub Copilot is offered everywhere.
    params = parameters(tree)
    choices = {literal(o.get("value")) for o in params["ai_agent"].children("option")}
    assert choices == {"none", *AI_AGENTS}
    assert literal(params["ai_agent"].get("default")) == "none"
    (ai_locals,) = [b for b in find(tree, "locals") if "ai_agent" in b.attributes]
    assert ai_locals.get("ai_agent") == "${data.coder_parameter.ai_agent.value}"
    for choice, module_name in AI_AGENTS.items():
        module = one(tree, "module", module_name)
        assert f'local.ai_agent == "{choice}"' in count_of(module)
    for name in ("claude-code", "copilot"):
        assert one(tree, "module", name).get("report_tasks") is False
    assert "data.coder_parameter.cursor" in references(one(tree, "module", "cursor").get("count"))
    # Coder Tasks is gone from Coder 2.37: no task resources.
    assert not find(tree, "resource", "coder_ai_task")
    assert not find(tree, "data", "coder_task")


def test_every_seed_agent_is_offered_in_every_template(trees):
    # The original chart README promises Claude Code, Goose, Aider, Cursor and Copilot.
    for name, root in trees.items():
        choices = {literal(o.get("value")) for o in parameters(root)["ai_agent"].children("option")}
        assert {"claude-code", "goose", "aider", "copilot"} <= choices, name
        assert find(root, "module", "cursor"), name
        assert find(root, "module", "copilot"), name


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
    auth = one(tree, "data", "coder_external_auth", "git")
    assert literal(auth.get("id")) == "gitlab"  # bundle.toml [coder] external_auth, as the chart
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
    # Its own namespace: the developer role; a shared workload namespace: the shared one
    # (tests/test_plantest.py plans both).
    assert ref.get("name") == (
        '${var.workload_namespace != "" ? var.shared_developer_cluster_role : var.developer_cluster_role}'
    )
    # The chart's default names (chart/values.yaml, rbac.workloadNamespaces.*ClusterRole).
    for name, default in (
        ("developer_cluster_role", "coder-workspace-developer"),
        ("shared_developer_cluster_role", "coder-workspace-developer-shared"),
    ):
        variable = one(root, "variable", name)
        assert variable.get("type") == "string"
        assert variable.get("description")
        assert literal(variable.get("default")) == default


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


# --- Values as the Coder agent sees them ----------------------------------------------


def _path_value(value: str) -> str:
    """A PATH coder_env value with its Terraform interpolations replaced by a sample."""
    value = re.sub(r"(?<!\$)\$\{[^}]*\}", "24", value)
    return value.replace("$${", "${")


def test_path_env_extends_the_image_path(tree):
    # coder/coder agent/agent.go updateCommandEnv: each env value is os.ExpandEnv(value) and
    # replaces the variable; merge_strategy is ignored by older servers and does not know
    # the image's PATH.  So the value itself must end with the image's $PATH.
    envs = [e for e in find(tree, "resource", "coder_env") if literal(e.get("name")) == "PATH"]
    for env in envs:
        assert env.get("merge_strategy") is None, env.address
        value = _path_value(literal(env.get("value")))
        assert value.endswith(":$PATH"), env.address
        expanded = os.path.expandvars(value.replace("$PATH", IMAGE_PATH))
        assert expanded.split(":")[-len(IMAGE_PATH.split(":")) :] == IMAGE_PATH.split(":"), env.address
        assert "/usr/bin" in expanded.split(":")


def test_language_templates_put_their_tool_dirs_on_path(trees):
    for name, wanted in (
        ("nodejs", "/opt/node/24/bin"),
        ("python", "/home/coder/.local/bin"),
        ("go", "/home/coder/go/bin"),
    ):
        (env,) = [e for e in find(trees[name], "resource", "coder_env") if literal(e.get("name")) == "PATH"]
        assert wanted in _path_value(literal(env.get("value"))).split(":"), name


def test_go_keeps_toolchain_downloads_and_tells_proxied_teams_about_goproxy(rendered, trees):
    text = (rendered["go"].path / "README.md").read_text()
    assert "downloaded automatically" in text
    assert "GOPROXY" in text
    for env in find(trees["go"], "resource", "coder_env"):
        assert literal(env.get("name")) != "GOTOOLCHAIN"


# --- Terraform expressions, evaluated by real terraform ---------------------------------


def _top_blocks(text: str, kind: str) -> list[str]:
    """The source of each top-level ``kind ...{`` block of a fmt-clean file."""
    lines = text.splitlines()
    blocks = []
    for i, line in enumerate(lines):
        if line.startswith(kind + " ") or line == kind + " {":
            end = next(j for j in range(i, len(lines)) if lines[j] == "}")
            blocks.append("\n".join(lines[i : end + 1]))
    return blocks


def evaluate_locals(main_tf: Path, tmp: Path, expressions: dict[str, str], values: dict[str, str]) -> dict:
    """Evaluate ``expressions`` over the template's own locals with ``terraform console``.

    The scratch module holds the rendered ``locals`` blocks that need nothing but
    variables and parameters, the rendered ``variable`` blocks they use, and one
    variable per ``coder_parameter`` (``param_<name>``), set from ``values``.
    """
    terraform = shutil.which("terraform")
    if terraform is None:
        pytest.skip("terraform is not installed")
    text = main_tf.read_text()
    param = re.compile(r"data\.coder_parameter\.(\w+)\.value")
    kept = [
        param.sub(r"var.param_\1", block)
        for block in _top_blocks(text, "locals")
        if not re.search(r"\b(module|resource|kubernetes_\w+)\.|data\.coder_(?!parameter)", block)
    ]
    body = "\n\n".join(kept)
    used_vars = set(re.findall(r"\bvar\.(\w+)", body))
    variables = [
        b for b in _top_blocks(text, "variable") if re.match(r'variable "(\w+)"', b).group(1) in used_vars
    ]
    declared = {re.match(r'variable "(\w+)"', b).group(1) for b in variables}
    stand_ins = [f'variable "{v}" {{\n  type = string\n}}' for v in sorted(used_vars - declared)]
    folder = tmp / "eval"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    (folder / "main.tf").write_text("\n\n".join([*variables, *stand_ins, body]) + "\n")
    argv = [terraform, "console"]
    for name in sorted(used_vars):
        given = values.get(name, values.get(name.removeprefix("param_"), ""))
        argv += ["-var", f"{name}={given}"]
    query = "jsonencode({" + ", ".join(f"{k} = {v}" for k, v in expressions.items()) + "})"
    result = subprocess.run(argv, input=query + "\n", capture_output=True, text=True, cwd=folder, check=False)
    assert result.returncode == 0, result.stderr
    # Warnings (a missing CLI configuration file) come first; the value is the last line.
    return json.loads(json.loads(result.stdout.strip().splitlines()[-1]))


def _quantity(text: str) -> float:
    units = {"m": 0.001, "Ki": 1024, "Mi": 1024**2, "Gi": 1024**3}
    for suffix, factor in units.items():
        if text.endswith(suffix):
            return float(text.removesuffix(suffix)) * factor
    return float(text)


def _resource_expressions(root: Block) -> dict[str, str]:
    """The workspace container's and the dind sidecar's requests and limits, as expressions."""
    dev = dev_container(root).child("resources")
    (sidecar,) = pod_spec(root).children("dynamic")
    dind = sidecar.child("content", "resources")
    exprs = {}
    for who, res in (("dev", dev), ("dind", dind)):
        for kind in ("requests", "limits"):
            for key, value in res.get(kind).items():
                whole = value.startswith("${") and value.endswith("}") and value.count("${") == 1
                expr = value[2:-1] if whole else value
                exprs[f"{who}_{kind}_{key}"] = re.sub(
                    r"data\.coder_parameter\.(\w+)\.value", r"var.param_\1", expr
                )
    return exprs


def _pod_total(got: dict[str, str], kind: str, mode: str) -> dict[str, float]:
    """What the pod as a whole gets: the workspace container, plus the sidecar in dind mode."""
    who = ("dev", "dind") if mode == "dind" else ("dev",)
    return {k: sum(_quantity(got[f"{w}_{kind}_{k}"]) for w in who) for k in ("cpu", "memory")}


@pytest.mark.parametrize("mode", ["sysbox", "dind"])
def test_docker_pod_gets_no_more_than_the_parameters_promise(rendered, trees, settings, tmp_path, mode):
    exprs = _resource_expressions(trees["docker"])
    requests = {
        "cpu": _quantity(settings.workspace.cpu_request),
        "memory": _quantity(settings.workspace.memory_request),
    }
    for cpu, memory in ((1, 2), (2, 4), (4, 8), (8, 16)):
        values = {"docker_mode": mode, "param_cpu": str(cpu), "param_memory": str(memory)}
        got = evaluate_locals(rendered["docker"].path / "main.tf", tmp_path, exprs, values)
        assert _pod_total(got, "limits", mode) == {"cpu": cpu, "memory": memory * 1024**3}, (values, got)
        pod_requests = _pod_total(got, "requests", mode)
        assert pod_requests == pytest.approx(requests), (values, got)
        if mode == "dind":
            # Each container gets a real share, not zero.
            assert all(
                _quantity(got[f"dind_{kind}_{k}"]) > 0 for kind in ("requests", "limits") for k in requests
            )


AIDER_CASES = [
    # model, anthropic key?, openai key?, the provider the notice must name ("" = no notice)
    ("sonnet", False, True, "Anthropic"),
    ("sonnet", True, False, ""),
    ("opus", False, False, "Anthropic"),
    ("claude-3-5-sonnet-20241022", True, False, ""),
    ("anthropic/claude-sonnet-4-5", False, True, "Anthropic"),
    ("gpt-4o", True, False, "OpenAI"),
    ("gpt-4o", False, True, ""),
    ("o3-mini", False, True, ""),
    ("4o", True, False, "OpenAI"),
    ("gemini/gemini-2.5-pro", True, True, "unknown"),
]


@pytest.mark.parametrize("case", AIDER_CASES, ids=[c[0] + ("-A" * c[1]) + ("-O" * c[2]) for c in AIDER_CASES])
def test_aider_key_notice_follows_the_model(rendered, tmp_path, case):
    model, anthropic, openai, expected = case
    got = evaluate_locals(
        rendered["go"].path / "main.tf",
        tmp_path,
        {"notice": "local.ai_agent_notice", "status": "local.ai_agent_status"},
        {
            "param_ai_agent": "aider",
            "aider_model": model,
            "anthropic_api_key": "sk-ant-test" if anthropic else "",
            "openai_api_key": "sk-test" if openai else "",
            "goose_provider": "anthropic",
            "goose_model": "claude-sonnet-4-5",
        },
    )
    if expected:
        assert expected in got["notice"], got
        assert model in got["notice"]
        assert got["status"] == got["notice"]
    else:
        assert got["notice"] == "", got


# --- Ordered start: the repository, then the agent's install, then the agent -----------


def test_ai_agents_wait_for_the_clone(tree):
    clone = one(tree, "module", "git-clone")
    assert clone.get("post_clone_script") == "${local.clone_done_script}"
    for name in ("claude-code", "goose", "aider"):
        assert one(tree, "module", name).get("pre_install_script") == "${local.wait_for_clone}", name
    assert one(tree, "module", "copilot").get("pre_install_script") == "${local.copilot_pre_install}"
    start = literal(one(tree, "module", "aider").get("start_script"))
    assert "local.clone_marker" in start


def _run(
    script: str, tmp: Path, marker: Path, *, timeout: float = 60, **env: str
) -> subprocess.CompletedProcess[str]:
    path = tmp / "script.sh"
    path.write_text(script.replace("/tmp/coderbundle-clone-done", str(marker)))  # noqa: S108 - replaced
    return subprocess.run(
        ["bash", str(path)],
        capture_output=True,
        text=True,
        check=False,
        timeout=timeout,
        env={"PATH": os.environ["PATH"], "HOME": str(tmp), **env},
    )


def test_wait_for_clone_scripts_order_the_start(rendered, tmp_path):
    main_tf = rendered["python"].path / "main.tf"
    names = {
        "wait": "local.wait_for_clone",
        "done": "local.clone_done_script",
        "marker": "local.clone_marker",
        "copilot": "local.copilot_pre_install",
    }
    without = evaluate_locals(main_tf, tmp_path, names, {"param_repo_url": ""})
    with_repo = evaluate_locals(
        main_tf, tmp_path, names, {"param_repo_url": "https://gitlab.com/team/app.git"}
    )
    # /tmp is new with every pod: a marker elsewhere would survive a restart.
    assert with_repo["marker"].startswith("/tmp/")  # noqa: S108 - the path under test
    marker = tmp_path / "clone-done"
    # No repository: nothing to wait for.
    assert _run(without["wait"], tmp_path, marker).returncode == 0
    # A repository that is not cloned: by default the wait has no limit (the agent must
    # never write into the folder first) ...
    with pytest.raises(subprocess.TimeoutExpired):
        _run(with_repo["wait"], tmp_path, marker, timeout=3)
    # ... and with a limit set, it gives up with a message, never succeeds.
    failed = _run(with_repo["wait"], tmp_path, marker, CODERBUNDLE_CLONE_WAIT="1")
    assert failed.returncode == 1
    assert "not cloned" in failed.stderr
    # git-clone's post_clone_script marks the clone; then the wait returns at once.
    assert _run(with_repo["done"], tmp_path, marker).returncode == 0
    assert marker.exists()
    assert _run(with_repo["wait"], tmp_path, marker, CODERBUNDLE_CLONE_WAIT="1").returncode == 0
    # Copilot's pre-install waits the same way first, and is valid bash.
    assert with_repo["copilot"].startswith(with_repo["wait"])
    syntax = subprocess.run(
        ["bash", "-n"], input=with_repo["copilot"], capture_output=True, text=True, check=False
    )
    assert syntax.returncode == 0, syntax.stderr


# --- Kubernetes: the developer's kubeconfig survives restarts ---------------------------


def startup_script(main_tf: Path, values: dict[str, str]) -> str:
    """The agent's startup script as the agent runs it (Terraform interpolation done)."""
    lines = main_tf.read_text().splitlines()
    start = lines.index("  startup_script = <<-EOT")
    end = lines.index("  EOT", start)
    script = textwrap.dedent("\n".join(lines[start + 1 : end])) + "\n"

    def interpolate(match: re.Match[str]) -> str:
        expr = match.group(1)
        assert expr in values, f"no test value for ${{{expr}}}"
        return values[expr]

    script = re.sub(r"(?<!\$)\$\{([^}]*)\}", interpolate, script)
    return script.replace("$${", "${")


def _kubectl(home: Path, *args: str) -> str:
    kube = home / ".kube"
    env = {**os.environ, "HOME": str(home), "KUBECONFIG": f"{kube}/config:{kube}/workspace.yaml"}
    return subprocess.run(
        ["kubectl", *args], capture_output=True, text=True, env=env, check=True
    ).stdout.strip()


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
def test_kubeconfig_changes_survive_a_restart(rendered, trees, tmp_path):
    (env,) = [
        e
        for e in find(trees["kubernetes"], "resource", "coder_env")
        if literal(e.get("name")) == "KUBECONFIG"
    ]
    assert literal(env.get("value")) == "/home/coder/.kube/config:/home/coder/.kube/workspace.yaml"
    script = startup_script(
        rendered["kubernetes"].path / "main.tf",
        {"local.workload_namespace": "coder-ws-1", "jsonencode(local.ai_agent_notice)": '""'},
    )
    home = tmp_path / "home"
    home.mkdir()

    def start() -> None:
        subprocess.run(
            ["bash", "-c", script], env={**os.environ, "HOME": str(home)}, check=True, capture_output=True
        )

    start()
    workspace = yaml.safe_load((home / ".kube" / "workspace.yaml").read_text())
    assert "current-context" not in workspace
    assert not workspace.get("contexts")
    assert _kubectl(home, "config", "current-context") == "workspace"
    assert _kubectl(home, "config", "view", "--minify", "-o", "jsonpath={..namespace}") == "coder-ws-1"
    # The developer changes the namespace, adds a context and switches to it.
    _kubectl(home, "config", "set-context", "--current", "--namespace=mine")
    _kubectl(home, "config", "set-context", "other", "--cluster=workspace", "--user=workspace")
    _kubectl(home, "config", "use-context", "other")
    start()
    assert _kubectl(home, "config", "current-context") == "other"
    assert (
        _kubectl(
            home, "config", "view", "-o", "jsonpath={.contexts[?(@.name=='workspace')].context.namespace}"
        )
        == "mine"
    )
    # With no context current, the workspace's becomes current again.
    _kubectl(home, "config", "unset", "current-context")
    start()
    assert _kubectl(home, "config", "current-context") == "workspace"


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
def test_kubeconfig_of_the_developer_is_kept(rendered, tmp_path):
    script = startup_script(
        rendered["kubernetes"].path / "main.tf",
        {"local.workload_namespace": "coder-ws-1", "jsonencode(local.ai_agent_notice)": '""'},
    )
    home = tmp_path / "home"
    (home / ".kube").mkdir(parents=True)
    own = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "prod", "cluster": {"server": "https://prod.example.com"}}],
        "users": [{"name": "me", "user": {"token": "t"}}],
        "contexts": [{"name": "prod", "context": {"cluster": "prod", "user": "me", "namespace": "apps"}}],
        "current-context": "prod",
    }
    (home / ".kube" / "config").write_text(yaml.safe_dump(own))
    subprocess.run(
        ["bash", "-c", script], env={**os.environ, "HOME": str(home)}, check=True, capture_output=True
    )
    config = yaml.safe_load((home / ".kube" / "config").read_text())
    assert config["current-context"] == "prod"
    assert {c["name"] for c in config["contexts"]} == {"prod", "workspace"}
    assert [c for c in config["clusters"] if c["name"] == "prod"] == own["clusters"]


def test_workspace_page_namespaces_are_told_apart(trees):
    root = trees["kubernetes"]
    labels = [
        literal(item.get("key"))
        for meta in find(root, "resource", "coder_metadata")
        for item in meta.children("item")
    ]
    labels += [
        literal(m.get("display_name"))
        for m in one(root, "resource", "coder_agent", "main").children("metadata")
    ]
    named = [label.lower() for label in labels if "namespace" in label.lower()]
    assert len(named) == len(set(named)), named
    assert "namespace" not in named, "say which namespace: the pod's or kubectl's"


def test_workload_namespace_waits_for_finalizers_on_delete(trees):
    namespace = one(trees["kubernetes"], "resource", "kubernetes_namespace_v1", "workload")
    timeouts = namespace.child("timeouts")
    assert timeouts is not None
    delete = literal(timeouts.get("delete"))
    minutes = int(delete.removesuffix("m")) if delete.endswith("m") else int(delete.removesuffix("h")) * 60
    assert minutes >= 15  # the provider's default is 5 minutes


# --- Copy: what the developer reads --------------------------------------------------


def test_repo_url_promises_the_linked_account_for_https_only(tree):
    description = literal(parameters(tree)["repo_url"].get("description"))
    (linked,) = [s for s in re.split(r"(?<=[.;]) ", description) if "linked GitLab account" in s]
    assert "HTTPS" in linked
    assert "SSH" not in linked.replace("HTTPS", "")
    assert "coder publickey" in description


# (Roles and RoleBindings inside their namespace are things developers may manage: not listed.)
ADMIN_TERMS = (
    "ServiceAccount",
    "service account",
    "StorageClass",
    "ClusterRole",
    "RuntimeClass",
    "CODER_EXTERNAL_AUTH",
    "bundle.toml",
    "Administrator settings",
    "Prerequisites",
)


def test_readme_shown_in_coder_is_for_developers(rendered, trees):
    for name, r in rendered.items():
        body = (r.path / "README.md").read_text().split("---\n", 2)[2]
        for term in ADMIN_TERMS:
            assert term not in body, f"{name}: {term!r} belongs in docs/templates.md"
        for variable in find(trees[name], "variable"):
            var_name = variable.labels[0]
            assert f"`{var_name}`" not in body, f"{name}: Terraform variable {var_name}"
            if "_" in var_name:
                assert var_name not in body, f"{name}: Terraform variable {var_name}"


def test_admin_material_is_in_docs_templates(trees):
    docs = (ROOT / "docs" / "templates.md").read_text()
    for root in trees.values():
        for variable in find(root, "variable"):
            assert f"`{variable.labels[0]}`" in docs, (
                f"docs/templates.md does not explain {variable.labels[0]}"
            )
    for term in ("StorageClass", "sysbox-runc", "CODER_EXTERNAL_AUTH_0_ID", "developer_cluster_role"):
        assert term in docs


def test_docs_know_the_agentapi_port_variable():
    modules = json.loads((ROOT / "tools" / "coderbundle" / "data" / "modules.json").read_text())
    text = json.dumps(modules)
    assert "agentapi_port" in text  # agentapi 2.4.0 has it
    docs = (ROOT / "docs" / "templates.md").read_text()
    assert "`agentapi_port`" in docs
    assert "none of the pinned module versions lets a template change it" not in docs


# --- Promised tools: one list for the README and the image start test -----------------

HEADLINE_TOOLS = {
    "nodejs": [
        "node --version",
        "npm --version",
        "pnpm --version",
        "yarn --version",
        "bun --version",
        "tsc --version",
    ],
    "python": ["python3", "pip", "poetry --version", "uv --version", "virtualenv --version"],
    "go": ["go version", "gopls version", "golangci-lint --version"],
    "docker": ["docker --version", "docker buildx version", "docker compose version"],
    "kubernetes": ["kubectl version --client", "helm version"],
}
# Git, and what the AI agent modules need to install: curl (AgentAPI, Claude Code, Goose),
# jq (Claude Code), bzip2 (Goose), Node.js >= 22 and npm (Copilot), pipx or uv (Aider),
# sudo (AgentAPI moves its binary into /usr/local/bin).
COMMON_TOOLS = [
    "git --version",
    "curl --version",
    "jq --version",
    "bzip2",
    "process.versions.node",
    "npm --version",
    "pipx --version",
    "sudo -n true",
]


@pytest.mark.parametrize("name", TEMPLATES)
def test_every_template_lists_its_headline_tools(name, settings):
    (template,) = find_templates(settings.templates_dir, [name])
    checks = [t.check for t in template.settings.tools]
    for wanted in HEADLINE_TOOLS[name] + COMMON_TOOLS:
        assert any(wanted in check for check in checks), f"{name}: no tool checked with {wanted!r}"


def test_readme_lists_every_promised_tool(rendered):
    for r in rendered.values():
        body = (r.path / "README.md").read_text()
        tools = r.template.settings.tools
        assert tools
        for tool in tools:
            assert f"- {tool.name}: `{tool.check}`" in body, (r.name, tool.name)
