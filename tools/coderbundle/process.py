"""The one door to subprocesses: every terraform, coder and helm call goes through ``run``.

argv is always a list, never a shell string.  Output is captured and shown
only when the command fails; secrets passed in ``secrets`` are replaced by
``***`` in everything this module logs, returns in errors or raises.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shlex
import shutil
import signal
import subprocess
from dataclasses import dataclass
from typing import TYPE_CHECKING

from coderbundle.errors import CommandFailed, CommandNotFound
from coderbundle.files import decode_output

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence
    from pathlib import Path

__all__ = ["Completed", "git", "redact", "run", "which"]

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 3600.0  # seconds; above helm --wait --timeout 30m (deploy.py)
_GRACE_SECONDS = 5.0


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
    the log line, the returned output and any error.  Every command has a
    timeout (``DEFAULT_TIMEOUT`` unless given) and runs in its own process
    group: on timeout or interrupt the whole group is killed, grandchildren too.
    Output is decoded as UTF-8 with undecodable bytes replaced.
    """
    secrets = tuple(secrets)
    program = which(argv[0]) if os.sep not in argv[0] else argv[0]
    full = [program, *argv[1:]]
    log.debug("$ %s", redact(shlex.join(argv), secrets))
    merged = {**os.environ, **env} if env is not None else None
    limit = DEFAULT_TIMEOUT if timeout is None else timeout
    try:
        proc = subprocess.Popen(  # noqa: S603 - argv list, no shell
            full,
            cwd=cwd,
            env=merged,
            stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
    except OSError as exc:
        msg = f"{argv[0]}: cannot start ({exc.strerror or exc}); check that it is installed and executable"
        raise CommandNotFound(msg) from None
    try:
        raw_out, raw_err = proc.communicate(stdin.encode() if stdin is not None else None, timeout=limit)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        argv_shown = [redact(a, secrets) for a in argv]
        msg = f"{argv_shown[0]} timed out after {limit:g}s and was stopped (with everything it started)"
        raise CommandFailed(argv_shown, -1, "", "", msg) from None
    except BaseException:  # KeyboardInterrupt, SystemExit: leave no process behind
        _kill_group(proc)
        raise
    out = redact(decode_output(raw_out), secrets)
    err = redact(decode_output(raw_err), secrets)
    if check and proc.returncode != 0:
        raise CommandFailed([redact(a, secrets) for a in argv], proc.returncode, out, err)
    return Completed(tuple(argv), proc.returncode, out, err)


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    """Stop ``proc`` and everything it started: SIGTERM to the group, SIGKILL after a grace period."""
    for sig, grace in ((signal.SIGTERM, _GRACE_SECONDS), (signal.SIGKILL, None)):
        try:
            os.killpg(proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            break
        try:
            proc.communicate(timeout=grace)
        except subprocess.TimeoutExpired:
            continue
        if sig == signal.SIGTERM:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)  # leftovers of the group
            break
    proc.wait()


def git(root: Path, *args: str) -> str:
    """``git <args>`` in ``root``: its stripped output, or "" outside a repository or without git."""
    try:
        done = run(["git", *args], cwd=root, check=False)
    except CommandNotFound:
        return ""
    return done.stdout.strip() if done.returncode == 0 else ""
