"""Each template's image starts the way the Coder agent starts it, and every promised tool answers.

For every template: its rendered ``main.tf`` gives the agent's environment
(``coder_agent.env`` and every ``coder_env``), its startup script and its
``coder_script`` resources.  The built image (``build/images.json``, written by
``.ci/images.sh``) is started as uid 1000 with an empty ``/home/coder`` (the
home volume is empty on first start), with that environment applied the way
the agent applies it (each value expanded against the image's environment,
then *replacing* the variable; coder/coder ``agent/agent.go``
``updateCommandEnv``), and the agent's script bin directory in front of PATH.
The startup script and every ``run_on_start`` script then run as ``coder``
under ``set -e``, all at once, as the agent runs them (Coder orders none of
them).  Afterwards every tool the template promises (``[[tools]]`` in its
``template.toml``) must answer its ``check``, and every AI-agent module's
install prerequisites must be present, both in a plain shell (what scripts
and apps get) and in a login shell (the web terminal and SSH).

Registry modules' own scripts (code-server, JupyterLab, the agents) run in
tests/test_module_scripts.py, rendered by a real plan.  Needs a Docker daemon, the built images
and terraform (which evaluates the template's expressions); without one it skips
and says which.
"""

from __future__ import annotations

import io
import itertools
import json
import re
import shutil
import subprocess
import tarfile
import tomllib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hcl2
import pytest
from docker.errors import ImageNotFound

from bundle_files import copy_settings
from coderbundle.pipeline import render_all
from coderbundle.settings import load_settings

pytest_plugins = ("docker_fixtures",)

REPO = Path(__file__).resolve().parent.parent

TEMPLATES = sorted(
    p.parent.name for p in (REPO / "templates").glob("*/template.toml") if not p.parent.name.startswith("_")
)
MANIFEST = REPO / "build" / "images.json"
HOME = "/home/coder"
SCRIPT_DATA = "/tmp/coder-script-data"  # noqa: S108 - inside the test container
SCRIPT_BIN_DIR = f"{SCRIPT_DATA}/bin"  # the agent's ScriptBinDir, put first on PATH
SCRIPT_TIMEOUT_S = 600

# TODO(templates branch): the templates helper adds the promised tools to each
# templates/<name>/template.toml as [[tools]] name/check; this fallback applies
# only while a template.toml has none, and is to be deleted once that is merged.
FALLBACK_TOOLS: dict[str, list[dict[str, str]]] = {
    "nodejs": [
        {"name": "Node.js", "check": "node --version"},
        {"name": "npm", "check": "npm --version"},
        {"name": "pnpm", "check": "pnpm --version"},
        {"name": "Yarn", "check": "yarn --version"},
        {"name": "Bun", "check": "bun --version"},
        {"name": "TypeScript", "check": "tsc --version"},
        {"name": "git", "check": "git --version"},
    ],
    "python": [
        {"name": "Python", "check": "python3 --version"},
        {"name": "pip", "check": "python3 -m pip --version"},
        {"name": "pipx", "check": "pipx --version"},
        {"name": "Poetry", "check": "poetry --version"},
        {"name": "uv", "check": "uv --version"},
        {"name": "virtualenv", "check": "virtualenv --version"},
        {"name": "Node.js", "check": "node --version"},
        {"name": "git", "check": "git --version"},
    ],
    "go": [
        {"name": "Go", "check": "go version"},
        {"name": "gopls", "check": "gopls version"},
        {"name": "golangci-lint", "check": "golangci-lint --version"},
        {"name": "gcc", "check": "gcc --version"},
        {"name": "Node.js", "check": "node --version"},
        {"name": "git", "check": "git --version"},
    ],
    "docker": [
        {"name": "Docker CLI", "check": "docker --version"},
        {"name": "Docker Engine", "check": "dockerd --version"},
        {"name": "buildx", "check": "docker buildx version"},
        {"name": "Compose", "check": "docker compose version"},
        {"name": "Node.js", "check": "node --version"},
        {"name": "git", "check": "git --version"},
    ],
    "kubernetes": [
        {"name": "kubectl", "check": "kubectl version --client"},
        {"name": "Helm", "check": "helm version --short"},
        {"name": "Node.js", "check": "node --version"},
        {"name": "git", "check": "git --version"},
    ],
}

