"""Word views: sub-word pieces merged by word id / whitespace, special tokens kept apart, merge rules."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from attnviz.analysis.words import merge_to_words
from attnviz.model.tasks.base import encode_stream, token_seq
from attnviz.model.tokens import build_token_seq


def test_pieces_merge_into_words_and_specials_stay_apart() -> None:
    text = "unbelievable cats"
    seq = build_token_seq(
        pieces=["[CLS]", "un", "##believ", "##able", "cats", "[SEP]"],
        special=[True, False, False, False, False, True],
        sequence_ids=[None, 0, 0, 0, 0, None],
        word_ids=[None, 0, 0, 0, 1, None],
        offsets=[(0, 0), (0, 2), (2, 8), (8, 12), (13, 17), (0, 0)],
        texts=[text],
    )
    assert seq.words == ("unbelievable", "cats")
    assert seq.word_ids == (None, 0, 0, 0, 1, None)
    assert seq.tokens == ("[CLS]", "un", "believ", "able", "cats", "[SEP]")
    scores = np.array([0.5, 0.1, 0.1, 0.05, 0.2, 0.05])
    np.testing.assert_allclose(merge_to_words(scores, seq, "sum"), [0.25, 0.2])
    np.testing.assert_allclose(merge_to_words(scores, seq, "mean"), [0.25 / 3, 0.2])
    np.testing.assert_allclose(merge_to_words(scores, seq, "max"), [0.1, 0.2])


def test_whitespace_splits_words_when_word_ids_do_not() -> None:
    """SentencePiece-style tokenizers may give one word id to the whole text."""
    text = "hello big world"
    seq = build_token_seq(
        pieces=["<s>", "▁hel", "lo", "▁big", "▁world"],
        special=[True, False, False, False, False],
        sequence_ids=[None, 0, 0, 0, 0],
        word_ids=[None, 0, 0, 0, 0],
        offsets=[(0, 0), (0, 3), (3, 5), (5, 9), (9, 15)],
        texts=[text],
    )
    assert seq.words == ("hello", "big", "world")


def test_pair_segments() -> None:
    seq = build_token_seq(
        pieces=["[CLS]", "a", "[SEP]", "b", "[SEP]"],
        special=[True, False, True, False, True],
        sequence_ids=[None, 0, None, 1, None],
        word_ids=[None, 0, None, 0, None],
        offsets=[(0, 0), (0, 1), (0, 0), (0, 1), (0, 0)],
        texts=["a", "b"],
    )
    assert seq.segments == (0, 0, 0, 1, 1)
    assert seq.words == ("a", "b")


def test_unknown_merge_rule() -> None:
    seq = build_token_seq(["a"], [False], [0], [0], [(0, 1)], ["a"])
    with pytest.raises(ValueError, match="valid: sum, mean, max"):
        merge_to_words(np.ones(1), seq, "median")


@pytest.mark.parametrize("kind", ["bert-classifier", "gpt2-lm", "llama-lm", "roberta-classifier"])
def test_real_tokenizers_give_whole_words(tiny_loaded: Callable, kind: str) -> None:
    loaded = tiny_loaded(kind)
    text = "The windowsill was unbelievably warm"
    stream = encode_stream(loaded.tokenizer, [text], None, 64, "cpu")
    seq = token_seq(stream, 0, loaded.tokenizer)
    assert seq.words == ("The", "windowsill", "was", "unbelievably", "warm")
    assert len(seq.tokens) > len(seq.words)


def test_slow_tokenizer_falls_back_to_tokens(tiny_path: Callable[..., Path]) -> None:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_path("marian-seq2seq"))
    stream = encode_stream(tok, ["the cat sat"], None, 32, "cpu")
    seq = token_seq(stream, 0, tok)
    assert seq.words == ("the", "cat", "sat")  # rebuilt by decoding: no word ids from a slow tokenizer
    assert seq.special[-1]  # </s>
    assert len(seq.ids) == len(seq.tokens)


@pytest.mark.parametrize("kind", ["gpt2-lm", "llama-lm", "t5-seq2seq", "marian-seq2seq"])
def test_words_from_ids_for_byte_bpe_and_sentencepiece(tiny_path: Callable[..., Path], kind: str) -> None:
    """Generated ids have no encoding: words come from decoding (spaces and punctuation split them)."""
    from transformers import AutoTokenizer

    from attnviz.model.tokens import seq_from_ids

    tok = AutoTokenizer.from_pretrained(tiny_path(kind))
    prompt = tok("In machine learning,", add_special_tokens=False)["input_ids"]
    continuation = tok(" attention is a mechanism.", add_special_tokens=False)["input_ids"]
    seq = seq_from_ids(tok, prompt + continuation, len(prompt), ("prompt", "continuation"))
    assert seq.words == ("In", "machine", "learning", ",", "attention", "is", "a", "mechanism", ".")
    assert seq.segments[len(prompt) - 1] == 0 and seq.segments[len(prompt)] == 1
