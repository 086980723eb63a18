"""`coderbundle changes`: what changed per template since the last publish plan or a git ref, offline.

Against the plan (default): the current render is compared with the archive
``dist/publish-plan.json`` names for each template: files added, removed and
changed, ``coder_parameter`` names added and removed, and the image variable.
With ``since=<git ref>``: the templates and images folders as they were at that
commit (``git archive``) are rendered with today's settings and compared the same
way: rendered files, parameters, and the image (the template's image folder, or
its base's, changed since: a new image on the next build; or another image named).
``sources`` lists the source files that changed (``git diff --name-only``).
"""

from __future__ import annotations

import dataclasses
import io
import json
import re
import tarfile
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from coderbundle import files, process
from coderbundle.errors import ToolError, UsageError

if TYPE_CHECKING:
    from collections.abc import Sequence

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
    image: str = ""  # "old -> new" when the image changed
    sources: list[str] = field(default_factory=list)  # --since: source files changed (git diff)

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
    from coderbundle.publish_plan import _image_default, read_image_manifest  # noqa: PLC0415

    images = read_image_manifest(settings)
    result = []
    for r in rendered:
        entry = entries.get(r.name)
        now = _rendered_files(r)
        if entry is None:
            result.append(TemplateChanges(r.name, new=True, added=sorted(now)))
            continue
        before = _archive_files(settings.root / entry["archive"])
        before.pop("terraform.tfvars", None)
        change = _compare(r.name, before, now)
        # The image workspaces run: pushed (build/images.json), pinned in bundle.toml, or the
        # rendered default; the plan recorded it as "effective" (older plans: "value" only).
        planned = entry.get("image") or {}
        name = r.template.settings.image
        new_image = images.get(name) or settings.pinned_images.get(name)
        if "effective" in planned:
            old_image, new_image = planned["effective"], new_image or _image_default(r.path)
        else:
            old_image = planned.get("value")
        if new_image and new_image != old_image:
            change.image = f"{old_image or 'template default'} -> {new_image}"
        result.append(change)
    return result


def _rendered_files(r: RenderedTemplate) -> dict[str, bytes]:
    return {rel: (r.path / rel).read_bytes() for rel in r.files}


def _compare(name: str, before: dict[str, bytes], now: dict[str, bytes]) -> TemplateChanges:
    """Files added, removed and changed, and ``coder_parameter`` names added and removed."""
    return TemplateChanges(
        name,
        added=sorted(set(now) - set(before)),
        removed=sorted(set(before) - set(now)),
        changed=sorted(k for k in set(now) & set(before) if now[k] != before[k]),
        parameters_added=sorted(_parameters(now) - _parameters(before)),
        parameters_removed=sorted(_parameters(before) - _parameters(now)),
    )


def _export(root: Path, ref: str, folder: str, into: Path) -> bool:
    """``folder`` (relative to the bundle root) as it was at ``ref``, unpacked into ``into/folder``."""
    prefix = process.git(root, "rev-parse", "--show-prefix")
    tar = into / f"{folder}.tar"
    done = process.run(
        ["git", "archive", "--format=tar", "-o", str(tar), f"{ref}:{prefix}{folder}"], cwd=root, check=False
    )
    if done.returncode != 0:  # the folder did not exist at ref
        return False
    with tarfile.open(tar) as archive:
        archive.extractall(into / folder, filter="data")
    tar.unlink()
    return True


def _image_folders(settings: Settings, image: str) -> list[Path]:
    """The image's folder and its parents' (base), as images.find_images chains them."""
    from coderbundle.images import find_images  # noqa: PLC0415

    try:
        return [spec.path for spec in find_images(settings.images_dir, [image])]
    except ToolError:
        return [settings.images_dir / image]


def _image_change(settings: Settings, r: RenderedTemplate, before: RenderedTemplate, ref: str) -> str:
    """Another image named since ``ref``, or its sources (or its base's) changed since: one line."""
    old, new = before.template.settings.image, r.template.settings.image
    if old != new:
        return f"{old} -> {new}"
    folders = [str(f.relative_to(settings.root)) for f in _image_folders(settings, new)]
    changed = process.git(
        settings.root, "diff", "--relative", "--name-only", ref, "--", *folders
    ).splitlines()
    if not changed:
        return ""
    where = ", ".join(sorted({"/".join(Path(c).parts[:2]) for c in changed}))
    return f"{new}: {where} changed since {ref}; a new image on the next build"


def changes_since_git(
    rendered: Sequence[RenderedTemplate], settings: Settings, ref: str
) -> list[TemplateChanges]:
    """Each template rendered now against the same template rendered from ``ref``'s sources."""
    from coderbundle.discover import find_templates  # noqa: PLC0415
    from coderbundle.render import render_template  # noqa: PLC0415

    if not process.git(settings.root, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"):
        msg = f"--since {ref}: not a commit in this repository; give a commit, tag or branch"
        raise UsageError(msg)
    result = []
    with tempfile.TemporaryDirectory(prefix="coderbundle-since-") as tmp:
        old_root = Path(tmp)
        if not _export(settings.root, ref, "templates", old_root):
            msg = f"--since {ref}: there was no templates/ folder then; give a later commit"
            raise UsageError(msg)
        _export(settings.root, ref, "images", old_root)
        then = dataclasses.replace(settings, root=old_root)
        names = {t.name: t for t in find_templates(then.templates_dir)} if then.templates_dir.is_dir() else {}
        out = old_root / "build"
        out.mkdir()
        for r in rendered:
            template = names.get(r.name)
            image_dir = settings.images_dir / r.template.settings.image
            folders = [r.template.source, settings.templates_dir / "_shared", image_dir]
            paths = [str(f.relative_to(settings.root)) for f in folders]
            sources = sorted(
                process.git(
                    settings.root, "diff", "--relative", "--name-only", ref, "--", *paths
                ).splitlines()
            )
            if template is None:
                result.append(TemplateChanges(r.name, new=True, added=sorted(r.files), sources=sources))
                continue
            try:
                before = render_template(template, then, out)
            except ToolError as exc:
                msg = f"--since {ref}: {r.name} as it was then does not render ({exc}); give a later commit"
                raise UsageError(msg) from None
            change = _compare(r.name, _rendered_files(before), _rendered_files(r))
            change.image = _image_change(settings, r, before, ref)
            change.sources = sources
            result.append(change)
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
        for item in c.sources:
            print(f"  source changed: {item}")  # noqa: T201
