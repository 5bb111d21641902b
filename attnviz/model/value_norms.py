"""Norms of the value-transformed vectors ‖f^h(x_j)‖ of Kobayashi et al. (EMNLP 2020), recorded with forward hooks.

The output of an attention sublayer (before dropout, the residual and any LayerNorm) decomposes as

    y_i = Σ_h Σ_j α^h_ij f^h(x_j) + b_O,      f^h(x_j) = (x_j W_V^h + b_V^h) W_O^h,

with the value bias ``b_V`` included in ``f`` and the output bias ``b_O`` excluded. Because
``‖α^h_ij f^h(x_j)‖ = α^h_ij · ‖f^h(x_j)‖``, the norm-weighted attention of every head can be computed later
from the attention weights and the (B, H, k) norms recorded here, without a (B, H, n, n, D) tensor.

:class:`ValueNormRecorder` hooks the *value* projection of every layer of the requested attention kinds,
reshapes its output to heads (repeating each key/value head over its group of query heads under GQA) and
multiplies each head by its slice of the *output* projection's weight (never its bias). It works under any
attention backend: it needs no attention probabilities.

This is part of the capture stage and uses torch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import torch

#: Attention kinds: "self" for encoder-only and decoder-only models, the other three for encoder-decoders.
KINDS: tuple[str, ...] = ("self", "encoder", "decoder", "cross")


@dataclass(frozen=True)
class _Site:
    """One attention module of a family: where its value and output projections are, relative to a layer.

    Attributes:
        value: dotted name suffix of the value projection (or fused QKV projection).
        output: dotted name suffix of the output projection.
        cross: True for cross-attention (keys are encoder positions).
    """

    value: str
    output: str
    cross: bool = False


@dataclass(frozen=True)
class _Family:
    """How to find and read the attention modules of one architecture family.

    Attributes:
        name: family name used in messages.
        sites: the attention modules of one layer.
        heads: config attributes giving the number of query heads, per kind (first one found wins).
        kv_heads: config attributes giving the number of key/value heads (GQA); none found → as many as heads.
        fused_qkv: the value projection is GPT-2's fused ``c_attn`` whose output is ``[q | k | v]``.
    """

    name: str
    sites: tuple[_Site, ...]
    heads: dict[str, tuple[str, ...]]
    kv_heads: tuple[str, ...] = ()
    fused_qkv: bool = False


_BERT = _Family(
    "BERT/RoBERTa",
    (_Site("attention.self.value", "attention.output.dense"),),
    {"self": ("num_attention_heads",)},
)
_DISTILBERT = _Family("DistilBERT", (_Site("attention.v_lin", "attention.out_lin"),), {"self": ("n_heads",)})
_GPT2 = _Family("GPT-2", (_Site("attn.c_attn", "attn.c_proj"),), {"self": ("n_head",)}, fused_qkv=True)
_LLAMA = _Family(
    "Llama",
    (_Site("self_attn.v_proj", "self_attn.o_proj"),),
    {"self": ("num_attention_heads",)},
    kv_heads=("num_key_value_heads",),
)
_BART = _Family(
    "BART/Marian",
    (_Site("self_attn.v_proj", "self_attn.out_proj"), _Site("encoder_attn.v_proj", "encoder_attn.out_proj", True)),
    {
        "encoder": ("encoder_attention_heads",),
        "decoder": ("decoder_attention_heads",),
        "cross": ("decoder_attention_heads",),
    },
)
_T5 = _Family(
    "T5",
    (_Site("SelfAttention.v", "SelfAttention.o"), _Site("EncDecAttention.v", "EncDecAttention.o", True)),
    {"encoder": ("num_heads",), "decoder": ("num_heads",), "cross": ("num_heads",)},
)

#: ``config.model_type`` → family. Only these are supported.
_FAMILIES: dict[str, _Family] = {
    "bert": _BERT,
    "roberta": _BERT,
    "xlm-roberta": _BERT,
    "distilbert": _DISTILBERT,
    "gpt2": _GPT2,
    "llama": _LLAMA,
    "bart": _BART,
    "marian": _BART,
    "t5": _T5,
}


@dataclass
class _Layer:
    """One hooked attention module.

    Attributes:
        kind: attention kind.
        name: module name of the value projection.
        value_module: the value (or fused QKV) projection.
        output_module: the output projection.
        heads: H, query heads.
        kv_heads: key/value heads (H when there is no GQA).
        head_dim: d.
    """

    kind: str
    name: str
    value_module: torch.nn.Module
    output_module: torch.nn.Module
    heads: int
    kv_heads: int
    head_dim: int


def _unwrap(model: Any) -> Any:
    """The torch model, also when given an ``attnviz.model.loading.LoadedModel``."""
    if not isinstance(model, torch.nn.Module) and isinstance(getattr(model, "model", None), torch.nn.Module):
        return model.model
    return model


def _architecture(model: Any) -> str:
    """Class name and model type of a model, for messages."""
    config = getattr(model, "config", None)
    model_type = getattr(config, "model_type", None)
    suffix = f" (model_type {model_type!r})" if model_type else ""
    return f"{type(model).__name__}{suffix}"


def _family(model: Any) -> _Family | None:
    config = getattr(model, "config", None)
    if not isinstance(model, torch.nn.Module) or config is None:
        return None
    return _FAMILIES.get(getattr(config, "model_type", None) or "")


def _ends_with(name: str, suffix: str) -> bool:
    """Whether the dotted ``name`` ends with the dotted ``suffix``, matching whole components."""
    parts, tail = name.split("."), suffix.split(".")
    return len(parts) > len(tail) and parts[-len(tail) :] == tail


def _kind(name: str, site: _Site, encoder_decoder: bool) -> str:
    """Attention kind of a value projection named ``name`` found through ``site``."""
    if not encoder_decoder:
        return "self"
    if site.cross:
        return "cross"
    components = name.split(".")
    return "decoder" if "decoder" in components else "encoder"


def _config_int(config: Any, attributes: Sequence[str]) -> int | None:
    for attribute in attributes:
        value = getattr(config, attribute, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def _output_weight(module: torch.nn.Module) -> torch.Tensor:
    """The output projection weight as (in, out) so that ``y = x @ W + b`` (nn.Linear stores (out, in)).

    GPT-2's ``Conv1D`` (``transformers.pytorch_utils``) already stores (in, out).
    """
    weight = module.weight
    if type(module).__name__ == "Conv1D":
        return weight
    if isinstance(module, torch.nn.Linear):
        return weight.t()
    raise ValueError(f"unexpected output projection {type(module).__name__}: expected nn.Linear or Conv1D")


def _value_width(module: torch.nn.Module, fused: bool) -> int:
    """Width of the value part of a value projection's output."""
    # nn.Linear stores (out, in); Conv1D stores (in, out).
    width = module.out_features if isinstance(module, torch.nn.Linear) else module.weight.shape[-1]
    if fused:
        if width % 3:
            raise ValueError(f"fused QKV projection of width {width} is not divisible by 3")
        width //= 3
    return width


