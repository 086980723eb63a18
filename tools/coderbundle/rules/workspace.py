"""Rules about the workspace's shape: providers, the agent, compute and volumes, modules."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from coderbundle.hcl import Block, is_expression, literal, references
from coderbundle.rules import Model, line_of, rule

if TYPE_CHECKING:
    from collections.abc import Iterator

    from coderbundle.findings import Problem

COMPUTE = re.compile(r"^kubernetes_(deployment|pod|stateful_set|daemon_set|job)(_v1)?$")
VOLUME = re.compile(r"^kubernetes_persistent_volume_claim(_v1)?$")
# What must outlive a stop: volumes, and namespaces holding what the developer deployed.
PERSISTENT = re.compile(r"^kubernetes_(persistent_volume_claim|namespace)(_v1)?$")
START_COUNT = "data.coder_workspace.me.start_count"
WORKSPACE_ID = "data.coder_workspace.me.id"
REQUIRED_PROVIDERS = ("coder", "kubernetes")
EXACT_VERSION = re.compile(r"^\d+\.\d+\.\d+$")


@rule("CB101")
def required_providers(m: Model) -> Iterator[Problem]:
    """``coder`` and ``kubernetes`` are required providers with version constraints."""
    found: dict[str, tuple[Block, object]] = {}
    for tf in m.top("terraform"):
        for req in tf.children("required_providers"):
            for name, attr in req.attributes.items():
                found[name] = (req, attr.value)
    for name in REQUIRED_PROVIDERS:
        if name not in found:
            first = next(iter(m.files.values()), None)
            yield m.problem(first, "CB101", f"provider {name!r} is not in required_providers; add it")
            continue
        block, spec = found[name]
        if not isinstance(spec, dict) or not literal(spec.get("version", "")):
            yield m.problem(block, "CB101", f"provider {name!r} has no version constraint; add one")


def _agents(m: Model) -> list[Block]:
    return list(m.top("resource", "coder_agent"))


@rule("CB102")
def single_agent(m: Model) -> Iterator[Problem]:
    """Exactly one ``coder_agent`` per workspace."""
    agents = _agents(m)
    if len(agents) != 1:
        where = agents[1] if len(agents) > 1 else next(iter(m.files.values()), None)
        yield m.problem(where, "CB102", f"found {len(agents)} coder_agent resources; use exactly one")


def _containers(m: Model) -> Iterator[tuple[Block, Block]]:
    for res in m.top("resource"):
        if COMPUTE.match(res.labels[0]):
            for block in res.walk():
                if block.type in ("container", "init_container"):
                    yield res, block


@rule("CB103")
def agent_token(m: Model) -> Iterator[Problem]:
    """The agent's token reaches the workspace container as ``CODER_AGENT_TOKEN``."""
    agents = _agents(m)
    if len(agents) != 1:
        return
    token = f"coder_agent.{agents[0].labels[1]}"
    for res, container in _containers(m):
        envs = {str(literal(e.get("name"))): e for e in container.children("env")}
        env = envs.get("CODER_AGENT_TOKEN")
        if env is None:
            continue
        if token not in references(env.get("value")) or ".token" not in str(env.get("value")):
            msg = f"CODER_AGENT_TOKEN in {res.address} must be {token}.token"
            yield m.problem(env, "CB103", msg)
        return
    if any(True for _ in _containers(m)):
        res, container = next(_containers(m))
        msg = f"no container in {res.address} gets env CODER_AGENT_TOKEN = {token}.token; add it"
        yield m.problem(container, "CB103", msg)


@rule("CB104")
def agent_init_script(m: Model) -> Iterator[Problem]:
    """The workspace container runs the agent's ``init_script``."""
    agents = _agents(m)
    containers = list(_containers(m))
    if len(agents) != 1 or not containers:
        return
    wanted = f"coder_agent.{agents[0].labels[1]}.init_script"
    for _, c in containers:
        for key in ("command", "args"):
            if wanted in str(c.get(key, "")):
                return
        for env in c.children("env"):
            if wanted in str(env.get("value", "")):
                return  # envbox-style bootstrap variables
    res, c = containers[0]
    msg = f'no container in {res.address} runs {wanted}; set command = ["sh", "-c", {wanted}]'
    yield m.problem(c, "CB104", msg)


@rule("CB105")
def compute_start_count(m: Model) -> Iterator[Problem]:
    """Compute resources carry ``count = data.coder_workspace.me.start_count``."""
    for res in m.top("resource"):
        if COMPUTE.match(res.labels[0]) and START_COUNT not in str(res.get("count", "")):
            msg = f"{res.address} must have count = {START_COUNT} so stopping frees it"
            yield m.problem(res, "CB105", msg, line_of(res, "count"))


@rule("CB106")
def volume_persists(m: Model) -> Iterator[Problem]:
    """Volumes and namespaces have no ``count`` tied to start: stopping must not delete them."""
    for res in m.top("resource"):
        if PERSISTENT.match(res.labels[0]) and START_COUNT in str(res.get("count", "")):
            msg = f"{res.address} has count = start_count: every stop deletes it; remove count"
            yield m.problem(res, "CB106", msg, line_of(res, "count"))


@rule("CB107")
def volume_named_by_id(m: Model) -> Iterator[Problem]:
    """Volume names use the workspace id, which survives renames."""
    for res in m.top("resource"):
        if not VOLUME.match(res.labels[0]):
            continue
        meta = res.child("metadata")
        name = meta.get("name") if meta else None
        if name is None or WORKSPACE_ID not in str(name):
            where = meta or res
            msg = f"{res.address} name must include {WORKSPACE_ID} (names and owners can change)"
            yield m.problem(where, "CB107", msg, line_of(where, "name"))


@rule("CB115")
def module_pinned(m: Model) -> Iterator[Problem]:
    """Registry modules are pinned to an exact ``version``."""
    for mod in m.top("module"):
        source = str(literal(mod.get("source", "")))
        if source.startswith((".", "/")):
            continue
        version = mod.get("version")
        if version is None or is_expression(version) or not EXACT_VERSION.match(str(literal(version))):
            msg = f'module {mod.labels[0]!r} must pin an exact version = "X.Y.Z"'
            yield m.problem(mod, "CB115", msg, line_of(mod, "version"))


@rule("CB120")
def volume_does_not_wait(m: Model) -> Iterator[Problem]:
    """PVCs set ``wait_until_bound = false``: with WaitForFirstConsumer storage the apply hangs."""
    for res in m.top("resource"):
        if VOLUME.match(res.labels[0]) and res.get("wait_until_bound") is not False:
            msg = f"{res.address} needs wait_until_bound = false (the pod that binds it comes later)"
            yield m.problem(res, "CB120", msg, line_of(res, "wait_until_bound"))


@rule("CB121")
def no_tasks(m: Model) -> Iterator[Problem]:
    """No Coder Tasks resources: Tasks is removed from Coder 2.37, the server the chart deploys."""
    for res in m.top("resource", "coder_ai_task"):
        msg = "coder_ai_task needs Coder Tasks, removed in Coder 2.37; use an AgentAPI chat app"
        yield m.problem(res, "CB121", msg)
    for data in m.top("data", "coder_task"):
        yield m.problem(data, "CB121", 'data "coder_task" needs Coder Tasks, removed in Coder 2.37')
