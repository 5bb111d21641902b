#!/usr/bin/env python
"""Train the three tiny "known-answer" fixtures whose attention we can predict.

    python scripts/train_known_answer.py [--only NAME] [--out DIR]

Models (saved with ``save_pretrained``, model + tokenizer, into ``DIR/<name>/``;
``DIR`` defaults to ``tests/fixtures/known_answer``):

* ``reverse-seq2seq``   BART encoder-decoder that reverses 4-7 words. Known answer: the last decoder
  layer's head-mean cross-attention is anti-diagonal over the word tokens (learned unaided).
* ``copy-lm``           GPT-2 decoder that copies ``w1 .. wk | w1 .. wk``. Known answer: an induction
  pattern in the last layer's head-mean (the query that predicts the copy of w_j attends to the
  first-half w_j). This pattern is taught by an auxiliary attention loss (see COPY_ATTENTION_WEIGHT);
  the copy then runs through it (zeroing that attention drops the copy to chance).
* ``marker-classifier`` BERT classifier whose label is decided by one marker word ("zorp" positive,
  "blick" negative) at a random position. Known answer: near-perfect accuracy, deleting the marker
  drops the probability of the original class to about 0.5, and the last layer's [CLS] row attends
  to the marker (learned unaided).

Everything is seeded, single-threaded and uses ``torch.use_deterministic_algorithms(True)``, so a
rerun on the same torch / transformers build writes identical weights. Each model trains in well
under a minute on one CPU core. Besides the model and tokenizer each folder holds ``task.json``
(the task's vocabulary, the known-answer definition and the metrics measured here), which the
tests in ``tests/test_known_answer_fixtures.py`` read. See ``tests/fixtures/known_answer/README.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
import transformers as tf  # noqa: E402
from tokenizers import Tokenizer, models, pre_tokenizers, processors  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "tests" / "fixtures" / "known_answer"

#: Held-out data in the tests and in the evaluation below use seeds far from the training seed.
TRAIN_SEED = 0
EVAL_SEED = 12345
HELDOUT_SEED = 2024

# --------------------------------------------------------------------------- shared helpers


def _deterministic(seed: int) -> None:
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    torch.manual_seed(seed)
    random.seed(seed)


def _word_level_tokenizer(
    words: list[str],
    specials: list[str],
    template: str,
    special_kwargs: dict[str, str],
    model_max_length: int,
) -> tf.PreTrainedTokenizerFast:
    """A whitespace word-level tokenizer (one token per word) as a generic fast tokenizer.

    ``specials`` take the first ids; ``template`` is the single-sequence post-processor template
    (e.g. ``"<s> $A </s>"``). Saved with ``tokenizer_class`` ``PreTrainedTokenizerFast`` so that
    ``AutoTokenizer`` loads ``tokenizer.json`` back as is; ``word_ids()`` and offsets work.
    """
    vocab = {tok: i for i, tok in enumerate([*specials, *words])}
    tok = Tokenizer(models.WordLevel(vocab, unk_token=special_kwargs["unk_token"]))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    used = [t for t in specials if t in template.split()]
    tok.post_processor = processors.TemplateProcessing(single=template, special_tokens=[(t, vocab[t]) for t in used])
    return tf.PreTrainedTokenizerFast(tokenizer_object=tok, model_max_length=model_max_length, **special_kwargs)


def _save(model: Any, tokenizer: Any, folder: Path, task: dict[str, Any]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    cfg_path = folder / "tokenizer_config.json"
    cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
    if cfg.get("tokenizer_class") == "TokenizersBackend":
        # The generic name that every transformers version maps to "load tokenizer.json as is".
        cfg["tokenizer_class"] = "PreTrainedTokenizerFast"
        cfg_path.write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    # Wall-clock time is printed, not stored, so that a rerun rewrites every file byte for byte.
    task = {**task, "metrics": {k: v for k, v in task["metrics"].items() if k != "train_seconds"}}
    (folder / "task.json").write_text(json.dumps(task, indent=2) + "\n", encoding="utf-8")
    (folder / "model.safetensors").chmod(0o644)


def _train_loop(
    model: torch.nn.Module,
    step_loss: Callable[[random.Random], torch.Tensor],
    steps: int,
    lr: float,
    rng: random.Random,
) -> float:
    """AdamW with linear warm-up and cosine decay; returns the mean loss of the last 50 steps."""
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    warm = max(1, steps // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt,
        lambda s: min(1.0, (s + 1) / warm) * 0.5 * (1 + torch.cos(torch.tensor(torch.pi * s / steps)).item()),
    )
    model.train()
    tail: list[float] = []
    for step in range(steps):
        loss = step_loss(rng)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        tail = (tail + [loss.item()])[-50:]
        if step % max(1, steps // 5) == 0:
            print(f"  step {step:5d}  loss {loss.item():.4f}", flush=True)
    model.eval()
    return sum(tail) / len(tail)


# --------------------------------------------------------------------------- reverse-seq2seq

REVERSE_WORDS = [
    "amber", "birch", "cedar", "delta", "ember", "fjord",
    "grove", "haven", "iris", "jasper", "koala", "lotus",
]  # fmt: skip
REVERSE_LEN = (4, 7)
REVERSE_SIZE: dict[str, int] = {
    "d_model": 64,
    "encoder_layers": 1,
    # Two decoder layers: layer 0 gathers the source length, layer 1 then reads source word n-1-i by
    # position. With one decoder layer the encoder relays words to neighbouring positions and the
    # cross-attention is anti-diagonal for only 42-96% of words depending on seed and heads.
    "decoder_layers": 2,
    "encoder_attention_heads": 2,
    "decoder_attention_heads": 2,
    "encoder_ffn_dim": 128,
    "decoder_ffn_dim": 128,
}
# BART's default init_std (0.02) leaves the learned positions too alike: training stalls at the
# unigram loss. A larger init separates them and the task is learned within a few hundred steps.
REVERSE_INIT_STD = 0.1
REVERSE_TRAIN = {"steps": 800, "lr": 1e-3}


def reverse_sample(rng: random.Random, words: list[str] = REVERSE_WORDS) -> list[str]:
    """4-7 words drawn with replacement (repeats make word-content shortcuts unreliable)."""
    return [rng.choice(words) for _ in range(rng.randint(*REVERSE_LEN))]


def reverse_eval(model: Any, tok: Any, rng: random.Random, n: int = 200) -> dict[str, float]:
    """Generation exact match and anti-diagonal rate of the last decoder layer's head-mean."""
    seqs = [reverse_sample(rng) for _ in range(n)]
    src = tok([" ".join(s) for s in seqs], return_tensors="pt", padding=True)
    tgt = tok(text_target=[" ".join(reversed(s)) for s in seqs], return_tensors="pt", padding=True)
    dec_in = tf.models.bart.modeling_bart.shift_tokens_right(
        tgt.input_ids, tok.pad_token_id, model.config.decoder_start_token_id
    )
    with torch.no_grad():
        out = model(**src, decoder_input_ids=dec_in, output_attentions=True)
        gen = model.generate(**src, num_beams=1, do_sample=False)
    exact = sum(
        tok.decode(g, skip_special_tokens=True).split() == list(reversed(s)) for g, s in zip(gen, seqs, strict=True)
    )
    result = {"generate_exact_match": exact / n}
    aggregates = {
        "antidiagonal_last_layer_head_mean": out.cross_attentions[-1].mean(dim=1),  # (batch, tgt, src)
        "antidiagonal_first_layer_head_mean": out.cross_attentions[0].mean(dim=1),
        "antidiagonal_all_layers_head_mean": torch.stack(out.cross_attentions).mean(dim=(0, 2)),
    }
    for name, cross in aggregates.items():
        hits = total = 0
        for b, s in enumerate(seqs):
            m = len(s)
            # Source word j is at position j + 1 (after <s>); target word i is predicted by the
            # decoder query at position i + 1 (input </s> <s> t0 t1 ...; the query reading t_{i-1}).
            arg = cross[b, 1 : 1 + m, 1 : 1 + m].argmax(dim=-1)
            hits += sum(int(arg[i]) == m - 1 - i for i in range(m))
            total += m
        result[name] = hits / total
    return result


