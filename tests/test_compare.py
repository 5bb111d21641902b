"""``attnviz.output.compare``: two models on the same inputs, matched by example id, written as summary.json + HTML."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from bs4 import BeautifulSoup

from attnviz.api import compare_models
from attnviz.config import ModelOptions, RenderOptions
from attnviz.model.loading import LoadedModel, load_model
from attnviz.output.compare import align_words, compare_heads, compare_summaries, matched_layers
from attnviz.output.schema import validate_summary

HOSTILE = "<script>alert(1)</script>"
# (id, text): the hostile markup is both an id (shown on the compare page) and a text (scored words).
EXAMPLES = [
    ("calm", "The cat sat quietly on the warm windowsill."),
    ("loved", "I really loved this movie, the acting was wonderful."),
    ("rude", "The service was slow and the staff were rude."),
    (HOSTILE, f"{HOSTILE} was a terrible film"),
]
OPTIONS = RenderOptions(formats=("html", "json"), methods=("attention", "heads"))

Loader = Callable[..., LoadedModel]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    path = tmp_path_factory.mktemp("compare-in") / "reviews.jsonl"
    lines = [json.dumps({"id": ident, "text": text}) for ident, text in EXAMPLES]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return [str(path)]


def run_compare(inputs: list[str], out: Path, a: LoadedModel, b: LoadedModel) -> dict[str, Any]:
    return compare_models(inputs, OPTIONS, OPTIONS, out, loaded_a=a, loaded_b=b)


@pytest.fixture(scope="module")
def self_compare(
    inputs: list[str], tiny_loaded: Loader, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, dict[str, Any]]:
    out = tmp_path_factory.mktemp("compare-self")
    model = tiny_loaded("bert-classifier")
    return out, run_compare(inputs, out, model, model)


@pytest.fixture(scope="module")
def cross_compare(
    inputs: list[str], tiny_loaded: Loader, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, dict[str, Any]]:
    out = tmp_path_factory.mktemp("compare-cross")
    return out, run_compare(inputs, out, tiny_loaded("bert-classifier"), tiny_loaded("gpt2-classifier"))


@pytest.fixture(scope="module")
def deeper_bert(tiny_path: Callable[..., Path], tmp_path_factory: pytest.TempPathFactory) -> LoadedModel:
    """The tiny BERT classifier's tokenizer and config, but 5 layers × 2 heads instead of 2 × 4."""
    import torch
    import transformers as tf

    source = tiny_path("bert-classifier")
    folder = tmp_path_factory.mktemp("bert-5x2")
    config = tf.AutoConfig.from_pretrained(source)
    config.num_hidden_layers = 5
    config.num_attention_heads = 2
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(1)
        model = tf.BertForSequenceClassification(config).eval()
    model.save_pretrained(folder)
    tf.AutoTokenizer.from_pretrained(source).save_pretrained(folder)
    return load_model(ModelOptions(name=str(folder)))


def soup(path: Path) -> BeautifulSoup:
    return BeautifulSoup(path.read_text(encoding="utf-8"), "html.parser")


# --------------------------------------------------------------------------- 1. a model against itself


def test_model_against_itself(self_compare: tuple[Path, dict[str, Any]]) -> None:
    out, doc = self_compare
    metrics = doc["dataset"]["metrics"]
    assert doc["kind"] == "compare" and doc["schema_version"] == "1.0" and doc["status"] == "complete"
    assert metrics["examples"] == len(EXAMPLES) and metrics["prediction_flips"] == 0 and metrics["flip_rate"] == 0
    assert doc["dataset"]["flips"] == [] and doc["dataset"]["changed_most"] == []
    assert doc["missing"] == {"only_a": [], "only_b": []}
    assert metrics["entropy_drift"] == 0.0 and metrics["mean_rank_correlation"] == 1.0
    assert metrics["min_rank_correlation"] == 1.0 and metrics["mean_aligned_share"] == 1.0
    for ex in doc["examples"]:
        assert not ex["flip"] and ex["prediction_a"] == ex["prediction_b"]
        assert ex["aligned_words"] == ex["words_a"] == ex["words_b"]
        assert ex["rank_correlation"] == (1.0 if ex["aligned_words"] >= 2 else None)
        assert ex["moved"] == []  # no word changed rank
        assert all(w["a"] == w["b"] and w["score_a"] == w["score_b"] for w in ex["words"])
        assert ex["entropy_change"] == 0.0
    heads = doc["dataset"]["heads"]["self"]
    assert heads["mode"] == "heads" and heads["compared"] == "same shape 2×4: per layer and head"
    assert all(v == 0.0 for row in heads["diff"] for v in row) and heads["mean_abs_diff"] == 0.0
    # both full reports exist, and the links point at their pages
    for side in ("a", "b"):
        assert (out / side / "index.html").is_file() and (out / side / "summary.json").is_file()
    for ex in doc["examples"]:
        assert (out / ex["page_a"]).is_file() and (out / ex["page_b"]).is_file()


