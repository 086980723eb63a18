"""`coderbundle changes`: what changed per template since the last publish plan or a git ref, offline.

Against the plan (default): the current render is compared with the archive
``dist/publish-plan.json`` names for each template: files added, removed and
changed, ``coder_parameter`` names added and removed, and the image variable.
With ``since=<git ref>``: the files under the template's folder, ``_shared`` and
its image folder that changed since that commit (``git diff --name-only``).
"""

from __future__ import annotations

import io
import json
import re
import tarfile
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

from coderbundle import files, process
from coderbundle.errors import UsageError

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

    from coderbundle.render import RenderedTemplate
    from coderbundle.settings import Settings

__all__ = ["TemplateChanges", "changes_since_git", "changes_since_plan", "print_changes"]

_PARAMETER = re.compile(r'^data\s+"coder_parameter"\s+"([^"]+)"', re.MULTILINE)


@dataclass
class TemplateChanges:
    """One template's changes; ``new`` when the baseline does not have it."""

    name: str
    new: bool = False
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    parameters_added: list[str] = field(default_factory=list)
    parameters_removed: list[str] = field(default_factory=list)
    image: str = ""  # "old -> new" when the image variable changed

    @property
    def unchanged(self) -> bool:
        """True when nothing differs from the baseline."""
        return not (self.new or self.added or self.removed or self.changed or self.image)


def _archive_files(path: Path) -> dict[str, bytes]:
    data = files.read_bytes(path, error=UsageError, limit=1 << 30)
    found = {}
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        for member in tar.getmembers():
            handle = tar.extractfile(member) if member.isfile() else None
            if handle is not None:
                found[member.name.removeprefix("./")] = handle.read()
    return found


def _parameters(tree: dict[str, bytes]) -> set[str]:
    texts = [data.decode("utf-8", "replace") for rel, data in tree.items() if rel.endswith(".tf")]
    return {name for text in texts for name in _PARAMETER.findall(text)}


def changes_since_plan(rendered: Sequence[RenderedTemplate], settings: Settings) -> list[TemplateChanges]:
    """Each rendered template against the archive of the last publish plan."""
    plan_path = settings.dist_dir / "publish-plan.json"
    if not plan_path.is_file():
        msg = f"{plan_path}: no publish plan yet; run `nox -s publish` once, or give --since <git ref>"
        raise UsageError(msg)
    try:
        plan = json.loads(files.read_text(plan_path, error=UsageError))
        entries = {e["name"]: e for e in plan["templates"]}
    except (ValueError, KeyError, TypeError):
        msg = f"{plan_path}: not a publish plan; run `nox -s publish` again"
        raise UsageError(msg) from None
    from coderbundle.publish_plan import read_image_manifest  # noqa: PLC0415

    images = read_image_manifest(settings)
    result = []
    for r in rendered:
        entry = entries.get(r.name)
        now = {rel: (r.path / rel).read_bytes() for rel in r.files}
        if entry is None:
            result.append(TemplateChanges(r.name, new=True, added=sorted(now)))
            continue
        before = _archive_files(settings.root / entry["archive"])
        before.pop("terraform.tfvars", None)
        change = TemplateChanges(
            r.name,
            added=sorted(set(now) - set(before)),
            removed=sorted(set(before) - set(now)),
            changed=sorted(k for k in set(now) & set(before) if now[k] != before[k]),
            parameters_added=sorted(_parameters(now) - _parameters(before)),
            parameters_removed=sorted(_parameters(before) - _parameters(now)),
        )
        old_image = (entry.get("image") or {}).get("value")
        new_image = images.get(r.template.settings.image)
        if new_image is not None and new_image != old_image:
            change.image = f"{old_image or 'template default'} -> {new_image}"
        result.append(change)
    return result


def changes_since_git(
    rendered: Sequence[RenderedTemplate], settings: Settings, ref: str
) -> list[TemplateChanges]:
    """Each template's source files that changed since ``ref`` (a commit, tag or branch)."""
    if not process.git(settings.root, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"):
        msg = f"--since {ref}: not a commit in this repository; give a commit, tag or branch"
        raise UsageError(msg)
    result = []
    for r in rendered:
        image = settings.images_dir / r.template.settings.image
        folders = [r.template.source, settings.templates_dir / "_shared", image]
        paths = [str(f.relative_to(settings.root)) for f in folders]
        out = process.git(settings.root, "diff", "--name-only", ref, "--", *paths)
        result.append(TemplateChanges(r.name, changed=sorted(out.splitlines())))
    return result


def print_changes(changes: Sequence[TemplateChanges], *, fmt: str = "text") -> None:
    """One block per template on stdout (JSON with ``fmt="json"``)."""
    if fmt == "json":
        print(json.dumps([{**asdict(c), "unchanged": c.unchanged} for c in changes], indent=2))  # noqa: T201
        return
    for c in changes:
        if c.unchanged:
            print(f"{c.name}: unchanged")  # noqa: T201
            continue
        print(f"{c.name}:{' new' if c.new else ''}")  # noqa: T201
        for label, items in (("added", c.added), ("removed", c.removed), ("changed", c.changed)):
            for item in items:
                print(f"  {label}: {item}")  # noqa: T201
        for item in c.parameters_added:
            print(f"  parameter added: {item}")  # noqa: T201
        for item in c.parameters_removed:
            print(f"  parameter removed: {item}")  # noqa: T201
        if c.image:
            print(f"  image: {c.image}")  # noqa: T201
