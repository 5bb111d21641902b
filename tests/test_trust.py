"""Faithfulness and agreement: exact values on a hand-made bag-of-words model, IG completeness, and the
known-answer marker classifier."""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from capture_helpers import FORWARD_VIEWS

from attnviz.analysis import AnalysisContext, AnalysisResult, TokenScores, get_analysis
from attnviz.analysis.faithfulness import DEFAULT_BINS, curve_scores, erasure_masks, random_orders
from attnviz.analysis.pipeline import analyze, combined_needs
from attnviz.config import DEFAULT_RANDOM_ORDERS, IG_FIRST_STEPS, AnalysisOptions, ModelOptions
from attnviz.errors import ModelError
from attnviz.model.capture import capture_batch
from attnviz.model.loading import load_model
from attnviz.model.predictor import build_predictor
from attnviz.types import Example, TokenSeq

# class-1 logit contribution of each token id (class 0 contributes nothing); id 0 is padding
WEIGHTS = {1: 0.0, 2: 2.0, 3: -1.0, 4: 0.5, 5: 1.5, 6: -0.2, 7: 0.1, 8: 0.8, 9: -0.6, 10: 0.3, 11: 1.1}
IDS = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]  # id 1 plays [CLS]: special, never erased


class BagOfWords(torch.nn.Module):
    """logits = Σ over kept tokens of a per-token vector: a linear, transformers-shaped classifier."""

    def __init__(self) -> None:
        super().__init__()
        table = torch.zeros(12, 2)
        for token, weight in WEIGHTS.items():
            table[token, 1] = weight
        self.embeddings = torch.nn.Embedding.from_pretrained(table, freeze=False, padding_idx=0)
        self.config = SimpleNamespace(is_encoder_decoder=False)

    def get_input_embeddings(self) -> torch.nn.Module:
        return self.embeddings

    def forward(self, input_ids=None, attention_mask=None, inputs_embeds=None, **kwargs):  # type: ignore[no-untyped-def]
        embeds = self.embeddings(input_ids) if inputs_embeds is None else inputs_embeds
        return SimpleNamespace(logits=(embeds * attention_mask[..., None]).sum(dim=1))


def bag_predictor(score: str = "probability"):  # type: ignore[no-untyped-def]
    model = BagOfWords()
    tok = SimpleNamespace(pad_token_id=0, mask_token_id=None, unk_token_id=0, model_input_names=["input_ids"])
    loaded = SimpleNamespace(model=model, tokenizer=tok, device="cpu")
    n = len(IDS)
    seq = TokenSeq(
        tokens=tuple(map(str, IDS)),
        pieces=tuple(map(str, IDS)),
        special=(True,) + (False,) * (n - 1),
        word_ids=(None, *range(n - 1)),
        words=tuple(map(str, IDS[1:])),
        segments=(0,) * n,
        ids=tuple(IDS),
    )

    def read(outputs, rows, mask, positions):  # type: ignore[no-untyped-def]
        logits = outputs.logits[rows]
        return torch.softmax(logits, dim=-1)[:, 1] if score == "probability" else logits[:, 1]

    return build_predictor(loaded, seq, "input", ~seq.special_mask, read)


def p_positive(kept: list[int]) -> float:
    total = sum(WEIGHTS[t] for t in kept)
    return math.exp(total) / (1 + math.exp(total))


def test_comprehensiveness_and_sufficiency_match_a_hand_computation() -> None:
    predictor = bag_predictor()
    ranking = np.array([0.0] + [WEIGHTS[t] for t in IDS[1:]])  # rank by true contribution
    full = predictor.full_score()
    bins = (0.01, 0.05, 0.10, 0.20, 0.50)
    masks = np.concatenate(erasure_masks(ranking, predictor.removable, bins))
    result = curve_scores(full, predictor.score(masks, "delete"), len(bins))
    # 10 erasable tokens: bins remove ceil(0.1)=1, ceil(0.5)=1, 1, 2 and 5 tokens, highest weight first
    by_weight = sorted(IDS[1:], key=lambda t: -WEIGHTS[t])
    sizes = [1, 1, 1, 2, 5]
    removed = [p_positive([t for t in IDS if t not in by_weight[:k]]) for k in sizes]
    kept = [p_positive([1, *by_weight[:k]]) for k in sizes]
    assert full == pytest.approx(p_positive(IDS), abs=1e-6)
    assert result.comprehensiveness == pytest.approx(sum(full - p for p in removed) / 6, abs=1e-6)
    assert result.sufficiency == pytest.approx(sum(full - p for p in kept) / 6, abs=1e-6)
    assert result.removed_curve == pytest.approx(removed, abs=1e-6)


