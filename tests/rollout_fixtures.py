"""Workspaces with REAL agents on the real Coder server, for the rollout tests.

The template ``tests/fixtures/rollout/local-agent`` runs each workspace as a
``coder agent`` process on this machine (a ``terraform_data`` local-exec with the
agent token), so builds reach agent ``ready`` for real with no cluster; a stop
build kills the process.  ``local_agent_bundle`` lays it out as a bundle template
that ``coderbundle publish`` pushes like any other; its knobs make a broken
candidate (a startup script that exits 1, an agent that never connects) or one
that renames the volume-naming parameter.
"""

from __future__ import annotations

import json
import time
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bundle_files import copy_settings

if TYPE_CHECKING:
    from coder_deployment import CoderDeployment

REPO = Path(__file__).resolve().parent.parent
LOCAL_AGENT = REPO / "tests" / "fixtures" / "rollout" / "local-agent" / "main.tf"
TEMPLATE_TOML = """\
display_name = "Local agent"
description = "A workspace that is a coder agent process on the provisioner's machine (tests)"
icon = "/icon/terminal.svg"
tags = ["fixture"]
image = "base"
"""


def local_agent_tf(
    deployment: CoderDeployment,
    *,
    startup_script: str = "echo ready",
    start_agent: bool = True,
    volume_parameter: str = "volume_name",
    marker: str = "",
) -> str:
    """The template's ``main.tf`` with its variables' defaults set for this deployment."""
    text = LOCAL_AGENT.read_text(encoding="utf-8")
    for name, value in (("coder_binary", str(deployment.binary)), ("run_dir", str(deployment.agents_dir))):
        head = f'variable "{name}" {{\n'
        text = text.replace(head, f"{head}  default     = {json.dumps(value)}\n", 1)
    text = text.replace('startup_script = "echo ready"', f"startup_script = {json.dumps(startup_script)}", 1)
    text = text.replace("start_agent    = true", f"start_agent    = {json.dumps(start_agent)}", 1)
    if volume_parameter != "volume_name":
        text = text.replace('name        = "volume_name"', f'name        = "{volume_parameter}"')
    return text + (f"\n# {marker}\n" if marker else "")


def providers_tf() -> str:
    """The bundle's provider pins (templates/_shared/versions.toml) as a ``terraform`` block."""
    versions = tomllib.loads((REPO / "templates" / "_shared" / "versions.toml").read_text())["providers"]
    lines = ["terraform {", "  required_providers {"]
    for name in ("coder", "kubernetes"):
        pin = versions[name]
        lines += [f"    {name} = {{", f'      source  = "{pin["source"]}"']
        lines += [f'      version = "{pin["version"]}"', "    }"]
    return "\n".join([*lines, "  }", "}", ""])


def write_local_agent(root: Path, name: str, deployment: CoderDeployment, **knobs: Any) -> Path:
    """``templates/<name>/`` of a bundle: the local-agent template with ``knobs``."""
    folder = root / "templates" / name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "main.tf").write_text(local_agent_tf(deployment, **knobs))
    (folder / "providers.tf").write_text(providers_tf())
    (folder / "template.toml").write_text(TEMPLATE_TOML)
    (folder / "README.md").write_text("# Local agent\n\nA workspace that is a local agent process.\n")
    return folder


def local_agent_bundle(root: Path, names: tuple[str, ...], deployment: CoderDeployment, **knobs: Any) -> Path:
    """A bundle root with the repository's bundle.toml and a local-agent template per name."""
    (root / "templates").mkdir(parents=True, exist_ok=True)
    copy_settings(root)
    for name in names:
        write_local_agent(root, name, deployment, **knobs)
    return root


def wait_for_build(deployment: CoderDeployment, token: str, workspace_id: str, timeout: float = 120) -> dict:
    """The workspace once its latest build finished and its agents settled (ready or failed)."""
    deadline = time.monotonic() + timeout
    while True:
        ws = deployment.api("GET", f"/workspaces/{workspace_id}", token)
        build = ws["latest_build"]
        agents = [a for r in build["resources"] for a in r.get("agents") or []]
        settled = build["job"]["status"] in ("failed", "canceled") or (
            build["job"]["status"] == "succeeded"
            and (
                build["transition"] != "start"
                or all(a["lifecycle_state"] in ("ready", "start_error", "start_timeout") for a in agents)
            )
        )
        if settled:
            return ws
        assert time.monotonic() < deadline, f"workspace {ws['name']} did not settle: {build['job']['status']}"
        time.sleep(0.5)


def create_workspace(
    deployment: CoderDeployment, token: str, template_id: str, name: str, **parameters: str
) -> dict:
    """A workspace of the token's user on the template's active version, built and settled."""
    org = deployment.default_org()
    body = {
        "name": name,
        "template_id": template_id,
        "rich_parameter_values": [{"name": k, "value": v} for k, v in parameters.items()],
    }
    ws = deployment.api("POST", f"/organizations/{org}/members/me/workspaces", token, body)
    return wait_for_build(deployment, token, ws["id"])


def agents(ws: dict) -> list[dict]:
    """The agents of a workspace's latest build."""
    return [a for r in ws["latest_build"]["resources"] for a in r.get("agents") or []]
