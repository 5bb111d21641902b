"""Analyses, found by name in a registry. Importing this package registers the built-ins, in display order."""

from __future__ import annotations

from attnviz.analysis.agreement_method import Agreement
from attnviz.analysis.attention import RawAttention
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
from attnviz.analysis.faithfulness import Faithfulness
from attnviz.analysis.flow import Flow
from attnviz.analysis.heads import HeadDiagnostics
from attnviz.analysis.norms import Norms
from attnviz.analysis.plausibility_method import Plausibility
from attnviz.analysis.relevancy import Relevancy
from attnviz.analysis.rollout import Rollout

for _analysis in (
    RawAttention(),
    Rollout(),
    Flow(),
    Relevancy(),
    Norms(),
    HeadDiagnostics(),
    Agreement(),
    Faithfulness(),
    Plausibility(),
):
    register_analysis(_analysis)

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
