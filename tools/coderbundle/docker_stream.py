"""The Docker SDK edge of ``images``: connect, stream a build, stream a push.

docker-py has no BuildKit, so builds go through the classic builder via
``client.api.build(..., decode=True)``.  Both the build and the push stream
report failures *inside* an HTTP 200 response (``error``/``errorDetail``
chunks); this module turns those into one-line ``ImageBuildError``s and prints
the failing step's last log lines first.  Nothing here decides what to build.
"""

from __future__ import annotations

import logging
import re
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import docker
from docker.errors import APIError, DockerException, NotFound

from coderbundle.console import err_console
from coderbundle.errors import ImageBuildError, RegistryPushError

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping
    from typing import IO

__all__ = [
    "ARCHES",
    "connect",
    "daemon_arch",
    "local_image_id",
    "pull_image",
    "push_image",
    "registry_digest",
    "stream_build",
]

log = logging.getLogger(__name__)

# Daemon `Arch` (Go or uname spelling) -> Docker/Debian architecture name.
ARCHES = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}
TAIL_LINES = 15
STEP_CHARS = 60
_STEP = re.compile(r"^Step \d+/\d+ : ")
_DIGEST = re.compile(r"digest: (sha256:[0-9a-f]{64})")
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_NOISE = re.compile(r"^\s*(---> |Removing intermediate container )")
_COMMAND = re.compile(r"^The command '.*' returned", re.DOTALL)


def connect(environ: Mapping[str, str]) -> docker.DockerClient:
    """A client for the daemon ``environ`` points at (DOCKER_HOST, or the CLI context)."""
    where = environ.get("DOCKER_HOST") or "the default Docker socket/context"
    socket = where.removeprefix("unix://") if where.startswith("unix://") else ""
    if socket and not Path(socket).exists():
        msg = f"cannot reach the Docker daemon at {where} (no such socket); start dockerd or fix DOCKER_HOST"
        raise ImageBuildError(msg)
    client = None
    try:
        client = docker.from_env(environment=dict(environ))
        client.ping()
    except DockerException as exc:
        if client is not None:
            client.close()
        msg = f"cannot reach the Docker daemon at {where} ({_short(exc)}); start dockerd or fix DOCKER_HOST"
        raise ImageBuildError(msg) from None
    return client


def daemon_arch(client: docker.DockerClient) -> str:
    """The daemon's architecture as a Docker platform name (amd64, arm64)."""
    arch = str(client.version().get("Arch", ""))
    if arch not in ARCHES:
        msg = f"unsupported daemon architecture {arch!r}; the images support amd64 and arm64"
        raise ImageBuildError(msg)
    return ARCHES[arch]


def local_image_id(client: docker.DockerClient, ref: str) -> str | None:
    """The id of local image ``ref``, or None when the daemon does not have it."""
    try:
        return str(client.images.get(ref).id)
    except NotFound:
        return None


def registry_digest(client: docker.DockerClient, ref: str) -> str | None:
    """The manifest digest of ``ref`` in its registry, or None when it is not there."""
    try:
        return str(client.images.get_registry_data(ref).id)
    except (NotFound, APIError) as exc:
        log.debug("registry lookup of %s: %s", ref, _short(exc))
        return None


def pull_image(client: docker.DockerClient, repository: str, tag: str) -> str:
    """Pull ``repository:tag`` (a parent verified in the registry) and return its id."""
    try:
        for chunk in client.api.pull(repository, tag=tag, stream=True, decode=True):
            if "error" in chunk:
                raise ImageBuildError(f"pull {repository}:{tag} failed: {_error_text(chunk)}")
    except APIError as exc:
        raise ImageBuildError(f"pull {repository}:{tag} failed: {_short(exc)}") from None
    image_id = local_image_id(client, f"{repository}:{tag}")
    if image_id is None:
        raise ImageBuildError(f"pull {repository}:{tag} reported success but no image is present")
    return image_id


