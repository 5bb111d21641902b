"""Run the chosen analyses on a capture and bundle the results into an :class:`ExampleReport`."""

from __future__ import annotations

import dataclasses
import hashlib
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from attnviz.analysis import (
    AnalysisContext,
    AnalysisResult,
    HeadMetric,
    TokenScores,
    get_analysis,
    list_analyses,
)
from attnviz.analysis.words import merge_to_words
from attnviz.config import AnalysisOptions
from attnviz.types import Capture, Needs, TokenSeq


@dataclass(frozen=True)
class ExampleReport:
    """One example's capture with every analysis result; what renderers draw.

    Attributes:
        index: position in the run's input stream (0-based, across shards).
        page: file stem for ``examples/<page>.html`` and ``examples/<page>/``.
        capture: the captured attention and prediction.
        results: analysis name → result, in the order they ran.
        word_merge: how sub-word scores were merged into words (``sum``, ``mean``, ``max``).
    """

    index: int
    page: str
    capture: Capture
    results: Mapping[str, AnalysisResult]
    word_merge: str = "sum"

    @property
    def token_scores(self) -> list[TokenScores]:
        return [ts for result in self.results.values() for ts in result.token_scores]

    @property
    def head_metrics(self) -> list[HeadMetric]:
        return [m for result in self.results.values() for m in result.head_metrics]

    def head_metric(self, name: str, attention: str) -> HeadMetric | None:
        for metric in self.head_metrics:
            if metric.name == name and metric.attention == attention:
                return metric
        return None

    def word_scores(self, scores: TokenScores, stage: int | None = None) -> np.ndarray:
        """(w,) word scores of a method at a stage (default stage), merged by ``word_merge``."""
        return merge_to_words(scores.at(stage), self.capture.sequences[scores.sequence], self.word_merge)

    def top_words(self, scores: TokenScores, k: int = 3) -> list[tuple[str, float]]:
        """The k highest-scoring words (special tokens excluded), ties broken by position."""
        return self._top(scores, self.word_scores(scores), k)

    def row_views(self, scores: TokenScores, k: int = 3) -> list[dict[str, Any]]:
        """Per explained row at the default stage: its top k words and the mass on the first token.

        The first token is where heads park attention they do not need (the "sink"), so its mass is
        reported apart from the words it would otherwise crowd out.
        """
        seq: TokenSeq = self.capture.sequences[scores.sequence]
        rows = scores.values[scores.default_stage]  # (r, k)
        out = []
        for label, row in zip(self.capture.explained.labels, rows, strict=True):
            words = merge_to_words(row, seq, self.word_merge)
            first_word = seq.word_ids[0]
            if first_word is not None:  # no special first token: the sink is the first word itself
                words = words.copy()
                words[first_word] -= row[0]
            out.append({"row": label, "top": self._top(scores, words, k), "first_token": float(row[0])})
        return out

    @property
    def messages(self) -> list[str]:
        return [m for result in self.results.values() for m in result.messages]

    @property
    def scalars(self) -> dict[str, float]:
        return {k: v for result in self.results.values() for k, v in result.scalars.items()}

    @property
    def flags(self) -> dict[str, list[tuple[int, int]]]:
        return {k: v for result in self.results.values() for k, v in result.flags.items()}

    def method_correlations(self) -> list[tuple[str, str, float]]:
        """Spearman rank correlation between every two methods' word scores (default stages, rows averaged).

        Methods that score different token sequences (e.g. decoder prefix vs source) are not compared.
        """
        from attnviz.analysis.agreement import spearman_pairs

        scores = self.token_scores
        pairs = [
            (i, j)
            for i in range(len(scores))
            for j in range(i + 1, len(scores))
            if scores[i].sequence == scores[j].sequence
        ]
        # Each method's words are merged and ranked once, not once per pair.
        rhos = spearman_pairs([self.word_scores(ts) for ts in scores], pairs)
        return [(scores[i].method, scores[j].method, rho) for (i, j), rho in zip(pairs, rhos, strict=True)]

    def _top(self, scores: TokenScores, values: np.ndarray, k: int) -> list[tuple[str, float]]:
        seq: TokenSeq = self.capture.sequences[scores.sequence]
        order = sorted(range(len(values)), key=lambda i: (-values[i], i))[:k]
        return [(seq.words[i], float(values[i])) for i in order]