# What the AI-agent modules' install scripts need from the image, in every template
# (all five agents are offered in all five).
AGENT_PREREQUISITES: dict[str, str] = {
    "curl (Claude Code, Goose installers)": "command -v curl",
    "jq (module scripts)": "command -v jq",
    "bzip2 (Goose's .tar.bz2)": "command -v bzip2",
    "git": "command -v git",
    "node >= 22 (Copilot CLI)": "node -e 'process.exit(parseInt(process.versions.node) >= 22 ? 0 : 1)'",
    "npm (Copilot CLI)": "npm --version",
    "python3 with pipx or uv (Aider)": "python3 --version && { command -v pipx || command -v uv; }",
}


def promised_tools(name: str) -> list[dict[str, str]]:
    """``[[tools]]`` from the template's template.toml, else the marked fallback above."""
    settings = tomllib.loads((REPO / "templates" / name / "template.toml").read_text())
    return settings.get("tools") or FALLBACK_TOOLS[name]


# --- what the agent receives: evaluated from the rendered template -------------


@dataclass
class AgentStart:
    """What the Coder agent gets for a workspace start: its environment and scripts."""

    env: dict[str, str] = field(default_factory=dict)
    scripts: dict[str, str] = field(default_factory=dict)


_WORKSPACE = {"name": '"dev"', "id": '"00000000-0000-0000-0000-000000000001"', "start_count": "1",
              "transition": '"start"', "access_url": '"https://coder.example.com"', "access_port": "443"}
_OWNER = {"name": '"developer"', "full_name": '"A Developer"', "email": '"developer@example.com"'}
_PROVISIONER = {"arch": '"amd64"', "os": '"linux"'}


def evaluate_start(main_tf: Path, workdir: Path) -> AgentStart:
    """Evaluate the agent's env and start scripts of a rendered template, for a first start.

    The one place the test turns Terraform into values (the lead's ``terraform
    plan`` harness may replace it with planned values).  Every parameter takes
    its default, every variable its default, the workspace is ``dev`` owned by
    ``developer`` with ``start_count = 1``; references to modules become null and
    to other resources and data sources "".  The variable and locals blocks are
    copied as written, the needed expressions (env values, counts, scripts) become
    outputs, and real ``terraform apply`` (no providers: nothing is created)
    evaluates them.  Resources whose ``count`` is 0 are left out.
    """
    text = main_tf.read_text()
    doc = hcl2.loads(text)
    exprs = _start_expressions(doc)
    params = {_unq(n): body.get("default", '""') for d in doc.get("data", [])
              for n, body in d.get('"coder_parameter"', {}).items()}
    config = "\n".join(_top_level_blocks(text, ("variable", "locals")))
    config += "\nlocals {\n" + "".join(f"  cbtest_param_{_ident(n)} = {_hcl(v)}\n" for n, v in params.items())
    config += "}\n"
    values = _terraform_values(_offline(config), exprs, workdir)
    counted = {k.removeprefix("count "): v for k, v in values.items() if k.startswith("count ")}
    start = AgentStart()
    for key, value in values.items():
        kind, _, rest = key.partition(" ")
        resource, _, env_name = rest.partition(" ")
        if kind == "env" and value is not None and counted.get(resource, 1):
            start.env[env_name] = str(value)
        elif kind == "script" and value and counted.get(rest, 1):
            start.scripts[rest] = value
    return start


