"""The registry modules' own scripts run in the built images, as the Coder agent runs them.

Each script is the ``script`` of a ``coder_script`` that a real ``terraform plan``
of a rendered template produces (``coderbundle test``'s plan: the real module
trees at the pinned tags, rendered by terraform's own ``templatefile``, with
the values our templates pass).  It runs in the template's built image
(``build/images.json``, ``.ci/images.sh``) as the agent runs a start script:
user ``coder`` (uid 1000) with an empty ``/home/coder``, the agent's
environment from the same plan (``coder_agent.env`` and every ``coder_env``,
replace semantics, tests/test_image_start.py), ``CODER_SCRIPT_BIN_DIR`` first
on PATH, ``CODER_SCRIPT_DATA_DIR``, through ``bash``.

The network is what this machine reaches: the package registries (npm, PyPI,
through the images' CA bundle), nothing else.  So a script whose installer
comes from npm or PyPI must succeed and leave a tool that answers; a script
that needs a download from elsewhere (GitHub releases, a vendor's install
script) must get as far as that download: the prerequisites before it pass,
the log shows the very URL it asks for, and the container cannot reach that
host.  If the host ever becomes reachable, the case demands success instead.

Needs a Docker daemon, the built images and the offline terraform toolchain
(`nox -s tools`); without them it skips and says which.
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from coderbundle import plantest, terraform
from coderbundle.pipeline import render_all
from coderbundle.settings import load_settings
from conftest import make_bundle
from test_image_start import (
    HOME,
    SCRIPT_BIN_DIR,
    SCRIPT_DATA,
    AgentStart,
    _image_for,
    _put_file,
    agent_environment,
)

pytest_plugins = ("docker_fixtures",)

TOOLS = ("CODERBUNDLE_TERRAFORM", "CODERBUNDLE_PROVIDER_MIRROR", "CODERBUNDLE_MODULE_MIRROR")
TOOLS_ENV = {k: os.environ[k] for k in TOOLS if os.environ.get(k)}
REAL_MODULES = "PROVENANCE.tsv"
SCRIPT_TIMEOUT_S = 420
WORKERS = 3


@dataclass(frozen=True)
class ScriptCase:
    """One module script: where it runs and what it must prove."""

    label: str
    template: str
    parameters: tuple[tuple[str, str], ...]  # the workspace's choices (others: defaults)
    address: str  # the coder_script's address in the plan
    # Must answer (bash -lc, as the agent's user) once the script has run.
    answers: tuple[str, ...] = ()
    # The download from outside the registries it needs ("" when it needs none): the URL it
    # wants (a regex over the rendered script and its log), the log's proof that it tried that
    # very download and failed there, and what must hold before it.
    download: str = ""
    stopped: str = ""
    prerequisites: tuple[str, ...] = ()
    # What the log must show (the script got that far) in either case.
    reached: tuple[str, ...] = ()


AGENTAPI = r"https://github\.com/coder/agentapi/releases/download/v[\d.]+/agentapi-linux-amd64"
CASES = (
    ScriptCase(
        "copilot (npm)",
        "nodejs",
        (("ai_agent", "copilot"),),
        "module.copilot[0].module.agentapi.coder_script.agentapi",
        # The Copilot CLI from npm, through our pre-install script; then the module's
        # install.sh (Node >= 22, npm) finds it; AgentAPI itself is a GitHub download.
        answers=("copilot --version",),
        download=AGENTAPI,
        stopped=AGENTAPI + r"\n(.*\n)*?.*curl: \(\d+\)[^\n]*github\.com",
        prerequisites=("command -v curl", "command -v sudo"),
        reached=(
            r"Running pre-install script",
            r"Running install script",
            # copilot 0.4.1's install.sh (Node.js >= 22 and npm checked first) finds our install
            r"GitHub Copilot CLI already installed",
            r"Installing AgentAPI",
        ),
    ),
    ScriptCase(
        "aider (PyPI)",
        "python",
        (("ai_agent", "aider"),),
        "module.aider[0].coder_script.agentapi",
        # uv comes with the image; `uv tool install --python 3.12` wants a CPython 3.12
        # build first (the images have 3.13, which aider-chat does not support), from GitHub.
        download=r"https://github\.com/astral-sh/python-build-standalone/releases/download/\S+",
        stopped=r"Failed to download `https://github\.com/astral-sh/python-build-standalone/",
        prerequisites=("command -v uv", "python3 --version"),
        reached=(r"Running pre-install script", r"Running install script"),
    ),
    ScriptCase(
        "jupyterlab (PyPI)",
        "python",
        (("jupyter", "true"),),
        "module.jupyterlab[0].coder_script.jupyterlab",
        answers=("jupyter-lab --version || ~/.local/bin/jupyter-lab --version",),
        reached=(r"(pipx|uv) is installed", r"jupyterlab has been installed"),
    ),
    ScriptCase(
        "claude-code (vendor installer)",
        "nodejs",
        (("ai_agent", "claude-code"),),
        "module.claude-code[0].module.agentapi.coder_script.agentapi",
        download=r"claude\.ai/install\.sh",
        stopped=r"Installing Claude Code via official installer\ncurl: \(\d+\)[^\n]*claude\.ai",
        prerequisites=("command -v curl", "command -v jq", "command -v bash"),
        reached=(r"Running install script", r"Installing Claude Code via official installer"),
    ),
    ScriptCase(
        "goose (GitHub release)",
        "nodejs",
        (("ai_agent", "goose"),),
        "module.goose[0].module.agentapi.coder_script.agentapi",
        download=r"https://github\.com/block/goose/releases/download/stable/download_cli\.sh",
        stopped=r"Installing Goose\.\.\.\ncurl: \(\d+\)[^\n]*github\.com",
        prerequisites=("command -v curl", "command -v bzip2", "command -v jq"),
        reached=(r"Running install script",),
    ),
    ScriptCase(
        "code-server (vendor installer)",
        "nodejs",
        (),
        "module.code-server[0].coder_script.code-server",
        download=r"https://code-server\.dev/install\.sh",
        # run.sh then says "code-server has been installed" and exits 0 all the same.
        stopped=r"curl: \(\d+\)[^\n]*code-server\.dev",
        prerequisites=("command -v curl",),
    ),
)


def _module_of(address: str) -> str:
    """``module.copilot[0]`` of ``module.copilot[0].module.agentapi.coder_script.agentapi``."""
    return address.split(".module.", maxsplit=1)[0].rsplit(".coder_script.", 1)[0]


def _applied_scripts(
    workdir: Path, case: plantest.Case, tc: terraform.Toolchain, targets: list[str]
) -> dict[str, str | None]:
    """Every ``run_on_start`` script of a targeted ``terraform apply`` (a state of its own)."""
    state = f"{case.preset}.tfstate"
    env = {**os.environ, **tc.env, **plantest.provisioner_env(case)}
    tf = [str(tc.binary)]
    apply = [*tf, "apply", "-auto-approve", "-input=false", "-no-color", f"-state={state}"]
    apply += [f"-target={t}" for t in targets]
    done = subprocess.run(apply, cwd=workdir, env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    show = [*tf, "show", "-json", state]
    shown = subprocess.run(show, cwd=workdir, env=env, capture_output=True, text=True, check=True)
    resources = _resources(json.loads(shown.stdout)["values"]["root_module"])
    return {
        r["address"]: r["values"].get("script")
        for r in resources
        if r["type"] == "coder_script" and r["values"].get("run_on_start")
    }


def _unwrapped(script: str, depth: int = 3) -> list[str]:
    """The script and every script it carries base64-encoded (modules nest them so), unwrapped."""
    found = [script]
    for blob in re.findall(r"'([A-Za-z0-9+/]{40,}={0,2})'", script) if depth else ():
        try:
            inner = base64.b64decode(blob, validate=True).decode()
        except (ValueError, UnicodeDecodeError):
            continue
        found += _unwrapped(inner, depth - 1)
    return found


def _resources(module: dict[str, Any]) -> list[dict[str, Any]]:
    found = list(module.get("resources", []))
    for child in module.get("child_modules", []):
        found += _resources(child)
    return found


@dataclass
class Planned:
    """A start of one template with one agent: its scripts and the agent's environment."""

    scripts: dict[str, str | None]
    env: dict[str, str]