def test_masking_replaces_instead_of_deleting() -> None:
    predictor = bag_predictor()
    keep = np.ones((1, len(IDS)), dtype=bool)
    keep[0, 1] = False  # token id 2 → masked to id 0 (no contribution), same as deleting it here
    assert predictor.score(keep, "mask")[0] == pytest.approx(p_positive([t for t in IDS if t != 2]), abs=1e-6)


def test_faithfulness_analysis_beats_random_with_the_true_ranking() -> None:
    predictor = bag_predictor()
    n = len(IDS)
    truth = np.array([0.0] + [WEIGHTS[t] for t in IDS[1:]])
    scores = TokenScores(
        method="oracle",
        label="oracle",
        values=truth[None, None, :],
        stage_labels=("x",),
        default_stage=0,
        sequence="input",
    )
    reverse = TokenScores(
        method="reverse",
        label="reverse",
        values=-truth[None, None, :],
        stage_labels=("x",),
        default_stage=0,
        sequence="input",
    )
    previous = {"x": AnalysisResult(name="x", token_scores=(scores, reverse))}
    capture = SimpleNamespace(task="classify")
    result = get_analysis("faithfulness").run(capture, AnalysisContext(previous=previous, predictor=predictor))
    s = result.scalars
    assert s["comprehensiveness_margin.oracle"] > 0 > s["comprehensiveness_margin.reverse"]
    assert s["comprehensiveness.oracle"] > s["random_comprehensiveness"] > s["comprehensiveness.reverse"]
    assert s["erasure_model_calls"] == 1 + (DEFAULT_RANDOM_ORDERS + 2) * 10
    assert n == len(predictor.ids)


@pytest.mark.parametrize("orders", [1, 3])
def test_random_baseline_is_the_mean_over_the_first_seeded_orders(orders: int) -> None:
    """--random-orders K averages the curves of the first K rows of the seeded random rankings (so fewer orders
    are a prefix of more, and the methods' own numbers do not depend on K)."""
    predictor = bag_predictor()
    full = predictor.full_score()
    want = [
        curve_scores(full, predictor.score(np.concatenate(erasure_masks(r, predictor.removable, DEFAULT_BINS))), 5)
        for r in random_orders(len(IDS), orders, seed=7)
    ]
    context = AnalysisContext(predictor=predictor, options=AnalysisOptions(seed=7, random_orders=orders))
    s = get_analysis("faithfulness").run(SimpleNamespace(task="classify"), context).scalars
    assert s["random_orders"] == orders
    assert s["random_comprehensiveness"] == pytest.approx(np.mean([w.comprehensiveness for w in want]), abs=1e-12)
    assert s["random_sufficiency"] == pytest.approx(np.mean([w.sufficiency for w in want]), abs=1e-12)


def test_integrated_gradients_equals_input_x_gradient_on_a_linear_model() -> None:
    predictor = bag_predictor(score="logit")  # linear in the embeddings; the baseline (pad) embeds to 0
    found = predictor.attributions(steps=50)
    ig, ixg = found.integrated_gradients, found.input_x_gradient
    np.testing.assert_allclose(ig, ixg, atol=1e-6)
    np.testing.assert_allclose(ig[1:], [WEIGHTS[t] for t in IDS[1:]], atol=1e-6)
    assert found.delta < 1e-6
    np.testing.assert_allclose(found.gap, abs(sum(WEIGHTS[t] for t in IDS[1:])), atol=1e-6)  # F(x) − F(0)


