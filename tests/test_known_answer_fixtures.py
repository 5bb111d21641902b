"""Known-answer fixtures: tiny trained models whose attention we can predict.

The checkpoints in ``tests/fixtures/known_answer/`` come from ``scripts/train_known_answer.py``; what
each one was trained on and what its attention must show is in that folder's README.md and in each
model's ``task.json``. These tests load them through the Auto* classes with eager attention and check
the known answers directly on the model's attention tensors, on held-out inputs drawn with seeds the
training script never used.
"""

from __future__ import annotations

import json
import random
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import torch
from transformers import (
    AutoModelForCausalLM,
    AutoModelForSeq2SeqLM,
    AutoModelForSequenceClassification,
    AutoTokenizer,
)
from transformers.models.bart.modeling_bart import shift_tokens_right

FIXTURES = Path(__file__).parent / "fixtures" / "known_answer"
NAMES = ("reverse-seq2seq", "copy-lm", "marker-classifier")
AUTO = {
    "reverse-seq2seq": AutoModelForSeq2SeqLM,
    "copy-lm": AutoModelForCausalLM,
    "marker-classifier": AutoModelForSequenceClassification,
}
#: The training script uses seeds 0 (training), 12345 (its own evaluation) and 2024 (heldout.jsonl).
SEED = 777


@cache
def _load(name: str) -> tuple[Any, Any, dict[str, Any]]:
    path = FIXTURES / name
    tok = AutoTokenizer.from_pretrained(path)
    model = AUTO[name].from_pretrained(path, attn_implementation="eager").eval()
    task = json.loads((path / "task.json").read_text(encoding="utf-8"))
    return tok, model, task


# --------------------------------------------------------------------------- all fixtures


@pytest.mark.parametrize("name", NAMES)
def test_fixture_is_small_and_loads(name: str) -> None:
    folder = FIXTURES / name
    size = sum(f.stat().st_size for f in folder.iterdir())
    assert size < 1_000_000, f"{name} is {size} bytes"
    tok, model, task = _load(name)
    assert model.config.architectures == [task["architecture"]]
    assert type(model).__name__ == task["architecture"]
    assert model.config._attn_implementation == "eager"


@pytest.mark.parametrize("name", NAMES)
def test_word_level_tokenizer_round_trips(name: str) -> None:
    """Every task word is one token; word_ids() and character offsets line up with the words."""
    tok, _, task = _load(name)
    words = task.get("words") or task["filler_words"] + sorted(task["markers"])
    text = " ".join(words[:6])
    enc = tok(text, return_offsets_mapping=True)
    word_ids = enc.word_ids()
    real = [i for i, w in enumerate(word_ids) if w is not None]
    assert [word_ids[i] for i in real] == list(range(6))
    assert [text[s:e] for s, e in (enc["offset_mapping"][i] for i in real)] == words[:6]
    assert tok.unk_token_id not in enc["input_ids"]


# --------------------------------------------------------------------------- reverse-seq2seq


def _reverse_batch(n: int, seed: int) -> tuple[list[list[str]], Any]:
    tok, _, task = _load("reverse-seq2seq")
    rng = random.Random(seed)
    lo, hi = task["length_range"]
    return [[rng.choice(task["words"]) for _ in range(rng.randint(lo, hi))] for _ in range(n)], tok


