"""The fast capture path: SDPA for the forward pass, attention probabilities recomputed later in row blocks.

``attnviz`` is registered in transformers' ``AttentionInterface`` (and its mask interface, with SDPA's
masks). During a recorded pass it returns exactly what SDPA returns and keeps, per call, the detached
query, key and value states, the mask and the extra arguments (T5's position bias, a softcap, ...); with
gradients it also keeps ∂score/∂output through a hook on the output. Afterwards :meth:`Call.probs`
recomputes any block of query rows with the model's own eager attention function, so the numbers follow
the same formula as the eager path, and ∂score/∂A = ∂score/∂O · Vᵀ for the same rows (O = A·V). No
(H, n, n) tensor is held for a whole layer. Outside a recording the function is plain SDPA.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

import torch

NAME = "attnviz"
CROSS_NAMES = frozenset({"encoder_attn", "EncDecAttention", "crossattention", "cross_attn"})


@dataclass
class Call:
    """One attention call of a recorded forward pass (tensors are detached).

    Attributes:
        module: the attention module.
        query, key, value: (B, H_q, q, d), (B, H_kv, k, d), (B, H_kv, k, d_v).
        mask: SDPA's mask ((B, 1, q, k) boolean or additive) or None.
        causal: SDPA ran with ``is_causal`` (no mask given to a causal module).
        kwargs: the other keyword arguments the model passed (scaling, position_bias, softcap, ...).
        grad_output: (B, q, H, d_v) ∂score/∂output, filled in by the backward pass.
    """

    module: torch.nn.Module
    query: torch.Tensor
    key: torch.Tensor
    value: torch.Tensor
    mask: torch.Tensor | None
    causal: bool
    kwargs: dict[str, Any]
    grad_output: torch.Tensor | None = None

    def probs(self, batch: slice, rows: torch.Tensor | None = None) -> torch.Tensor:
        """(b, H, c, k) float32 attention probabilities of the examples in ``batch`` for query ``rows`` (None: all),
        as the model family's eager function computes them."""
        eager = eager_function(self.module)
        kwargs = {**self.kwargs, "dropout": 0.0}
        bias = kwargs.get("position_bias")
        if isinstance(bias, torch.Tensor):
            kwargs["position_bias"] = _rows(_examples(bias, batch), rows)
        query = _rows(self.query[batch], rows)
        mask = self._mask(batch, rows)
        _, weights = eager(self.module, query, self.key[batch], self.value[batch], mask, **kwargs)
        return weights.float()

    def grad_probs(self, batch: slice, rows: torch.Tensor | None = None) -> torch.Tensor:
        """(b, H, c, k) float32 ∂score/∂A of the examples in ``batch`` for query ``rows``: ∂score/∂O · Vᵀ."""
        if self.grad_output is None:
            raise RuntimeError("no gradient reached this attention call; run the backward pass first")
        grad = self.grad_output[batch].transpose(1, 2).float()  # (b, H, q, d_v)
        grad = _rows(grad, rows)
        value = self.value[batch].float()
        groups = grad.shape[1] // value.shape[1]
        if groups > 1:  # grouped-query attention: each key/value head serves `groups` query heads
            value = value.repeat_interleave(groups, dim=1)
        return grad @ value.transpose(-1, -2)

    def _mask(self, batch: slice, rows: torch.Tensor | None) -> torch.Tensor | None:
        """The eager (additive) form of SDPA's mask for the rows."""
        dtype = self.query.dtype
        if self.mask is None:
            if not self.causal:
                return None
            device = self.query.device
            positions = torch.arange(self.query.shape[2], device=device) if rows is None else rows
            allowed = positions[:, None] >= torch.arange(self.key.shape[2], device=device)[None, :]
            return torch.where(allowed, 0.0, torch.finfo(dtype).min).to(dtype)[None, None]
        mask = _rows(_examples(self.mask, batch), rows)
        if mask.dtype == torch.bool:
            return torch.where(mask, 0.0, torch.finfo(dtype).min).to(dtype)
        return mask


def _examples(tensor: torch.Tensor, batch: slice) -> torch.Tensor:
    """The examples of a batch-first tensor that may be broadcast over the batch (leading size 1)."""
    return tensor if tensor.shape[0] == 1 else tensor[batch]


def _rows(tensor: torch.Tensor, rows: torch.Tensor | None) -> torch.Tensor:
    """Query rows (dimension 2) of a (b, H, q, ...) tensor; None keeps them all."""
    return tensor if rows is None else tensor[:, :, rows]