def _find_layers(model: Any) -> list[_Layer]:
    """Every attention module of a supported model, in module order (encoder layers before decoder layers).

    Raises:
        ValueError: the model is not supported, or its projections do not have the expected shapes.
    """
    family = _family(model)
    if family is None:
        raise ValueError(
            f"value norms are not supported for {_architecture(model)}; "
            f"supported model types: {', '.join(sorted(_FAMILIES))}"
        )
    config = model.config
    encoder_decoder = bool(getattr(config, "is_encoder_decoder", False))
    modules = dict(model.named_modules())
    layers = []
    for name, module in modules.items():
        for site in family.sites:
            if not _ends_with(name, site.value):
                continue
            prefix = name[: -len(site.value)]
            output = modules.get(prefix + site.output)
            if output is None:
                raise ValueError(f"{_architecture(model)}: no output projection {prefix + site.output} for {name}")
            kind = _kind(name, site, encoder_decoder)
            heads = _config_int(config, family.heads.get(kind, ()))
            if heads is None:
                raise ValueError(f"{_architecture(model)}: the config does not give the number of {kind} heads")
            kv_heads = _config_int(config, family.kv_heads) or heads
            weight = _output_weight(output)
            if weight.shape[0] % heads or heads % kv_heads:
                raise ValueError(
                    f"{_architecture(model)}: {prefix + site.output} input width {weight.shape[0]} "
                    f"does not split into {heads} heads of {kv_heads} key/value groups"
                )
            head_dim = weight.shape[0] // heads
            width = _value_width(module, family.fused_qkv)
            if width != kv_heads * head_dim:
                raise ValueError(
                    f"{_architecture(model)}: value projection {name} has width {width}, "
                    f"expected {kv_heads} key/value heads × {head_dim}"
                )
            layers.append(_Layer(kind, name, module, output, heads, kv_heads, head_dim))
    if not layers:
        raise ValueError(f"value norms: found no attention modules in {_architecture(model)}")
    return layers


