"""The tiny offline checkpoints load through the Auto* classes and return usable attentions."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch
from tiny_models import ARCHITECTURES, FAMILIES, NUM_HEADS, NUM_LAYERS, build_tiny_model
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForCausalLM,
    AutoModelForQuestionAnswering,
    AutoModelForSeq2SeqLM,
    AutoModelForSequenceClassification,
    AutoTokenizer,
)

pytestmark = pytest.mark.filterwarnings("ignore:Recommended. pip install sacremoses")

AUTO_CLASS = {
    "bert-classifier": AutoModelForSequenceClassification,
    "bert-base": AutoModel,
    "bert-qa": AutoModelForQuestionAnswering,
    "distilbert-classifier": AutoModelForSequenceClassification,
    "roberta-classifier": AutoModelForSequenceClassification,
    "gpt2-classifier": AutoModelForSequenceClassification,
    "gpt2-lm": AutoModelForCausalLM,
    "llama-lm": AutoModelForCausalLM,
    "bart-seq2seq": AutoModelForSeq2SeqLM,
    "t5-seq2seq": AutoModelForSeq2SeqLM,
    "marian-seq2seq": AutoModelForSeq2SeqLM,
}
SEQ2SEQ = {"bart-seq2seq", "t5-seq2seq", "marian-seq2seq"}
NEEDS_SENTENCEPIECE = {"t5-seq2seq", "marian-seq2seq"}
SENTENCES = ["The quick brown fox jumps over the extraordinarily lazy dog.", "Hello world."]
TARGETS = ["Der schnelle braune Fuchs springt.", "Hallo."]
QUESTIONS = ["Where is the dog?", "Who?"]
CASES = [(kind, "right") for kind in FAMILIES] + [("gpt2-classifier", "left"), ("llama-lm", "left")]


def _build(tmp_path_factory: pytest.TempPathFactory, kind: str, padding_side: str = "right") -> Path:
    if kind in NEEDS_SENTENCEPIECE and importlib.util.find_spec("sentencepiece") is None:
        pytest.skip("sentencepiece is not installed")
    return build_tiny_model(kind, tmp_path_factory.mktemp(f"{kind}-{padding_side}"), padding_side=padding_side)


def _check(attentions: tuple[torch.Tensor, ...], q_mask: torch.Tensor, k_mask: torch.Tensor) -> None:
    """One (batch, heads, q, k) tensor per layer; each real query row sums to 1 over the real keys."""
    assert attentions is not None and len(attentions) == NUM_LAYERS
    batch, q_len, k_len = q_mask.shape[0], q_mask.shape[1], k_mask.shape[1]
    for layer in attentions:
        assert layer is not None and tuple(layer.shape) == (batch, NUM_HEADS, q_len, k_len)
        for b in range(batch):
            rows = layer[b][:, q_mask[b].bool()][..., k_mask[b].bool()]
            assert torch.isfinite(rows).all()
            torch.testing.assert_close(rows.sum(-1), torch.ones_like(rows.sum(-1)), atol=1e-5, rtol=0)


@pytest.mark.parametrize(("kind", "padding_side"), CASES, ids=[f"{k}-{p}" for k, p in CASES])
def test_loads_through_auto_classes_and_returns_attentions(
    tmp_path_factory: pytest.TempPathFactory, kind: str, padding_side: str
) -> None:
    path = _build(tmp_path_factory, kind, padding_side)
    assert AutoConfig.from_pretrained(path).architectures[0] == ARCHITECTURES[kind]
    tok = AutoTokenizer.from_pretrained(path)
    model = AUTO_CLASS[kind].from_pretrained(path, attn_implementation="eager")
    assert type(model).__name__ == ARCHITECTURES[kind] and not model.training
    assert model.config._attn_implementation == "eager"
    assert tok.padding_side == padding_side

    if kind == "bert-qa":
        enc = tok(QUESTIONS, SENTENCES, padding=True, return_tensors="pt")
    else:
        enc = tok(SENTENCES, padding=True, return_tensors="pt")
    mask = enc["attention_mask"]
    assert mask[1].sum() < mask[0].sum()  # the batch really is padded
    pad_col = 0 if padding_side == "left" else -1
    assert mask[1, pad_col] == 0 and mask[0, pad_col] == 1
    if tok.is_fast:
        assert any(w is not None for w in enc.word_ids(0))

    with torch.no_grad():
        if kind in SEQ2SEQ:
            labels = tok(text_target=TARGETS, padding=True, return_tensors="pt")
            start = torch.full((2, 1), model.config.decoder_start_token_id)
            dec_ids = torch.cat([start, labels["input_ids"][:, :-1]], dim=1)
            dec_mask = torch.cat([torch.ones(2, 1, dtype=mask.dtype), labels["attention_mask"][:, :-1]], dim=1)
            out = model(**enc, decoder_input_ids=dec_ids, decoder_attention_mask=dec_mask, output_attentions=True)
            _check(out.encoder_attentions, mask, mask)
            _check(out.decoder_attentions, dec_mask, dec_mask)
            _check(out.cross_attentions, dec_mask, mask)
        else:
            out = model(**enc, output_attentions=True)
            _check(out.attentions, mask, mask)


@pytest.mark.parametrize("kind", [k for k in FAMILIES if k != "marian-seq2seq"])
def test_fast_tokenizers_split_unknown_words_and_map_offsets(
    tmp_path_factory: pytest.TempPathFactory, kind: str
) -> None:
    tok = AutoTokenizer.from_pretrained(_build(tmp_path_factory, kind))
    assert tok.is_fast
    enc = tok("Attentiveness is unbelievably interesting.", return_offsets_mapping=True)
    word_ids = enc.word_ids()
    first = next(w for w in word_ids if w is not None)
    assert word_ids.count(first) >= 2  # "Attentiveness" is not in the corpus, so it becomes sub-words
    assert len(enc["offset_mapping"]) == len(enc["input_ids"])


def test_marian_is_the_slow_sentencepiece_tokenizer(tmp_path_factory: pytest.TempPathFactory) -> None:
    tok = AutoTokenizer.from_pretrained(_build(tmp_path_factory, "marian-seq2seq"))
    assert type(tok).__name__ == "MarianTokenizer" and not tok.is_fast
    assert len(tok.tokenize("Attentiveness")) >= 2


def test_gpt2_classifier_reads_the_last_real_token(tmp_path_factory: pytest.TempPathFactory) -> None:
    for side in ("right", "left"):
        path = _build(tmp_path_factory, "gpt2-classifier", side)
        tok = AutoTokenizer.from_pretrained(path)
        model = AutoModelForSequenceClassification.from_pretrained(path, attn_implementation="eager")
        assert model.config.pad_token_id == tok.pad_token_id is not None
        assert model.config.id2label == {0: "negative", 1: "positive"}
        enc = tok(SENTENCES, padding=True, return_tensors="pt")
        # Left padding shifts positions unless position_ids follow the mask.
        positions = (enc["attention_mask"].cumsum(-1) - 1).clamp(min=0)
        with torch.no_grad():
            batched = model(**enc, position_ids=positions).logits
            alone = model(**tok(SENTENCES[1:], return_tensors="pt")).logits
        torch.testing.assert_close(batched[1:], alone, atol=1e-5, rtol=1e-4)


def test_builds_are_reproducible_and_seeded(tmp_path_factory: pytest.TempPathFactory) -> None:
    a = build_tiny_model("bert-classifier", tmp_path_factory.mktemp("seed-a"), seed=1, num_labels=3)
    b = build_tiny_model("bert-classifier", tmp_path_factory.mktemp("seed-b"), seed=1, num_labels=3)
    c = build_tiny_model("bert-classifier", tmp_path_factory.mktemp("seed-c"), seed=2, num_labels=3)
    assert (a / "model.safetensors").read_bytes() == (b / "model.safetensors").read_bytes()
    assert (a / "tokenizer.json").read_bytes() == (c / "tokenizer.json").read_bytes()
    assert (a / "model.safetensors").read_bytes() != (c / "model.safetensors").read_bytes()
    assert AutoConfig.from_pretrained(a).num_labels == 3


def test_unknown_kind_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown kind"):
        build_tiny_model("xlnet", tmp_path)
