"""Dataset-level aggregates, accumulated one example at a time (memory does not grow with the run).

The accumulator keeps running means and variances (Welford), per layer × head sums, word counts
(bounded by the vocabulary), a confusion matrix, the few examples where methods disagree most, and one
short row per example for the index.
"""

from __future__ import annotations

import heapq
import math
from collections import Counter, defaultdict
from collections.abc import Mapping
from typing import Any

import numpy as np

from attnviz.output.summary import json_number

# Per-method scalar families; the unqualified name is the primary (first) method's value.
METHOD_FAMILIES = (
    "comprehensiveness",
    "sufficiency",
    "comprehensiveness_margin",
    "sufficiency_margin",
    "agreement_ig",
    "agreement_ixg",
    "plausibility_f1",
    "auprc",
)
HEAD_MAPS = ("entropy", "special_share", "sink_share")
TOP_WORDS = 15
DISAGREEMENTS = 5


class Running:
    """Mean and standard deviation of a stream of numbers (Welford)."""

    def __init__(self) -> None:
        self.n, self.mean, self._m2 = 0, 0.0, 0.0

    def add(self, value: float) -> None:
        self.n += 1
        delta = value - self.mean
        self.mean += delta / self.n
        self._m2 += delta * (value - self.mean)

    @property
    def std(self) -> float | None:
        return math.sqrt(self._m2 / (self.n - 1)) if self.n > 1 else None

    def interval(self) -> tuple[float, float] | None:
        """The 95 % t-interval of the mean (None below two values)."""
        if self.std is None:
            return None
        from scipy.stats import t

        half = float(t.ppf(0.975, self.n - 1)) * self.std / math.sqrt(self.n)
        return self.mean - half, self.mean + half


#: Headline words come from the method with the best measured faithfulness; without a measurement, from this one.
HEADLINE_FALLBACK = "relevancy"