@pytest.fixture(scope="module")
def planned(tmp_path_factory) -> dict[tuple[str, tuple[tuple[str, str], ...]], Planned]:
    """A real plan (real modules) per template and agent of CASES: scripts and the agent's env."""
    reason = ""
    if len(TOOLS_ENV) < len(TOOLS):
        reason = "no offline terraform toolchain: `nox -s tools` builds terraform and the providers"
    elif not (Path(TOOLS_ENV["CODERBUNDLE_MODULE_MIRROR"]) / REAL_MODULES).is_file():
        reason = "the module mirror serves the stubs, without scripts (real: ../shared/registry-modules)"
    if reason:
        # .ci/run builds the toolchain and has the real trees beside the clone: there, a failure.
        (pytest.fail if os.environ.get("CI", "").lower() == "true" else pytest.skip)(reason)
    root = make_bundle(tmp_path_factory.mktemp("bundle") / "b", real=tuple({c.template for c in CASES}))
    settings = load_settings(root, TOOLS_ENV)
    rendered = {r.name: r for r in render_all(settings)}
    out: dict[tuple[str, tuple[tuple[str, str], ...]], Planned] = {}
    with terraform.toolchain(settings) as tc:
        scratch = tmp_path_factory.mktemp("scratch")
        for name, r in rendered.items():
            assert terraform.init_dir(r.path, scratch / name, tc) is None
        for i, (template, params) in enumerate(sorted({(c.template, c.parameters) for c in CASES})):
            case = plantest.Case(template, f"scripts-{i}", "start", parameters=params)
            plan = plantest._plan(scratch / template, case, tc)
            assert isinstance(plan, dict), plan
            resources = _resources(plan["planned_values"]["root_module"])
            # Some scripts are known only after apply (AgentAPI's embeds values computed then):
            # apply just the modules under test.  Their resources and the agent they hang on
            # are the coder provider's, which creates them locally; nothing reaches a cluster.
            mine = [c for c in CASES if (c.template, c.parameters) == (template, params)]
            targets = sorted({_module_of(c.address) for c in mine})
            scripts = _applied_scripts(scratch / template, case, tc, targets)
            env: dict[str, str] = {}
            for r in resources:
                if r["type"] == "coder_agent":
                    env |= r["values"].get("env") or {}
                elif r["type"] == "coder_env" and r["values"].get("value") is not None:
                    env[r["values"]["name"]] = r["values"]["value"]
            out[template, params] = Planned(scripts, env)
    return out


