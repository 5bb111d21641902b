"""The forward (and optional backward) pass: attention of every layer and head, cut to real tokens.

This is the last stage that sees torch: it returns :class:`Capture` objects holding numpy arrays.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from contextlib import nullcontext
from typing import Any

import numpy as np

from attnviz.config import GenerationOptions
from attnviz.errors import ModelError, UsageError, one_line
from attnviz.model.loading import LoadedModel
from attnviz.model.tasks import get_task
from attnviz.model.tasks.base import TARGET_LABEL, expected_layers, token_seq
from attnviz.model.views import ViewBuilder, ViewRequest, chunk_rows
from attnviz.types import GRAD_MEAN, HEAD_MEAN, RELEVANCY, ROLLOUT, Capture, Example, Needs, Prediction

DEFAULT_MAX_LENGTH = 512


def model_max_tokens(loaded: LoadedModel) -> int | None:
    """The most tokens the model takes: its position embeddings and the tokenizer's stated limit."""
    limits = []
    tok_limit = getattr(loaded.tokenizer, "model_max_length", None)
    if isinstance(tok_limit, int) and tok_limit < 10**6:
        limits.append(tok_limit)
    for attr in ("max_position_embeddings", "n_positions"):
        value = getattr(loaded.model.config, attr, None)
        if isinstance(value, int):
            limits.append(value)
    return min(limits) if limits else None


def resolve_max_length(loaded: LoadedModel, requested: int | None) -> int:
    """``--max-length`` (at most the model's limit), or the model's limit capped at ``DEFAULT_MAX_LENGTH``.

    Raises:
        UsageError: ``--max-length`` is more than the model takes.
    """
    limit = model_max_tokens(loaded)
    if requested is None:
        return min(DEFAULT_MAX_LENGTH, limit) if limit is not None else DEFAULT_MAX_LENGTH
    if limit is not None and requested > limit:
        raise UsageError(
            f"--max-length {requested} is more than model '{loaded.name}' takes ({limit} tokens); "
            f"use --max-length {limit} or less (longer inputs are cut there, and the report says so)"
        )
    return requested


def capture_batch(
    loaded: LoadedModel,
    examples: Sequence[Example],
    *,
    max_length: int,
    needs: Needs,
    generation: GenerationOptions | None = None,
    target: str | None = None,
) -> list[Capture]:
    """Run one batch and return one :class:`Capture` per example, holding the views ``needs`` asks for.

    The fast path (``loaded.capture == "fast"``) runs SDPA and recomputes attention in row blocks; the
    eager path reads the tensors eager attention returns. Both feed :class:`ViewBuilder` the same blocks.

    Args:
        loaded: model, tokenizer and task.
        examples: the batch.
        max_length: truncation length in tokens.
        needs: the union of what the analyses and renderers need (views, value norms; gradients follow).
        generation: how generative tasks continue inputs without a target (default: 20 greedy tokens).
        target: which label/score to explain (default: the prediction).

    Raises:
        ModelError: the model returned no attention, or not one tensor per layer, or an output (score or
            probability) that is NaN or infinite.
    """
    import torch

    from attnviz.model.fast_attention import recording

    task = get_task(loaded.task)
    batch = task.encode(examples, loaded, max_length, generation or GenerationOptions())
    batch.extras[TARGET_LABEL] = target
    if any("cross" in task.layout(batch, b) for b in range(len(batch.examples))):
        needs = _encoder_decoder_needs(needs)
    fast = loaded.capture == "fast"
    context = torch.enable_grad() if needs.gradients else torch.inference_mode()
    norms = _recorder(loaded, needs.value_norms)
    with context, norms or nullcontext(), recording(loaded.model, needs.gradients) if fast else nullcontext() as rec:
        forward = task.forward(loaded.model, batch)
        kinds = sorted({kind for b in range(len(batch.examples)) for kind in task.layout(batch, b)})
        blocks = {kind: _FastBlocks(loaded, kind, rec.calls.get(kind)) if fast else None for kind in kinds}
        for kind in kinds:
            if not fast:
                _check_attentions(loaded, kind, forward.attentions.get(kind))
                if needs.gradients:
                    for tensor in forward.attentions[kind]:
                        tensor.retain_grad()
        if needs.gradients:
            task.score(forward, batch).sum().backward()
    captures = []
    for b, example in enumerate(batch.examples):
        layout = task.layout(batch, b)
        used = {where.query for where in layout.values()} | {where.key for where in layout.values()}
        sequences = {name: token_seq(batch.streams[name], b, loaded.tokenizer) for name in sorted(used)}
        prediction, explained = task.interpret(forward, batch, b, sequences, loaded)
        _check_finite(prediction, example)
        panel = task.panel(example, prediction)
        attentions = {}
        for kind, where in layout.items():
            rows = batch.streams[where.query].keep(b)
            cols = batch.streams[where.key].keep(b)
            source = blocks[kind] or _EagerBlocks(forward.attentions[kind])
            key_seq = sequences[where.key]
            request = ViewRequest(
                kind=kind,
                query=where.query,
                key=where.key,
                causal=where.causal,
                shape=(source.layers, source.heads, len(rows), len(cols)),
                needs=needs,
                special=key_seq.special_mask,
                segments=np.asarray(key_seq.segments),
                explained=explained.weights if kind == explained.attention else None,
                value_norms=_norms(norms, kind, b, cols),
                aligned=where.positions_aligned,
            )
            attentions[kind] = _views(request, source, b, rows, cols, needs.gradients)
        first = batch.streams[next(iter(layout.values())).query]
        captures.append(
            Capture(
                example=example,
                task=task.name,
                sequences=sequences,
                attentions=attentions,
                explained=explained,
                prediction=prediction,
                truncated=any(batch.streams[name].truncated[b] for name in used),
                original_length=first.original_lengths[b],
                capture_path=loaded.capture,
                panel=panel,
            )
        )
    return captures


