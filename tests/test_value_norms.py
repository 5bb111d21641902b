"""Value-vector norms ‖f^h(x_j)‖ (Kobayashi et al. 2020) recorded by attnviz.model.value_norms on tiny models."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest
import torch

from attnviz.model.loading import LoadedModel
from attnviz.model.value_norms import ValueNormRecorder, supports_value_norms, value_norm_kinds

SOURCE = "The cat sat quietly on the warm windowsill."
TARGET = "She opened the door and walked into the garden."
TOLERANCE = 1e-5

#: kind → (attention kinds, {attention kind: (output projection suffix, stack the layer is in or None)}).
OUTPUTS: dict[str, dict[str, tuple[str, str | None]]] = {
    "bert-classifier": {"self": ("attention.output.dense", None)},
    "roberta-classifier": {"self": ("attention.output.dense", None)},
    "distilbert-classifier": {"self": ("attention.out_lin", None)},
    "gpt2-lm": {"self": ("attn.c_proj", None)},
    "llama-lm": {"self": ("self_attn.o_proj", None)},
    "bart-seq2seq": {
        "encoder": ("self_attn.out_proj", "encoder"),
        "decoder": ("self_attn.out_proj", "decoder"),
        "cross": ("encoder_attn.out_proj", "decoder"),
    },
    "marian-seq2seq": {
        "encoder": ("self_attn.out_proj", "encoder"),
        "decoder": ("self_attn.out_proj", "decoder"),
        "cross": ("encoder_attn.out_proj", "decoder"),
    },
    "t5-seq2seq": {
        "encoder": ("SelfAttention.o", "encoder"),
        "decoder": ("SelfAttention.o", "decoder"),
        "cross": ("EncDecAttention.o", "decoder"),
    },
}

ATTENTIONS = {"self": "attentions", "encoder": "encoder_attentions", "decoder": "decoder_attentions"}


def _output_modules(model: torch.nn.Module, suffix: str, stack: str | None) -> list[tuple[str, torch.nn.Module]]:
    """Output projections of one attention kind, in layer order (found by name, independently of the module)."""
    found = []
    for name, module in model.named_modules():
        parts = name.split(".")
        if parts[-len(suffix.split(".")) :] == suffix.split(".") and (stack is None or stack in parts):
            found.append((name, module))
    return found


def _inputs(loaded: LoadedModel, texts: list[str], seq2seq: bool) -> dict[str, torch.Tensor]:
    tokenizer = loaded.tokenizer
    encoded = tokenizer(texts, return_tensors="pt", padding=len(texts) > 1)
    inputs = {"input_ids": encoded["input_ids"], "attention_mask": encoded["attention_mask"]}
    if seq2seq:
        inputs["decoder_input_ids"] = tokenizer([TARGET], return_tensors="pt")["input_ids"][:, :7]
    return inputs


def _run(
    loaded: LoadedModel, model_kind: str, texts: list[str], model: torch.nn.Module | None = None
) -> tuple[Any, ValueNormRecorder, dict[str, list[torch.Tensor]], dict[str, list[torch.Tensor]]]:
    """One eager forward pass with the recorder (vectors kept) and hooks on the output projections.

    Returns:
        The model outputs, the recorder, output-projection outputs per kind, and their biases per kind.
    """
    model = model if model is not None else loaded.model
    assert model.config._attn_implementation == "eager", "the identities need the attention weights eager returns"
    outputs_by_kind = OUTPUTS[model_kind]
    captured: dict[str, list[torch.Tensor]] = {kind: [] for kind in outputs_by_kind}
    biases: dict[str, list[torch.Tensor]] = {kind: [] for kind in outputs_by_kind}
    handles = []
    for kind, (suffix, stack) in outputs_by_kind.items():
        for _, module in _output_modules(model, suffix, stack):
            handles.append(module.register_forward_hook(lambda m, i, o, kind=kind: captured[kind].append(o.detach())))
            bias = getattr(module, "bias", None)
            biases[kind].append(bias.detach() if bias is not None else torch.zeros(()))
    seq2seq = "encoder" in outputs_by_kind
    try:
        with ValueNormRecorder(model, list(outputs_by_kind), keep_vectors=True) as recorder, torch.no_grad():
            outputs = model(**_inputs(loaded, texts, seq2seq), output_attentions=True)
    finally:
        for handle in handles:
            handle.remove()
    return outputs, recorder, captured, biases


def _attentions(outputs: Any, kind: str) -> list[torch.Tensor]:
    if kind == "cross":
        return list(outputs.cross_attentions)
    return list(getattr(outputs, ATTENTIONS[kind]))


def _identity_errors(loaded: LoadedModel, model_kind: str, texts: list[str]) -> dict[str, float]:
    """Max |Σ_h Σ_j α f + b_O − output projection output| per attention kind, checking shapes on the way."""
    outputs, recorder, captured, biases = _run(loaded, model_kind, texts)
    errors = {}
    for kind in OUTPUTS[model_kind]:
        attentions, vectors, norms = _attentions(outputs, kind), recorder.vectors(kind), recorder.norms(kind)
        assert len(vectors) == len(norms) == len(attentions) == len(captured[kind]) > 0
        worst = 0.0
        for alpha, f, norm, actual, bias in zip(attentions, vectors, norms, captured[kind], biases[kind], strict=True):
            batch, heads, queries, keys = alpha.shape
            assert f.shape == (batch, heads, keys, actual.shape[-1])
            assert norm.shape == (batch, heads, keys)
            torch.testing.assert_close(norm, torch.linalg.vector_norm(f, dim=-1))
            rebuilt = torch.einsum("bhij,bhjd->bid", alpha.float(), f) + bias
            worst = max(worst, (rebuilt - actual).abs().max().item())
        errors[kind] = worst
    return errors


@pytest.mark.parametrize(
    "model_kind",
    [
        "bert-classifier",
        "roberta-classifier",
        "distilbert-classifier",
        "gpt2-lm",
        "llama-lm",
        "bart-seq2seq",
        "marian-seq2seq",
        "t5-seq2seq",
    ],
)
def test_kobayashi_identity(tiny_loaded: Callable[..., LoadedModel], model_kind: str) -> None:
    """Σ_h Σ_j α^h_ij f^h(x_j) + b_O equals the output projection's output (fp32, one unpadded sentence)."""
    errors = _identity_errors(tiny_loaded(model_kind, capture="eager"), model_kind, [SOURCE])
    assert set(errors) == set(OUTPUTS[model_kind])
    assert max(errors.values()) < TOLERANCE, errors