def test_reverse_cross_attention_is_antidiagonal() -> None:
    """Last decoder layer, mean over heads, teacher-forced: target word i attends source word n-1-i."""
    seqs, tok = _reverse_batch(60, SEED)
    _, model, _ = _load("reverse-seq2seq")
    src = tok([" ".join(s) for s in seqs], return_tensors="pt", padding=True)
    labels = tok(text_target=[" ".join(reversed(s)) for s in seqs], return_tensors="pt", padding=True)
    dec_in = shift_tokens_right(labels.input_ids, tok.pad_token_id, model.config.decoder_start_token_id)
    with torch.no_grad():
        out = model(**src, decoder_input_ids=dec_in, output_attentions=True)
    cross = out.cross_attentions[-1].mean(dim=1)  # (batch, target, source)
    hits = total = 0
    for b, s in enumerate(seqs):
        n = len(s)
        src_words = src.word_ids(b)
        # Decoder inputs are </s> <s> t0 .. t(n-1): the query predicting target word i sits at i + 1.
        assert tok.convert_ids_to_tokens(dec_in[b, :2].tolist()) == [tok.eos_token, tok.bos_token]
        cols = [p for p, w in enumerate(src_words) if w is not None]  # word tokens only
        assert len(cols) == n
        for i in range(n):
            row = cross[b, i + 1, cols]
            hits += int(row.argmax()) == n - 1 - i
            total += 1
    assert total >= 20 * 4
    assert hits / total >= 0.9, f"anti-diagonal for {hits}/{total} target words"


def test_reverse_generate_reverses_and_attends_antidiagonally() -> None:
    seqs, tok = _reverse_batch(30, SEED + 1)
    _, model, _ = _load("reverse-seq2seq")
    exact = hits = total = 0
    for s in seqs:
        enc = tok(" ".join(s), return_tensors="pt")
        with torch.no_grad():
            out = model.generate(
                **enc, do_sample=False, num_beams=1, output_attentions=True, return_dict_in_generate=True
            )
        produced = tok.decode(out.sequences[0], skip_special_tokens=True).split()
        exact += produced == s[::-1]
        # Step 0 emits <s>; step i + 1 emits target word i and should attend source word n - 1 - i.
        n = len(s)
        for i in range(min(n, len(out.cross_attentions) - 1)):
            step = out.cross_attentions[i + 1][-1][0].mean(dim=0)[-1]  # last layer, head mean, (source,)
            hits += int(step[1 : n + 1].argmax()) == n - 1 - i
            total += 1
    assert exact / len(seqs) >= 0.9, f"{exact}/{len(seqs)} reversed exactly"
    assert hits / total >= 0.9, f"generation-time anti-diagonal for {hits}/{total} steps"


# --------------------------------------------------------------------------- copy-lm


def _copy_batch(n: int, seed: int) -> tuple[list[list[str]], Any, str]:
    tok, _, task = _load("copy-lm")
    rng = random.Random(seed)
    lo, hi = task["length_range"]
    return [rng.sample(task["words"], rng.randint(lo, hi)) for _ in range(n)], tok, task["separator"]


def test_copy_lm_copies_and_shows_induction_in_last_layer() -> None:
    """Query predicting the copy of w_j (position k + j) attends the first-half w_j (position j)."""
    seqs, tok, sep = _copy_batch(100, SEED)
    _, model, _ = _load("copy-lm")
    enc = tok([" ".join([*s, sep, *s]) for s in seqs], return_tensors="pt", padding=True)
    with torch.no_grad():
        out = model(**enc, output_attentions=True)
    pred = out.logits.argmax(-1)
    last = out.attentions[-1].mean(dim=1)  # (batch, query, key)
    correct = induction = total = 0
    for b, s in enumerate(seqs):
        k = len(s)
        assert (
            enc.input_ids[b, 0] == tok.bos_token_id and tok.convert_ids_to_tokens(int(enc.input_ids[b, k + 1])) == sep
        )
        for j in range(1, k + 1):
            query = k + j  # reads | (j = 1) or the copy of w_(j-1); predicts the copy of w_j
            correct += int(pred[b, query] == enc.input_ids[b, j])
            induction += int(last[b, query, : query + 1].argmax()) == j
            total += 1
    assert correct / total >= 0.95, f"copied {correct}/{total}"
    assert induction / total >= 0.9, f"induction argmax for {induction}/{total} copy positions"


