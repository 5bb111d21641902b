"""The forward (and optional backward) pass: attention of every layer and head, cut to real tokens.

This is the last stage that sees torch: it returns :class:`Capture` objects holding numpy arrays.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import nullcontext
from typing import Any

import numpy as np

from attnviz.config import GenerationOptions
from attnviz.errors import ModelError
from attnviz.model.loading import LoadedModel
from attnviz.model.tasks import get_task
from attnviz.model.tasks.base import expected_layers, token_seq
from attnviz.types import AttentionMap, Capture, Example

DEFAULT_MAX_LENGTH = 512


def resolve_max_length(loaded: LoadedModel, requested: int | None) -> int:
    """``--max-length``, or the smallest of the tokenizer's and the model's limits and 512."""
    if requested is not None:
        return requested
    limits = [DEFAULT_MAX_LENGTH]
    tok_limit = getattr(loaded.tokenizer, "model_max_length", None)
    if isinstance(tok_limit, int) and tok_limit < 10**6:
        limits.append(tok_limit)
    for attr in ("max_position_embeddings", "n_positions"):
        value = getattr(loaded.model.config, attr, None)
        if isinstance(value, int):
            limits.append(value)
    return min(limits)


def capture_batch(
    loaded: LoadedModel,
    examples: Sequence[Example],
    *,
    max_length: int,
    generation: GenerationOptions | None = None,
    gradients: bool = False,
    value_norms: bool = False,
    target: str | None = None,
) -> list[Capture]:
    """Run one batch and return one :class:`Capture` per example.

    Args:
        loaded: model, tokenizer and task.
        examples: the batch.
        max_length: truncation length in tokens.
        generation: how generative tasks continue inputs without a target (default: 20 greedy tokens).
        gradients: also capture d(score)/d(attention) for gradient-based methods.
        value_norms: also record ‖f(x_j)‖ per layer, head and key (norm-based methods), where the
            architecture is supported (see ``attnviz.model.value_norms``).
        target: which label/score to explain (default: the prediction).

    Raises:
        ModelError: the model returned no attention, or not one tensor per layer.
    """
    import torch

    task = get_task(loaded.task)
    batch = task.encode(examples, loaded, max_length, generation or GenerationOptions())
    context = torch.enable_grad() if gradients else torch.inference_mode()
    recorder = _recorder(loaded, value_norms)
    with context, recorder or nullcontext():
        forward = task.forward(loaded.model, batch)
        kinds = {kind for b in range(len(batch.examples)) for kind in task.layout(batch, b)}
        for kind in sorted(kinds):
            _check_attentions(loaded, kind, forward.attentions.get(kind))
        if gradients:
            for kind in kinds:
                for tensor in forward.attentions[kind]:
                    tensor.retain_grad()
            task.score(forward, batch, target).sum().backward()
    captures = []
    for b, example in enumerate(batch.examples):
        layout = task.layout(batch, b)
        used = {where.query for where in layout.values()} | {where.key for where in layout.values()}
        sequences = {name: token_seq(batch.streams[name], b, loaded.tokenizer) for name in sorted(used)}
        attentions = {}
        for kind, where in layout.items():
            rows = batch.streams[where.query].keep(b)
            cols = batch.streams[where.key].keep(b)
            layers = forward.attentions[kind]
            attentions[kind] = AttentionMap(
                kind=kind,
                weights=_stack(layers, b, rows, cols),
                query=where.query,
                key=where.key,
                grads=_stack([t.grad for t in layers], b, rows, cols) if gradients else None,
                causal=where.causal,
                value_norms=_norms(recorder, kind, b, cols),
            )
        prediction, explained = task.interpret(forward, batch, b, sequences, loaded)
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
            )
        )
    return captures


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


def _stack(layers: Sequence[Any], b: int, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """(L tensors of (B, H, q, k)) → (L, H, q', k') float32 numpy for example b's real tokens."""
    stacked = np.stack([t[b].detach().float().cpu().numpy() for t in layers])  # (L, H, q, k)
    return np.ascontiguousarray(stacked[:, :, rows][:, :, :, cols], dtype=np.float32)


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
