"""Tools the user configured must run: a wrong setting is an error naming the setting, never a skip.

``CODERBUNDLE_TERRAFORM=terrafrom`` used to say "set CODERBUNDLE_TERRAFORM" (it
was set) and end "valid"; ``CODERBUNDLE_CODER=/nope/coder`` said "not found on
PATH".  ``find_tool`` says which setting holds what, and why it cannot run.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from coderbundle.errors import CommandNotFound, EnvError

__all__ = ["find_tool", "why_not_runnable"]


def why_not_runnable(program: str) -> str:
    """Why ``program`` (a name on PATH or a path) cannot be run; '' when it can."""
    if shutil.which(program) is not None:
        return ""
    if os.sep not in program:
        return "no such program on PATH"
    path = Path(program)
    if not path.exists():
        return "no such file"
    if path.is_dir():
        return "is a directory, not a program"
    return "not executable (chmod +x it)"


def find_tool(program: str, *, configured_by: str = "", install_hint: str) -> str:
    """The absolute path of ``program``; ``EnvError`` naming ``configured_by`` when that setting is wrong.

    ``configured_by`` is where the value came from (``CODERBUNDLE_CODER``, ``[coder] executable
    in bundle.toml``), or '' for the built-in default, which gets ``install_hint``.
    """
    found = shutil.which(program)
    if found is not None:
        return found
    why = why_not_runnable(program)
    if configured_by:
        msg = f"{configured_by} is {program!r}: {why}; fix it, or unset it to use the default"
        raise EnvError(msg)
    msg = f"{program}: {why}; {install_hint}"
    raise CommandNotFound(msg)
