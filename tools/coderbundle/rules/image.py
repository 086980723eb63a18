"""Rules about the template's workspace image: environment it sets, commands it ships.

The image is the folder ``template.toml``'s ``image`` names under ``images/``;
its Dockerfile (and the base's, for an image built ``FROM ${BASE_IMAGE}``) is
read statically: ``ENV`` lines give the environment, ``apt-get install`` lines
and a few download patterns give the commands (``data/image_commands.json``).
Nothing is built or run.
"""

from __future__ import annotations

import functools
import json
import re
import shlex
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from coderbundle.hcl import is_expression, literal
from coderbundle.rules import Model, line_of, rule

if TYPE_CHECKING:
    from collections.abc import Iterator

    from coderbundle.findings import Problem
    from coderbundle.hcl import Block

BASE = "base"
_VAR = re.compile(r"\$\{(\w+)(?::-([^}]*))?\}|\$(\w+)")
_APT = re.compile(r"apt-get\s+install\s+([^&;|]*)")
_LOCAL_BIN = re.compile(r"/usr/local/bin/([A-Za-z0-9][\w.+-]*)")
_FOR = re.compile(r"for\s+(\w+)\s+in\s+([^;]+);")
_TAR_MEMBER = re.compile(r"\"[^\"]*/([A-Za-z0-9][\w.+-]*)\"")
_GO_INSTALL = re.compile(r"go\s+install\s+\"?([^\"\s@]+)@")
_MAJOR = re.compile(r"^v\d+$")


@dataclass(frozen=True)
class ImageFacts:
    """What one image provides, base included."""

    name: str
    dockerfile: str  # the image's own Dockerfile, for messages
    base: str  # the base's Dockerfile when the image builds on it, else ""
    env: dict[str, tuple[str, str]]  # name -> (final value, "file:line" that set it)
    commands: frozenset[str]


@functools.cache
def _data(name: str) -> dict[str, Any]:
    text = (resources.files("coderbundle") / "data" / name).read_text(encoding="utf-8")
    data: dict[str, Any] = json.loads(text)
    return data


def instructions(text: str) -> list[tuple[int, str, str]]:
    """``(line, KEYWORD, arguments)`` per instruction; continuations joined, comment lines dropped."""
    out: list[tuple[int, str, str]] = []
    buf: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if line.startswith("#") or (not buf and not line):
            continue
        if not buf:
            start = number
        if line.endswith("\\"):
            buf.append(line[:-1].strip())
            continue
        buf.append(line)
        keyword, _, rest = " ".join(buf).partition(" ")
        out.append((start, keyword.upper(), rest.strip()))
        buf = []
    return out