def train_reverse(folder: Path) -> dict[str, Any]:
    _deterministic(TRAIN_SEED)
    tok = _word_level_tokenizer(
        REVERSE_WORDS,
        ["<s>", "<pad>", "</s>", "<unk>"],  # BART's special ids: <s> 0, <pad> 1, </s> 2, <unk> 3
        "<s> $A </s>",
        {"bos_token": "<s>", "eos_token": "</s>", "pad_token": "<pad>", "unk_token": "<unk>"},
        model_max_length=16,
    )
    config = tf.BartConfig(
        vocab_size=len(tok),
        max_position_embeddings=16,
        dropout=0.0,
        attention_dropout=0.0,
        activation_dropout=0.0,
        pad_token_id=tok.pad_token_id,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        decoder_start_token_id=tok.eos_token_id,
        forced_eos_token_id=tok.eos_token_id,
        init_std=REVERSE_INIT_STD,
        attn_implementation="eager",
        **REVERSE_SIZE,
    )
    model = tf.BartForConditionalGeneration(config)
    model.generation_config.max_length = 16
    model.generation_config.num_beams = 1
    model.generation_config.do_sample = False

    def step_loss(rng: random.Random) -> torch.Tensor:
        seqs = [reverse_sample(rng) for _ in range(64)]
        src = tok([" ".join(s) for s in seqs], return_tensors="pt", padding=True)
        labels = tok(text_target=[" ".join(reversed(s)) for s in seqs], return_tensors="pt", padding=True)
        ids = labels.input_ids
        dec_in = tf.models.bart.modeling_bart.shift_tokens_right(ids, tok.pad_token_id, config.decoder_start_token_id)
        logits = model(**src, decoder_input_ids=dec_in).logits
        target = ids.masked_fill(labels.attention_mask == 0, -100)
        return F.cross_entropy(logits.flatten(0, 1), target.flatten(), ignore_index=-100)

    t0 = time.perf_counter()
    loss = _train_loop(model, step_loss, rng=random.Random(TRAIN_SEED), **REVERSE_TRAIN)
    seconds = time.perf_counter() - t0
    metrics = {"train_seconds": round(seconds, 1), "final_loss": round(loss, 5)}
    metrics.update({k: round(v, 4) for k, v in reverse_eval(model, tok, random.Random(EVAL_SEED)).items()})
    task = {
        "name": "reverse-seq2seq",
        "architecture": "BartForConditionalGeneration",
        "task": "reverse a sequence of 4-7 words drawn with replacement from `words`",
        "words": REVERSE_WORDS,
        "length_range": list(REVERSE_LEN),
        "distinct_words": False,
        "known_answer": {
            "attention": "cross_attentions[-1] (decoder layer 1 of 2), mean over heads",
            "teacher_forcing": "decoder_input_ids = shift_tokens_right(labels); labels = "
            "tokenizer(text_target=reversed words) = <s> t0 .. t(n-1) </s>; decoder inputs = "
            "</s> <s> t0 .. t(n-1)",
            "rows": "target word i is predicted by decoder query position i + 1 (the query that reads "
            "<s> for i = 0 and t(i-1) otherwise)",
            "columns": "source word j is at encoder position j + 1 (after <s>)",
            "rule": "argmax over source words of row i is source word n - 1 - i (anti-diagonal)",
            "by_input_token": "read by the decoder input token of each row: the row reading <s> "
            "attends the last source word; the row reading target word i - 1 attends source word "
            "n - 1 - i (the source word just before the source copy of the word it reads)",
            "generation": "the same holds step by step in greedy generate: the step that emits "
            "target word i attends source word n - 1 - i",
        },
        "train_seed": TRAIN_SEED,
        "eval_seed": EVAL_SEED,
        "metrics": metrics,
    }
    _save(model, tok, folder, task)
    return metrics


