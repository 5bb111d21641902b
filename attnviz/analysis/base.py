"""What an analysis returns, and the registry analyses are found in."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from attnviz.config import AnalysisOptions
from attnviz.registry import Registry
from attnviz.types import Capture, Needs


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
    re-run the model (``Needs.model_reruns``), the example's :class:`attnviz.model.predictor.Predictor`."""

    previous: Mapping[str, AnalysisResult] = field(default_factory=dict)
    options: AnalysisOptions = field(default_factory=AnalysisOptions)
    predictor: Any = None
    sampled_out: bool = False  # a sampled run left this example out of the trust checks


class Analysis(Protocol):
    """A registered analysis; ``needs`` says what capture must produce for it and what it reads."""

    name: str
    description: str
    needs: Needs

    def run(self, capture: Capture, context: AnalysisContext) -> AnalysisResult: ...


ANALYSES: Registry[Analysis] = Registry("method")


def register_analysis(analysis: Analysis) -> Analysis:
    """Register an analysis object under its ``name`` (built-ins use this like any plugin)."""
    return ANALYSES.register(analysis.name)(analysis)


def get_analysis(name: str) -> Analysis:
    return ANALYSES.get(name)


def list_analyses() -> list[str]:
    return ANALYSES.names()


def without_predictor(name: str, capture: Capture, context: AnalysisContext) -> AnalysisResult:
    """The result of an analysis that must re-run the model when it cannot: a sampled run left the example out,
    or the task (or a classifier's regression head) offers no predictor."""
    if context.sampled_out:
        return AnalysisResult(
            name=name, messages=(f"{name}: not measured for this example (sampled run, see --trust-sample)",)
        )
    if capture.prediction.details.get("regression"):  # a classifier's head with one output: no class probability
        return AnalysisResult(name=name, messages=(f"{name}: not available for a regression head (one output)",))
    return AnalysisResult(name=name, messages=(f"{name}: not available for task '{capture.task}'",))


def stage_scores(
    capture: Capture, method: str, label: str, values: np.ndarray, note: str, stage_prefix: str = "layer"
) -> TokenScores:
    """TokenScores from scores already read at the explained rows, one stage per layer; last layer shown first.

    Args:
        values: (S, r, k) per-stage scores of the explained rows over the main attention's keys.
    """
    return TokenScores(
        method=method,
        label=label,
        values=values,
        stage_labels=tuple(f"{stage_prefix} {i + 1}" for i in range(values.shape[0])),
        default_stage=values.shape[0] - 1,
        sequence=capture.main.key,
        note=note,
    )