def test_document_is_written_valid_and_deterministic(self_compare: tuple[Path, dict[str, Any]]) -> None:
    out, doc = self_compare
    written = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert written == doc
    validate_summary(written)  # the compare schema
    a = json.loads((out / "a" / "summary.json").read_text(encoding="utf-8"))
    b = json.loads((out / "b" / "summary.json").read_text(encoding="utf-8"))
    again = compare_summaries(a, b)
    assert {k: v for k, v in again.items() if k != "timing"} == {k: v for k, v in doc.items() if k != "timing"}
    assert set(doc["timing"]) == {"a_seconds", "b_seconds", "total_seconds"}


# --------------------------------------------------------------------------- 2. two different models


def test_two_models_with_different_tokenizers(cross_compare: tuple[Path, dict[str, Any]]) -> None:
    _, doc = cross_compare
    metrics = doc["dataset"]["metrics"]
    assert doc["run"]["a"]["model"] != doc["run"]["b"]["model"]
    assert metrics["entropy_drift"] is not None and metrics["entropy_drift"] > 0
    heads = doc["dataset"]["heads"]["self"]
    assert heads["compared"] == "same shape 2×4: per layer and head"
    assert any(v != 0 for row in heads["diff"] for v in row)
    assert metrics["entropy_drift"] == heads["mean_abs_diff"]
    assert [ex["id"] for ex in doc["examples"]] == [ident for ident, _ in EXAMPLES]
    for ex in doc["examples"]:
        assert ex["aligned_words"] > 0
        assert ex["flip"] == (ex["prediction_a"]["text"] != ex["prediction_b"]["text"])
        aligned = [w for w in ex["words"] if w["a"] is not None and w["b"] is not None]
        assert len(aligned) == ex["aligned_words"]
        assert all(w["a"].casefold() == w["b"].casefold() for w in aligned)
        assert len(ex["moved"]) <= 3 and all(m["change"] == m["rank_b"] - m["rank_a"] != 0 for m in ex["moved"])
        moves = [abs(m["change"]) for m in ex["moved"]]
        assert moves == sorted(moves, reverse=True)
    flipped = [ex["id"] for ex in doc["examples"] if ex["flip"]]
    assert metrics["prediction_flips"] == len(flipped) == len(doc["dataset"]["flips"])
    assert [f["id"] for f in doc["dataset"]["flips"]] == flipped
    assert metrics["flip_rate"] == round(len(flipped) / len(EXAMPLES), 6)
    rhos = [ex["rank_correlation"] for ex in doc["examples"] if ex["rank_correlation"] is not None]
    assert metrics["min_rank_correlation"] == min(rhos)
    assert metrics["mean_rank_correlation"] == pytest.approx(sum(rhos) / len(rhos), abs=1e-6)
    changed = doc["dataset"]["changed_most"]
    assert [c["rank_correlation"] for c in changed] == sorted(r for r in rhos if r < 1)[:5]
    assert all(c["page_a"].startswith("a/examples/") and c["page_b"].startswith("b/examples/") for c in changed)
    validate_summary(doc)


# --------------------------------------------------------------------------- 3. different sizes


