"""What an analysis returns, and the registry analyses are found in."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from attnviz.registry import Registry
from attnviz.types import Capture


@dataclass(frozen=True)
class TokenScores:
    """Importance of each key token for the explained rows, at each layer.

    Attributes:
        method: analysis name that produced it (``attention``, ``rollout``, ...).
        label: human name, e.g. ``raw attention (head mean)``.
        values: (S, r, k) scores for each stage S (usually a layer), explained row r and key token k.
        stage_labels: (S,) e.g. ``layer 1`` ... ``layer L``.
        default_stage: the stage shown first (the last layer for most methods).
        sequence: name of the key token sequence in ``Capture.sequences``.
        note: the formula in one line, shown next to the scores.
    """

    method: str
    label: str
    values: np.ndarray
    stage_labels: tuple[str, ...]
    default_stage: int
    sequence: str
    note: str = ""

    def __post_init__(self) -> None:
        if self.values.ndim != 3 or self.values.shape[0] != len(self.stage_labels):
            raise ValueError(
                f"TokenScores.values must be (S, r, k) with S={len(self.stage_labels)}, got {self.values.shape}"
            )
        if not 0 <= self.default_stage < len(self.stage_labels):
            raise ValueError("default_stage out of range")

    def at(self, stage: int | None = None) -> np.ndarray:
        """(k,) scores at a stage, averaged over explained rows."""
        return self.values[self.default_stage if stage is None else stage].mean(axis=0)


@dataclass(frozen=True)
class HeadMetric:
    """One number per layer and head.

    Attributes:
        name: key in summary.json, e.g. ``entropy``.
        label: human name.
        values: (L, H).
        attention: the attention kind it describes.
        note: how it is computed.
        vmin, vmax: colour scale bounds (None: from the data).
    """

    name: str
    label: str
    values: np.ndarray
    attention: str
    note: str = ""
    vmin: float | None = 0.0
    vmax: float | None = 1.0

    def __post_init__(self) -> None:
        if self.values.ndim != 2:
            raise ValueError(f"HeadMetric.values must be (L, H), got {self.values.shape}")


@dataclass(frozen=True)
class AnalysisResult:
    """Everything one analysis found for one example.

    Attributes:
        scalars: named numbers for summary.json and CI thresholds (e.g. ``diffuse_head_share``).
        messages: plain sentences for the page and terminal (findings, or why a method was refused).
        flags: flag name → (layer, head) pairs, 0-based (e.g. ``diffuse``, ``sink_bound``).
    """

    name: str
    token_scores: tuple[TokenScores, ...] = ()
    head_metrics: tuple[HeadMetric, ...] = ()
    scalars: Mapping[str, float] = field(default_factory=dict)
    messages: tuple[str, ...] = ()
    flags: Mapping[str, list[tuple[int, int]]] = field(default_factory=dict)


@dataclass(frozen=True)
class AnalysisContext:
    """Options analyses may read, the results of analyses that ran before them, and, for analyses that
    must call the model again (``needs_model``), the example's :class:`attnviz.model.predictor.Predictor`."""

    previous: Mapping[str, AnalysisResult] = field(default_factory=dict)
    options: Mapping[str, Any] = field(default_factory=dict)
    predictor: Any = None


class Analysis(Protocol):
    """A registered analysis.

    ``needs_gradients`` asks the capture step for d(score)/d(attention); ``needs_value_norms`` for the
    value-vector norms; ``requires`` names analyses that must run first.
    """

    name: str
    description: str
    needs_gradients: bool
    requires: tuple[str, ...]

    def run(self, capture: Capture, context: AnalysisContext) -> AnalysisResult: ...


ANALYSES: Registry[Analysis] = Registry("method")


def register_analysis(analysis: Analysis) -> Analysis:
    """Register an analysis object under its ``name`` (built-ins use this like any plugin)."""
    return ANALYSES.register(analysis.name)(analysis)


def get_analysis(name: str) -> Analysis:
    return ANALYSES.get(name)


def list_analyses() -> list[str]:
    return ANALYSES.names()


def without_predictor(name: str, capture: Capture) -> AnalysisResult:
    """The result of an analysis that must re-run the model when the task offers no predictor."""
    return AnalysisResult(name=name, messages=(f"{name}: not available for task '{capture.task}'",))


def head_mean(weights: np.ndarray) -> np.ndarray:
    """(L, H, q, k) → (L, q, k) mean over heads, in float64."""
    return weights.astype(np.float64).mean(axis=1)


def explained_scores(explained_weights: np.ndarray, matrices: np.ndarray) -> np.ndarray:
    """Read explained rows from per-stage matrices: (r, q) and (S, q, k) → (S, r, k)."""
    return np.einsum("rq,sqk->srk", explained_weights, matrices)


def layer_scores(
    capture: Capture, method: str, label: str, matrices: np.ndarray, note: str, stage_prefix: str = "layer"
) -> TokenScores:
    """TokenScores from one (q, k) matrix per layer, read at the capture's explained rows; last layer first shown.

    Args:
        matrices: (S, q, k) per-stage matrices over the main attention's queries and keys.
    """
    return TokenScores(
        method=method,
        label=label,
        values=explained_scores(capture.explained.weights, matrices),
        stage_labels=tuple(f"{stage_prefix} {i + 1}" for i in range(matrices.shape[0])),
        default_stage=matrices.shape[0] - 1,
        sequence=capture.main.key,
        note=note,
    )
