"""The machine-readable summary: one entry per example plus run metadata (schema in summary.schema.json)."""

from __future__ import annotations

import platform
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from attnviz.data import SkippedRecord
from attnviz.report import ExampleReport

SCHEMA_VERSION = "1.0"
DIGITS = 6


def _r(value: float) -> float:
    return round(float(value), DIGITS)


def _matrix(values: np.ndarray) -> list[list[float]]:
    return [[_r(v) for v in row] for row in values]


def versions() -> dict[str, str]:
    import importlib.metadata as md

    found = {}
    for package in ("attnviz", "torch", "transformers", "numpy"):
        try:
            found[package] = md.version(package)
        except md.PackageNotFoundError:
            found[package] = "unknown"
    found["python"] = platform.python_version()
    return found


def example_summary(report: ExampleReport) -> dict[str, Any]:
    """Per-example entry: tokens, prediction, top words and per-head diagnostics."""
    capture = report.capture
    example = capture.example
    prediction = capture.prediction
    correct = None
    if example.label is not None and prediction.probabilities:
        correct = example.label == prediction.text
    scores: dict[str, Any] = {}
    for ts in report.token_scores:
        scores[ts.method] = {
            "label": ts.label,
            "stage": ts.stage_labels[ts.default_stage],
            "sequence": ts.sequence,
            "tokens": [_r(v) for v in ts.at()],
            "words": [_r(v) for v in report.word_scores(ts)],
            "top_words": [[w, _r(s)] for w, s in report.top_words(ts, 3)],
            "rows": [
                {"row": v["row"], "top_words": [[w, _r(s)] for w, s in v["top"]], "first_token": _r(v["first_token"])}
                for v in report.row_views(ts)
            ],
        }
    heads: dict[str, dict[str, Any]] = {}
    for metric in report.head_metrics:
        heads.setdefault(metric.attention, {})[metric.name] = _matrix(metric.values)
    main = capture.explained.attention
    entropy = report.head_metric("entropy", main)
    special = report.head_metric("special_share", main)
    return {
        "id": example.id,
        "index": report.index,
        "page": f"examples/{report.page}.html",
        "source": example.source,
        "label": example.label,
        "prediction": {
            "text": prediction.text,
            "score": None if prediction.score is None else _r(prediction.score),
            "probabilities": {k: _r(v) for k, v in prediction.probabilities.items()},
            "correct": correct,
            "details": _plain(prediction.details),
        },
        "truncated": capture.truncated,
        "original_length": capture.original_length,
        "sequences": {
            name: {"tokens": list(seq.tokens), "words": list(seq.words), "special": list(seq.special)}
            for name, seq in capture.sequences.items()
        },
        "explained": list(capture.explained.labels),
        "scores": scores,
        "heads": heads,
        "flags": {name: [[layer + 1, head + 1] for layer, head in pairs] for name, pairs in report.flags.items()},
        "metrics": {name: _r(value) for name, value in report.scalars.items()},
        "messages": report.messages,
        "method_correlations": [
            {"a": a, "b": b, "spearman": None if np.isnan(rho) else _r(rho)}
            for a, b, rho in report.method_correlations()
        ],
        "mean_entropy": None if entropy is None else _r(entropy.values.mean()),
        "mean_special_share": None if special is None else _r(special.values.mean()),
    }


def _plain(value: Any) -> Any:
    """Task details as JSON-ready values with floats rounded like everything else."""
    if isinstance(value, float):
        return _r(value)
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def skipped_summary(record: SkippedRecord) -> dict[str, Any]:
    return {"source": record.source, "field": record.field, "reason": record.reason}


def run_summary(
    run: Mapping[str, Any],
    examples: Sequence[Mapping[str, Any]],
    skipped: Sequence[Mapping[str, Any]],
    *,
    status: str,
    error: str | None = None,
    timing: Mapping[str, float] | None = None,
) -> dict[str, Any]:
    """The whole summary.json document. ``timing`` is the only field that varies between identical runs."""
    return {
        "schema_version": SCHEMA_VERSION,
        "status": status,
        "error": error,
        "run": dict(run),
        "counts": {
            "examples": len(examples),
            "skipped": len(skipped),
            "truncated": sum(1 for e in examples if e["truncated"]),
        },
        "examples": list(examples),
        "skipped": list(skipped),
        "timing": dict(timing or {}),
    }
