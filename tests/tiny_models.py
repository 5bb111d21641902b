"""Tiny, seeded, randomly initialised transformer checkpoints built fully offline.

``build_tiny_model(kind, path)`` makes a small tokenizer from the built-in corpus, builds a 2-layer model
and saves both with ``save_pretrained`` so they load back through ``AutoTokenizer`` / ``AutoConfig`` /
``AutoModelFor*.from_pretrained(path)``. Load with ``attn_implementation="eager"`` to get attentions.
No pytest in here: the CLI's own tests and demos may import it.
"""

from __future__ import annotations

import json
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

FAMILIES: tuple[str, ...] = (
    "bert-classifier",
    "bert-base",
    "bert-qa",
    "distilbert-classifier",
    "roberta-classifier",
    "gpt2-classifier",
    "gpt2-lm",
    "llama-lm",
    "bart-seq2seq",
    "t5-seq2seq",
    "marian-seq2seq",
)

#: The class named in ``config.architectures[0]`` for each kind.
ARCHITECTURES: dict[str, str] = {
    "bert-classifier": "BertForSequenceClassification",
    "bert-base": "BertModel",
    "bert-qa": "BertForQuestionAnswering",
    "distilbert-classifier": "DistilBertForSequenceClassification",
    "roberta-classifier": "RobertaForSequenceClassification",
    "gpt2-classifier": "GPT2ForSequenceClassification",
    "gpt2-lm": "GPT2LMHeadModel",
    "llama-lm": "LlamaForCausalLM",
    "bart-seq2seq": "BartForConditionalGeneration",
    "t5-seq2seq": "T5ForConditionalGeneration",
    "marian-seq2seq": "MarianMTModel",
}

NUM_LAYERS = 2
NUM_HEADS = 4
HIDDEN = 32
INTERMEDIATE = 64
MAX_POSITIONS = 128
# Larger than the usual 0.02 so that random attention is visibly non-uniform (peaked rows, distinct heads).
INIT_RANGE = 0.2

ENGLISH: tuple[str, ...] = (
    "The cat sat quietly on the warm windowsill.",
    "I really loved this movie, the acting was wonderful.",
    "This was the worst meal I have ever eaten.",
    "The weather today is cold and rainy.",
    "She opened the door and walked into the garden.",
    "Our team finished the project two weeks early.",
    "The train to London leaves at nine in the morning.",
    "He forgot his keys again and had to call his sister.",
    "The book was boring, and the ending made no sense.",
    "What a fantastic concert, the band played all night!",
    "Please send me the report before Friday.",
    "The children laughed while the dog chased the ball.",
    "A small bird was singing in the old oak tree.",
    "The service was slow and the staff were rude.",
    "I think the new phone is fast, light and beautiful.",
    "Water boils at one hundred degrees at sea level.",
    "The museum is closed on Mondays and public holidays.",
    "They built a bridge across the river last summer.",
    "My favourite colour is blue, but I also like green.",
    "The doctor told him to rest and drink more water.",
    "Where is the nearest station?",
    "The price of coffee has gone up again this year.",
    "We watched the sun set over the quiet lake.",
    "The software update fixed the bug but broke the printer.",
    "Nobody expected the small town team to win the cup.",
    "The teacher explained the lesson very clearly.",
    "I am not happy with the quality of this product.",
    "The hotel room was clean, bright and very comfortable.",
    "Scientists discovered a new species of frog in the forest.",
    "The meeting was cancelled because the manager was sick.",
    "Do you want tea or coffee with your breakfast?",
    "The old castle stands on a hill above the village.",
    "Reading a good story before bed helps me sleep.",
    "The film was too long and the music was terrible.",
    "Her paintings are bright, strange and full of life.",
    "The company announced record profits for the quarter.",
    "He runs five miles every morning before work.",
    "The city streets were empty after midnight.",
    "This restaurant serves the best pizza in town.",
    "I would never buy this again, it stopped working after a day.",
    "The students asked many questions about the experiment.",
    "Heavy snow closed the mountain roads for three days.",
    "My grandmother makes delicious apple pie every Sunday.",
    "The package arrived late and the box was damaged.",
    "Learning a new language takes time and patience.",
    "The river flows slowly through the green valley.",
    "The actors were brilliant and the story was moving.",
    "Turn left at the bank and walk straight ahead.",
    "The computer crashed before I could save my work.",
    "It was a pleasant surprise to see old friends again.",
    "The garden is full of roses, tulips and daisies.",
    "Prices fell sharply after the announcement.",
    "The model reads the sentence and predicts the next word.",
    "Attention heads look at different words in the sentence.",
    "The capital of France is Paris.",
    "Who wrote the book about the long journey home?",
    "The concert starts at eight, so we should leave soon.",
    "I enjoyed every minute of the holiday by the sea.",
    "The instructions were confusing and the parts were missing.",
    "Thank you for your help, it was very kind of you.",
    "The quick brown fox jumps over the lazy dog.",
    "Good food, friendly people and a lovely view.",
)