def _start_expressions(doc: dict[str, Any]) -> dict[str, str]:
    """HCL source of each count, env value ("env <resource> <NAME>") and start script."""
    exprs: dict[str, str] = {}
    for r in doc.get("resource", []):
        for rtype, blocks in r.items():
            for rname, body in blocks.items():
                key = f"{_unq(rtype)}.{_unq(rname)}"
                if "count" in body:
                    exprs[f"count {key}"] = _hcl(body["count"])
                if rtype == '"coder_agent"':
                    if "startup_script" in body:
                        exprs[f"script {key}"] = _hcl(body["startup_script"])
                    for env_name, value in (body.get("env") or {}).items():
                        exprs[f"env {key} {_unq(env_name)}"] = _hcl(value)
                elif rtype == '"coder_env"':
                    exprs[f"env {key} {_unq(body['name'])}"] = _hcl(body["value"])
                elif rtype == '"coder_script"' and body.get("run_on_start") in {True, "true", "${true}"}:
                    exprs[f"script {key}"] = _hcl(body["script"])
    return exprs


def _terraform_values(config: str, exprs: dict[str, str], workdir: Path) -> dict[str, Any]:
    """Each expression's value, by real ``terraform apply`` of a providerless configuration."""
    keys = sorted(exprs)
    outputs = "".join(
        f'output "e{i}" {{\n  sensitive = true\n  value = {_offline(exprs[k])}\n}}\n'
        for i, k in enumerate(keys)
    )
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "main.tf").write_text(config + outputs)
    tf = ["terraform", f"-chdir={workdir}"]
    subprocess.run([*tf, "apply", "-auto-approve", "-input=false", "-no-color"],
                   check=True, capture_output=True, text=True)
    done = subprocess.run([*tf, "output", "-json"], check=True, capture_output=True, text=True)
    raw = json.loads(done.stdout)
    return {k: raw[f"e{i}"]["value"] for i, k in enumerate(keys)}


def _unq(s: str) -> str:
    return s[1:-1] if len(s) >= 2 and s[0] == s[-1] == '"' else s


def _ident(name: str) -> str:
    return re.sub(r"\W", "_", name)


def _hcl(value: Any) -> str:
    """python-hcl2's serialized value back to HCL source."""
    if isinstance(value, str):
        if value.startswith("${") and value.endswith("}"):
            return value[2:-1]
        return value[1:-1] + "\n" if value.startswith('"<<') else value
    if isinstance(value, list):
        return "[" + ", ".join(_hcl(v) for v in value) + "]"
    if isinstance(value, dict):
        items = (f"{json.dumps(_unq(k))} = {_hcl(v)}" for k, v in value.items() if not k.startswith("__"))
        return "{\n" + "\n".join(items) + "\n}"
    return json.dumps(value)  # bool, number, None


def _top_level_blocks(text: str, kinds: tuple[str, ...]) -> list[str]:
    """Top-level blocks of those kinds, as written (terraform fmt: `}` alone at column 0 ends one)."""
    blocks, current = [], None
    for line in text.splitlines():
        if current is None and re.match(rf"^({'|'.join(kinds)})\b", line):
            current = [line]
        elif current is not None:
            current.append(line)
            if line == "}":
                blocks.append("\n".join(current))
                current = None
    return blocks


def _offline(config: str) -> str:
    """Replace references that need a Coder server, a cluster or a module with test values."""
    config = re.sub(
        r"data\.coder_parameter\.([\w-]+)\.value", lambda m: f"local.cbtest_param_{_ident(m[1])}", config
    )
    for source, values in (("coder_workspace", _WORKSPACE), ("coder_workspace_owner", _OWNER),
                           ("coder_provisioner", _PROVISIONER)):
        config = re.sub(rf"data\.{source}\.me\.(\w+)", lambda m, v=values: v.get(m[1], '""'), config)
    config = re.sub(r"\bdata\.[\w-]+\.[\w-]+(\[\d+\])?(\.\w+)+", '""', config)
    config = re.sub(r"\bmodule\.[\w-]+(\[\d+\])?(\.[\w-]+)?", "null", config)
    return re.sub(r"(?<![\w.])(coder|kubernetes)_\w+\.[\w-]+(\[\d+\])?(\.\w+(\[\d+\])?)+", '""', config)


