"""The one door to subprocesses: every terraform, coder and helm call goes through ``run``.

argv is always a list, never a shell string.  Output is captured and shown
only when the command fails; secrets passed in ``secrets`` are replaced by
``***`` in everything this module logs, returns in errors or raises.
"""

from __future__ import annotations

import logging
import os
import shlex
import shutil
import subprocess
from dataclasses import dataclass
from typing import TYPE_CHECKING

from coderbundle.errors import CommandFailed, CommandNotFound

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence
    from pathlib import Path

__all__ = ["Completed", "git", "redact", "run", "which"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Completed:
    """The result of a finished command."""

    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str


def redact(text: str, secrets: Iterable[str]) -> str:
    """Return ``text`` with every non-empty secret replaced by ``***``."""
    for secret in sorted((s for s in secrets if s), key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


def which(program: str, *, hint: str = "", path: str | None = None) -> str:
    """Return the absolute path of ``program`` or raise ``CommandNotFound``."""
    found = shutil.which(program, path=path)
    if found is None:
        extra = f"; {hint}" if hint else ""
        msg = f"{program}: executable not found on PATH{extra}"
        raise CommandNotFound(msg)
    return found


def run(  # noqa: PLR0913 - keyword-only knobs of one call
    argv: Sequence[str],
    *,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    stdin: str | None = None,
    check: bool = True,
    secrets: Iterable[str] = (),
    timeout: float | None = None,
) -> Completed:
    """Run ``argv`` and return its output; raise ``CommandFailed`` on a bad exit.

    ``env`` is added to the current environment.  ``secrets`` are scrubbed from
    the log line, the returned output and any error.
    """
    secrets = tuple(secrets)
    program = which(argv[0]) if os.sep not in argv[0] else argv[0]
    full = [program, *argv[1:]]
    log.debug("$ %s", redact(shlex.join(argv), secrets))
    merged = {**os.environ, **env} if env is not None else None
    try:
        proc = subprocess.run(  # noqa: S603 - argv list, no shell
            full,
            cwd=cwd,
            env=merged,
            input=stdin,
            capture_output=True,
            text=True,
            check=False,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired as exc:
        raise CommandFailed(argv, -1, "", f"timed out after {exc.timeout}s") from None
    out = redact(proc.stdout, secrets)
    err = redact(proc.stderr, secrets)
    if check and proc.returncode != 0:
        raise CommandFailed([redact(a, secrets) for a in argv], proc.returncode, out, err)
    return Completed(tuple(argv), proc.returncode, out, err)


def git(root: Path, *args: str) -> str:
    """``git <args>`` in ``root``: its stripped output, or "" outside a repository or without git."""
    try:
        done = run(["git", *args], cwd=root, check=False)
    except CommandNotFound:
        return ""
    return done.stdout.strip() if done.returncode == 0 else ""