@dataclass
class Recorder:
    """Collects the attention calls of one forward pass, with each call's kind from its module name."""

    names: dict[int, str]
    encoder_decoder: bool
    gradients: bool
    calls: dict[str, list[Call]] = field(default_factory=dict)

    def record(self, call: Call, output: torch.Tensor) -> None:
        if self.gradients and output.requires_grad:

            def keep(grad: torch.Tensor) -> None:
                call.grad_output = grad.detach()

            output.register_hook(keep)
        self.calls.setdefault(self.kind(call.module), []).append(call)

    def kind(self, module: torch.nn.Module) -> str:
        override = _KIND.get()
        if override is not None:
            return override
        if not self.encoder_decoder:
            return "self"
        parts = set(self.names.get(id(module), "").split("."))
        if parts & CROSS_NAMES:
            return "cross"
        return "decoder" if "decoder" in parts else "encoder"


_ACTIVE: ContextVar[Recorder | None] = ContextVar("attnviz_recorder", default=None)
_KIND: ContextVar[str | None] = ContextVar("attnviz_attention_kind", default=None)


def attnviz_attention(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """SDPA's output; inside :func:`recording`, also what is needed to recompute the probabilities later."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    kwargs.pop("output_attentions", None)  # SDPA would only warn that it returns no weights
    output, _ = sdpa_attention_forward(module, query, key, value, attention_mask, **kwargs)
    recorder = _ACTIVE.get()
    if recorder is not None:
        is_causal = kwargs.get("is_causal")
        is_causal = getattr(module, "is_causal", True) if is_causal is None else is_causal
        extra = {k: (v.detach() if isinstance(v, torch.Tensor) else v) for k, v in kwargs.items()}
        extra.pop("is_causal", None)
        call = Call(
            module=module,
            query=query.detach(),
            key=key.detach(),
            value=value.detach(),
            mask=attention_mask.detach() if isinstance(attention_mask, torch.Tensor) else None,
            causal=bool(query.shape[2] > 1 and attention_mask is None and is_causal),
            kwargs=extra,
        )
        recorder.record(call, output)
    return output, None


def register() -> None:
    """Make ``attn_implementation="attnviz"`` available (idempotent)."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    AttentionInterface.register(NAME, attnviz_attention)
    AttentionMaskInterface.register(NAME, sdpa_mask)


def eager_function(module: torch.nn.Module) -> Callable[..., Any]:
    """The eager attention function of the module's model family (the reference formula).

    Raises:
        LookupError: the family defines none (then the fast path does not cover it).
    """
    found = getattr(sys.modules.get(type(module).__module__), "eager_attention_forward", None)
    if found is None:
        raise LookupError(f"{type(module).__name__} has no eager_attention_forward to recompute attention with")
    return found


def supports_fast_path(model: Any) -> bool:
    """Whether the model dispatches attention through ``AttentionInterface`` with eager functions to recompute."""
    can_set = getattr(type(model), "_can_set_attn_implementation", None)
    if can_set is None or not can_set():
        return False
    families = {type(m).__module__ for m in model.modules() if type(m).__module__.startswith("transformers.models.")}
    return bool(families) and any(
        getattr(sys.modules.get(name), "eager_attention_forward", None) is not None for name in families
    )


def use_fast_path(model: Any) -> bool:
    """Switch the model to the ``attnviz`` attention function where it is covered; False (unchanged) otherwise."""
    from transformers import PreTrainedModel

    register()
    top = next((m for m in model.modules() if isinstance(m, PreTrainedModel)), None)
    if top is None or not supports_fast_path(top):
        return False
    try:
        top.set_attn_implementation(NAME)
    except (ValueError, NotImplementedError):  # transformers refuses custom attention for this class
        return False
    return top.config._attn_implementation == NAME


@contextmanager
def attention_kind(kind: str) -> Iterator[None]:
    """Record the attention calls of the forward passes inside the block as ``kind`` (e.g. a pair's second text)."""
    token = _KIND.set(kind)
    try:
        yield
    finally:
        _KIND.reset(token)


@contextmanager
def recording(model: Any, gradients: bool) -> Iterator[Recorder]:
    """Record the attention calls of the forward passes run inside the block."""
    recorder = Recorder(
        names={id(m): name for name, m in model.named_modules()},
        encoder_decoder=bool(getattr(model.config, "is_encoder_decoder", False)),
        gradients=gradients,
    )
    token = _ACTIVE.set(recorder)
    try:
        yield recorder
    finally:
        _ACTIVE.reset(token)