def expand_env(value: str, env: dict[str, str]) -> str:
    """Go's os.ExpandEnv: $VAR and ${VAR} from ``env``, unset ones become ""."""
    return re.sub(r"\$\{([^}]*)\}|\$([A-Za-z0-9_]+)", lambda m: env.get(m[1] or m[2], ""), value)


def agent_environment(image_env: dict[str, str], start: AgentStart) -> dict[str, str]:
    """The environment the agent gives scripts and terminals (replace semantics, then the bin dir)."""
    env = {**image_env, "HOME": HOME, "CODER": "true", "CODER_WORKSPACE_NAME": "dev",
           "CODER_WORKSPACE_AGENT_NAME": "main"}
    for name, value in start.env.items():
        env[name] = expand_env(value, image_env)
    env["PATH"] = f"{SCRIPT_BIN_DIR}:{env.get('PATH', '')}"
    return env


# --- the test ------------------------------------------------------------------


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    """Every template rendered from this checkout into a throw-away bundle root."""
    if shutil.which("terraform") is None:
        pytest.skip("terraform is not installed (it evaluates the templates' expressions)")
    root = tmp_path_factory.mktemp("bundle")
    shutil.copytree(REPO / "templates", root / "templates")
    copy_settings(root)
    render_all(load_settings(root, {}))
    return root


def _image_for(name: str, client) -> str:
    settings = tomllib.loads((REPO / "templates" / name / "template.toml").read_text())
    image = settings["image"]
    if not MANIFEST.exists():
        pytest.skip(f"{MANIFEST.relative_to(REPO)} is missing; run .ci/images.sh to build the images")
    entry = json.loads(MANIFEST.read_text())["images"].get(image)
    if not entry:
        pytest.skip(f"image {image!r} is not in {MANIFEST.relative_to(REPO)}; run .ci/images.sh")
    try:
        client.images.get(entry["reference"])
    except ImageNotFound:
        pytest.skip(f"{entry['reference']} is not on this daemon; run .ci/images.sh")
    return entry["reference"]


def _put_file(container, path: str, content: str) -> None:
    data = content.encode()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo(path.rsplit("/", 1)[1])
        info.size, info.mode, info.uid, info.gid = len(data), 0o755, 1000, 1000
        tar.addfile(info, io.BytesIO(data))
    container.put_archive(path.rsplit("/", 1)[0], buf.getvalue())


@pytest.mark.docker
@pytest.mark.terraform
@pytest.mark.parametrize("name", TEMPLATES)
def test_template_starts_and_its_tools_answer(name, rendered, docker_client, tmp_path):
    reference = _image_for(name, docker_client)
    start = evaluate_start(rendered / "build" / "templates" / name / "main.tf", tmp_path / "tf")
    image_env = dict(e.split("=", 1) for e in docker_client.images.get(reference).attrs["Config"]["Env"])
    env = agent_environment(image_env, start)
    container = docker_client.containers.run(
        reference, ["/bin/sleep", "infinity"], detach=True, user="1000:1000", environment=env,
        tmpfs={HOME: "uid=1000,gid=1000,mode=0755"}, working_dir=HOME,
    )
    try:
        container.exec_run(["/bin/mkdir", "-p", SCRIPT_BIN_DIR], user="1000:1000")
        for i, script in enumerate(start.scripts.values()):
            _put_file(container, f"{SCRIPT_DATA}/script-{i}.sh", script)

        def run(i: int) -> tuple[int, str]:
            script = f"{SCRIPT_DATA}/script-{i}.sh"
            cmd = ["/usr/bin/timeout", str(SCRIPT_TIMEOUT_S), "/bin/bash", "-e", script]
            code, out = container.exec_run(cmd, user="1000:1000", workdir=HOME)
            return code, out.decode(errors="replace")

        with ThreadPoolExecutor(max_workers=max(1, len(start.scripts))) as pool:
            outcomes = dict(zip(start.scripts, pool.map(run, range(len(start.scripts))), strict=True))
        failed_scripts = {k: o for k, (code, o) in outcomes.items() if code != 0}

        checks = {f"{t['name']}: {t['check']}": t["check"] for t in promised_tools(name)}
        checks |= {f"agent prerequisite {k}": v for k, v in AGENT_PREREQUISITES.items()}
        failed_checks = {}
        # "-c": what scripts and apps see; "-lc": a login shell, as in the web terminal and SSH.
        for (label, check), shell in itertools.product(checks.items(), ("-c", "-lc")):
            code, out = container.exec_run(["/bin/bash", shell, check], user="1000:1000", workdir=HOME)
            if code != 0:
                failed_checks[f"{label} (bash {shell})"] = out.decode(errors="replace").strip()[-300:]
    finally:
        container.remove(force=True)

    report = [f"{name} ({reference}), PATH={env['PATH']}"]
    report += [f"script {k} failed:\n{o[-1500:]}" for k, o in failed_scripts.items()]
    report += [f"{label} failed: {out}" for label, out in failed_checks.items()]
    assert not failed_scripts, "\n".join(report)
    assert not failed_checks, "\n".join(report)