GERMAN: tuple[str, ...] = (
    "Die Katze sitzt auf dem warmen Fensterbrett.",
    "Ich habe diesen Film wirklich geliebt.",
    "Das Wetter ist heute kalt und regnerisch.",
    "Der Zug nach Berlin fährt um neun Uhr ab.",
    "Die Kinder spielen im Garten mit dem Hund.",
    "Das Essen war sehr gut und der Service freundlich.",
    "Wo ist der nächste Bahnhof?",
    "Vielen Dank für Ihre Hilfe.",
    "Das Buch war langweilig und zu lang.",
    "Wir sehen den Sonnenuntergang über dem See.",
    "Die Hauptstadt von Deutschland ist Berlin.",
    "Der schnelle braune Fuchs springt über den faulen Hund.",
)

CORPUS: tuple[str, ...] = ENGLISH + GERMAN


# --------------------------------------------------------------------------- tokenizers


def _trained_model_json(tokenizer: Any) -> dict[str, Any]:
    """The ``model`` section of a trained ``tokenizers.Tokenizer``, as plain JSON."""
    return json.loads(tokenizer.to_str())["model"]


def _vocab_and_merges(model: dict[str, Any]) -> tuple[dict[str, int], list[tuple[str, ...]]]:
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in model["merges"]]
    return dict(model["vocab"]), merges


# Word-piece continuations, so unseen longer words split into a known stem plus pieces.
_SUFFIXES = ("s", "es", "ed", "ing", "ly", "er", "est", "ness", "ful", "able", "ment", "tion", "ive", "y")
_PREFIXES = ("un", "re", "pre", "dis", "over", "under", "trans", "anti", "inter")


def _wordpiece_vocab(corpus: tuple[str, ...]) -> dict[str, int]:
    """Lower-cased WordPiece vocab: every corpus word, single characters and ``##`` pieces.

    Built by hand rather than trained because the ``tokenizers`` WordPiece trainer breaks ties
    differently from run to run; this keeps ids stable. Unseen words split into ``##`` pieces.
    """
    from tokenizers import normalizers, pre_tokenizers

    norm = normalizers.BertNormalizer(lowercase=True)
    pre = pre_tokenizers.BertPreTokenizer()
    words = sorted({w for text in corpus for w, _ in pre.pre_tokenize_str(norm.normalize_str(text))})
    chars = sorted(set("abcdefghijklmnopqrstuvwxyz0123456789.,;:!?'\"-()") | {c for w in words for c in w})
    pieces = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *chars, *_PREFIXES, *words]
    pieces += [f"##{c}" for c in chars if c.isalnum()] + [f"##{x}" for x in _SUFFIXES]
    return {piece: i for i, piece in enumerate(dict.fromkeys(pieces))}


