"""Terminal output: one rich console on stderr for progress and messages.

Reports meant for machines (``--format json``) go to stdout with ``print``.
"""

from __future__ import annotations

from rich.console import Console

__all__ = ["err_console"]

err_console = Console(stderr=True, highlight=False, soft_wrap=True)
