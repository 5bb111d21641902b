"""Headline words come from the method with the best measured faithfulness (relevancy when not measured), and a
method is "not clearly above random" when the 95 % interval of its margin includes 0."""

from __future__ import annotations

from typing import Any

import pytest
from scipy.stats import t

from attnviz.output.aggregate import DatasetAggregate


def entry(index: int, margins: dict[str, float], words: dict[str, list[str]]) -> dict[str, Any]:
    return {
        "id": f"e{index}",
        "index": index,
        "page": f"examples/e{index}.html",
        "label": "pos",
        "truncated": False,
        "original_length": 5,
        "mean_entropy": 0.5,
        "mean_special_share": 0.1,
        "explained_attention": "self",
        "heads": {},
        "flags": {},
        "method_correlations": [],
        "prediction": {"text": "pos", "score": 0.9, "correct": True, "probabilities": {"pos": 0.9, "neg": 0.1}},
        "scores": {m: {"top_words": [[w, 0.5] for w in ws]} for m, ws in words.items()},
        "metrics": {f"comprehensiveness_margin.{m}": v for m, v in margins.items()},
    }


WORDS = {"attention": ["the", "a"], "relevancy": ["good", "bad"], "rollout": ["was", "it"]}


def test_the_most_faithful_method_supplies_the_words() -> None:
    aggregate = DatasetAggregate()
    margins = [
        {"attention": 0.01, "relevancy": 0.20, "rollout": 0.30},
        {"attention": -0.03, "relevancy": 0.22, "rollout": -0.20},
        {"attention": 0.02, "relevancy": 0.18, "rollout": 0.31},
    ]
    for i, m in enumerate(margins):
        aggregate.add(entry(i, m, WORDS))
    dataset = aggregate.result(0)
    # rollout's mean (0.137) is below relevancy's (0.2); attention is first (primary) but not the headline
    assert dataset["primary_method"] == "attention" and dataset["headline_method"] == "relevancy"
    assert dataset["headline_reason"] == "the best comprehensiveness margin over random in this run"
    assert dataset["top_words"]["all"] == [["bad", 3], ["good", 3]]
    assert [row["top_words"] for row in aggregate.rows] == [[["good", 0.5], ["bad", 0.5]]] * 3
    # The index shows each example's margin next to its words: both the headline method's, not the primary's.
    assert [row["comprehensiveness_margin"] for row in aggregate.rows] == [0.20, 0.22, 0.18]
    # attention: mean 0 → interval includes 0; rollout: mean 0.137 > 0 but its interval includes 0 too
    values = [0.30, -0.20, 0.31]
    mean = sum(values) / 3
    sd = (sum((v - mean) ** 2 for v in values) / 2) ** 0.5
    assert mean - t.ppf(0.975, 2) * sd / 3**0.5 < 0 < mean
    assert dataset["not_clearly_above_random"] == ["attention", "rollout"]


@pytest.mark.parametrize(
    "words, expected",
    [(WORDS, "relevancy"), ({"attention": ["the"], "rollout": ["it"]}, "attention")],
)
def test_without_faithfulness_relevancy_leads(words: dict[str, list[str]], expected: str) -> None:
    aggregate = DatasetAggregate()
    aggregate.add(entry(0, {}, words))
    dataset = aggregate.result(0)
    assert dataset["headline_method"] == expected
    assert dataset["headline_reason"] == "faithfulness not measured in this run"
    assert dataset["not_clearly_above_random"] == []


def test_trust_sample_is_seeded_and_only_for_larger_inputs() -> None:
    from attnviz.analysis.pipeline import trust_sample

    assert trust_sample(10, 10, 0) is None and trust_sample(None, 5, 0) is None and trust_sample(100, 0, 0) is None
    first = trust_sample(100, 7, 3)
    assert first == trust_sample(100, 7, 3) and len(first) == 7 and max(first) < 100
    assert first != trust_sample(100, 7, 4)


def test_sampled_run_measures_the_sample_and_says_so(tiny_loaded: Any, tmp_path: Any) -> None:
    from attnviz.analysis.pipeline import trust_sample
    from attnviz.api import render_reports
    from attnviz.config import RenderOptions
    from attnviz.output.markdown import summary_markdown

    data = tmp_path / "in.txt"
    data.write_text("\n".join(["the cat sat", "a dog ran far", "birds sing", "rain again today"]) + "\n")
    options = RenderOptions(
        out_dir=tmp_path / "out", methods=("attention", "faithfulness"), formats=("json",), trust_sample=2, seed=5
    )
    summary = render_reports([str(data)], options, loaded=tiny_loaded("bert-classifier"))
    measured = {e["index"] for e in summary["examples"] if "comprehensiveness.attention" in e["metrics"]}
    assert measured == trust_sample(4, 2, 5)
    for entry in summary["examples"]:
        if entry["index"] not in measured:
            assert any("not measured for this example (sampled run" in m for m in entry["messages"])
    dataset = summary["dataset"]
    assert dataset["counts"]["comprehensiveness.attention"] == 2
    low, high = dataset["intervals"]["comprehensiveness.attention"]
    assert low <= dataset["metrics"]["comprehensiveness.attention"] <= high
    assert summary["run"]["options"]["trust_sample"] == {"size": 2, "sampled": True, "records": 4}
    assert "random sample of 2 of 4 input records (2 measured)" in summary_markdown(summary)


def test_summary_md_flags_what_the_index_flags_and_names_the_words_method() -> None:
    from attnviz.output.markdown import summary_markdown

    aggregate = DatasetAggregate()
    entries = [
        entry(i, m, WORDS)
        for i, m in enumerate(
            [
                {"attention": 0.01, "relevancy": 0.20, "rollout": 0.30},
                {"attention": -0.03, "relevancy": 0.22, "rollout": -0.20},
                {"attention": 0.02, "relevancy": 0.18, "rollout": 0.31},
            ]
        )
    ]
    for item in entries:
        aggregate.add(item)
    document = {
        "status": "complete",
        "run": {"model": "m", "task": "classify", "options": {"methods": list(WORDS)}},
        "counts": {"examples": 3},
        "dataset": aggregate.result(0),
        "examples": entries,
    }
    text = summary_markdown(document, None)
    # rollout's mean margin is above 0, but its interval is not: flagged, as on the index and the terminal
    flag = "Not clearly above random at comprehensiveness (the 95 % interval of the margin over random orders "
    assert f"{flag}includes 0): attention, rollout." in text
    every = ["attention", "input_x_gradient", "integrated_gradients", "norms", "rollout", "relevancy"]
    longer = summary_markdown({**document, "dataset": {**document["dataset"], "not_clearly_above_random": every}}, None)
    assert "norms, rollout, relevancy." in longer  # the whole list, not cut
    assert "| top words (relevancy) |" in text