def expand_methods(names: Sequence[str]) -> list[str]:
    """``all`` → every registered analysis; otherwise validate each name (unknown → listed error)."""
    if "all" in names:
        return list_analyses()
    for name in names:
        get_analysis(name)
    return list(dict.fromkeys(names))


def combined_needs(methods: Sequence[str], *more: Needs) -> Needs:
    """What capture must produce for these analyses (and any renderers' ``more``): the union, nothing else."""
    needs = Needs()
    for item in [get_analysis(name).needs for name in methods] + list(more):
        needs = needs.union(item)
    return needs


def analyze(
    capture: Capture,
    methods: Sequence[str],
    *,
    index: int,
    word_merge: str = "sum",
    options: AnalysisOptions | None = None,
    predictor: Any = None,
    sampled_out: bool = False,
) -> ExampleReport:
    """Run analyses in the order their needs imply and bundle them with the capture.

    ``predictor`` lets analyses that must re-run the model (faithfulness, agreement) do so.
    """
    (report,) = analyze_batch(
        [capture], methods, word_merge=word_merge, options=options, predictors=[predictor], sampled_out=[sampled_out]
    )
    return dataclasses.replace(report, index=index)


@dataclass(frozen=True)
class BatchReruns:
    """The model side's re-runs of several examples together (``attnviz.model.predictor``), which each example's
    predictor then finds done.

    Attributes:
        score_copies: ``[(predictor, (V, n) kept-token masks, erasure), ...]`` → scores those edited copies.
        attribute: ``[(predictor, steps), ...]`` → computes those gradient attributions.
    """

    score_copies: Callable[[list[tuple[Any, np.ndarray, str]]], None]
    attribute: Callable[[list[tuple[Any, int]]], None]


def analyze_batch(
    captures: Sequence[Capture],
    methods: Sequence[str],
    *,
    word_merge: str = "sum",
    options: AnalysisOptions | None = None,
    predictors: Sequence[Any] | None = None,
    sampled_out: Sequence[bool] | None = None,
    together: BatchReruns | None = None,
    on_step: Callable[[float], None] | None = None,
) -> list[ExampleReport]:
    """Run the analyses on several captures (a batch), one analysis on every capture before the next.

    Before an analysis that says which edited copies it will score (``copies``, as faithfulness does) or which
    gradient steps it needs (``steps_wanted``, as agreement does) runs, ``together`` does that work for every
    capture at once; each report then equals :func:`analyze` of its capture alone, up to the float rounding of
    padding in shared passes. ``on_step`` is called with the share of the batch's analyses done (0–1] after each
    analysis of each capture. Report indices are the examples'.
    """
    options = options or AnalysisOptions()
    predictors = list(predictors) if predictors is not None else [None] * len(captures)
    left_out = list(sampled_out) if sampled_out is not None else [False] * len(captures)
    results: list[dict[str, AnalysisResult]] = [{} for _ in captures]
    order = run_order(methods)
    for stage, name in enumerate(order):
        analysis = get_analysis(name)
        contexts = [
            AnalysisContext(previous=dict(found), options=options, predictor=predictor, sampled_out=out)
            for found, predictor, out in zip(results, predictors, left_out, strict=True)
        ]
        if together is not None:
            _rerun_together(analysis, captures, contexts, together)
        for done, (found, capture, context) in enumerate(zip(results, captures, contexts, strict=True), start=1):
            found[name] = analysis.run(capture, context)
            if on_step is not None:
                on_step((stage * len(captures) + done) / (len(order) * len(captures)))
    return [
        ExampleReport(
            index=capture.example.index,
            page=page_name(capture.example.id),
            capture=capture,
            results=found,
            word_merge=word_merge,
        )
        for capture, found in zip(captures, results, strict=True)
    ]