def _check_finite(prediction: Prediction, example: Example) -> None:
    """A NaN or infinite output (broken weights, float16 overflowing) makes every number computed from it
    meaningless: a model error, not a report of NaN."""
    for name, value in (("score", prediction.score), *prediction.probabilities.items()):
        if value is not None and not math.isfinite(value):
            raise ModelError(
                f"the model's output for example {example.id!r} ({one_line(example.source)}) is not a "
                f"finite number ({one_line(str(name))}: {value}): check the model's weights, or run in float32 "
                "(--dtype float32)"
            )


def _encoder_decoder_needs(needs: Needs) -> Needs:
    """Encoder-decoders combine whole maps of the three attention kinds (rollout through the encoder, rule 10),
    so the products through the layers are computed from head means and rule-5 maps instead."""
    more = {HEAD_MEAN} if ROLLOUT in needs.attention else set()
    more |= {GRAD_MEAN} if RELEVANCY in needs.attention else set()
    return needs.union(Needs(attention=frozenset(more)))


def _views(request: ViewRequest, source: Any, b: int, rows: np.ndarray, cols: np.ndarray, grads: bool) -> Any:
    """Feed every (layer, row block) of example b's real tokens to a :class:`ViewBuilder`."""
    builder = ViewBuilder(request)
    if not request.needs.attention:
        return builder.build()
    step = chunk_rows(request.shape[1], source.keys)
    for layer in reversed(range(request.shape[0])):
        for start in range(0, len(rows), step):
            block = rows[start : start + step]
            probs = source.probs(layer, b, block)[:, :, cols]
            grad = source.grad_probs(layer, b, block)[:, :, cols] if grads else None
            builder.add(layer, start, _numpy(probs), None if grad is None else _numpy(grad))
        builder.end_layer(layer)
    return builder.build()


def _numpy(tensor: Any) -> np.ndarray:
    return tensor.detach().float().cpu().numpy()