def _byte_bpe(corpus: tuple[str, ...], specials: list[str]) -> tuple[dict[str, int], list[tuple[str, ...]]]:
    """Byte-level BPE (GPT-2 / RoBERTa style) vocab and merges; ``specials`` take the first ids."""
    from tokenizers import ByteLevelBPETokenizer

    tok = ByteLevelBPETokenizer()
    tok.train_from_iterator(corpus, vocab_size=700, min_frequency=2, special_tokens=specials, show_progress=False)
    return _vocab_and_merges(_trained_model_json(tok))


def _metaspace_bpe(corpus: tuple[str, ...]) -> tuple[dict[str, int], list[tuple[str, ...]]]:
    """SentencePiece-style BPE (Llama): ``▁`` word marker, ``<0xNN>`` byte-fallback pieces."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    bytes_ = [f"<0x{i:02X}>" for i in range(256)]
    trainer = trainers.BpeTrainer(
        vocab_size=700, min_frequency=2, special_tokens=["<unk>", "<s>", "</s>", *bytes_], show_progress=False
    )
    tok.train_from_iterator(corpus, trainer=trainer)
    return _vocab_and_merges(_trained_model_json(tok))


def _sentencepiece(corpus: tuple[str, ...]) -> bytes:
    """A serialized SentencePiece Unigram model laid out like T5's: ``<pad>`` 0, ``</s>`` 1, ``<unk>`` 2.

    Trained with the ``sentencepiece`` package (``test`` extra) because, single-threaded, it is
    deterministic; the ``tokenizers`` UnigramTrainer orders its fallback characters differently each run.
    """
    import io

    import sentencepiece as spm

    buf = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(corpus),
        model_writer=buf,
        model_type="unigram",
        vocab_size=400,
        hard_vocab_limit=False,
        character_coverage=1.0,
        pad_id=0,
        eos_id=1,
        unk_id=2,
        bos_id=-1,
        num_threads=1,
        minloglevel=2,
    )
    return buf.getvalue()


def _unigram(corpus: tuple[str, ...]) -> list[tuple[str, float]]:
    """T5's Unigram vocab as ``(piece, log-prob)`` pairs, read from a SentencePiece model."""
    import sentencepiece as spm

    proc = spm.SentencePieceProcessor(model_proto=_sentencepiece(corpus))
    return [(proc.id_to_piece(i), proc.get_score(i)) for i in range(proc.get_piece_size())]


def _marian_files(corpus: tuple[str, ...], folder: Path) -> dict[str, str]:
    """Write ``source.spm`` / ``target.spm`` / ``vocab.json`` for the slow ``MarianTokenizer``.

    Marian has no ``tokenizers``-backed class in transformers: AutoTokenizer always loads the
    sentencepiece-based ``MarianTokenizer`` from these files. One model serves both languages.
    """
    import sentencepiece as spm

    proto = _sentencepiece(corpus)
    (folder / "source.spm").write_bytes(proto)
    (folder / "target.spm").write_bytes(proto)
    proc = spm.SentencePieceProcessor(model_proto=proto)
    vocab = {proc.id_to_piece(i): i for i in range(proc.get_piece_size())}
    (folder / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False, indent=1), encoding="utf-8")
    return {
        "source_spm": str(folder / "source.spm"),
        "target_spm": str(folder / "target.spm"),
        "vocab": str(folder / "vocab.json"),
    }