def value_norm_kinds(model: Any) -> tuple[str, ...]:
    """The attention kinds :class:`ValueNormRecorder` can record for a model.

    Args:
        model: a ``transformers`` model (or an ``attnviz.model.loading.LoadedModel``).

    Returns:
        ``("self",)`` for encoder-only and decoder-only models, ``("encoder", "decoder", "cross")`` for
        encoder-decoders, ``()`` when the model is not supported.
    """
    model = _unwrap(model)
    try:
        found = {layer.kind for layer in _find_layers(model)}
    except ValueError:
        return ()
    return tuple(kind for kind in KINDS if kind in found)


def supports_value_norms(model: Any) -> bool:
    """Whether value-vector norms can be recorded for this model.

    True for BERT, RoBERTa, XLM-RoBERTa (and MiniLM checkpoints of those types), DistilBERT, GPT-2, Llama,
    BART, Marian and T5 whose projections have the expected names and shapes.

    Args:
        model: a ``transformers`` model (or an ``attnviz.model.loading.LoadedModel``).
    """
    return bool(value_norm_kinds(model))


class ValueNormRecorder:
    """Context manager recording ‖f^h(x_j)‖ for every layer and head of the requested attention kinds.

    Forward hooks on the value projections compute, for each head h and key position j,
    ``f^h(x_j) = v^h_j @ W_O^h`` where ``v^h_j`` is the value projection output (bias included) and ``W_O^h``
    the head's (d, D) slice of the output projection weight (the output bias is left out). With GQA, each
    key/value head is repeated for its ``H / H_kv`` query heads, so every result has H query heads.

    Each hooked layer keeps the result of its latest call: record one forward pass (a teacher-forced pass,
    not a generation loop, and without a reused key/value cache, which skips the value projections).
    Norms are computed in at least float32, without gradients, and stay on the model's device.

    Example:
        >>> with ValueNormRecorder(model, ["self"]) as recorder:
        ...     outputs = model(**inputs, output_attentions=True)
        >>> norms = recorder.norms("self")  # per layer, (B, H, k)

    Args:
        model: a supported ``transformers`` model (or an ``attnviz.model.loading.LoadedModel``).
        kinds: attention kinds to record, among ``"self"``, ``"encoder"``, ``"decoder"`` and ``"cross"``.
        keep_vectors: also keep the vectors f^h(x_j) themselves, per layer (B, H, k, D), for :meth:`vectors`.

    Raises:
        ValueError: the model is not supported, or a kind is unknown or absent from this model.
    """

    def __init__(self, model: Any, kinds: Sequence[str], *, keep_vectors: bool = False) -> None:
        model = _unwrap(model)
        layers = _find_layers(model)
        available = [kind for kind in KINDS if any(layer.kind == kind for layer in layers)]
        kinds = list(dict.fromkeys(kinds))
        for kind in kinds:
            if kind not in available:
                raise ValueError(
                    f"attention kind {kind!r} is not available for value norms of {_architecture(model)}; "
                    f"available: {', '.join(available)}"
                )
        self.model = model
        self.kinds: tuple[str, ...] = tuple(kinds)
        self.keep_vectors = keep_vectors
        self._layers = [layer for layer in layers if layer.kind in self.kinds]
        self._norms: list[torch.Tensor | None] = [None] * len(self._layers)
        self._vectors: list[torch.Tensor | None] = [None] * len(self._layers)
        self._handles: list[Any] = []
        family = _family(model)
        self._fused = family is not None and family.fused_qkv

    def __enter__(self) -> ValueNormRecorder:
        self.clear()
        for index, layer in enumerate(self._layers):
            self._handles.append(layer.value_module.register_forward_hook(self._hook(index)))
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def clear(self) -> None:
        """Forget everything recorded so far."""
        self._norms = [None] * len(self._layers)
        self._vectors = [None] * len(self._layers)

    def _hook(self, index: int) -> Any:
        def hook(module: torch.nn.Module, inputs: Any, output: Any) -> None:
            value = output[0] if isinstance(output, tuple) else output
            vectors = self._transform(self._layers[index], value)
            self._norms[index] = torch.linalg.vector_norm(vectors, dim=-1)
            self._vectors[index] = vectors if self.keep_vectors else None

        return hook

    def _transform(self, layer: _Layer, value: torch.Tensor) -> torch.Tensor:
        """f^h(x_j) for one layer.

        Args:
            layer: the hooked attention module.
            value: the value projection output, (B, k, H_kv·d), or (B, k, 3·H·d) for GPT-2's fused QKV.

        Returns:
            (B, H, k, D) value-transformed vectors.
        """
        with torch.no_grad():
            value = value.detach()
            if self._fused:
                value = value[..., 2 * layer.kv_heads * layer.head_dim :]
            dtype = torch.promote_types(value.dtype, torch.float32)
            batch, keys = value.shape[0], value.shape[1]
            heads = value.reshape(batch, keys, layer.kv_heads, layer.head_dim).to(dtype)
            if layer.kv_heads != layer.heads:
                heads = heads.repeat_interleave(layer.heads // layer.kv_heads, dim=2)  # as transformers' repeat_kv
            weight = _output_weight(layer.output_module).detach().to(device=value.device, dtype=dtype)
            weight = weight.reshape(layer.heads, layer.head_dim, weight.shape[-1])  # W_O^h = weight[h], (d, D)
            return torch.einsum("bkhd,hdo->bhko", heads, weight)

    def _collect(self, kind: str, store: list[torch.Tensor | None], what: str) -> list[torch.Tensor]:
        if kind not in self.kinds:
            raise ValueError(f"attention kind {kind!r} was not recorded; recorded: {', '.join(self.kinds)}")
        results = []
        for layer, tensor in zip(self._layers, store, strict=True):
            if layer.kind != kind:
                continue
            if tensor is None:
                raise ValueError(f"no {what} recorded for {layer.name}: run a forward pass inside the recorder")
            results.append(tensor)
        return results

    def norms(self, kind: str) -> list[torch.Tensor]:
        """‖f^h(x_j)‖ per layer of one attention kind.

        Args:
            kind: a recorded attention kind.

        Returns:
            One (B, H, k) tensor per layer, in layer order: the L2 norm over the model dimension D of
            f^h(x_j) for each head h and key position j (k = encoder length for ``"cross"``). Padded key
            positions get a norm too; their attention weight is zero.

        Raises:
            ValueError: the kind was not recorded, or a layer has not run yet.
        """
        return self._collect(kind, self._norms, "value norms")

    def vectors(self, kind: str) -> list[torch.Tensor]:
        """f^h(x_j) per layer of one attention kind (needs ``keep_vectors=True``).

        Args:
            kind: a recorded attention kind.

        Returns:
            One (B, H, k, D) tensor per layer, in layer order.

        Raises:
            ValueError: vectors were not kept, the kind was not recorded, or a layer has not run yet.
        """
        if not self.keep_vectors:
            raise ValueError("value vectors were not kept: create the recorder with keep_vectors=True")
        return self._collect(kind, self._vectors, "value vectors")