# --------------------------------------------------------------------------- copy-lm

COPY_WORDS = [
    "ant", "bee", "cat", "dog", "eel", "fox", "gnu", "hen",
    "ibis", "jay", "kiwi", "lark", "mole", "newt", "owl", "pug",
]  # fmt: skip
COPY_LEN = (4, 7)
SEP = "|"
COPY_BOS = "<|endoftext|>"
COPY_SIZE = {"n_embd": 64, "n_layer": 2, "n_head": 2, "n_inner": 128}
COPY_TRAIN = {"steps": 800, "lr": 3e-3}
# Weight of the auxiliary loss that teaches the last layer's head-mean attention the induction pointer.
# Without it the model copies perfectly but spreads the lookup over both layers: layer 0 guesses the
# source by relative position (right for ~80% of queries, since k varies) and layer 1 patches the rest,
# so no single layer / head aggregate shows a clean pattern (tried: 1-4 heads, position-id jitter,
# repeated words, wider k ranges, 4000 steps).
COPY_ATTENTION_WEIGHT = 1.0


def copy_sample(rng: random.Random, words: list[str] = COPY_WORDS) -> list[str]:
    """k = 4-7 distinct words (without replacement, so every first-half word has one position)."""
    return rng.sample(words, rng.randint(*COPY_LEN))