class _EagerBlocks:
    """Row blocks sliced from the (B, H, q, k) tensors eager attention returned (the reference path)."""

    def __init__(self, layers: Sequence[Any]) -> None:
        self.tensors = layers
        self.layers, self.heads, self.keys = len(layers), int(layers[0].shape[1]), int(layers[0].shape[-1])

    def probs(self, layer: int, b: int, rows: np.ndarray) -> Any:
        return self.tensors[layer][b, :, rows]

    def grad_probs(self, layer: int, b: int, rows: np.ndarray) -> Any:
        return self.tensors[layer].grad[b, :, rows]


class _FastBlocks:
    """Row blocks recomputed from the recorded q, k (and ∂score/∂output) of each layer (the fast path)."""

    def __init__(self, loaded: LoadedModel, kind: str, calls: Sequence[Any] | None) -> None:
        expected = expected_layers(loaded.model.config, kind)
        if not calls or (expected is not None and kind != "pair" and len(calls) != expected):
            raise ModelError(
                f"model '{loaded.name}': the fast capture path recorded {len(calls or ())} {kind}-attention calls, "
                f"expected {expected}; rerun with --capture eager"
            )
        self.calls = calls
        self.layers = len(calls)
        self.heads = int(calls[0].query.shape[1])
        self.keys = int(calls[0].key.shape[2])
        batch, queries = int(calls[0].query.shape[0]), int(calls[0].query.shape[2])
        # Short inputs: one eager call per layer for the whole batch (as cheap as the eager path's slicing);
        # long ones: one row block of one example at a time, so memory stays bounded.
        self.whole = self.layers * batch * self.heads * queries * self.keys <= WHOLE_BATCH_ELEMENTS
        self._cache: dict[tuple[str, int], Any] = {}

    def probs(self, layer: int, b: int, rows: np.ndarray) -> Any:
        return self._block("probs", layer, b, rows)

    def grad_probs(self, layer: int, b: int, rows: np.ndarray) -> Any:
        return self._block("grad_probs", layer, b, rows)

    def _block(self, what: str, layer: int, b: int, rows: np.ndarray) -> Any:
        import torch

        compute = getattr(self.calls[layer], what)
        if not self.whole:
            return compute(slice(b, b + 1), torch.as_tensor(rows))[0]
        if (what, layer) not in self._cache:
            self._cache[what, layer] = compute(slice(None))
        return self._cache[what, layer][b, :, rows]


#: Below this many numbers in a kind's attention (layers × batch × heads × q × k), the fast path recomputes whole
#: layers for the whole batch at once; above it, row blocks of one example.
WHOLE_BATCH_ELEMENTS = 1 << 24


def _recorder(loaded: LoadedModel, wanted: bool) -> Any:
    from attnviz.model.value_norms import ValueNormRecorder, supports_value_norms, value_norm_kinds

    if not wanted or not supports_value_norms(loaded.model):
        return None
    return ValueNormRecorder(loaded.model, value_norm_kinds(loaded.model))


def _norms(recorder: Any, kind: str, b: int, cols: np.ndarray) -> np.ndarray | None:
    """(L, H, k') value-vector norms of example b's real keys, when recorded for this attention kind."""
    if recorder is None or kind not in recorder.kinds:
        return None
    return np.stack([layer[b].float().cpu().numpy()[:, cols] for layer in recorder.norms(kind)]).astype(np.float32)


def _check_attentions(loaded: LoadedModel, kind: str, layers: Any) -> None:
    impl = getattr(loaded.model.config, "_attn_implementation", "unknown")
    if not layers or any(t is None for t in layers):
        raise ModelError(
            f"model '{loaded.name}' returned no {kind} attention weights (attention implementation "
            f"'{impl}'); attnviz needs eager attention, which this architecture may not support"
        )
    expected = expected_layers(loaded.model.config, kind)
    if expected is not None and len(layers) != expected:
        raise ModelError(
            f"model '{loaded.name}' returned {kind} attention for {len(layers)} layers but its config "
            f"has {expected}; cannot match attention to layers"
        )
    if any(getattr(t, "ndim", 0) != 4 for t in layers):
        raise ModelError(f"model '{loaded.name}' returned {kind} attention that is not (batch, heads, q, k)")