def test_kobayashi_identity_padded_batch(tiny_loaded: Callable[..., LoadedModel]) -> None:
    """With padding, padded keys get α = 0 and the identity still holds at every position."""
    loaded = tiny_loaded("bert-classifier", capture="eager")
    texts = [SOURCE, "Where is the nearest station?"]
    outputs, recorder, _, _ = _run(loaded, "bert-classifier", texts)
    mask = _inputs(loaded, texts, False)["attention_mask"]
    assert not bool(mask.all()), "the batch should be padded"
    for alpha in outputs.attentions:
        assert float(alpha[1][..., mask[1] == 0].abs().max()) == 0.0
    assert max(_identity_errors(loaded, "bert-classifier", texts).values()) < TOLERANCE


def test_gqa_gives_query_heads(tiny_loaded: Callable[..., LoadedModel]) -> None:
    """Llama with fewer key/value heads: norms have num_attention_heads heads."""
    loaded = tiny_loaded("llama-lm", capture="eager")
    config = loaded.model.config
    assert config.num_key_value_heads < config.num_attention_heads
    _, recorder, _, _ = _run(loaded, "llama-lm", [SOURCE])
    for norm in recorder.norms("self"):
        assert norm.shape[1] == config.num_attention_heads


def test_norm_of_weighted_vector_is_weight_times_norm(tiny_loaded: Callable[..., LoadedModel]) -> None:
    """‖α^h_ij f^h(x_j)‖ = α^h_ij · ‖f^h(x_j)‖ for every head (α ≥ 0), so no (B, H, n, n, D) tensor is needed."""
    outputs, recorder, _, _ = _run(tiny_loaded("bert-classifier", capture="eager"), "bert-classifier", [SOURCE])
    for alpha, f, norm in zip(outputs.attentions, recorder.vectors("self"), recorder.norms("self"), strict=True):
        direct = torch.linalg.vector_norm(alpha[..., None] * f[:, :, None, :, :], dim=-1)  # (B, H, n, n)
        torch.testing.assert_close(direct, alpha * norm[:, :, None, :], rtol=1e-6, atol=1e-7)


