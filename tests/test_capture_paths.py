"""The two capture paths against each other and against the numbers of the full-tensor capture they replaced.

``fixtures/golden/eager_scores.npz`` holds every method's scores, head metrics and the full attention of
every tiny family, written by ``fixtures/golden/make_golden.py`` with the capture that kept the whole
(L, H, q, k) tensor (commit 934dc64). The views, built from row blocks, must give the same numbers: to
1e-6 on the eager path, and to 1e-5 on the fast path (SDPA's forward differs from eager's in the last
float32 bits, which later layers carry on).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from capture_helpers import task_examples
from tiny_models import FAMILIES

from attnviz.analysis.pipeline import analyze, combined_needs, run_order
from attnviz.analysis.relevancy import self_relevancy
from attnviz.analysis.rollout import attention_rollout
from attnviz.api import render_reports
from attnviz.config import GenerationOptions, ModelOptions, RenderOptions
from attnviz.errors import UsageError
from attnviz.model.capture import capture_batch, resolve_max_length
from attnviz.model.loading import load_model
from attnviz.model.views import CHUNK_ELEMENTS, ViewRequest, views_from_arrays
from attnviz.output.schema import validate_summary
from attnviz.types import FULL, GRAD_MEAN, HEAD_MEAN, NORM_ROWS, RELEVANCY, ROLLOUT, ROWS, STATS, Needs

GEN = GenerationOptions(max_new_tokens=4)
GOLDEN = Path(__file__).parent / "fixtures" / "golden" / "eager_scores.npz"
METHODS = ["attention", "rollout", "relevancy", "norms", "heads", "flow"]
EVERY_VIEW = Needs(
    attention=frozenset({ROWS, HEAD_MEAN, STATS, GRAD_MEAN, NORM_ROWS, FULL, ROLLOUT, RELEVANCY}), value_norms=True
)
ARRAYS = ("rows", "head_mean", "grad_mean", "norm_rows", "rollout_rows", "relevancy_rows", "full")
CASES = [(family, "right") for family in FAMILIES] + [("llama-lm", "left")]


def _load(tiny_path: Callable[..., Path], family: str, side: str, path: str):
    return load_model(ModelOptions(name=str(tiny_path(family, side)), capture=path))


def _capture(loaded, needs: Needs):
    return capture_batch(
        loaded, task_examples(loaded.task), max_length=64, needs=needs, generation=GenerationOptions(max_new_tokens=4)
    )


def _numbers(loaded) -> dict[str, np.ndarray]:
    """Everything the golden file holds, keyed the same way, from one batched capture and analysis."""
    out: dict[str, np.ndarray] = {}
    for cap in _capture(loaded, combined_needs(METHODS, Needs(attention=frozenset({FULL})))):
        report = analyze(cap, METHODS, index=cap.example.index)
        key = cap.example.id
        out.update({f"{key}/scores/{ts.method}": ts.values for ts in report.token_scores})
        out.update({f"{key}/metric/{m.attention}/{m.name}": m.values for m in report.head_metrics})
        out.update({f"{key}/scalar/{k}": np.asarray(v) for k, v in report.scalars.items()})
        out.update({f"{key}/full/{kind}": att.view(FULL) for kind, att in cap.attentions.items()})
    return out


@pytest.mark.parametrize("path, tolerance", [("eager", 1e-6), ("fast", 1e-5)])
@pytest.mark.parametrize("family, side", CASES)
def test_every_method_gives_the_full_tensor_numbers(
    tiny_path: Callable[..., Path], family: str, side: str, path: str, tolerance: float
) -> None:
    loaded = _load(tiny_path, family, side, path)
    assert loaded.capture == path
    golden = np.load(GOLDEN)
    prefix = f"{family}-{side}/"
    want = {k.removeprefix(prefix): golden[k] for k in golden.files if k.startswith(prefix)}
    got = _numbers(loaded)
    # Added since: previous/same-token shares of a decoder's self-attention (its targets over its shifted inputs).
    added = {
        k for k in set(got) - set(want) if "/metric/decoder/" in k and k.endswith(("previous_token", "self_token"))
    }
    assert set(got) - added == set(want)
    assert bool(added) == family.endswith("seq2seq")
    for key, expected in want.items():
        np.testing.assert_allclose(got[key], expected, atol=tolerance, rtol=0, err_msg=f"{family}-{side} {key}")


@pytest.mark.parametrize("whole_batch", [True, False], ids=["whole-batch", "row-blocks"])
@pytest.mark.parametrize("family, side", CASES)
def test_fast_views_equal_eager_views(
    tiny_path: Callable[..., Path], family: str, side: str, whole_batch: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both ways the fast path recomputes attention (whole layers of the batch; row blocks of one example)."""
    if not whole_batch:
        monkeypatch.setattr("attnviz.model.capture.WHOLE_BATCH_ELEMENTS", 0)
    eager = _capture(_load(tiny_path, family, side, "eager"), EVERY_VIEW)
    fast = _capture(_load(tiny_path, family, side, "fast"), EVERY_VIEW)
    for slow_cap, fast_cap in zip(eager, fast, strict=True):
        assert (slow_cap.capture_path, fast_cap.capture_path) == ("eager", "fast")
        assert slow_cap.attentions.keys() == fast_cap.attentions.keys()
        for kind, reference in slow_cap.attentions.items():
            views = fast_cap.attentions[kind]
            assert views.shape == reference.shape
            for name in (*ARRAYS, "full_grads", "value_norms"):
                a, b = getattr(reference, name), getattr(views, name)
                assert (a is None) == (b is None), f"{kind}.{name}"
                if a is not None:
                    # Probabilities to 1e-5 absolute; raw gradients and norms (not bounded by 1) relative too,
                    # gradients to 1e-4: SDPA's fused backward sums in another order than eager's (seen: 9e-5 on
                    # one of 3,528 llama gradients, on one CPU of several).
                    rtol = {"full_grads": 1e-4, "value_norms": 1e-5}.get(name, 0)
                    np.testing.assert_allclose(b, a, atol=1e-5, rtol=rtol, err_msg=f"{family} {kind}.{name}")
            assert reference.stats.keys() == views.stats.keys()
            for name, values in reference.stats.items():
                np.testing.assert_allclose(views.stats[name], values, atol=1e-5, rtol=0, err_msg=f"{kind} {name}")