def _expand(value: str, scope: dict[str, str]) -> str:
    def one(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(3)
        found = scope.get(name, "")
        return found or (match.group(2) or "")

    return _VAR.sub(one, value)


def _env_pairs(rest: str) -> list[tuple[str, str]]:
    try:
        tokens = shlex.split(rest, posix=True)
    except ValueError:
        return []
    if tokens and "=" not in tokens[0]:  # legacy form: ENV NAME value with spaces
        return [(tokens[0], " ".join(tokens[1:]))]
    return [(k, v) for k, _, v in (t.partition("=") for t in tokens if "=" in t)]


def _apt_commands(run: str) -> set[str]:
    table: dict[str, list[str]] = _data("image_commands.json")["apt"]
    found: set[str] = set()
    for group in _APT.findall(run):
        for token in group.split():
            if not token.startswith("-"):
                # A package outside the table is taken to ship a command of its own name.
                found.update(table.get(token.split("=", 1)[0], [token.split("=", 1)[0]]))
    return found


def _local_bin_commands(run: str) -> set[str]:
    """Files put into /usr/local/bin: by path, by a for loop, by tar -C, by GOBIN go install."""
    found = set(_LOCAL_BIN.findall(run))
    for var, words in _FOR.findall(run):
        if re.search(rf"/usr/local/bin/\"?\$\{{?{var}\b", run):
            found.update(w.strip("\"'") for w in words.split())
    for step in run.split("&&"):
        if re.search(r"-C\s+/usr/local/bin\b", step):
            found.update(_TAR_MEMBER.findall(step))
    if "GOBIN=/usr/local/bin" in run:
        for path in _GO_INSTALL.findall(run):
            parts = path.split("/")
            found.add(parts[-2] if _MAJOR.match(parts[-1]) and len(parts) > 1 else parts[-1])
    return found


def _installed(run: str, downloads: list[dict[str, Any]]) -> set[str]:
    """Commands one RUN instruction installs: apt packages, known downloads, files in /usr/local/bin."""
    found = _apt_commands(run) | _local_bin_commands(run)
    for download in downloads:
        if re.search(download["pattern"], run):
            found.update(download["commands"])
    return found


@functools.cache
def image_facts(images_dir: str, name: str) -> ImageFacts | None:
    """The facts of ``images_dir/name``, or None when it has no Dockerfile."""
    dockerfile = Path(images_dir) / name / "Dockerfile"
    try:
        text = dockerfile.read_text(encoding="utf-8")
    except OSError:
        return None
    steps = instructions(text)
    args = {rest.split("=", 1)[0].strip() for _, kw, rest in steps if kw == "ARG"}
    parent = image_facts(images_dir, BASE) if name != BASE and "BASE_IMAGE" in args else None
    env = dict(parent.env) if parent else {}
    data = _data("image_commands.json")
    commands = set(parent.commands) if parent else set(data["essential"])
    scope = {k: v for k, (v, _) in env.items()}
    for line, keyword, rest in steps:
        if keyword == "ARG" and "=" in rest:
            key, _, default = rest.partition("=")
            scope.setdefault(key.strip(), default.strip().strip("\"'"))
        elif keyword == "ENV":
            for key, raw in _env_pairs(rest):
                value = _expand(raw, scope)
                scope[key] = value
                env[key] = (value, f"images/{name}/Dockerfile:{line}")
        elif keyword == "RUN":
            commands |= _installed(rest, data["downloads"])
    base = f"images/{BASE}/Dockerfile" if parent else ""
    return ImageFacts(name, f"images/{name}/Dockerfile", base, env, frozenset(commands))


def _image(m: Model) -> ImageFacts | None:
    template = m.rendered.template
    images_dir = template.source.parent.parent / "images"
    return image_facts(str(images_dir), template.settings.image)


def _settings(m: Model) -> Iterator[tuple[Block, str, str, Any, int]]:
    """``(block, where, name, value, line)`` for every variable the agent sets from the template."""
    for env in m.top("resource", "coder_env"):
        name = env.get("name")
        if name is not None and not is_expression(name) and "value" in env.attributes:
            where = f'coder_env "{env.labels[1]}"'
            yield env, where, str(literal(name)), env.get("value"), line_of(env, "value")
    for agent in m.top("resource", "coder_agent"):
        values = agent.get("env")
        if isinstance(values, dict):
            for key, value in values.items():
                where = f'coder_agent "{agent.labels[1]}" env'
                yield agent, where, str(literal(key)), value, line_of(agent, "env")


def _refers_to_itself(text: str, name: str) -> bool:
    """``$NAME`` or the escaped ``$${NAME}``: the agent expands it to the value the image set."""
    return re.search(rf"\$(?:{re.escape(name)}(?!\w)|\$\{{{re.escape(name)}\}})", text) is not None


@rule("CB124")
def env_keeps_image_value(m: Model) -> Iterator[Problem]:
    """A variable the image sets (always PATH) is extended or kept, never replaced."""
    facts = _image(m)
    image_env = facts.env if facts else {}
    for block, where, name, value, line in _settings(m):
        if name != "PATH" and name not in image_env:
            continue
        if not isinstance(value, str) or not value.startswith('"'):
            continue  # a bare expression: its value is known only at plan time
        text = str(literal(value))
        if re.fullmatch(r"\$\{[^{}]*\}", text) or _refers_to_itself(text, name):
            continue
        if name in image_env and text == image_env[name][0]:
            continue
        origin = f" ({image_env[name][1]} sets it)" if name in image_env else ""
        msg = (
            f"{where} replaces {name}{origin}: the agent sets the value as written, without "
            f"${name}, and merge_strategy does not keep the image's value; "
            f"append :${name} to the value (or use the image's value exactly)"
        )
        yield m.problem(block, "CB124", msg, line)


def _needs_data(source: str) -> dict[str, Any] | None:
    entry: dict[str, Any] | None = _data("module_commands.json")["modules"].get(source)
    return entry


@rule("CB125")
def module_commands_shipped(m: Model) -> Iterator[Problem]:
    """Every command a called registry module's scripts need is in the template's image."""
    facts = _image(m)
    if facts is None:
        return
    for mod in m.top("module"):
        source = str(literal(mod.get("source", "")))
        entry = _needs_data(source)
        if entry is None:
            continue
        label = mod.labels[0] if mod.labels else "?"
        raw = mod.get("version")
        version = literal(raw)
        if raw is not None and not is_expression(raw) and version != entry["version"]:
            msg = (
                f'module "{label}" uses version {version}, but data/module_commands.json describes '
                f"{entry['version']}; read that version's scripts and update the table"
            )
            yield m.problem(mod, "CB125", msg, line_of(mod, "version"))
            continue
        short = "/".join(source.split("/")[1:3])
        for need, why in entry["needs"].items():
            if any(alt in facts.commands for alt in need.split("|")):
                continue
            wanted = " or ".join(need.split("|"))
            where = facts.dockerfile
            if facts.base:
                where += f" (or {facts.base} for every image)"
            msg = (
                f'module "{label}" ({short} {entry["version"]}) needs {wanted} ({why}); '
                f'image "{facts.name}" does not ship it: install it in {where}'
            )
            yield m.problem(mod, "CB125", msg)