def copy_pointers(seq: list[str]) -> list[tuple[int, int]]:
    """(query, key) positions of the induction pattern in ``<|endoftext|> w1 .. wk | w1 .. wk``.

    w_j is at position j (1-based), ``|`` at k + 1 and the copy of w_j at k + 1 + j. The query that
    predicts the copy of w_j (``|`` for j = 1, else the copy of w_(j-1)) is position k + j; its key is
    the first-half w_j, position j: the token after the earlier occurrence of the query's own token.
    """
    k = len(seq)
    return [(k + j, j) for j in range(1, k + 1)]


def copy_text(seq: list[str]) -> str:
    return " ".join([*seq, SEP, *seq])


def copy_eval(model: Any, tok: Any, rng: random.Random, n: int = 200) -> dict[str, float]:
    """Teacher-forced accuracy on the copied half, greedy generation, and the induction rate."""
    seqs = [copy_sample(rng) for _ in range(n)]
    enc = tok([copy_text(s) for s in seqs], return_tensors="pt", padding=True)
    with torch.no_grad():
        out = model(**enc, output_attentions=True)
    pred = out.logits.argmax(-1)
    last, first = out.attentions[-1], out.attentions[0]  # (batch, heads, q, k)
    hits = {"copy_accuracy": 0, "induction_head_mean": 0, "induction_head_max": 0, "layer0_head_mean": 0}
    total = 0
    for b, s in enumerate(seqs):
        for q, key in copy_pointers(s):
            total += 1
            hits["copy_accuracy"] += int(pred[b, q] == enc.input_ids[b, key])
            hits["induction_head_mean"] += int(last[b, :, q, : q + 1].mean(0).argmax() == key)
            hits["induction_head_max"] += int(last[b, :, q, : q + 1].amax(0).argmax() == key)
            hits["layer0_head_mean"] += int(first[b, :, q, : q + 1].mean(0).argmax() == key)
    result = {name: v / total for name, v in hits.items()}
    # Ablation: with layer 1's attention output zeroed the copy should fall to chance (1/16).
    proj = model.transformer.h[-1].attn.c_proj
    saved = proj.weight.detach().clone(), proj.bias.detach().clone()
    with torch.no_grad():
        proj.weight.zero_()
        proj.bias.zero_()
        ablated = model(**enc).logits.argmax(-1)
        proj.weight.copy_(saved[0])
        proj.bias.copy_(saved[1])
    right = [int(ablated[b, q] == enc.input_ids[b, key]) for b, s in enumerate(seqs) for q, key in copy_pointers(s)]
    result["copy_accuracy_last_attention_ablated"] = sum(right) / len(right)
    exact = 0
    with torch.no_grad():
        for s in seqs[:50]:
            prompt = tok(" ".join([*s, SEP]), return_tensors="pt")
            gen = model.generate(**prompt, max_new_tokens=len(s), do_sample=False)
            exact += tok.decode(gen[0, prompt.input_ids.shape[1] :]).split() == s
    result["generate_exact_match"] = exact / 50
    return result