class DatasetAggregate:
    """Feed it each example's summary entry with :meth:`add`; :meth:`result` gives the ``dataset`` block."""

    def __init__(self) -> None:
        self.count = 0
        self.truncated = 0
        self.metrics: dict[str, Running] = defaultdict(Running)
        self.heads: dict[tuple[str, str], tuple[np.ndarray, int]] = {}
        self.diffuse: tuple[np.ndarray, int] | None = None
        self.words: dict[str, Counter[str]] = defaultdict(Counter)  # method → word → examples with it in the top 3
        self.words_by_label: dict[str, dict[str, Counter[str]]] = defaultdict(lambda: defaultdict(Counter))
        self.confusion: Counter[tuple[str, str]] = Counter()
        self.disagreements: list[tuple[float, int, dict[str, Any]]] = []
        self.primary: str | None = None
        self.main_kind: str | None = None
        self.rows: list[dict[str, Any]] = []
        # Each row's top words and comprehensiveness margin by method, until the headline method is known.
        self._row_choices: list[dict[str, tuple[Any, Any]]] = []

    def add(self, entry: Mapping[str, Any]) -> None:
        self.count += 1
        self.truncated += bool(entry["truncated"])
        if self.primary is None and entry["scores"]:
            self.primary = next(iter(entry["scores"]))
        for name, value in entry["metrics"].items():
            if value is not None and math.isfinite(value):
                self.metrics[name].add(value)
        if entry["mean_entropy"] is not None:
            self.metrics["mean_entropy"].add(entry["mean_entropy"])
        correct = entry["prediction"]["correct"]
        if correct is not None:
            self.metrics["accuracy"].add(float(correct))
            self.confusion[(entry["label"], entry["prediction"]["text"])] += 1
        self._add_heads(entry)
        self._add_words(entry)
        self._add_disagreement(entry)
        self.rows.append(index_row(entry))
        metrics = entry["metrics"]
        self._row_choices.append(
            {m: (s["top_words"], metrics.get(f"comprehensiveness_margin.{m}")) for m, s in entry["scores"].items()}
        )

    def _add_heads(self, entry: Mapping[str, Any]) -> None:
        for kind, metrics in entry["heads"].items():
            for name in HEAD_MAPS:
                if name in metrics:
                    values = np.asarray(metrics[name], dtype=np.float64)
                    total, n = self.heads.get((kind, name), (np.zeros_like(values), 0))
                    if total.shape == values.shape:
                        self.heads[(kind, name)] = (total + values, n + 1)
        self.main_kind = entry["explained_attention"]
        flags = entry.get("flags", {}).get("diffuse")
        entropy = entry["heads"].get(entry["explained_attention"], {}).get("entropy")
        if flags is not None and entropy is not None:
            grid = np.zeros(np.asarray(entropy).shape)
            for layer, head in flags:
                grid[layer - 1, head - 1] = 1.0
            total, n = self.diffuse or (np.zeros_like(grid), 0)
            if total.shape == grid.shape:
                self.diffuse = (total + grid, n + 1)

    def _add_words(self, entry: Mapping[str, Any]) -> None:
        label = entry["label"] if entry["label"] is not None else entry["prediction"]["text"]
        for method, scores in entry["scores"].items():
            top = [word for word, _ in scores["top_words"]]
            self.words[method].update(top)
            if entry["prediction"]["probabilities"]:
                self.words_by_label[method][str(label)].update(top)

    def headline(self) -> tuple[str | None, str]:
        """The method whose words lead the summaries, and why: the best mean comprehensiveness margin measured
        in this run, else ``HEADLINE_FALLBACK`` (or the first method) when faithfulness was not measured."""
        margins = {
            name.split(".", 1)[1]: running.mean
            for name, running in self.metrics.items()
            if name.startswith("comprehensiveness_margin.") and running.n and name.split(".", 1)[1] in self.words
        }
        if margins:
            best = max(sorted(margins), key=margins.__getitem__)
            return best, "the best comprehensiveness margin over random in this run"
        if HEADLINE_FALLBACK in self.words:
            return HEADLINE_FALLBACK, "faithfulness not measured in this run"
        return self.primary, "faithfulness not measured in this run"

    def not_clearly_above_random(self) -> list[str]:
        """Methods whose comprehensiveness margin's 95 % interval (or, with one example, the mean) is not above 0."""
        found = []
        for name, running in sorted(self.metrics.items()):
            if name.startswith("comprehensiveness_margin.") and running.n:
                interval = running.interval()
                low = interval[0] if interval is not None else running.mean
                if low <= 0:
                    found.append(name.split(".", 1)[1])
        return found

    def _add_disagreement(self, entry: Mapping[str, Any]) -> None:
        rhos = [c["spearman"] for c in entry.get("method_correlations", []) if c["spearman"] is not None]
        if not rhos:
            return
        item = (-min(rhos), -entry["index"], {"id": entry["id"], "page": entry["page"], "min_spearman": min(rhos)})
        # keep the DISAGREEMENTS lowest correlations; ties: earlier examples first
        if len(self.disagreements) < DISAGREEMENTS:
            heapq.heappush(self.disagreements, item)
        else:
            heapq.heappushpop(self.disagreements, item)

    def result(self, skipped: int) -> dict[str, Any]:
        metrics: dict[str, float | None] = {
            "examples": self.count,
            "skipped": skipped,
            "truncated": self.truncated,
            "accuracy": json_number(self.metrics["accuracy"].mean) if self.metrics["accuracy"].n else None,
        }
        spread: dict[str, float | None] = {}
        intervals: dict[str, list[float | None] | None] = {}  # 95 % t-intervals of the means
        counts: dict[str, int] = {}  # examples each mean is over (fewer than all in a sampled run)
        for name, running in sorted(self.metrics.items()):
            if name == "accuracy" or not running.n:
                continue
            metrics[name] = json_number(running.mean)
            spread[name] = json_number(running.std)
            interval = running.interval()
            intervals[name] = None if interval is None else [json_number(interval[0]), json_number(interval[1])]
            counts[name] = running.n
        if self.primary is not None:
            for family in METHOD_FAMILIES:
                qualified = f"{family}.{self.primary}"
                if qualified in metrics:
                    metrics[family] = metrics[qualified]
                    spread[family] = spread.get(qualified)
                    intervals[family] = intervals.get(qualified)
                    counts[family] = counts.get(qualified, 0)
        labels = sorted({g for g, _ in self.confusion} | {p for _, p in self.confusion})
        heads: dict[str, dict[str, Any]] = defaultdict(dict)
        for (kind, name), (total, n) in sorted(self.heads.items()):
            heads[kind][name] = [[json_number(v) for v in row] for row in total / n]
        if self.diffuse is not None:
            total, n = self.diffuse
            heads[self.main_kind or "self"]["diffuse_frequency"] = [[json_number(v) for v in row] for row in total / n]
        headline, reason = self.headline()
        for row, choices in zip(self.rows, self._row_choices, strict=True):
            row["top_words"], row["comprehensiveness_margin"] = choices.get(headline or "", ([], None))
        by_label = self.words_by_label.get(headline or "", {})
        return {
            "primary_method": self.primary,
            "headline_method": headline,
            "headline_reason": reason,
            "not_clearly_above_random": self.not_clearly_above_random(),
            "metrics": metrics,
            "spread": spread,
            "intervals": intervals,
            "counts": counts,
            "heads": dict(heads),
            "top_words": {
                "all": _most_common(self.words.get(headline or "", Counter())),
                "by_label": {label: _most_common(counter) for label, counter in sorted(by_label.items())},
            },
            "confusion": {"labels": labels, "matrix": [[self.confusion[(g, p)] for p in labels] for g in labels]}
            if labels
            else None,
            "disagreements": [item for _, _, item in sorted(self.disagreements, reverse=True)],
        }


def _most_common(counter: Counter[str]) -> list[list[Any]]:
    return [[w, c] for w, c in sorted(counter.items(), key=lambda kv: (-kv[1], kv[0]))[:TOP_WORDS]]


def index_row(entry: Mapping[str, Any]) -> dict[str, Any]:
    """The few fields the index table and terminal summary show. Top words and margin are the headline method's,
    known only at the end of the run: :meth:`DatasetAggregate.result` fills them in."""
    return {
        "id": entry["id"],
        "index": entry["index"],
        "page": entry["page"],
        "label": entry["label"],
        "prediction": {k: entry["prediction"][k] for k in ("text", "score", "correct")},
        "top_words": [],
        "mean_entropy": entry["mean_entropy"],
        "mean_special_share": entry["mean_special_share"],
        "comprehensiveness_margin": None,
        "truncated": entry["truncated"],
        "original_length": entry["original_length"],
    }
