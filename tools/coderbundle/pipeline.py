"""Chains of steps the CLI runs: discover -> render (-> validate -> images -> publish)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from coderbundle.discover import find_templates
from coderbundle.render import render_template

if TYPE_CHECKING:
    from collections.abc import Sequence

    from coderbundle.render import RenderedTemplate
    from coderbundle.settings import Settings

__all__ = ["render_all"]


def render_all(settings: Settings, names: Sequence[str] = ()) -> list[RenderedTemplate]:
    """Find the templates asked for and render each into ``build/templates/``."""
    out = settings.build_dir / "templates"
    out.mkdir(parents=True, exist_ok=True)
    return [
        render_template(t, settings, out) for t in find_templates(settings.templates_dir, names)
    ]