def train_copy(folder: Path) -> dict[str, Any]:
    _deterministic(TRAIN_SEED)
    tok = _word_level_tokenizer(
        [*COPY_WORDS, SEP],
        [COPY_BOS, "<unk>"],
        f"{COPY_BOS} $A",  # GPT-2 style: <|endoftext|> is bos, eos and pad; prepended as a bos here
        {"bos_token": COPY_BOS, "eos_token": COPY_BOS, "pad_token": COPY_BOS, "unk_token": "<unk>"},
        model_max_length=32,
    )
    config = tf.GPT2Config(
        vocab_size=len(tok),
        n_positions=32,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        attn_implementation="eager",
        **COPY_SIZE,
    )
    model = tf.GPT2LMHeadModel(config)

    def step_loss(rng: random.Random) -> torch.Tensor:
        seqs = [copy_sample(rng) for _ in range(64)]
        enc = tok([copy_text(s) for s in seqs], return_tensors="pt", padding=True)
        target = torch.full_like(enc.input_ids, -100)
        batch, query, key = [], [], []
        for b, s in enumerate(seqs):
            for q, kpos in copy_pointers(s):
                target[b, q] = enc.input_ids[b, kpos]  # next-token loss on the copied half only
                batch.append(b)
                query.append(q)
                key.append(kpos)
        out = model(**enc, output_attentions=True)
        lm = F.cross_entropy(out.logits.flatten(0, 1), target.flatten(), ignore_index=-100)
        pointer = out.attentions[-1].mean(1)[batch, query, key]  # last layer, mean over heads
        return lm - COPY_ATTENTION_WEIGHT * pointer.clamp_min(1e-6).log().mean()

    t0 = time.perf_counter()
    loss = _train_loop(model, step_loss, rng=random.Random(TRAIN_SEED), **COPY_TRAIN)
    seconds = time.perf_counter() - t0
    metrics = {"train_seconds": round(seconds, 1), "final_loss": round(loss, 5)}
    metrics.update({k: round(v, 4) for k, v in copy_eval(model, tok, random.Random(EVAL_SEED)).items()})
    task = {
        "name": "copy-lm",
        "architecture": "GPT2LMHeadModel",
        "task": "after `w1 .. wk |` continue with `w1 .. wk` (k = 4-7 distinct words from `words`); "
        "the tokenizer prepends <|endoftext|>. Loss: next-token cross-entropy on the copied half plus "
        "attention_loss_weight * -log(last-layer head-mean attention on the induction key)",
        "words": COPY_WORDS,
        "separator": SEP,
        "attention_loss_weight": COPY_ATTENTION_WEIGHT,
        "length_range": list(COPY_LEN),
        "distinct_words": True,
        "known_answer": {
            "attention": "attentions[-1] (layer 1 of 2), mean over heads",
            "positions": "<|endoftext|> is position 0, w_j is position j (1-based), | is position k + 1, "
            "the copy of w_j is position k + 1 + j",
            "rows": "the query that predicts the copy of w_j is position k + j (it reads | for j = 1 "
            "and the copy of w_(j-1) otherwise)",
            "rule": "argmax over keys of that row is position j, the first-half w_j (induction: attend "
            "to the token after the earlier occurrence of the current token)",
            "by_input_token": "the separator row attends w_1; the row reading the copy of w_j attends "
            "the first-half w_(j+1); the row reading the last copied word is not part of the answer",
            "mechanism": "zeroing the last layer's attention output drops copy accuracy to chance",
        },
        "train_seed": TRAIN_SEED,
        "eval_seed": EVAL_SEED,
        "metrics": metrics,
    }
    _save(model, tok, folder, task)
    return metrics


# --------------------------------------------------------------------------- marker-classifier

FILLER_WORDS = [
    "the", "a", "of", "and", "to", "in", "red", "blue", "small", "large", "tree", "river",
    "house", "stone", "cloud", "road", "quiet", "old", "new", "green", "bird", "window", "under", "near",
]  # fmt: skip
MARKERS = {"zorp": 1, "blick": 0}  # marker -> label id
LABELS = {0: "negative", 1: "positive"}
FILLER_LEN = (5, 12)
NO_MARKER_FRACTION = 0.2


def marker_sample(rng: random.Random, marker: str | None = None) -> tuple[list[str], str, int]:
    """5-12 filler words (with repeats) with one marker inserted at a random word index."""
    words = [rng.choice(FILLER_WORDS) for _ in range(rng.randint(*FILLER_LEN))]
    marker = marker or rng.choice(sorted(MARKERS))
    index = rng.randint(0, len(words))
    words.insert(index, marker)
    return words, marker, index


def marker_eval(model: Any, tok: Any, rng: random.Random, n: int = 400) -> dict[str, float]:
    samples = [marker_sample(rng) for _ in range(n)]
    texts = [" ".join(w) for w, _, _ in samples]
    stripped = [" ".join(w[:i] + w[i + 1 :]) for w, _, i in samples]
    labels = torch.tensor([MARKERS[m] for _, m, _ in samples])
    with torch.no_grad():
        enc = tok(texts, return_tensors="pt", padding=True)
        out = model(**enc, output_attentions=True)
        p = out.logits.softmax(-1)
        p0 = model(**tok(stripped, return_tensors="pt", padding=True)).logits.softmax(-1)
    rows = torch.arange(n)
    drop = p[rows, labels] - p0[rows, labels]
    cls = out.attentions[-1][:, :, 0]  # (batch, heads, keys): the [CLS] query of the last layer
    marker_pos = torch.tensor([i + 1 for _, _, i in samples])  # +1 for [CLS]
    return {
        "accuracy": (p.argmax(-1) == labels).float().mean().item(),
        "mean_p_original_class": p[rows, labels].mean().item(),
        "mean_p_original_class_without_marker": p0[rows, labels].mean().item(),
        "mean_drop_without_marker": drop.mean().item(),
        "min_drop_without_marker": drop.min().item(),
        "cls_attends_marker_head_mean": (cls.mean(1).argmax(-1) == marker_pos).float().mean().item(),
        "cls_attends_marker_head_max": (cls.amax(1).argmax(-1) == marker_pos).float().mean().item(),
    }


