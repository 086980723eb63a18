"""The one door to files on disk: reading, atomic writing, and the run lock.

Every file the tool reads (``bundle.toml``, ``template.toml``,
``versions.toml``, template sources, rendered ``.tf`` files, chart values
files) goes through :func:`read_bytes`, :func:`read_text` or
:func:`read_toml`, which turn ``OSError`` and undecodable bytes into one
``ToolError`` line naming the file (and, for bad UTF-8, the line and byte
offset).  Writes go through :func:`write_atomic` (a sibling temporary file,
then one rename) and :func:`ensure_dir`; :func:`locked` serialises runs that
share a checkout (``fcntl.flock`` on ``<dir>/.coderbundle.lock``).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import tomllib
from typing import TYPE_CHECKING, Any

from coderbundle.errors import EnvError, SettingsError, ToolError

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

__all__ = [
    "MAX_CONTEXT_BYTES",
    "MAX_SOURCE_BYTES",
    "MAX_TF_BYTES",
    "MAX_UPLOAD_BYTES",
    "decode_output",
    "ensure_dir",
    "locked",
    "read_bytes",
    "read_text",
    "read_toml",
    "why_unreadable",
    "write_atomic",
]

# Coder refuses template archives over 1 MiB, so no single file of a template can be larger.
MAX_UPLOAD_BYTES = 1 << 20
# A .tf file over 256 KiB is refused before parsing: terraform fmt's time grows with the
# square of a block's size (a 1 MB block took minutes), so this keeps validation bounded.
MAX_TF_BYTES = 256 << 10
# Template sources and settings files: generous, but bounded before any parsing.
MAX_SOURCE_BYTES = 4 << 20
# A file in an image build context (images/<name>/): the contexts are small by design.
MAX_CONTEXT_BYTES = 64 << 20
LOCK_NAME = ".coderbundle.lock"
_HELD: set[Path] = set()  # locks this process holds (flock is per open file, so re-entry must not wait)


def why_unreadable(path: Path, exc: OSError) -> str:
    """A short reason for ``exc`` on ``path`` that says what to do."""
    if exc.errno == errno.ELOOP:
        return "symlink loop; fix or remove the link"
    if exc.errno == errno.ENOENT and path.is_symlink():
        return f"dangling symlink (to {path.readlink()}); fix or remove the link"
    if exc.errno == errno.ENOENT:
        return "file not found"
    if exc.errno == errno.EISDIR:
        return "is a directory, not a file; rename or remove it"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return "permission denied; make it readable"
    return f"cannot read ({exc.strerror or exc}); check the file"


def read_bytes(path: Path, *, error: type[ToolError] = SettingsError, limit: int = MAX_SOURCE_BYTES) -> bytes:
    """The bytes of ``path``; raise ``error`` naming the file when it cannot be read or is too large."""
    try:
        size = path.stat().st_size
        if size > limit:
            msg = f"{path}: {size} bytes, larger than the {limit} bytes coderbundle reads; split or shrink it"
            raise error(msg)
        return path.read_bytes()
    except OSError as exc:
        raise error(f"{path}: {why_unreadable(path, exc)}") from None


def decode(data: bytes, path: Path, *, error: type[ToolError] = SettingsError) -> str:
    """``data`` as UTF-8 (a leading BOM dropped); bad bytes raise ``error`` with line and offset."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        bad = data[exc.start]
        msg = (
            f"{path}:{line}: not valid UTF-8 (byte 0x{bad:02x} at offset {exc.start}); save the file as UTF-8"
        )
        raise error(msg) from None
    return text.removeprefix("\ufeff")


def read_text(path: Path, *, error: type[ToolError] = SettingsError, limit: int = MAX_SOURCE_BYTES) -> str:
    """The text of ``path`` as UTF-8, line endings untouched (CRLF stays CRLF, a lone CR stays)."""
    return decode(read_bytes(path, error=error, limit=limit), path, error=error)


def read_toml(path: Path, *, error: type[ToolError] = SettingsError) -> dict[str, Any]:
    """A TOML file as a dict; syntax errors name the file and TOML's own position."""
    text = read_text(path, error=error)
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        msg = f"{path}: invalid TOML: {exc}; fix the syntax"
        raise error(msg) from None
    except RecursionError:
        msg = f"{path}: invalid TOML: nested too deeply; flatten the tables and arrays"
        raise error(msg) from None


def decode_output(data: bytes | str | None) -> str:
    """A subprocess's output as text; undecodable bytes become U+FFFD (it is terraform's, not ours)."""
    if data is None:
        return ""
    if isinstance(data, str):
        return data
    return data.decode("utf-8", errors="replace")


def ensure_dir(path: Path) -> Path:
    """Create ``path`` (and parents); a file in the way is an environment error naming it."""
    for candidate in (*reversed(path.parents), path):
        if candidate.exists() and not candidate.is_dir():
            msg = f"{candidate}: is a file where coderbundle needs a directory; move or remove it"
            raise EnvError(msg)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        msg = f"{path}: cannot create the directory ({exc.strerror or exc}); check permissions and space"
        raise EnvError(msg) from None
    return path


def write_atomic(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` in one rename; on any failure the old file stays and no temp remains."""
    ensure_dir(path.parent)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with tmp.open("wb") as fh:
            fh.write(data)
        tmp.replace(path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        msg = f"{path}: cannot write ({exc.strerror or exc}); free space or fix permissions, then run again"
        raise EnvError(msg) from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def locked(directory: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``directory`` so runs in one checkout take turns writing it."""
    ensure_dir(directory)
    path = (directory / LOCK_NAME).absolute()
    if path in _HELD:
        yield
        return
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        msg = f"{path}: cannot create the lock file ({exc.strerror or exc}); check permissions"
        raise EnvError(msg) from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            from coderbundle.console import err_console  # noqa: PLC0415 - only when waiting

            err_console.print(f"waiting for another coderbundle run to release {path}", markup=False)
            fcntl.flock(fd, fcntl.LOCK_EX)
        _HELD.add(path)
        yield
    finally:
        _HELD.discard(path)
        os.close(fd)  # closing releases the lock