def test_different_depths_compare_per_layer_at_matched_depth(
    inputs: list[str], tiny_loaded: Loader, deeper_bert: LoadedModel, tmp_path: Path
) -> None:
    doc = run_compare(inputs, tmp_path, deeper_bert, tiny_loaded("bert-classifier"))
    heads = doc["dataset"]["heads"]["self"]
    assert heads["mode"] == "layers" and heads["shape_a"] == [5, 2] and heads["shape_b"] == [2, 4]
    assert heads["compared"] == (
        "A has 5 layers × 2 heads, B has 2 × 4: per-layer means at matched relative depth; heads not compared"
    )
    assert [(row["layer_a"], row["layer_b"]) for row in heads["layers"]] == [(1, 1), (5, 2)]
    assert all(row["diff"] == pytest.approx(row["b"] - row["a"], abs=2e-6) for row in heads["layers"])
    metrics = doc["dataset"]["metrics"]
    # not comparable per head: the drift falls back to the overall mean entropies
    assert metrics["entropy_drift"] == pytest.approx(abs(metrics["mean_entropy_b"] - metrics["mean_entropy_a"]))
    assert "overall mean" in doc["dataset"]["entropy"]["drift_basis"]
    # one tokenizer on both sides: every word aligns
    assert all(ex["aligned_words"] == ex["words_a"] == ex["words_b"] for ex in doc["examples"])
    page = soup(tmp_path / "compare.html")
    assert heads["compared"] in page.select_one(".heads-diff .compared").get_text()


def test_matched_layers() -> None:
    assert matched_layers(2, 6) == [(0, 0), (1, 5)]
    assert matched_layers(3, 5) == [(0, 0), (1, 2), (2, 4)]
    assert matched_layers(5, 3) == [(0, 0), (2, 1), (4, 2)]
    assert matched_layers(3, 4) == [(0, 0), (1, 2), (2, 3)]  # 1.5 rounds up
    assert matched_layers(1, 4) == [(0, 3)]
    assert matched_layers(4, 4) == [(0, 0), (1, 1), (2, 2), (3, 3)]


def test_same_depth_other_heads() -> None:
    block = compare_heads([[0.5, 0.7], [0.2, 0.4]], [[0.1, 0.2, 0.3], [0.4, 0.5, 0.6]])
    expected = "A has 2 layers × 2 heads, B has 2 × 3: per-layer means layer by layer; heads not compared"
    assert block["compared"] == expected
    assert [row["diff"] for row in block["layers"]] == [pytest.approx(-0.4), pytest.approx(0.2)]


# --------------------------------------------------------------------------- 4. the page


def test_compare_page_is_safe_and_complete(cross_compare: tuple[Path, dict[str, Any]]) -> None:
    out, doc = cross_compare
    text = (out / "compare.html").read_text(encoding="utf-8")
    page = BeautifulSoup(text, "html.parser")
    csp = page.find("meta", attrs={"http-equiv": "Content-Security-Policy"})
    assert csp is not None and "default-src 'none'" in csp["content"]
    assert page.find("link") is None and not page.find_all(src=True)
    for tag in page.find_all(href=True):
        assert "://" not in tag["href"] and not tag["href"].startswith("//")
        assert (out / tag["href"]).is_file()  # every link lands on a page of A's or B's report
    scripts = page.find_all("script")
    assert len(scripts) == 1 and "alert(1)" not in (scripts[0].string or "")
    assert not [t for t in page.find_all(True) if any(a.startswith("on") for a in t.attrs)]
    assert "<script>alert" not in text and "&lt;script&gt;alert(1)&lt;/script&gt;" in text  # escaped
    rows = page.select("#examples tbody tr")
    assert len(rows) == len(doc["examples"])
    assert [row.select("td")[1].contents[0].strip() for row in rows] == [ident for ident, _ in EXAMPLES]
    for model in (doc["run"]["a"]["model"], doc["run"]["b"]["model"]):
        assert model in page.select_one("#models").get_text()
    shown = page.select_one("#metrics").get_text()
    assert "prediction flips" in shown and "entropy drift" in shown and "rank correlation" in shown
    assert doc["dataset"]["heads"]["self"]["compared"] in page.select_one(".heads-diff .compared").get_text()
    assert len(page.select(".heads-diff table.heat tbody tr")) == 2
    assert len(page.select("#flips li")) == doc["dataset"]["metrics"]["prediction_flips"]


# --------------------------------------------------------------------------- matching without models


def _entry(
    ident: str, words: list[str], scores: list[float], text: str = "positive", method: str = "attention"
) -> dict[str, Any]:
    return {
        "id": ident,
        "index": 0,
        "page": f"examples/{ident}.html",
        "label": None,
        "prediction": {"text": text, "score": 0.9, "correct": None},
        "sequences": {"input": {"words": words}},
        "scores": {method: {"sequence": "input", "words": scores}},
        "mean_entropy": 0.5,
        "explained_attention": "self",
    }


