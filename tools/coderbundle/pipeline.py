"""Chains of steps the CLI runs: discover -> render (-> validate -> images -> publish)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from coderbundle.console import err_console
from coderbundle.discover import find_templates
from coderbundle.errors import ValidationFailed
from coderbundle.files import ensure_dir
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
    out = ensure_dir(settings.build_dir / "templates")
    return [render_template(t, settings, out) for t in find_templates(settings.templates_dir, names)]


def publish_all(  # noqa: PLR0913 - keyword-only switches of the main job
    settings: Settings,
    names: Sequence[str] = (),
    *,
    env: Mapping[str, str],
    dry_run: bool = False,
    fmt: str = "text",
    build_images: bool = True,
    accept_breaking: bool = False,
    allow_default_image: bool = False,
    archive_older_than: float | None = None,
) -> PublishResult:
    """Render, validate (all or nothing), build and push images, then publish."""
    rendered = render_all(settings, names)
    report = validate_templates(rendered, settings, use_cache=True)
    if not report.ok:
        if fmt != "json":  # with --format json the publish summary carries the problems
            print_report(report, fmt=fmt)
        msg = "validation failed; nothing was published (fix the problems above)"
        raise ValidationFailed(msg, report)
    # Imported here: `render` and `validate` should not pay for requests and docker.
    from coderbundle.publish import progress_display, publish_templates  # noqa: PLC0415
    from coderbundle.publish_plan import read_image_manifest  # noqa: PLC0415

    _build_images(settings, rendered, skip=dry_run or not build_images)
    images = read_image_manifest(settings)
    with progress_display(len(rendered)) as done:
        return publish_templates(
            rendered,
            settings,
            images=images,
            env=env,
            dry_run=dry_run,
            accept_breaking=accept_breaking,
            allow_default_image=allow_default_image,
            archive_older_than=archive_older_than,
            on_done=done,
            checks=report.checks_json(),
        )


def _build_images(settings: Settings, rendered: Sequence[RenderedTemplate], *, skip: bool) -> None:
    """Build and push the templates' images when a registry is configured.

    Without a registry there is nowhere workspaces could pull from: templates
    keep their image default and the plan says so.  Unchanged images cost a
    lookup, not a build (content-addressed tags).
    """
    if skip:
        return
    if not settings.registry:
        err_console.print(
            "images: no registry configured (CODERBUNDLE_REGISTRY); templates keep their image default"
        )
        return
    from coderbundle.images import build_images  # noqa: PLC0415

    names = sorted({r.template.settings.image for r in rendered})
    build_images(settings, names, push=True, upstream_image=settings.upstream_image)