def test_row_blocks_give_the_same_views_as_one_block(
    tiny_path: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Views accumulated over many small row blocks (as for long inputs) equal the one-block result."""
    loaded = _load(tiny_path, "llama-lm", "left", "fast")
    whole = _capture(loaded, EVERY_VIEW)
    monkeypatch.setattr("attnviz.model.views.CHUNK_ELEMENTS", 4 * 16)  # 4 heads × 16 keys: one row per block
    monkeypatch.setattr("attnviz.model.capture.WHOLE_BATCH_ELEMENTS", 0)  # recompute block by block
    assert CHUNK_ELEMENTS > 64
    pieces = _capture(loaded, EVERY_VIEW)
    for one, many in zip(whole, pieces, strict=True):
        for kind, views in one.attentions.items():
            other = many.attentions[kind]
            for name in ARRAYS:
                a, b = getattr(views, name), getattr(other, name)
                assert (a is None) == (b is None)
                if a is not None:
                    np.testing.assert_allclose(b, a, atol=1e-6, rtol=0, err_msg=f"{kind}.{name}")
            for name, values in views.stats.items():
                np.testing.assert_allclose(other.stats[name], values, atol=1e-6, rtol=0)


def test_capture_computes_only_what_is_asked(tiny_loaded: Callable[..., object]) -> None:
    loaded = tiny_loaded("bert-classifier")
    (cap,) = capture_batch(
        loaded, task_examples("classify")[:1], max_length=64, needs=Needs(attention=frozenset({ROWS}))
    )
    views = cap.attentions["self"]
    assert views.rows is not None and views.rows.shape[:3] == (2, 4, 1)
    others = ("head_mean", "full", "grad_mean", "norm_rows", "rollout_rows", "relevancy_rows", "value_norms")
    assert all(getattr(views, name) is None for name in others)
    assert views.stats == {}
    with pytest.raises(ValueError, match="no 'full' view"):
        views.view(FULL)


def test_full_matrices_are_left_out_over_their_length_limit(tiny_loaded: Callable[..., object]) -> None:
    loaded = tiny_loaded("bert-classifier")
    needs = Needs(attention=frozenset({FULL, HEAD_MEAN}), up_to={FULL: 5})
    (cap,) = capture_batch(loaded, task_examples("classify")[:1], max_length=64, needs=needs)
    views = cap.attentions["self"]
    assert views.full is None and views.head_mean is not None
    with pytest.raises(ValueError, match="over the limit of 5 for this view"):
        views.view(FULL)


def test_needs_union_and_validation() -> None:
    grids = Needs(attention=frozenset({FULL}), up_to={FULL: 64})
    tensors = Needs(attention=frozenset({FULL}))
    assert grids.union(Needs(attention=frozenset({ROWS}))).up_to == {FULL: 64}
    assert grids.union(Needs(attention=frozenset({FULL}), up_to={FULL: 100})).up_to == {FULL: 100}
    assert grids.union(tensors).up_to == {}
    assert grids.wants(FULL, 64) and not grids.wants(FULL, 65) and tensors.wants(FULL, 10**6)
    assert Needs(attention=frozenset({RELEVANCY})).gradients
    assert Needs(attention=frozenset({NORM_ROWS})).union(Needs()).value_norms
    assert Needs(attention=frozenset({GRAD_MEAN})).gradients and not grids.gradients
    with pytest.raises(ValueError, match="valid: rows, head_mean"):
        Needs(attention=frozenset({"everything"}))


def test_layer_products_equal_the_full_matrix_references() -> None:
    """rollout_rows and relevancy_rows (row vectors, top layer first) equal the (n, n) reference products read at w."""
    rng = np.random.default_rng(0)
    layers, heads, n = 3, 2, 7
    logits = rng.normal(size=(layers, heads, n, n))
    probs = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    grads = rng.normal(size=probs.shape)
    weights = np.zeros((2, n))
    weights[0, 0] = 1.0
    weights[1] = 1.0 / n
    request = ViewRequest(
        kind="self",
        query="input",
        key="input",
        causal=False,
        shape=(layers, heads, n, n),
        needs=Needs(attention=frozenset({ROLLOUT, RELEVANCY})),
        special=np.zeros(n, dtype=bool),
        segments=np.zeros(n, dtype=int),
        explained=weights,
    )
    views = views_from_arrays(request, probs.astype(np.float32), grads.astype(np.float32))
    f32 = probs.astype(np.float32).astype(np.float64)
    rollout = np.einsum("rq,lqk->lrk", weights, attention_rollout(f32.mean(axis=1)))
    relevancy = np.einsum("rq,lqk->lrk", weights, self_relevancy(f32, grads.astype(np.float32)) - np.eye(n))
    np.testing.assert_allclose(views.rollout_rows, rollout, atol=1e-12)
    np.testing.assert_allclose(views.relevancy_rows, relevancy, atol=1e-12)
    np.testing.assert_allclose(views.rollout_rows.sum(axis=-1), 1.0, atol=1e-12)  # rollout rows stay distributions


def test_run_order_follows_what_analyses_read() -> None:
    """Score makers first, then agreement (reads and makes scores), then the pure readers; ties keep the given order."""
    given = ["plausibility", "faithfulness", "agreement", "relevancy", "heads", "attention"]
    assert run_order(given) == ["relevancy", "heads", "attention", "agreement", "plausibility", "faithfulness"]
    assert combined_needs(["faithfulness"]).model_reruns and not combined_needs(["attention"]).model_reruns


@pytest.mark.parametrize("path", ["fast", "eager"])
def test_summary_says_which_capture_path_ran(tiny_path: Callable[..., Path], tmp_path: Path, path: str) -> None:
    data = tmp_path / "in.txt"
    data.write_text("the cat sat on the mat\n", encoding="utf-8")
    options = RenderOptions(out_dir=tmp_path / "out", methods=("attention",), formats=("json",))
    summary = render_reports([str(data)], options, loaded=_load(tiny_path, "bert-classifier", "right", path))
    assert summary["run"]["capture"] == path
    validate_summary(summary)


def test_max_length_beyond_the_model_is_refused_in_words(tiny_loaded: Callable[..., object]) -> None:
    loaded = tiny_loaded("bert-classifier")
    assert resolve_max_length(loaded, None) == 128  # the tiny models' positions, under the default 512
    assert resolve_max_length(loaded, 128) == 128
    with pytest.raises(UsageError, match=r"--max-length 129 is more than model .* takes \(128 tokens\)") as err:
        resolve_max_length(loaded, 129)
    assert err.value.exit_status == 2


def test_decoder_self_attention_has_positional_shares(tiny_loaded: Callable[..., object]) -> None:
    """A decoder's targets and its shifted inputs are the same positions: A[i, i−1] and A[i, i] are defined."""
    loaded = tiny_loaded("bart-seq2seq")
    needs = Needs(attention=frozenset({STATS, FULL}))
    (cap,) = capture_batch(loaded, task_examples("seq2seq")[:1], max_length=64, needs=needs, generation=GEN)
    decoder = cap.attentions["decoder"]
    full = decoder.full.astype(np.float64)
    n = full.shape[-1]
    previous = np.mean([full[:, :, i, i - 1] for i in range(1, n)], axis=0)
    same = np.mean([full[:, :, i, i] for i in range(n)], axis=0)
    np.testing.assert_allclose(decoder.stats["previous_token"], previous, atol=1e-6)
    np.testing.assert_allclose(decoder.stats["self_token"], same, atol=1e-6)
    assert "next_token" not in decoder.stats and "previous_token" not in cap.attentions["cross"].stats
