"""Re-running the model on edited inputs: the one way analyses after capture may call the model.

A :class:`Predictor` holds one example's scored token sequence and answers two questions with numpy
in and out: "what is the explained score when only these tokens are kept?" (erasure faithfulness)
and "what do gradient attributions say about each token?" (agreement). Task adapters build it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from attnviz.model.loaded import LoadedModel

Erasure = Literal["delete", "mask"]
CHUNK = 32  # integrated-gradients steps per forward and backward pass, for short inputs
#: Tokens (copies × padded length) per forward pass when scoring edited copies: bounds memory at any input length.
CHUNK_TOKENS = 4096
#: What one more forward pass costs, in padded tokens, when splitting edited copies into passes. On a CPU the time
#: is about proportional to padded tokens, plus about 5 ms a pass, which is the time of some 30 tokens of MiniLM
#: (measured with the demo model: 55 copies of 3 to 21 tokens took 216 ms in one pass of 1,155 padded tokens, 163 ms
#: in two of 903). On a GPU padding is nearly free and a pass is not: there, copies go in as few passes as the
#: budget allows.
CPU_PASS_TOKENS = 32


@dataclass(frozen=True)
class Attributions:
    """Gradient attributions of one example.

    Attributes:
        input_x_gradient: (n,) Σ_d x_d · ∂F/∂x_d per token.
        integrated_gradients: (n,) Σ_d IG_d per token.
        delta: |Σ IG − (F(x) − F(baseline))|, IG's convergence delta.
        gap: |F(x) − F(baseline)|, what the IG attributions should sum to.
    """

    input_x_gradient: np.ndarray
    integrated_gradients: np.ndarray
    delta: float
    gap: float

    @property
    def relative_delta(self) -> float:
        """The delta as a share of the gap (0 when the gap is 0: there was nothing to attribute)."""
        return self.delta / self.gap if self.gap > 0 else 0.0


@dataclass
class Predictor:
    """Scores edited copies of one example.

    Attributes:
        sequence: name of the scored token sequence in ``Capture.sequences``.
        ids: (n,) its token ids.
        removable: (n,) tokens erasure may remove: never special tokens (and for ``lm`` only the prompt).
        mask_id: the id ``--erasure mask`` puts in place of a removed token.
        forward_copies: edited id lists and each one's token types (None when the model takes none) → the
            model's outputs and the (V, w) attention mask of the padded copies, under ``inference_mode``.
        read_copies: ``(outputs, rows, mask, positions)`` → this example's scores of the copies in ``rows``
            (a (R,) index into the outputs), given the original positions each keeps.
        share: predictors with the same (not None) ``share`` run one model the same way, so the copies of several
            examples may go through it in one pass (:func:`score_copies`); None: only this example's copies.
        segments: (n,) token type of each position, or None when the model takes no token types.
        embed: (B, n) ids → (B, n, D) input embeddings, exactly as the model computes them.
        forward_embeds: differentiable (B, n, D) embeddings (+ extra args) → (B,) score.
        extra_args: tensors passed to ``forward_embeds`` after the embeddings (captum repeats them).
        baseline_ids: (n,) the integrated-gradients baseline: special tokens kept, the rest ``pad``.
        pass_tokens: the cost of one more forward pass, in padded tokens (see :data:`CPU_PASS_TOKENS`).
        calls: edited copies asked for so far; distinct: how many of them were different (each is scored once);
        seconds: time spent scoring.
    """

    sequence: str
    ids: list[int]
    removable: np.ndarray
    mask_id: int
    forward_copies: Callable[[list[list[int]], list[np.ndarray | None]], tuple[Any, Any]]
    read_copies: Callable[[Any, Any, Any, list[np.ndarray]], Any]
    embed: Callable[[Any], Any]
    forward_embeds: Callable[..., Any]
    baseline_ids: list[int]
    share: Hashable | None = None
    segments: np.ndarray | None = None
    extra_args: tuple[Any, ...] = ()
    pass_tokens: int = CHUNK_TOKENS
    calls: int = 0
    seconds: float = 0.0
    _attributions: dict[int, Attributions] = field(default_factory=dict)
    _fixed: tuple[np.ndarray, float] | None = None  # Input×Gradient and F(x) − F(baseline): the same for any steps
    _scored: dict[tuple[Erasure, bytes], float] = field(default_factory=dict)

    @property
    def distinct(self) -> int:
        return len(self._scored)

    def score(self, keep: np.ndarray, erasure: Erasure = "delete") -> np.ndarray:
        """(V, n) kept-token masks → (V,) explained scores; deletion drops tokens, masking replaces them.

        Each distinct edited copy is scored once (bins that round to the same count and methods that agree on
        their top tokens ask for the same copy), through :func:`score_copies`; copies scored before (by an
        earlier call, or by :func:`score_copies` for a batch of examples) are not scored again.
        """
        rows = np.asarray(keep, dtype=bool)
        score_copies([(self, rows, erasure)])
        self.calls += len(rows)
        return np.array([self._scored[(erasure, row.tobytes())] for row in rows], dtype=np.float64)

    def new_copies(self, keep: np.ndarray, erasure: Erasure) -> list[_Copy]:
        """The distinct copies ``keep`` asks for that are not scored yet, in the order first asked for."""
        found: dict[tuple[Erasure, bytes], _Copy] = {}
        for row in np.asarray(keep, dtype=bool):
            key = (erasure, row.tobytes())
            if key in self._scored or key in found:
                continue
            if erasure == "delete":
                kept = np.flatnonzero(row)
                ids = [self.ids[i] for i in kept]
            else:
                kept = np.arange(len(self.ids))
                ids = [token if row[i] else self.mask_id for i, token in enumerate(self.ids)]
            types = None if self.segments is None else self.segments[kept]
            found[key] = _Copy(self, key, ids, kept, types)
        return list(found.values())

    def full_score(self) -> float:
        """The explained score of the unedited input."""
        return float(self.score(np.ones((1, len(self.ids)), dtype=bool))[0])

    def attributions(self, steps: int) -> Attributions:
        """Input×Gradient and Integrated Gradients per token (signed sums over embedding dimensions), IG's
        convergence delta and what it should sum to.

        Both come from captum on the input embeddings (so encoder-decoders attribute the source only).
        IG runs ``steps`` Gauss-Legendre steps from the embeddings of ``baseline_ids``. Input×Gradient and
        F(x) − F(baseline), which IG's delta is measured against, are computed once however many step counts are
        tried.
        """
        if steps not in self._attributions:
            start = time.perf_counter()
            if self._fixed is None:
                self._fixed = _step_free_attributions(self)
            self._attributions[steps] = _integrated_gradients(self, steps, *self._fixed)
            self.seconds += time.perf_counter() - start
        return self._attributions[steps]


@dataclass(frozen=True)
class _Copy:
    """One edited copy waiting for its score: whose it is, its key there, its ids, kept positions and types."""

    owner: Predictor
    key: tuple[Erasure, bytes]
    ids: list[int]
    kept: np.ndarray
    types: np.ndarray | None


def score_copies(requests: Sequence[tuple[Predictor, np.ndarray, Erasure]]) -> None:
    """Score the new distinct copies that each ``(predictor, (V, n) kept-token masks, erasure)`` asks for, so that
    the predictors' :meth:`Predictor.score` finds them scored.

    The copies of predictors that share a model call (same ``share``) go through it together, whatever example
    they come from: sorted by length, in passes of at most ``CHUNK_TOKENS`` padded tokens split where the padding
    saved is worth a pass (:func:`pass_sizes`). A copy's score depends on the other copies of its pass only
    through padding, that is float rounding.
    """
    start = time.perf_counter()
    groups: dict[Hashable, list[_Copy]] = {}
    for predictor, keep, erasure in requests:
        share = predictor.share if predictor.share is not None else ("alone", id(predictor))
        groups.setdefault(share, []).extend(predictor.new_copies(keep, erasure))
    for copies in filter(None, groups.values()):  # a group with nothing new costs nothing
        copies.sort(key=lambda copy: len(copy.ids))  # stable: equal lengths stay in the order asked for
        done = 0
        for size in pass_sizes([len(copy.ids) for copy in copies], CHUNK_TOKENS, copies[0].owner.pass_tokens):
            _score_pass(copies[done : done + size])
            done += size
    owners = {id(predictor): predictor for predictor, _, _ in requests}
    for predictor in owners.values():  # the time of shared passes, split evenly
        predictor.seconds += (time.perf_counter() - start) / len(owners)


def _score_pass(copies: Sequence[_Copy]) -> None:
    """One forward pass over ``copies``; each owner reads its own rows."""
    import torch

    outputs, mask = copies[0].owner.forward_copies([c.ids for c in copies], [c.types for c in copies])
    rows_of: dict[int, list[int]] = {}
    for row, copy in enumerate(copies):
        rows_of.setdefault(id(copy.owner), []).append(row)
    for rows in rows_of.values():
        owner = copies[rows[0]].owner
        index = torch.tensor(rows, device=mask.device)
        with torch.inference_mode():
            values = owner.read_copies(outputs, index, mask, [copies[r].kept for r in rows])
        owner._scored.update(zip((copies[r].key for r in rows), values.float().cpu().numpy().tolist(), strict=True))


def pass_sizes(lengths: Sequence[int], budget: int, pass_tokens: int) -> list[int]:
    """Split sequences sorted by length into consecutive forward passes: each pass at most ``budget`` padded tokens
    (rows × its longest; one sequence alone may exceed it), and, within that, the split with the fewest padded
    tokens plus ``pass_tokens`` for each pass (dynamic programming over the cut points)."""
    best = [0.0] + [math.inf] * len(lengths)  # best[end]: cheapest split of lengths[:end]
    start_of = [0] * (len(lengths) + 1)
    for end in range(1, len(lengths) + 1):
        width = 0
        for start in range(end - 1, -1, -1):
            width = max(width, lengths[start])
            rows = end - start
            if rows > 1 and rows * width > budget:
                break
            cost = best[start] + rows * width + pass_tokens
            if cost < best[end]:
                best[end], start_of[end] = cost, start
    sizes, end = [], len(lengths)
    while end:
        sizes.append(end - start_of[end])
        end = start_of[end]
    return sizes[::-1]


def pad_batch(variants: Sequence[Sequence[int]], pad: int, device: Any) -> tuple[Any, Any]:
    """Right-pad id lists into (B, n) ids and attention mask tensors."""
    import torch

    width = max(len(v) for v in variants)
    ids = torch.full((len(variants), width), pad, dtype=torch.long)
    mask = torch.zeros((len(variants), width), dtype=torch.long)
    for b, v in enumerate(variants):
        ids[b, : len(v)] = torch.tensor(list(v), dtype=torch.long)
        mask[b, : len(v)] = 1
    return ids.to(device), mask.to(device)


def mask_token_id(tokenizer: Any) -> int:
    for candidate in (tokenizer.mask_token_id, tokenizer.unk_token_id, tokenizer.pad_token_id):
        if candidate is not None:
            return int(candidate)
    return 0


def _embeddings(predictor: Predictor) -> tuple[Any, Any]:
    """(1, n, D) embeddings of the input and of the IG baseline."""
    import torch

    args = predictor.extra_args
    device = args[0].device if args else None
    with torch.no_grad():
        return tuple(
            predictor.embed(torch.tensor([ids], dtype=torch.long, device=device))
            for ids in (predictor.ids, predictor.baseline_ids)
        )


def _per_token(attr: Any) -> np.ndarray:
    """(1, n, D) attributions → (n,) signed sums over the embedding dimensions."""
    return attr[0].sum(dim=-1).detach().double().cpu().numpy()


def _step_free_attributions(predictor: Predictor) -> tuple[np.ndarray, float]:
    """Input×Gradient per token, and F(x) − F(baseline): what the Integrated Gradients attributions should sum to.

    Input×Gradient is x · ∂F/∂x, as captum's ``InputXGradient`` computes it; F(x) is read from the same forward
    pass instead of a second one.
    """
    import torch

    args = predictor.extra_args
    embeds, baseline = _embeddings(predictor)
    with torch.enable_grad():
        x = embeds.clone().requires_grad_()
        score = predictor.forward_embeds(x, *args)
        (gradient,) = torch.autograd.grad(score.sum(), x)
    with torch.no_grad():
        gap = score.detach() - predictor.forward_embeds(baseline, *args)
    return _per_token(x.detach() * gradient), float(gap.sum())


def _integrated_gradients(predictor: Predictor, steps: int, ixg: np.ndarray, gap: float) -> Attributions:
    """``steps``-step Integrated Gradients (captum); its delta is captum's convergence delta, |Σ IG − (F(x) −
    F(baseline))|, taken against ``gap`` instead of two more forward passes per call."""
    import torch
    from captum.attr import IntegratedGradients

    embeds, baseline = _embeddings(predictor)
    with torch.enable_grad():
        ig = IntegratedGradients(predictor.forward_embeds).attribute(
            embeds,
            baselines=baseline,
            additional_forward_args=predictor.extra_args,
            n_steps=steps,
            method="gausslegendre",
            # Fewer steps per pass for long inputs: the backward keeps every step's activations.
            internal_batch_size=max(1, min(CHUNK, CHUNK_TOKENS // max(1, len(predictor.ids)))),
        )
    ig_tokens = _per_token(ig)
    return Attributions(ixg, ig_tokens, abs(float(ig_tokens.sum()) - gap), abs(gap))


Read = Callable[[Any, Any, Any, list[np.ndarray]], Any]
_EMBEDDERS: dict[int, Callable[[Any], Any]] = {}


def build_predictor(
    loaded: LoadedModel,
    seq: Any,
    sequence: str,
    removable: np.ndarray,
    read: Read,
    model_kwargs: Callable[[int], dict[str, Any]] | None = None,
) -> Predictor:
    """A predictor for a task whose scored sequence is the model's (encoder) input.

    Args:
        loaded: the loaded model and tokenizer.
        seq: the scored ``TokenSeq`` (its ids, special flags and segments).
        sequence: its name in ``Capture.sequences``.
        removable: (n,) tokens erasure may remove.
        read: ``(outputs, rows, mask, positions)`` → (R,) scores: the model's outputs for a batch of inputs
            (``input_ids`` or ``inputs_embeds``, ``attention_mask`` and, when the tokenizer uses them,
            ``token_type_ids``), the (R,) rows of them that are this example's, the batch's attention mask, and the
            original positions each of those rows keeps.
        model_kwargs: rows → more arguments of this example's model call (an encoder-decoder's decoder input);
            given, its copies are never scored in one pass with other examples' copies.
    """
    import torch

    model, tok = loaded.model, loaded.tokenizer
    pad = tok.pad_token_id if tok.pad_token_id is not None else 0
    types_used = "token_type_ids" in getattr(tok, "model_input_names", ())
    segments = np.asarray(seq.segments) if types_used else None

    def call(key: str, x: Any, mask: Any, types: Sequence[np.ndarray | None]) -> Any:
        found = {key: x, "attention_mask": mask}
        if types_used:
            found["token_type_ids"] = torch.zeros_like(mask)
            for b, row in enumerate(types):
                found["token_type_ids"][b, : len(row)] = torch.as_tensor(row, device=mask.device)
        return model(**found, **(model_kwargs(mask.shape[0]) if model_kwargs is not None else {}))

    def forward_copies(variants: list[list[int]], types: list[np.ndarray | None]) -> tuple[Any, Any]:
        ids, mask = pad_batch(variants, pad, loaded.device)
        with torch.inference_mode():
            return call("input_ids", ids, mask, types), mask

    everything = np.arange(len(seq.ids))

    def forward_embeds(embeds: Any, mask: Any) -> Any:
        rows = embeds.shape[0]
        outputs = call("inputs_embeds", embeds, mask, [segments] * rows if segments is not None else ())
        return read(outputs, torch.arange(rows, device=mask.device), mask, [everything] * rows)

    special = np.asarray(seq.special)
    return Predictor(
        sequence=sequence,
        ids=list(seq.ids),
        removable=removable,
        mask_id=mask_token_id(tok),
        forward_copies=forward_copies,
        read_copies=read,
        embed=input_embedder(model, pad),
        forward_embeds=forward_embeds,
        baseline_ids=[token if special[i] else pad for i, token in enumerate(seq.ids)],
        # One model, called the same way: copies of any of its examples can share a pass.
        share=None if model_kwargs is not None else ("model", id(model)),
        segments=segments,
        extra_args=(torch.ones((1, len(seq.ids)), dtype=torch.long, device=loaded.device),),
        pass_tokens=CPU_PASS_TOKENS if torch.device(loaded.device).type == "cpu" else CHUNK_TOKENS,
    )


def input_embedder(model: Any, probe_id: int) -> Callable[[Any], Any]:
    """ids → the embeddings the model feeds its (encoder) layers when given ``inputs_embeds``.

    Some encoders scale token embeddings inside ``forward`` (Marian) and others inside the embedding
    module (BART), so the right function is found once per model by checking which one reproduces
    the model's own output.
    """
    import torch

    if id(model) in _EMBEDDERS:
        return _EMBEDDERS[id(model)]
    encoder = model.get_encoder() if getattr(model.config, "is_encoder_decoder", False) else None
    table = encoder.embed_tokens if encoder is not None else model.get_input_embeddings()
    scale = float(getattr(encoder, "embed_scale", 1.0) or 1.0) if encoder is not None else 1.0
    candidates = [table] if scale == 1.0 else [lambda ids: table(ids) * scale, table]
    probe = torch.tensor([[probe_id, probe_id + 1, probe_id + 2]], device=next(model.parameters()).device) % int(
        table.num_embeddings
    )
    chosen = candidates[0]
    if len(candidates) > 1 and encoder is not None:
        with torch.no_grad():
            reference = encoder(input_ids=probe).last_hidden_state
            for candidate in candidates:
                if torch.allclose(encoder(inputs_embeds=candidate(probe)).last_hidden_state, reference, atol=1e-5):
                    chosen = candidate
                    break
    _EMBEDDERS[id(model)] = chosen
    return chosen