@dataclass
class _BuildLog:
    """What the build stream said so far: the current step and its recent lines."""

    step: str = "(before the first step)"
    tail: deque[str] = field(default_factory=lambda: deque(maxlen=TAIL_LINES))
    image_id: str = ""

    def feed(self, chunk: Mapping[str, Any], progress: Callable[[str], None]) -> None:
        if "aux" in chunk and isinstance(chunk["aux"], dict) and "ID" in chunk["aux"]:
            self.image_id = str(chunk["aux"]["ID"])
        for line in _ANSI.sub("", str(chunk.get("stream", ""))).splitlines():
            if not line.strip():
                continue
            log.debug("  %s", line)
            if _STEP.match(line):
                self.step = line
                self.tail.clear()
                progress(line)
            elif not _NOISE.match(line):
                self.tail.append(line)


def stream_build(  # noqa: PLR0913 - one build, described by keyword arguments
    client: docker.DockerClient,
    *,
    name: str,
    context: IO[bytes],
    ref: str,
    buildargs: Mapping[str, str],
    labels: Mapping[str, str],
    progress: Callable[[str], None],
    nocache: bool = False,
) -> str:
    """Build ``context`` (an uncompressed tar) as ``ref`` and return the new image id."""
    state = _BuildLog()
    try:
        chunks: Iterable[dict[str, Any]] = client.api.build(
            fileobj=context,
            custom_context=True,
            tag=ref,
            buildargs=dict(buildargs),
            labels=dict(labels),
            rm=True,
            forcerm=True,
            nocache=nocache,
            decode=True,
        )
        for chunk in chunks:
            if "error" in chunk or "errorDetail" in chunk:
                _fail_build(name, state, _error_text(chunk))
            state.feed(chunk, progress)
    except APIError as exc:
        _fail_build(name, state, _short(exc))
    return _built_id(client, name, ref, state)


def _built_id(client: docker.DockerClient, name: str, ref: str, state: _BuildLog) -> str:
    image_id = local_image_id(client, ref)
    if image_id is None or (state.image_id and state.image_id != image_id):
        _fail_build(name, state, f"the build stream ended without producing {ref}")
    return str(image_id)


def _fail_build(name: str, state: _BuildLog, reason: str) -> None:
    err_console.print(f"images/{name}: failed at {_clip(state.step, 300)}", style="bold", markup=False)
    for line in state.tail:
        err_console.print(f"    {line}", markup=False)
    reason = _COMMAND.sub("the command returned", reason)
    msg = f"images/{name}/Dockerfile: {_clip(state.step, STEP_CHARS)} failed: {reason}"
    raise ImageBuildError(msg)


def push_image(
    client: docker.DockerClient,
    repository: str,
    tag: str,
    progress: Callable[[str], None],
) -> str:
    """Push ``repository:tag`` and return the registry's manifest digest."""
    digest = ""
    try:
        for chunk in client.api.push(repository, tag=tag, stream=True, decode=True):
            if "error" in chunk or "errorDetail" in chunk:
                _fail_push(repository, tag, _error_text(chunk))
            digest = _chunk_digest(chunk) or digest
            if chunk.get("status"):
                progress(f"push: {chunk['status']}")
    except APIError as exc:
        _fail_push(repository, tag, _short(exc))
    if not digest:
        _fail_push(repository, tag, "the push stream reported no digest")
    return digest


def _chunk_digest(chunk: Mapping[str, Any]) -> str:
    aux = chunk.get("aux")
    if isinstance(aux, dict) and str(aux.get("Digest", "")).startswith("sha256:"):
        return str(aux["Digest"])
    found = _DIGEST.search(str(chunk.get("status", "")))
    return found.group(1) if found else ""


def _fail_push(repository: str, tag: str, reason: str) -> None:
    registry = repository.split("/", 1)[0]
    msg = f"push {repository}:{tag} failed: {reason}; check `docker login {registry}` and the registry"
    raise RegistryPushError(msg)


def _error_text(chunk: Mapping[str, Any]) -> str:
    detail = chunk.get("errorDetail")
    text = chunk.get("error") or (detail.get("message") if isinstance(detail, dict) else "")
    return _one_line(str(text or "unknown error"))


def _short(exc: BaseException) -> str:
    explanation = getattr(exc, "explanation", None)
    return _one_line(str(explanation or exc))


def _clip(text: str, limit: int) -> str:
    text = text.strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _one_line(text: str) -> str:
    return " ".join(text.split())