def _rerun_together(
    analysis: Any, captures: Sequence[Capture], contexts: Sequence[AnalysisContext], together: BatchReruns
) -> None:
    """Do the model re-runs the analysis will ask for, for every capture at once."""
    pairs = list(zip(captures, contexts, strict=True))
    plan = getattr(analysis, "copies", None)
    if plan is not None:
        planned = [(context.predictor, plan(capture, context)) for capture, context in pairs]
        requests = [(predictor, *copies) for predictor, copies in planned if copies is not None]
        if requests:
            together.score_copies(requests)
    wanted = getattr(analysis, "steps_wanted", None)
    if wanted is None:
        return
    # Each round, the steps every example still needs (IG doubles its steps while it has not converged).
    while steps := [(c.predictor, s) for capture, c in pairs if (s := wanted(capture, c)) is not None]:
        together.attribute(steps)


def trust_sample(records: int | None, size: int, seed: int) -> frozenset[int] | None:
    """Input positions whose examples get the trust checks: a seeded random ``size`` of ``records`` when there
    are more; None (every example) when there are not, when ``size`` is 0, or when the count is unknown (stdin)."""
    if size == 0 or records is None or records <= size:
        return None
    return frozenset(int(i) for i in np.random.default_rng(seed).choice(records, size=size, replace=False))


def run_order(methods: Sequence[str]) -> list[str]:
    """The order analyses run in, from what they read (``Needs``), ties kept in the order given.

    An analysis that reads scores runs after every analysis that makes scores without reading any; one
    that both reads and makes scores (agreement) runs before those that only read (faithfulness,
    plausibility), so its scores are tested and compared too.
    """

    def rank(name: str) -> int:
        needs = get_analysis(name).needs
        if not needs.reads_scores:
            return 0
        return 1 if needs.produces_scores else 2

    return sorted(dict.fromkeys(methods), key=rank)


# A page name is a file stem and a folder name: lower-case ASCII without dots (so no folder is named like a page
# file, ``x.html``), not a name Windows reserves for a device (also with an extension: ``con.html``).
_KEPT = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
_HASHED = re.compile(r".+-[0-9a-f]{16}")
_UNSAFE = re.compile(r"[^a-z0-9_-]+")
_DEVICES = frozenset({"con", "prn", "aux", "nul", *(f"{port}{n}" for port in ("com", "lpt") for n in range(1, 10))})


def page_name(example_id: str) -> str:
    """The page name of an example (``examples/<name>.html``, ``examples/<name>/``): deterministic, safe on every
    common file system, and unique by construction.

    An id that already is such a name is kept as it is: 1 to 64 lower-case ASCII letters, digits, ``_`` and ``-``,
    starting with a letter or digit, not a Windows device name (``con``, ``nul``, ``com1``…) and not shaped like a
    hashed name. Any other id becomes a slug (lower case, each run of other characters as ``-``, at most 40
    characters; ``id`` when nothing is left) plus ``-`` and 16 hex digits of the SHA-256 of the exact id.

    Kept names never end in ``-`` and 16 hex digits and hashed names always do, so a kept name never equals a hashed
    one; two hashed names are equal only when their ids share 64 bits of hash. Every name is lower case, so ids
    that differ only in case (``a``, ``A``) stay apart on case-insensitive disks.
    """
    if _KEPT.fullmatch(example_id) and not _HASHED.fullmatch(example_id) and example_id not in _DEVICES:
        return example_id
    slug = _UNSAFE.sub("-", example_id.lower())[:40].strip("-_") or "id"
    return f"{slug}-{hashlib.sha256(example_id.encode('utf-8')).hexdigest()[:16]}"