@dataclass
class Outcome:
    code: int
    log: str
    answers: dict[str, tuple[int, str]]
    prerequisites: dict[str, tuple[int, str]]
    host_reachable: bool | None
    env: dict[str, str]


def _run_case(case: ScriptCase, script: str, env_values: dict[str, str], client) -> Outcome:
    reference = _image_for(case.template, client)
    image_env = dict(e.split("=", 1) for e in client.images.get(reference).attrs["Config"]["Env"])
    env = agent_environment(image_env, AgentStart(env=env_values))
    # What the agent adds for every script (coder/coder agent/agentscripts).
    env |= {
        "CODER_SCRIPT_DATA_DIR": SCRIPT_DATA,
        "CODER_SCRIPT_BIN_DIR": SCRIPT_BIN_DIR,
        "CODER_AGENT_URL": "https://coder.example.com/",
    }
    container = client.containers.run(
        reference,
        ["/bin/sleep", "infinity"],
        detach=True,
        user="1000:1000",
        environment=env,
        # exec: Docker mounts a tmpfs noexec by default; a home volume is not (the AgentAPI
        # module runs the scripts it writes there).
        tmpfs={HOME: "uid=1000,gid=1000,mode=0755,exec"},
        working_dir=HOME,
    )

    def sh(command: str) -> tuple[int, str]:
        code, out = container.exec_run(["/bin/bash", "-lc", command], user="1000:1000", workdir=HOME)
        return code, out.decode(errors="replace").strip()[-400:]

    try:
        container.exec_run(["/bin/mkdir", "-p", SCRIPT_BIN_DIR], user="1000:1000")
        prerequisites = {check: sh(check) for check in case.prerequisites}
        _put_file(container, f"{SCRIPT_DATA}/module-script.sh", script)
        cmd = ["/usr/bin/timeout", str(SCRIPT_TIMEOUT_S), "/bin/bash", f"{SCRIPT_DATA}/module-script.sh"]
        code, out = container.exec_run(cmd, user="1000:1000", workdir=HOME)
        log = out.decode(errors="replace")
        answers = {check: sh(check) for check in case.answers}
        reachable = None
        if case.download and (m := re.search(case.download, "\n".join([log, *_unwrapped(script)]))):
            url = m[0] if "://" in m[0] else f"https://{m[0]}"
            host = urlsplit(url).netloc
            reachable = sh(f"curl -sS --max-time 15 -o /dev/null https://{host}/")[0] == 0
    finally:
        container.remove(force=True)
    return Outcome(code, log, answers, prerequisites, reachable, env)


