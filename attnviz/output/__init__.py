"""Renderers, found by name. Importing this package registers the built-ins."""

from __future__ import annotations

from attnviz.output import html, json, png  # noqa: F401  (registration)
from attnviz.output.base import RENDERERS, Renderer, get_renderer, list_renderers, register_renderer
from attnviz.output.markdown import MarkdownRenderer

register_renderer(MarkdownRenderer())

__all__ = ["RENDERERS", "Renderer", "get_renderer", "list_renderers", "register_renderer"]
