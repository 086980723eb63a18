"""Chains of steps the CLI runs: discover -> render (-> validate -> images -> publish)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from coderbundle.discover import find_templates
from coderbundle.errors import ValidationFailed
from coderbundle.publish import progress_display, publish_templates
from coderbundle.publish_plan import read_image_manifest
from coderbundle.render import render_template
from coderbundle.validate import print_report, validate_templates

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from coderbundle.publish import PublishResult
    from coderbundle.render import RenderedTemplate
    from coderbundle.settings import Settings

__all__ = ["publish_all", "render_all"]


def render_all(settings: Settings, names: Sequence[str] = ()) -> list[RenderedTemplate]:
    """Find the templates asked for and render each into ``build/templates/``."""
    out = settings.build_dir / "templates"
    out.mkdir(parents=True, exist_ok=True)
    return [render_template(t, settings, out) for t in find_templates(settings.templates_dir, names)]


def publish_all(
    settings: Settings,
    names: Sequence[str] = (),
    *,
    env: Mapping[str, str],
    dry_run: bool = False,
    fmt: str = "text",
) -> PublishResult:
    """Render, validate (all or nothing), read ``build/images.json``, then publish."""
    rendered = render_all(settings, names)
    report = validate_templates(rendered, settings, use_cache=True)
    if not report.ok:
        print_report(report, fmt=fmt)
        msg = "validation failed; nothing was published (fix the problems above)"
        raise ValidationFailed(msg)
    images = read_image_manifest(settings)
    with progress_display(len(rendered)) as done:
        return publish_templates(rendered, settings, images=images, env=env, dry_run=dry_run, on_done=done)
