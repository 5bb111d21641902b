"""Turn one row of a tokenizer's batch encoding into a :class:`TokenSeq` of real tokens."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from attnviz.types import TokenSeq


def build_token_seq(
    pieces: Sequence[str],
    special: Sequence[bool],
    sequence_ids: Sequence[int | None],
    word_ids: Sequence[int | None],
    offsets: Sequence[tuple[int, int]],
    texts: Sequence[str],
    segment_names: Sequence[str] = ("text", "text_pair"),
) -> TokenSeq:
    """Build the token view of one sequence (already cut to real tokens).

    Words are runs of consecutive tokens that the tokenizer gives the same ``(sequence id, word id)``
    and that no whitespace separates; a word's text is the span of the original text its tokens cover.
    Without word ids or offsets (slow tokenizers) every token is its own word.

    Args:
        pieces: (n,) tokenizer token strings.
        special: (n,) special-token flags.
        sequence_ids: (n,) which input text each token came from (0, 1) or None for special tokens.
        word_ids: (n,) tokenizer word index within its text, or None.
        offsets: (n,) character span of each token in its text ((0, 0) for special tokens).
        texts: the input texts, indexed by sequence id.
        segment_names: what each text is, indexed by sequence id.
    """
    n = len(pieces)
    display: list[str] = []
    token_word: list[int | None] = []
    words: list[str] = []
    spans: list[tuple[int, int, int]] = []  # (sequence id, start, end) of each word
    last_key: tuple[int, int] | None = None
    previous_end = -1
    previous_blank = False
    for i in range(n):
        seq = sequence_ids[i]
        start, end = offsets[i] if offsets else (0, 0)
        covered = texts[seq][start:end] if seq is not None and end > start else ""
        display.append(covered if covered.strip() else pieces[i])
        if special[i] or seq is None:
            token_word.append(None)
            last_key = None
            continue
        wid = word_ids[i] if word_ids[i] is not None else -1 - i
        key = (seq, wid)
        if key != last_key or (not previous_blank and _starts_word(texts[seq], start, end, previous_end)):
            spans.append((seq, start, end))
            words.append("")
        else:
            s, w_start, _ = spans[-1]
            spans[-1] = (s, w_start, end)
        last_key = key
        previous_end = end
        previous_blank = not covered.strip()  # a lone space piece starts the word the next piece continues
        token_word.append(len(spans) - 1)
    for w, (seq, start, end) in enumerate(spans):
        text = texts[seq][start:end].strip()
        words[w] = text if text else "".join(display[i] for i in range(n) if token_word[i] == w)
    return TokenSeq(
        tokens=tuple(display),
        pieces=tuple(pieces),
        special=tuple(bool(s) for s in special),
        word_ids=tuple(token_word),
        words=tuple(words),
        segments=_segments(sequence_ids),
        offsets=tuple((int(a), int(b)) for a, b in offsets) if offsets else (),
        segment_names=tuple(segment_names[: len(texts)]),
    )


def seq_from_ids(tokenizer: Any, ids: Sequence[int], boundary: int, segment_names: Sequence[str]) -> TokenSeq:
    """Token view of ids that did not come from tokenising one text (prompt + generated continuation).

    Each token's text is what it adds to the decoded prefix; a piece that starts with whitespace starts
    a new word. Tokens from ``boundary`` on are segment 1 (the continuation).
    """
    special_ids = set(tokenizer.all_special_ids)
    pieces = tokenizer.convert_ids_to_tokens(list(ids))
    texts, offsets, special, seq_ids, word_ids = "", [], [], [], []
    previous = ""
    word, last_punct, last_blank = -1, True, False
    for i, token_id in enumerate(ids):
        is_special = token_id in special_ids
        decoded = tokenizer.decode(list(ids[: i + 1]), skip_special_tokens=True, clean_up_tokenization_spaces=False)
        piece = decoded[len(previous) :] if decoded.startswith(previous) else ""
        previous = decoded if decoded.startswith(previous) else previous + piece
        start = len(texts)
        if not is_special:
            texts += piece
        offsets.append((start, len(texts)) if not is_special else (0, 0))
        special.append(is_special)
        seq_ids.append(None if is_special else int(i >= boundary))
        # Punctuation is a word of its own, as word-level pre-tokenizers treat it.
        # A lone space piece (``▁``) starts a word that the next piece continues.
        punct = bool(piece.strip()) and not any(ch.isalnum() for ch in piece)
        if is_special or punct or last_punct or (piece[:1].isspace() and not last_blank):
            word += 1
        last_punct = punct or is_special
        last_blank = not piece.strip()
        word_ids.append(None if is_special else word)
    seq = build_token_seq(pieces, special, seq_ids, word_ids, offsets, (texts, texts), segment_names)
    return replace(seq, ids=tuple(int(i) for i in ids))


def _starts_word(text: str, start: int, end: int, previous_end: int) -> bool:
    """Whitespace before a token starts a new word, whatever the word ids say.

    SentencePiece-style fast tokenizers (Llama) give one word id to a whole text; their offsets still
    show where the spaces are. A space covered by the previous token (a lone ``Ġ``/``▁``) already
    started the word.
    """
    if end <= start:
        return False
    return text[start].isspace() or (start > 0 and start != previous_end and text[start - 1].isspace())


def _segments(sequence_ids: Sequence[int | None]) -> tuple[int, ...]:
    # Special tokens belong to the segment they close ([SEP] after text 0 is 0), [CLS] to the first.
    out: list[int] = []
    current = 0
    for seq in sequence_ids:
        if seq is not None:
            current = seq
        out.append(current)
    return tuple(out)