def _summary(entries: list[dict[str, Any]], primary: str = "attention", methods: tuple[str, ...] = ()) -> dict:
    return {
        "run": {"model": "m", "task": "classify", "options": {"methods": list(methods or (primary,))}},
        "dataset": {"primary_method": primary, "metrics": {"mean_entropy": 0.5}, "heads": {}},
        "examples": entries,
        "timing": {"total_seconds": 1.0},
    }


def test_align_words_across_tokenizations() -> None:
    pairs = align_words(["The", "cat's", "mat", "."], ["the", "cat", "'s", "mat", "."])
    assert pairs == [(0, 0), (1, None), (None, 1), (None, 2), (2, 3), (3, 4)]


def test_missing_ids_and_moved_words() -> None:
    a = _summary(
        [_entry("x", ["a", "b", "c", "d"], [0.4, 0.3, 0.2, 0.1]), _entry("only-a", ["a"], [1.0])],
    )
    b = _summary([_entry("only-b", ["a"], [1.0]), _entry("x", ["A", "b", "c", "d"], [0.1, 0.2, 0.3, 0.4], "negative")])
    doc = compare_summaries(copy.deepcopy(a), b, pages_a="left", pages_b="right")
    assert doc["missing"] == {"only_a": ["only-a"], "only_b": ["only-b"]}
    (ex,) = doc["examples"]
    assert ex["flip"] and ex["rank_correlation"] == -1.0 and ex["aligned_words"] == 4
    assert [(m["word"], m["rank_a"], m["rank_b"]) for m in ex["moved"]] == [("a", 1, 4), ("d", 4, 1), ("b", 2, 3)]
    assert ex["page_a"] == "left/examples/x.html" and ex["page_b"] == "right/examples/x.html"
    metrics = doc["dataset"]["metrics"]
    assert metrics["examples_only_a"] == metrics["examples_only_b"] == 1 and metrics["prediction_flips"] == 1
    assert metrics["entropy_drift"] == 0.0 and doc["dataset"]["heads"] == {}
    assert doc["timing"] == {"a_seconds": 1.0, "b_seconds": 1.0}
    validate_summary(doc)


def test_primary_method_mismatch_uses_first_common_method() -> None:
    a = _summary([_entry("x", ["a", "b"], [0.6, 0.4], method="rollout")], "rollout", ("rollout",))
    a["examples"][0]["scores"]["attention"] = {"sequence": "input", "words": [0.7, 0.3]}
    a["run"]["options"]["methods"] = ["rollout", "attention"]
    b = _summary([_entry("x", ["a", "b"], [0.2, 0.8])], "attention")
    doc = compare_summaries(a, b)
    assert doc["dataset"]["method"] == "attention" and doc["dataset"]["methods"] == {"a": "rollout", "b": "attention"}
    assert doc["examples"][0]["rank_correlation"] == -1.0


def test_needs_example_entries() -> None:
    with pytest.raises(ValueError, match="no example entries"):
        compare_summaries({**_summary([]), "examples": None}, _summary([]))


def test_stdin_is_read_once_for_both_sides(tiny_loaded: Loader, tmp_path: Path) -> None:
    import io

    model = tiny_loaded("bert-classifier")
    stdin = io.BytesIO(b"The cat sat on the mat.\nWhere is the nearest station?\n")
    doc = compare_models(["-"], OPTIONS, OPTIONS, tmp_path, loaded_a=model, loaded_b=model, stdin=stdin)
    assert doc["dataset"]["metrics"]["examples"] == 2 and doc["missing"] == {"only_a": [], "only_b": []}


def test_models_of_different_tasks_are_not_compared(tiny_loaded: Callable, tmp_path: Path) -> None:
    from attnviz.errors import UsageError

    with pytest.raises(UsageError, match=r"\(classify\) with .* \(encode\): they do different tasks") as err:
        compare_models(
            ["the cat sat"],
            OPTIONS,
            OPTIONS,
            tmp_path,
            loaded_a=tiny_loaded("bert-classifier"),
            loaded_b=tiny_loaded("bert-base"),
        )
    assert err.value.exit_status == 2 and not (tmp_path / "a").exists()  # refused before anything ran