def test_integrated_gradients_completeness_on_a_tiny_bert(tiny_loaded: Callable) -> None:
    loaded = tiny_loaded("bert-classifier")
    cap = capture_batch(
        loaded,
        [Example(id="a", source="t:1", fields={"text": "the cat sat on the mat"})],
        max_length=64,
        needs=FORWARD_VIEWS,
    )[0]
    predictor = loaded_task_predictor(loaded, cap)
    found = predictor.attributions(steps=50)
    full = predictor.full_score()
    outputs, mask = predictor.forward_copies([predictor.baseline_ids], [predictor.segments])
    baseline = float(predictor.read(outputs, torch.tensor([0]), mask, [np.arange(len(predictor.ids))])[0])
    gap = full - baseline
    assert abs(found.integrated_gradients.sum() - gap) <= found.delta + 1e-6
    assert found.gap == pytest.approx(abs(gap), abs=1e-5)
    assert found.delta <= 0.01 * abs(gap) + 1e-6 and found.relative_delta <= 0.01


def loaded_task_predictor(loaded, capture):  # type: ignore[no-untyped-def]
    from attnviz.model.tasks import get_task

    return get_task(loaded.task).predictor(loaded, capture)


FIXTURE = Path(__file__).resolve().parent / "fixtures" / "known_answer" / "marker-classifier"


def test_marker_known_answer_faithfulness() -> None:
    """Deleting the marker flips the prediction, so a ranking with the marker first has the highest
    comprehensiveness, and random orders score lower."""
    loaded = load_model(ModelOptions(name=str(FIXTURE)))
    rows = [json.loads(line) for line in (FIXTURE / "heldout.jsonl").read_text(encoding="utf-8").splitlines()][:16]
    examples = [
        Example(id=r["id"], source=f"h:{i}", fields={"text": r["text"]}, label=r["label"], index=i)
        for i, r in enumerate(rows)
    ]
    comp, random_comp, drops = [], [], []
    methods = ["attention", "faithfulness"]
    for cap in capture_batch(loaded, examples, max_length=64, needs=combined_needs(methods)):
        predictor = loaded_task_predictor(loaded, cap)
        report = analyze(cap, methods, index=0, predictor=predictor)
        comp.append(report.scalars["comprehensiveness.attention"])
        random_comp.append(report.scalars["random_comprehensiveness"])
        marker = rows[int(cap.example.index)]["marker_index"] + 1  # +1 for [CLS]
        keep = np.ones((1, len(predictor.ids)), dtype=bool)
        keep[0, marker] = False
        drops.append(predictor.full_score() - predictor.score(keep)[0])
    assert min(drops) > 0.3  # the marker alone decides: without it the model falls back to ~0.5
    assert np.mean(comp) > np.mean(random_comp) + 0.1


@pytest.mark.parametrize("bound, steps", [(1.0, IG_FIRST_STEPS), (0.0, 64)])
def test_integrated_gradients_doubles_its_steps_until_it_converges(
    tiny_loaded: Callable, monkeypatch: pytest.MonkeyPatch, bound: float, steps: int
) -> None:
    """IG_FIRST_STEPS steps when the delta is within the bound; otherwise doubled up to the budget (64), then a
    warning in words."""
    from attnviz.analysis.pipeline import analyze

    monkeypatch.setattr("attnviz.analysis.agreement_method.IG_DELTA_BOUND", bound)
    loaded = tiny_loaded("bert-classifier")
    (cap,) = capture_batch(
        loaded, [Example(id="a", source="t:1", fields={"text": "the cat sat"})], max_length=64, needs=FORWARD_VIEWS
    )
    predictor = loaded_task_predictor(loaded, cap)
    report = analyze(
        cap, ["attention", "agreement"], index=0, options=AnalysisOptions(ig_steps=64), predictor=predictor
    )
    scalars = report.scalars
    assert scalars["ig_steps"] == steps
    tried = [IG_FIRST_STEPS * 2**k for k in range(8) if IG_FIRST_STEPS * 2**k <= 64]
    assert sorted(predictor._attributions) == tried[: tried.index(steps) + 1]
    warned = [m for m in report.messages if "did not converge" in m]
    assert (len(warned) == 1) == (bound == 0.0)
    assert scalars["ig_relative_delta"] == pytest.approx(predictor.attributions(steps).relative_delta)


