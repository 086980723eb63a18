"""coderbundle: render, validate, build and publish a bundle of Coder templates."""

from __future__ import annotations

__all__ = ["__version__"]

__version__ = "0.1.0"