def test_equal_norms_give_attention_weights(tiny_loaded: Callable[..., LoadedModel]) -> None:
    """Zero value weights make f^h(x_j) = b_V^h W_O^h the same for all j: normalised α·‖f‖ is then α itself."""
    loaded = tiny_loaded("bert-classifier", capture="eager")
    model = copy.deepcopy(loaded.model)
    with torch.no_grad():
        for name, module in model.named_modules():
            if name.endswith("attention.self.value"):
                module.weight.zero_()
                module.bias.normal_()
    outputs, recorder, _, _ = _run(loaded, "bert-classifier", [SOURCE], model=model)
    for alpha, norm in zip(outputs.attentions, recorder.norms("self"), strict=True):
        torch.testing.assert_close(norm, norm[..., :1].expand_as(norm))  # equal over key positions
        weighted = alpha * norm[:, :, None, :]
        torch.testing.assert_close(weighted / weighted.sum(-1, keepdim=True), alpha)


def test_kinds_per_model(tiny_loaded: Callable[..., LoadedModel]) -> None:
    assert value_norm_kinds(tiny_loaded("gpt2-lm")) == ("self",)
    assert value_norm_kinds(tiny_loaded("t5-seq2seq").model) == ("encoder", "decoder", "cross")
    for kind in ("bert-classifier", "distilbert-classifier", "llama-lm", "bart-seq2seq", "marian-seq2seq"):
        assert supports_value_norms(tiny_loaded(kind).model)


def test_unsupported_model_is_refused() -> None:
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

    config = GPTNeoXConfig(
        vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32
    )
    model = GPTNeoXForCausalLM(config)
    assert not supports_value_norms(model)
    assert not supports_value_norms(torch.nn.Linear(2, 2))
    with pytest.raises(ValueError, match="not supported for GPTNeoXForCausalLM .model_type .gpt_neox.."):
        ValueNormRecorder(model, ["self"])
    with pytest.raises(ValueError, match="Linear"):
        ValueNormRecorder(torch.nn.Linear(2, 2), ["self"])


def test_wrong_kind_and_missing_pass(tiny_loaded: Callable[..., LoadedModel]) -> None:
    bert, bart = tiny_loaded("bert-classifier").model, tiny_loaded("bart-seq2seq").model
    with pytest.raises(ValueError, match="'cross'.*available: self"):
        ValueNormRecorder(bert, ["cross"])
    with pytest.raises(ValueError, match="'self'.*available: encoder, decoder, cross"):
        ValueNormRecorder(bart, ["self"])
    recorder = ValueNormRecorder(bert, ["self"])
    with pytest.raises(ValueError, match="forward pass"):
        recorder.norms("self")
    with pytest.raises(ValueError, match="keep_vectors"):
        recorder.vectors("self")
    with pytest.raises(ValueError, match="not recorded"):
        recorder.norms("encoder")


def test_hooks_are_removed(tiny_loaded: Callable[..., LoadedModel]) -> None:
    model = tiny_loaded("distilbert-classifier").model
    before = sum(len(m._forward_hooks) for m in model.modules())
    with ValueNormRecorder(model, ["self"]):
        assert sum(len(m._forward_hooks) for m in model.modules()) == before + model.config.n_layers
    assert sum(len(m._forward_hooks) for m in model.modules()) == before