def test_copy_lm_greedy_generation_copies() -> None:
    seqs, tok, sep = _copy_batch(25, SEED + 1)
    _, model, _ = _load("copy-lm")
    exact = 0
    for s in seqs:
        prompt = tok(" ".join([*s, sep]), return_tensors="pt")
        with torch.no_grad():
            gen = model.generate(**prompt, max_new_tokens=len(s), do_sample=False)
        exact += tok.decode(gen[0, prompt.input_ids.shape[1] :]).split() == s
    assert exact / len(seqs) >= 0.95, f"{exact}/{len(seqs)} copied exactly"


# --------------------------------------------------------------------------- marker-classifier


def _heldout() -> list[dict[str, Any]]:
    lines = (FIXTURES / "marker-classifier" / "heldout.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def _probs(texts: list[str]) -> torch.Tensor:
    tok, model, _ = _load("marker-classifier")
    with torch.no_grad():
        return model(**tok(texts, return_tensors="pt", padding=True)).logits.softmax(-1)


def test_marker_heldout_file() -> None:
    _, model, task = _load("marker-classifier")
    rows = _heldout()
    assert len(rows) == 40 and len({r["id"] for r in rows}) == 40
    assert set(model.config.id2label.values()) == {"negative", "positive"}
    for r in rows:
        words = r["text"].split()
        assert words[r["marker_index"]] == r["marker"]
        assert task["markers"][r["marker"]] == r["label"]
        assert sum(w in task["markers"] for w in words) == 1
    assert sum(r["label"] == "positive" for r in rows) == 20


def test_marker_classifier_accuracy() -> None:
    _, model, task = _load("marker-classifier")
    rows = _heldout()
    rng = random.Random(SEED)
    for _ in range(200):  # plus fresh sentences, same recipe as the training script
        lo, hi = task["filler_length_range"]
        words = [rng.choice(task["filler_words"]) for _ in range(rng.randint(lo, hi))]
        marker = rng.choice(sorted(task["markers"]))
        words.insert(rng.randint(0, len(words)), marker)
        rows.append({"text": " ".join(words), "label": task["markers"][marker]})
    pred = _probs([r["text"] for r in rows]).argmax(-1).tolist()
    right = sum(model.config.id2label[p] == r["label"] for p, r in zip(pred, rows, strict=True))
    assert right / len(rows) >= 0.98, f"{right}/{len(rows)} correct"


def test_marker_deletion_moves_probability() -> None:
    """Without its marker a sentence scores ~0.5: the original class loses ~0.5 probability."""
    _, model, _ = _load("marker-classifier")
    rows = _heldout()
    stripped = [" ".join(w for i, w in enumerate(r["text"].split()) if i != r["marker_index"]) for r in rows]
    label = torch.tensor([model.config.label2id[r["label"]] for r in rows])
    idx = torch.arange(len(rows))
    before = _probs([r["text"] for r in rows])[idx, label]
    after = _probs(stripped)[idx, label]
    drop = before - after
    assert drop.mean() >= 0.4, f"mean drop {drop.mean():.3f}"
    assert drop.min() >= 0.3, f"smallest drop {drop.min():.3f}"
    assert ((after - 0.5).abs() <= 0.1).all()


def test_marker_cls_attends_to_marker() -> None:
    """Last layer, [CLS] query row, mean over heads: the argmax key is the marker token."""
    tok, model, _ = _load("marker-classifier")
    rows = _heldout()
    enc = tok([r["text"] for r in rows], return_tensors="pt", padding=True)
    with torch.no_grad():
        cls_row = model(**enc, output_attentions=True).attentions[-1].mean(dim=1)[:, 0]  # (batch, key)
    hits = 0
    for b, r in enumerate(rows):
        marker_pos = enc.word_ids(b).index(r["marker_index"])
        hits += int(cls_row[b].argmax()) == marker_pos
    assert hits / len(rows) >= 0.9, f"[CLS] argmax on the marker for {hits}/{len(rows)}"