def test_pass_sizes_trade_padding_for_passes_within_the_token_budget() -> None:
    from attnviz.model.predictor import pass_sizes

    # 5 short copies padded to 5 tokens (25) and 3 long ones to 21 (63), + 2 passes of 32: 152. One pass costs
    # 8 × 21 + 32 = 200; [4, 4] costs 16 + 84 + 64 = 164; a third pass ([5, 1, 2]) saves 21 tokens for 32.
    assert pass_sizes([3, 3, 4, 5, 5, 12, 20, 21], 4096, 32) == [5, 3]
    assert pass_sizes([3, 3, 4, 5, 5, 12, 20, 21], 4096, 4096) == [8]  # a pass dearer than any padding: one pass
    assert pass_sizes([21] * 55, 4096, 32) == [55]  # nothing to save: one pass
    assert pass_sizes([100] * 50, 4096, 32) == [40, 10]  # at most 4,096 padded tokens a pass
    assert pass_sizes([5000, 5000], 4096, 32) == [1, 1]  # one copy longer than the budget goes alone
    assert pass_sizes([], 4096, 32) == []


def test_attribute_computes_each_step_count_and_the_step_free_part_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two step counts asked for in one call: the input and baseline rows go through once, each count's steps
    once, in a single pass each; asking again costs no pass."""
    from attnviz.model import predictor as predictor_module

    rows: list[int] = []
    real = predictor_module._gradient_pass
    monkeypatch.setattr(predictor_module, "_gradient_pass", lambda points: (rows.append(len(points)), real(points)))
    predictor = bag_predictor(score="logit")
    predictor_module.attribute([(predictor, 4), (predictor, 6), (predictor, 4)])
    assert rows == [2 + 4 + 6]  # 11 tokens a row: one pass holds them all
    predictor_module.attribute([(predictor, 6)])
    assert predictor.attributions(4).integrated_gradients == pytest.approx(
        predictor.attributions(6).integrated_gradients
    )
    assert rows == [12]
    # Linear in the embeddings: any step count gives the exact answer, Input×Gradient's.
    np.testing.assert_allclose(
        predictor.attributions(4).integrated_gradients, predictor.attributions(4).input_x_gradient, atol=1e-6
    )


def test_a_pass_out_of_device_memory_is_split_again_and_gives_the_same_numbers() -> None:
    """A pass that runs out of memory keeps nothing: its rows go again in passes of half its tokens, and the
    budget stays lowered for what comes after."""
    masks = np.concatenate(erasure_masks(np.arange(len(IDS), dtype=float), bag_predictor().removable, DEFAULT_BINS))
    plain = bag_predictor(score="logit")
    want = plain.score(masks), plain.attributions(6)
    predictor = bag_predictor(score="logit")
    real = predictor.run_model
    passes: list[int] = []

    def limited(key, x, mask, types):  # type: ignore[no-untyped-def]
        passes.append(mask.numel())
        if mask.numel() > 40:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return real(key, x, mask, types)

    predictor.run_model = limited
    found = predictor.attributions(6)
    # 8 rows (6 steps, the input, the baseline) of 11 tokens: 88 fails, then 4 rows (44) fail, then 2 rows a pass.
    assert passes == [88, 44, 22, 22, 22, 22]
    assert predictor.budget.tokens == 22
    np.testing.assert_allclose(found.integrated_gradients, want[1].integrated_gradients, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(found.input_x_gradient, want[1].input_x_gradient, rtol=1e-6, atol=1e-7)
    passes.clear()
    np.testing.assert_allclose(predictor.score(masks), want[0], rtol=1e-6)
    assert passes and max(passes) <= 22  # the lowered budget holds for the copies: no pass fails again

    alone = bag_predictor(score="logit")
    alone.run_model = lambda *args: (_ for _ in ()).throw(torch.OutOfMemoryError("CUDA out of memory (simulated)"))
    with pytest.raises(ModelError, match="one sequence of 11 tokens does not fit in device memory.*--max-length"):
        alone.score(np.ones((1, len(IDS)), dtype=bool))  # one row that does not fit has nowhere to go


def test_a_gpu_pass_budget_is_a_share_of_free_memory_over_a_gradient_pass_per_token(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from transformers import BertConfig, BertForSequenceClassification

    from attnviz.model.predictor import CHUNK_TOKENS, GPU_MEMORY_SHARE, pass_budget

    config = BertConfig(
        vocab_size=50, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, num_labels=2
    )
    model = BertForSequenceClassification(config)
    # Matrix products' input + output widths: per layer Q, K, V, O (4 × 2H) and the feed-forward (2 × (H + I)),
    # then the pooler (2H) and the classifier (H + 2); twice over, float32.
    widths = 2 * (8 * 32 + 2 * (32 + 64)) + 2 * 32 + (32 + 2)
    free = 80 * 2**30
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (free, 2 * free))
    budget = pass_budget(model, "cuda:0")
    assert budget.tokens == int(free * GPU_MEMORY_SHARE) // (2 * widths * 4)
    assert pass_budget(model, "cuda:0") is budget  # one per model: what a failed pass taught lasts
    assert pass_budget(BertForSequenceClassification(config), "cpu").tokens == CHUNK_TOKENS
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (2**20, 2**30))
    assert pass_budget(BertForSequenceClassification(config), "cuda").tokens == CHUNK_TOKENS  # never below


def test_qa_answer_masked_scores_zero_as_deleted(tiny_loaded: Callable) -> None:
    """QA's score is 0 once an answer token is erased, by deletion or by --erasure mask (masking kept the position,
    so the masked token's probability was read as the answer's)."""
    from attnviz.model.tasks import get_task

    loaded = tiny_loaded("bert-qa")
    example = Example(id="q", source="t:1", fields={"question": "who sat", "context": "the cat sat on the mat"})
    (capture,) = capture_batch(loaded, [example], max_length=64, needs=FORWARD_VIEWS)
    predictor = get_task(loaded.task).predictor(loaded, capture)
    start = capture.prediction.details["start_token"]
    keep = np.ones((2, len(predictor.ids)), dtype=bool)
    keep[1, start] = False
    for erasure in ("delete", "mask"):
        full, erased = predictor.score(keep, erasure)
        assert full == pytest.approx(capture.prediction.score, rel=1e-5) and erased == 0.0


def test_lm_one_token_prompt_has_nothing_to_erase(tiny_loaded: Callable) -> None:
    """Erasing a lone prompt token would leave nothing to predict the continuation's first token from (the run
    crashed on it): nothing is erasable, and faithfulness says so."""
    from attnviz.model.tasks import get_task

    loaded = tiny_loaded("gpt2-lm")
    example = Example(id="l", source="t:1", fields={"text": "The", "target": " cat"})
    (capture,) = capture_batch(loaded, [example], max_length=64, needs=FORWARD_VIEWS)
    assert capture.prediction.details["prompt_tokens"] == 1
    predictor = get_task(loaded.task).predictor(loaded, capture)
    report = analyze(capture, ["attention", "faithfulness"], index=0, predictor=predictor)
    assert report.results["faithfulness"].messages == ("faithfulness: no token can be erased",)


def test_relative_delta_without_a_gap() -> None:
    from attnviz.model.predictor import Attributions

    def found(delta: float, gap: float) -> Attributions:
        return Attributions(np.zeros(2), np.zeros(2), delta, gap)

    assert found(0.002, 0.4).relative_delta == pytest.approx(0.005)
    assert found(0.0, 0.0).relative_delta == 0.0  # nothing to attribute, and nothing attributed
    assert found(1e-8, 0.0).relative_delta == math.inf  # a sum that should be 0 is not: never "converged"


def test_a_regression_head_says_why_trust_checks_are_missing(tiny_loaded: Callable) -> None:
    from attnviz.model.tasks import get_task

    loaded = tiny_loaded("bert-classifier")
    example = Example(id="r", source="t:1", fields={"text": "a fine film"})
    (capture,) = capture_batch(loaded, [example], max_length=64, needs=FORWARD_VIEWS)
    regression = dataclasses.replace(
        capture, prediction=dataclasses.replace(capture.prediction, details={"regression": True})
    )
    assert get_task(loaded.task).predictor(loaded, regression) is None
    report = analyze(regression, ["attention", "faithfulness"], index=0, predictor=None)
    [message] = report.results["faithfulness"].messages
    assert message == "faithfulness: not available for a regression head (one output)"