def write_heldout(path: Path, n: int = 40) -> None:
    """``n`` held-out sentences, half per marker, for the tests and later report-level checks."""
    rng = random.Random(HELDOUT_SEED)
    markers = [m for _ in range(n // 2) for m in sorted(MARKERS)]
    lines = []
    for i, marker in enumerate(markers):
        words, _, index = marker_sample(rng, marker)
        row = {
            "id": f"marker-{i + 1:02d}",
            "text": " ".join(words),
            "label": LABELS[MARKERS[marker]],
            "marker_index": index,
            "marker": marker,
        }
        lines.append(json.dumps(row))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def train_marker(folder: Path) -> dict[str, Any]:
    _deterministic(TRAIN_SEED)
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    vocab_lines = [*specials, *FILLER_WORDS, *sorted(MARKERS)]
    folder.mkdir(parents=True, exist_ok=True)
    vocab_file = folder / "vocab.txt"  # kept next to tokenizer.json for older transformers
    vocab_file.write_text("\n".join(vocab_lines) + "\n", encoding="utf-8")
    tok = tf.BertTokenizerFast(vocab=str(vocab_file), do_lower_case=True, model_max_length=32)
    config = tf.BertConfig(
        vocab_size=len(tok),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=32,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        pad_token_id=tok.pad_token_id,
        num_labels=2,
        id2label=LABELS,
        label2id={v: k for k, v in LABELS.items()},
        attn_implementation="eager",
    )
    model = tf.BertForSequenceClassification(config)

    def step_loss(rng: random.Random) -> torch.Tensor:
        texts, targets = [], []
        for _ in range(64):
            words, marker, index = marker_sample(rng)
            if rng.random() < NO_MARKER_FRACTION:
                # Without its marker a sentence carries no evidence: train towards 50/50.
                texts.append(" ".join(words[:index] + words[index + 1 :]))
                targets.append([0.5, 0.5])
            else:
                texts.append(" ".join(words))
                targets.append([1.0 - MARKERS[marker], float(MARKERS[marker])])
        logits = model(**tok(texts, return_tensors="pt", padding=True)).logits
        return -(torch.tensor(targets) * logits.log_softmax(-1)).sum(-1).mean()

    t0 = time.perf_counter()
    loss = _train_loop(model, step_loss, steps=600, lr=3e-3, rng=random.Random(TRAIN_SEED))
    seconds = time.perf_counter() - t0
    metrics = {"train_seconds": round(seconds, 1), "final_loss": round(loss, 5)}
    metrics.update({k: round(v, 4) for k, v in marker_eval(model, tok, random.Random(EVAL_SEED)).items()})
    task = {
        "name": "marker-classifier",
        "architecture": "BertForSequenceClassification",
        "task": "5-12 random filler words plus exactly one marker word at a random word index; the "
        "marker alone decides the label. 20% of training sentences had the marker removed and a "
        "50/50 soft target",
        "filler_words": FILLER_WORDS,
        "markers": {m: LABELS[i] for m, i in MARKERS.items()},
        "filler_length_range": list(FILLER_LEN),
        "known_answer": {
            "accuracy": "argmax accuracy on held-out sentences >= 0.98",
            "deletion": "deleting the marker and re-tokenising moves p(original class) from ~1 to ~0.5",
            "attention": "attentions[-1] (layer 1 of 2), [CLS] query row (position 0), mean over heads: "
            "argmax over keys is the marker token (position marker_index + 1)",
        },
        "train_seed": TRAIN_SEED,
        "eval_seed": EVAL_SEED,
        "heldout_seed": HELDOUT_SEED,
        "metrics": metrics,
    }
    _save(model, tok, folder, task)
    write_heldout(folder / "heldout.jsonl")
    return metrics


# --------------------------------------------------------------------------- CLI

TRAINERS: dict[str, Callable[[Path], dict[str, Any]]] = {
    "reverse-seq2seq": train_reverse,
    "copy-lm": train_copy,
    "marker-classifier": train_marker,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", choices=sorted(TRAINERS), help="train just this model")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"output folder (default {DEFAULT_OUT})")
    args = parser.parse_args(argv)
    names = [args.only] if args.only else list(TRAINERS)
    for name in names:
        print(f"== {name}", flush=True)
        metrics = TRAINERS[name](args.out / name)
        for key, value in metrics.items():
            print(f"  {key}: {value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