def _tokenizer(kind: str, scratch: Path, padding_side: str) -> Any:
    """Build the tokenizer for ``kind`` (``scratch`` holds files the slow Marian tokenizer reads)."""
    import transformers as tf

    # Constructor arguments, not attributes set later, so that tokenizer_config.json records them.
    common: dict[str, Any] = {"padding_side": padding_side, "model_max_length": MAX_POSITIONS}

    family = kind.split("-")[0]
    if family in ("bert", "distilbert"):
        cls = tf.DistilBertTokenizer if family == "distilbert" else tf.BertTokenizer
        return cls(vocab=_wordpiece_vocab(ENGLISH), do_lower_case=True, **common)
    if family == "gpt2":
        vocab, merges = _byte_bpe(ENGLISH, ["<|endoftext|>"])
        # Real GPT-2 has no pad token; like fine-tuned GPT-2 classifiers we pad with <|endoftext|>.
        return tf.GPT2Tokenizer(vocab=vocab, merges=merges, pad_token="<|endoftext|>", **common)
    if family in ("roberta", "bart"):
        vocab, merges = _byte_bpe(
            ENGLISH if family == "roberta" else CORPUS, ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
        )
        cls = tf.BartTokenizer if family == "bart" else tf.RobertaTokenizer
        return cls(vocab=vocab, merges=merges, **common)
    if family == "llama":
        vocab, merges = _metaspace_bpe(ENGLISH)
        # Llama ships no pad token; pad with </s> as is usual for batched Llama inference.
        return tf.LlamaTokenizer(vocab=vocab, merges=merges, pad_token="</s>", add_bos_token=True, **common)
    if family == "t5":
        return tf.T5Tokenizer(vocab=_unigram(CORPUS), extra_ids=0, **common)
    if family == "marian":
        with warnings.catch_warnings():  # the optional Moses punctuation normaliser is not needed here
            warnings.filterwarnings("ignore", message=".*sacremoses")
            return tf.MarianTokenizer(**_marian_files(CORPUS, scratch), source_lang="en", target_lang="de", **common)
    raise ValueError(f"unknown kind {kind!r}")


# --------------------------------------------------------------------------- models


def _labels(num_labels: int) -> dict[str, Any]:
    names = ["negative", "positive"] if num_labels == 2 else [f"LABEL_{i}" for i in range(num_labels)]
    return {
        "num_labels": num_labels,
        "id2label": dict(enumerate(names)),
        "label2id": {n: i for i, n in enumerate(names)},
    }