def test_env_evaluation_replaces_like_the_agent():
    """The agent's semantics, pinned: a value replaces the variable; $VAR expands against the image."""
    image = {"PATH": "/usr/bin:/bin", "GOPATH": "/go"}
    start = AgentStart(env={"PATH": "/home/coder/go/bin", "X": "$GOPATH/bin:${PATH}", "Y": "$UNSET-z"})
    env = agent_environment(image, start)
    assert env["PATH"] == f"{SCRIPT_BIN_DIR}:/home/coder/go/bin"
    assert env["X"] == "/go/bin:/usr/bin:/bin"
    assert env["Y"] == "-z"


@pytest.mark.terraform
def test_evaluate_start_reads_defaults_counts_and_scripts(tmp_path):
    """Parameter defaults, variables, locals and counts flow into the env and scripts."""
    main = tmp_path / "main.tf"
    main.write_text(
        'variable "key" {\n  type      = string\n  default   = ""\n  sensitive = true\n}\n'
        'data "coder_parameter" "v" {\n  name    = "v"\n  default = "22"\n}\n'
        'locals {\n  notice = var.key == "" ? "no key" : ""\n}\n'
        'resource "coder_agent" "main" {\n  os = "linux"\n  startup_script = <<-EOT\n'
        '    echo ${jsonencode(local.notice)} in ${data.coder_workspace.me.name}\n  EOT\n'
        '  env = {\n    OWNER = data.coder_workspace_owner.me.email\n  }\n}\n'
        'resource "coder_env" "path" {\n  agent_id = coder_agent.main.id\n  name     = "PATH"\n'
        '  value    = "/opt/node/${data.coder_parameter.v.value}/bin:$PATH"\n}\n'
        'resource "coder_env" "key" {\n  count    = var.key != "" ? 1 : 0\n  agent_id = coder_agent.main.id\n'
        '  name     = "KEY"\n  value    = var.key\n}\n'
        'resource "coder_script" "later" {\n  agent_id = coder_agent.main.id\n  script = "exit 1"\n'
        '  run_on_stop = true\n}\n'
        'resource "coder_script" "now" {\n  count = 1\n  agent_id = coder_agent.main.id\n'
        '  script = "echo ${module.x[0].y == null}"\n  run_on_start = true\n}\n'
    )
    start = evaluate_start(main, tmp_path / "tf")
    assert start.env == {"PATH": "/opt/node/22/bin:$PATH", "OWNER": "developer@example.com"}
    assert start.scripts == {"coder_agent.main": 'echo "no key" in dev\n', "coder_script.now": "echo true"}