@pytest.fixture(scope="module")
def outcomes(planned, docker_client) -> dict[str, Outcome | str]:
    """Every case run, a few at a time (each in its own container)."""
    for case in CASES:
        _image_for(case.template, docker_client)  # skips, saying why, without the built images

    def run(case: ScriptCase) -> Outcome | str:
        try:
            return run_one(case)
        except Exception as exc:  # noqa: BLE001 - reported by that case's test, the others go on
            return f"{type(exc).__name__}: {exc}"

    def run_one(case: ScriptCase) -> Outcome:
        p = planned[case.template, case.parameters]
        assert case.address in p.scripts, f"{case.label}: no {case.address} in the plan: {sorted(p.scripts)}"
        script = p.scripts[case.address]
        assert script, f"{case.label}: {case.address}'s script is known only after apply"
        return _run_case(case, script, p.env, docker_client)

    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        done = dict(zip((c.label for c in CASES), pool.map(run, CASES), strict=True))
    if logs := os.environ.get("CODERBUNDLE_SCRIPT_LOGS"):  # each script's whole log, to read
        Path(logs).mkdir(parents=True, exist_ok=True)
        for label, o in done.items():
            text = o if isinstance(o, str) else f"exit {o.code}\n{o.log}"
            name = re.sub(r"\W+", "-", label)
            (Path(logs) / f"{name}.log").write_text(text, encoding="utf-8")
    return done


@pytest.mark.docker
@pytest.mark.terraform
@pytest.mark.slow
@pytest.mark.parametrize("case", CASES, ids=[c.label for c in CASES])
def test_module_script_runs_in_its_image(case: ScriptCase, outcomes):
    o = outcomes[case.label]
    assert not isinstance(o, str), o
    tail = f"\n--- {case.label}: exit {o.code}, PATH={o.env['PATH']}\n{o.log[-3000:]}"
    for pattern in case.reached:
        assert re.search(pattern, o.log), f"the script never got to {pattern!r}{tail}"
    failed = {k: v for k, v in o.prerequisites.items() if v[0] != 0}
    assert not failed, f"prerequisites missing in the image: {failed}{tail}"
    # What the script installs from the registries answers, even where a later download fails.
    bad = {k: v for k, v in o.answers.items() if v[0] != 0}
    assert not bad, f"installed tools do not answer: {bad}{tail}"
    if case.download and o.host_reachable is not True:
        # The one download from outside the registries: wanted, tried, failed, and unreachable.
        assert o.host_reachable is False, f"neither the script nor its log has {case.download!r}{tail}"
        assert re.search(case.stopped, o.log), f"the log shows no failed try of {case.download!r}{tail}"
        return
    assert o.code == 0, f"the script failed{tail}"


def test_every_module_with_a_script_is_a_case():
    """A module that gains a start script in our templates gets a case here (or a reason)."""
    named = {re.sub(r"\[0\].*", "", c.address).removeprefix("module.") for c in CASES}
    # Not run here: coder-login and dotfiles run the agent's coder CLI against a Coder server,
    # git-clone clones the repository a developer names; none of them has an installer.
    needs_server = {"coder-login", "dotfiles", "git-clone"}
    used = set()
    for tf in (Path(__file__).resolve().parent.parent / "templates").rglob("*.tf.j2"):
        used |= set(re.findall(r'^module "([\w-]+)"', tf.read_text(encoding="utf-8"), flags=re.MULTILINE))
    with_scripts = {"claude-code", "goose", "aider", "copilot", "code-server", "jupyterlab", *needs_server}
    assert with_scripts <= used | needs_server
    assert (used & with_scripts) - needs_server <= named
