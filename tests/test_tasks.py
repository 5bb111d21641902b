"""qa, lm and seq2seq adapters on tiny models of every family; teacher-forced capture equals generate()."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from capture_helpers import FORWARD_VIEWS

from attnviz.config import GenerationOptions, ModelOptions
from attnviz.model.capture import capture_batch
from attnviz.model.loading import LoadedModel, load_model
from attnviz.model.tasks.qa import best_span
from attnviz.types import Example


def ex(i: int = 0, **fields: str) -> Example:
    return Example(id=f"x{i}", source=f"t:{i + 1}", fields=fields, index=i)


GEN = GenerationOptions(max_new_tokens=6)


def load_on_path(tiny_path: Callable[..., Path], kind: str, path: str) -> LoadedModel:
    """A tiny model on one capture path (``eager`` keeps eager attention, so ``generate`` returns weights)."""
    loaded = load_model(ModelOptions(name=str(tiny_path(kind)), capture=path))
    assert loaded.capture == path
    return loaded


@pytest.mark.parametrize("kind", ["gpt2-lm", "llama-lm"])
def test_lm_rows_are_causal_and_explain_each_continuation_token(tiny_loaded: Callable, kind: str) -> None:
    loaded = tiny_loaded(kind)
    assert loaded.task == "lm"
    given, generated = capture_batch(
        loaded,
        [ex(0, text="I really loved", target=" this movie"), ex(1, text="The cat sat on")],
        max_length=64,
        needs=FORWARD_VIEWS,
        generation=GEN,
    )
    for cap in (given, generated):
        att = cap.main
        assert att.causal
        np.testing.assert_allclose(att.full.sum(-1), 1.0, atol=1e-5)
        assert np.allclose(np.triu(att.full, k=1), 0.0)
        seq = cap.sequences["input"]
        prompt = cap.prediction.details["prompt_tokens"]
        n_cont = len(seq) - prompt
        assert cap.explained.weights.shape == (n_cont, len(seq))
        # the row that explains continuation token t is row t-1
        assert [int(np.argmax(r)) for r in cap.explained.weights] == list(range(prompt - 1, len(seq) - 1))
        assert seq.segment_names == ("prompt", "continuation")
        assert seq.segments[prompt] == 1 and seq.segments[prompt - 1] == 0
    assert given.prediction.text == " this movie" and not given.prediction.details["generated"]
    assert generated.prediction.details["generated"]
    assert len(generated.prediction.details["continuation_tokens"]) <= GEN.max_new_tokens


@pytest.mark.parametrize("path", ["eager", "fast"])
@pytest.mark.parametrize("kind", ["gpt2-lm", "llama-lm"])
def test_lm_teacher_forced_capture_equals_generate_step_by_step(
    tiny_path: Callable[..., Path], kind: str, path: str
) -> None:
    loaded = load_on_path(tiny_path, kind, path)
    prompt_text = "The cat sat on"
    cap = capture_batch(loaded, [ex(text=prompt_text)], max_length=64, needs=FORWARD_VIEWS, generation=GEN)[0]
    reference = loaded if path == "eager" else load_on_path(tiny_path, kind, "eager")  # generate()'s own attention
    prompt = reference.tokenizer(prompt_text, return_tensors="pt")
    out = reference.model.generate(
        **prompt,
        max_new_tokens=GEN.max_new_tokens,
        do_sample=False,
        output_attentions=True,
        return_dict_in_generate=True,
        pad_token_id=reference.tokenizer.pad_token_id,
    )
    p = prompt["input_ids"].shape[1]
    steps = out.attentions  # step 0: (1, H, p, p) per layer; step k: (1, H, 1, p + k)
    for layer in range(cap.main.num_layers):
        np.testing.assert_allclose(cap.main.full[layer, :, :p, :p], steps[0][layer][0].numpy(), atol=1e-5)
        for k in range(1, len(steps)):
            if p + k > len(cap.sequences["input"]):
                break
            row = cap.main.full[layer, :, p + k - 1, : p + k]
            np.testing.assert_allclose(row, steps[k][layer][0, :, 0].numpy(), atol=1e-5)


@pytest.mark.parametrize("kind", ["bart-seq2seq", "t5-seq2seq", "marian-seq2seq"])
def test_seq2seq_captures_three_attention_kinds(tiny_loaded: Callable, kind: str) -> None:
    loaded = tiny_loaded(kind)
    assert loaded.task == "seq2seq"
    given, generated = capture_batch(
        loaded,
        [ex(0, source="I loved it.", target="Ich liebte es."), ex(1, source="The cat sat on the mat.")],
        max_length=64,
        needs=FORWARD_VIEWS,
        generation=GEN,
    )
    for cap in (given, generated):
        assert set(cap.attentions) == {"encoder", "decoder", "cross"}
        n_s, n_t = len(cap.sequences["source"]), len(cap.sequences["target"])
        assert cap.attentions["cross"].shape[2:] == (n_t, n_s)
        assert cap.attentions["cross"].full.shape[2:] == (n_t, n_s)
        assert cap.attentions["decoder"].causal and not cap.attentions["cross"].causal
        for att in cap.attentions.values():
            np.testing.assert_allclose(att.full.sum(-1), 1.0, atol=1e-5)
        assert cap.explained.attention == "cross" and cap.explained.weights.shape == (n_t, n_t)
    assert given.prediction.text == "Ich liebte es."
    assert generated.prediction.details["generated"]


@pytest.mark.parametrize("path", ["eager", "fast"])
@pytest.mark.parametrize("kind", ["bart-seq2seq", "t5-seq2seq"])
def test_seq2seq_teacher_forced_capture_equals_generate(tiny_path: Callable[..., Path], kind: str, path: str) -> None:
    loaded = load_on_path(tiny_path, kind, path)
    cap = capture_batch(
        loaded, [ex(source="The cat sat on the mat.")], max_length=64, needs=FORWARD_VIEWS, generation=GEN
    )[0]
    reference = loaded if path == "eager" else load_on_path(tiny_path, kind, "eager")  # generate()'s own attention
    enc = reference.tokenizer("The cat sat on the mat.", return_tensors="pt")
    out = reference.model.generate(
        **enc,
        max_new_tokens=GEN.max_new_tokens,
        do_sample=False,
        num_beams=1,
        output_attentions=True,
        return_dict_in_generate=True,
    )
    produced = out.sequences[0, 1:].tolist()
    assert cap.prediction.details["target_tokens"] == list(cap.sequences["target"].tokens)
    assert len(cap.sequences["target"]) == len(produced[: len(cap.sequences["target"])])
    for k in range(len(cap.sequences["target"])):
        for layer in range(cap.attentions["cross"].num_layers):
            # stored target row k is decoder position k, the step that produced target token k
            np.testing.assert_allclose(
                cap.attentions["cross"].full[layer, :, k], out.cross_attentions[k][layer][0, :, 0].numpy(), atol=1e-5
            )
            np.testing.assert_allclose(
                cap.attentions["decoder"].full[layer, :, k, : k + 1],
                out.decoder_attentions[k][layer][0, :, 0].numpy(),
                atol=1e-5,
            )
    np.testing.assert_allclose(cap.attentions["encoder"].full[0], out.encoder_attentions[0][0].numpy(), atol=1e-5)


def test_qa_span_lies_in_the_context(tiny_loaded: Callable) -> None:
    loaded = tiny_loaded("bert-qa")
    context = "The cat sat quietly on the warm windowsill."
    cap = capture_batch(
        loaded, [ex(question="Where did the cat sit?", context=context)], max_length=64, needs=FORWARD_VIEWS
    )[0]
    details = cap.prediction.details
    seq = cap.sequences["input"]
    assert cap.prediction.text == context[details["char_start"] : details["char_end"]]
    assert seq.segments[details["start_token"]] == 1 and seq.segments[details["end_token"]] == 1
    assert details["start_token"] <= details["end_token"]
    assert [int(np.argmax(r)) for r in cap.explained.weights] == [details["start_token"], details["end_token"]]
    assert seq.segment_names == ("question", "context")
    assert 0 < cap.prediction.score <= 1


def test_best_span_respects_order_length_and_context() -> None:
    start = np.array([0.0, 5.0, 1.0, 0.0])
    end = np.array([9.0, 0.0, 2.0, 1.0])
    allowed = np.array([False, True, True, True])
    assert best_span(start, end, allowed) == (1, 2)  # end 0 is before the start and outside the context
    assert best_span(start, end, allowed, max_tokens=1) == (1, 1)


def test_qa_needs_question_and_context(tiny_loaded: Callable, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from attnviz.api import render_reports
    from attnviz.config import RenderOptions
    from attnviz.errors import InputError

    data = tmp_path / "qa.jsonl"
    data.write_text('{"question": "who?"}\n', encoding="utf-8")
    with pytest.raises(InputError, match="qa.jsonl:1: field 'context': is missing"):
        render_reports(
            [str(data)], RenderOptions(out_dir=tmp_path / "o", formats=("json",)), loaded=tiny_loaded("bert-qa")
        )


def test_pair_cross_segment_metrics(tiny_loaded: Callable) -> None:
    from attnviz.analysis.pipeline import analyze

    cap = capture_batch(
        tiny_loaded("bert-classifier"),
        [ex(text="the cat sat", text_pair="a dog ran")],
        max_length=64,
        needs=FORWARD_VIEWS,
    )[0]
    report = analyze(cap, ["heads"], index=0)
    forward = report.head_metric("cross_0_to_1", "self")
    backward = report.head_metric("cross_1_to_0", "self")
    assert forward.label == "text → text_pair" and backward.label == "text_pair → text"
    w = cap.main.full.astype(np.float64)
    seg = np.array(cap.sequences["input"].segments)
    real = ~cap.sequences["input"].special_mask
    expected = w[:, :, (seg == 0) & real][..., (seg == 1) & real].sum(-1).mean(-1)
    np.testing.assert_allclose(forward.values, expected)
    assert np.all((forward.values >= 0) & (forward.values <= 1))


def test_sampling_is_seeded(tiny_loaded: Callable) -> None:
    loaded = tiny_loaded("gpt2-lm")
    sample = GenerationOptions(max_new_tokens=8, do_sample=True, seed=3)
    first = capture_batch(loaded, [ex(text="The cat")], max_length=64, needs=FORWARD_VIEWS, generation=sample)[0]
    again = capture_batch(loaded, [ex(text="The cat")], max_length=64, needs=FORWARD_VIEWS, generation=sample)[0]
    assert first.prediction.text == again.prediction.text
    torch.manual_seed(0)
