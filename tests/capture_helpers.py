"""Helpers for tests that build captures by hand or ask capture for every view."""

from __future__ import annotations

import numpy as np

from attnviz.model.views import ViewRequest, views_from_arrays
from attnviz.types import VIEWS, AttentionViews, Example, Needs, TokenSeq

#: Every view capture can build (gradients and value norms included).
EVERY_VIEW = Needs(attention=frozenset(VIEWS), value_norms=True)
#: Every view that needs no backward pass.
FORWARD_VIEWS = Needs(
    attention=frozenset(view for view in VIEWS if not Needs(attention=frozenset({view})).gradients), value_norms=True
)


def views(
    kind: str,
    weights: np.ndarray,
    seq: TokenSeq,
    *,
    query: str = "input",
    key: str = "input",
    causal: bool = False,
    explained: np.ndarray | None = None,
    grads: np.ndarray | None = None,
    value_norms: np.ndarray | None = None,
) -> AttentionViews:
    """Every view of a hand-made (L, H, q, k) attention array over the key sequence ``seq``."""
    needs = EVERY_VIEW if grads is not None else FORWARD_VIEWS
    request = ViewRequest(
        kind=kind,
        query=query,
        key=key,
        causal=causal,
        shape=tuple(int(d) for d in weights.shape),  # type: ignore[arg-type]
        needs=needs,
        special=seq.special_mask,
        segments=np.asarray(seq.segments),
        explained=explained,
        value_norms=value_norms,
    )
    return views_from_arrays(request, weights, grads)


#: Two examples of different lengths per task (padding in the batch), used by the golden-number tests.
TEXTS = ["the movie was brilliant and the acting was great", "boring plot"]
QUESTIONS = [
    ("who played", "the actor played a brilliant role in the movie"),
    ("what was cheap", "the price was cheap"),
]


def task_examples(task: str) -> list[Example]:
    """The two examples, in the fields ``task`` reads."""
    if task == "qa":
        return [
            Example(id=f"e{i}", source="x", fields={"question": q, "context": c}, index=i)
            for i, (q, c) in enumerate(QUESTIONS)
        ]
    field = "source" if task == "seq2seq" else "text"
    return [Example(id=f"e{i}", source="x", fields={field: t}, index=i) for i, t in enumerate(TEXTS)]