def _model(kind: str, tok: Any, num_labels: int) -> Any:
    """An untrained model for ``kind`` sized to ``tok``'s vocabulary."""
    import transformers as tf

    vocab_size = len(tok)
    pad = tok.pad_token_id
    bert_like = {
        "vocab_size": vocab_size,
        "hidden_size": HIDDEN,
        "num_hidden_layers": NUM_LAYERS,
        "num_attention_heads": NUM_HEADS,
        "intermediate_size": INTERMEDIATE,
        "max_position_embeddings": MAX_POSITIONS,
        "initializer_range": INIT_RANGE,
        "pad_token_id": pad,
    }
    seq2seq = {
        "vocab_size": vocab_size,
        "d_model": HIDDEN,
        "encoder_layers": NUM_LAYERS,
        "decoder_layers": NUM_LAYERS,
        "encoder_attention_heads": NUM_HEADS,
        "decoder_attention_heads": NUM_HEADS,
        "encoder_ffn_dim": INTERMEDIATE,
        "decoder_ffn_dim": INTERMEDIATE,
        "max_position_embeddings": MAX_POSITIONS,
        "init_std": INIT_RANGE,
        "pad_token_id": pad,
        "eos_token_id": tok.eos_token_id,
    }
    factories: dict[str, Callable[[], Any]] = {
        "bert-classifier": lambda: tf.BertForSequenceClassification(tf.BertConfig(**bert_like, **_labels(num_labels))),
        "bert-base": lambda: tf.BertModel(tf.BertConfig(**bert_like), add_pooling_layer=True),
        "bert-qa": lambda: tf.BertForQuestionAnswering(tf.BertConfig(**bert_like, num_labels=2)),
        "distilbert-classifier": lambda: tf.DistilBertForSequenceClassification(
            tf.DistilBertConfig(
                vocab_size=vocab_size,
                dim=HIDDEN,
                n_layers=NUM_LAYERS,
                n_heads=NUM_HEADS,
                hidden_dim=INTERMEDIATE,
                max_position_embeddings=MAX_POSITIONS,
                initializer_range=INIT_RANGE,
                pad_token_id=pad,
                **_labels(num_labels),
            )
        ),
        # RoBERTa positions start after padding_idx, so it needs two extra slots for 128 tokens.
        "roberta-classifier": lambda: tf.RobertaForSequenceClassification(
            tf.RobertaConfig(
                **{**bert_like, "max_position_embeddings": MAX_POSITIONS + 2},
                bos_token_id=tok.bos_token_id,
                eos_token_id=tok.eos_token_id,
                **_labels(num_labels),
            )
        ),
        "gpt2-classifier": lambda: tf.GPT2ForSequenceClassification(tf.GPT2Config(**_gpt2(tok), **_labels(num_labels))),
        "gpt2-lm": lambda: tf.GPT2LMHeadModel(tf.GPT2Config(**_gpt2(tok))),
        "llama-lm": lambda: tf.LlamaForCausalLM(
            tf.LlamaConfig(
                vocab_size=vocab_size,
                hidden_size=HIDDEN,
                intermediate_size=INTERMEDIATE,
                num_hidden_layers=NUM_LAYERS,
                num_attention_heads=NUM_HEADS,
                num_key_value_heads=NUM_HEADS // 2,  # grouped-query attention
                max_position_embeddings=MAX_POSITIONS,
                initializer_range=INIT_RANGE,
                bos_token_id=tok.bos_token_id,
                eos_token_id=tok.eos_token_id,
                pad_token_id=pad,
                tie_word_embeddings=False,
            )
        ),
        "bart-seq2seq": lambda: tf.BartForConditionalGeneration(
            tf.BartConfig(
                **seq2seq,
                bos_token_id=tok.bos_token_id,
                decoder_start_token_id=tok.eos_token_id,
                forced_eos_token_id=tok.eos_token_id,
            )
        ),
        "t5-seq2seq": lambda: tf.T5ForConditionalGeneration(
            tf.T5Config(
                vocab_size=vocab_size,
                d_model=HIDDEN,
                d_kv=HIDDEN // NUM_HEADS,
                d_ff=INTERMEDIATE,
                num_layers=NUM_LAYERS,
                num_decoder_layers=NUM_LAYERS,
                num_heads=NUM_HEADS,
                relative_attention_num_buckets=16,
                relative_attention_max_distance=MAX_POSITIONS,
                pad_token_id=pad,
                eos_token_id=tok.eos_token_id,
                decoder_start_token_id=pad,
            )
        ),
        "marian-seq2seq": lambda: tf.MarianMTModel(
            tf.MarianConfig(**seq2seq, decoder_vocab_size=vocab_size, decoder_start_token_id=pad)
        ),
    }
    return factories[kind]()


def _gpt2(tok: Any) -> dict[str, Any]:
    return {
        "vocab_size": len(tok),
        "n_embd": HIDDEN,
        "n_layer": NUM_LAYERS,
        "n_head": NUM_HEADS,
        "n_inner": INTERMEDIATE,
        "n_positions": MAX_POSITIONS,
        "initializer_range": INIT_RANGE,
        "bos_token_id": tok.bos_token_id,
        "eos_token_id": tok.eos_token_id,
        "pad_token_id": tok.pad_token_id,
    }


def build_tiny_model(kind: str, path: Path, *, padding_side: str = "right", seed: int = 0, num_labels: int = 2) -> Path:
    """Build the tiny ``kind`` model + tokenizer, save both into ``path`` and return ``path``.

    ``padding_side`` is stored in the tokenizer config; ``seed`` fixes the weights; ``num_labels``
    applies to the classifiers (two labels are named ``negative`` / ``positive``).
    """
    import torch

    if kind not in FAMILIES:
        raise ValueError(f"unknown kind {kind!r}; expected one of {', '.join(FAMILIES)}")
    if padding_side not in ("left", "right"):
        raise ValueError(f"padding_side must be 'left' or 'right', not {padding_side!r}")
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        tok = _tokenizer(kind, Path(scratch), padding_side)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = _model(kind, tok, num_labels).eval()
        model.save_pretrained(path)
        tok.save_pretrained(path)
    return path
