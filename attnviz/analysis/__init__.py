"""Analyses, found by name in a registry. Importing this package registers the built-ins."""

from __future__ import annotations

from attnviz.analysis import attention, heads  # noqa: F401  (registration)
from attnviz.analysis.base import (
    ANALYSES,
    Analysis,
    AnalysisContext,
    AnalysisResult,
    HeadMetric,
    TokenScores,
    get_analysis,
    list_analyses,
    register_analysis,
)

__all__ = [
    "ANALYSES",
    "Analysis",
    "AnalysisContext",
    "AnalysisResult",
    "HeadMetric",
    "TokenScores",
    "get_analysis",
    "list_analyses",
    "register_analysis",
]
