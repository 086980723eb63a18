"""What a test bundle copies from the repository: bundle.toml and the files it names.

A team that follows docs/getting-started.md step 8 sets
``values_file = "deploy/coder.yaml"``; a bundle made of bundle.toml alone would
then fail to load, so every fixture copies the files bundle.toml refers to.
"""

from __future__ import annotations

import re
import shutil
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# The bundle.toml keys whose value may be a path relative to the bundle root.
PATH_KEYS = (
    ("workspace", "values_file"),
    ("images", "extra_ca_cert"),
    ("terraform", "binary"),
    ("terraform", "provider_mirror"),
    ("terraform", "module_mirror"),
)
VALUES_FILE_LINE = re.compile(r"^#?\s*values_file\s*=.*$", re.MULTILINE)


def referenced_paths(repo: Path | None = None) -> list[str]:
    """The relative paths ``repo``'s (this checkout's) bundle.toml names that exist under it."""
    repo = repo or REPO
    settings = tomllib.loads((repo / "bundle.toml").read_text(encoding="utf-8"))
    found = []
    for table, key in PATH_KEYS:
        value = settings.get(table, {}).get(key, "")
        if isinstance(value, str) and value and not Path(value).is_absolute() and (repo / value).exists():
            found.append(value)
    return found


def copy_settings(root: Path, repo: Path | None = None) -> None:
    """Copy ``repo``'s (this checkout's) bundle.toml to ``root``, with every file or folder it names."""
    repo = repo or REPO
    root.mkdir(parents=True, exist_ok=True)
    shutil.copy(repo / "bundle.toml", root / "bundle.toml")
    for rel in referenced_paths(repo):
        source, dest = repo / rel, root / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, dest, dirs_exist_ok=True)
        else:
            shutil.copy(source, dest)


def set_values_file(text: str, value: str) -> str:
    """bundle.toml ``text`` with ``[workspace] values_file`` set to ``value`` (commented or not before)."""
    line = f'values_file = "{value}"'
    if VALUES_FILE_LINE.search(text):
        return VALUES_FILE_LINE.sub(line, text, count=1)
    return text.replace("[workspace]\n", f"[workspace]\n{line}\n", 1)
