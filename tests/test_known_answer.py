"""Known-answer models through attnviz: trained so that we know what the report must show.

The fixtures come from ``scripts/train_known_answer.py`` (see tests/fixtures/known_answer/README.md).
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
from bs4 import BeautifulSoup
from page_helpers import heatmaps

from attnviz.analysis.pipeline import analyze, combined_needs
from attnviz.api import render_reports
from attnviz.config import ModelOptions, RenderOptions
from attnviz.model.capture import capture_batch
from attnviz.model.loading import LoadedModel, load_model
from attnviz.types import HEAD_MEAN, Example, Needs

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "known_answer"
HEAD_MEANS = Needs(attention=frozenset({HEAD_MEAN}))
MARKER_METHODS = ["attention", "rollout", "relevancy"]


def fixture(name: str) -> LoadedModel:
    return load_model(ModelOptions(name=str(FIXTURES / name)))


def words(name: str) -> list[str]:
    return json.loads((FIXTURES / name / "task.json").read_text(encoding="utf-8"))["words"]


def test_reversal_alignment_in_the_report_is_anti_diagonal(tmp_path: Path) -> None:
    loaded = fixture("reverse-seq2seq")
    assert loaded.task == "seq2seq"
    rng = random.Random(4242)
    vocab = words("reverse-seq2seq")
    rows = []
    for i in range(12):
        source = [rng.choice(vocab) for _ in range(rng.randint(4, 7))]
        rows.append({"id": f"rev{i}", "source": " ".join(source), "target": " ".join(reversed(source))})
    data = tmp_path / "rev.jsonl"
    data.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    out = tmp_path / "out"
    summary = render_reports(
        [str(data)], RenderOptions(out_dir=out, formats=("html", "json"), methods=("attention",)), loaded=loaded
    )
    hits = total = 0
    for entry in summary["examples"]:
        page = BeautifulSoup((out / entry["page"]).read_text(encoding="utf-8"), "html.parser")
        cross = heatmaps(page)["cross"]
        matrix = cross["mean"][-1]  # last layer, mean of heads, as the page's heatmap shows it
        source_words = [j for j, c in enumerate(cross["cols"]) if c not in ("<s>", "</s>")]
        targets = [i for i, token in enumerate(cross["rows"]) if token not in ("<s>", "</s>")]
        for position, i in enumerate(targets):  # position: target word index
            best = max(source_words, key=lambda j: matrix[i, j])
            hits += source_words.index(best) == len(source_words) - 1 - position
            total += 1
    assert total > 40 and hits / total >= 0.9, f"anti-diagonal for {hits}/{total} target words"


def test_copy_task_later_tokens_attend_to_the_matching_earlier_token() -> None:
    loaded = fixture("copy-lm")
    assert loaded.task == "lm"
    rng = random.Random(99)
    vocab = words("copy-lm")
    examples = []
    for i in range(20):
        seq = rng.sample(vocab, rng.randint(4, 7))
        examples.append(
            Example(
                id=f"c{i}",
                source=f"t:{i}",
                fields={"text": " ".join(seq) + " |", "target": " " + " ".join(seq)},
                index=i,
            )
        )
    hits = total = 0
    for cap in capture_batch(loaded, examples, max_length=64, needs=HEAD_MEANS):
        k = (len(cap.sequences["input"]) - 2) // 2  # <|endoftext|> w1..wk | w1..wk
        mean = cap.main.head_mean[-1]  # last layer, mean of heads
        for j in range(1, k + 1):
            hits += int(np.argmax(mean[k + j])) == j  # the row predicting copy j looks at the first w_j
            total += 1
        assert cap.prediction.text == examples[int(cap.example.id[1:])].fields["target"]
    assert hits / total >= 0.9, f"induction for {hits}/{total} positions"


@pytest.fixture(scope="module")
def marker_reports() -> list:
    loaded = fixture("marker-classifier")
    lines = (FIXTURES / "marker-classifier" / "heldout.jsonl").read_text(encoding="utf-8").splitlines()
    rows = [json.loads(line) for line in lines]
    examples = [
        Example(
            id=r["id"],
            source=f"heldout:{i + 1}",
            fields={"text": r["text"]},
            label=r["label"],
            metadata={"marker_index": r["marker_index"]},
            index=i,
        )
        for i, r in enumerate(rows)
    ]
    reports = []
    for start in range(0, len(examples), 8):
        batch = examples[start : start + 8]
        for cap in capture_batch(loaded, batch, max_length=64, needs=combined_needs(MARKER_METHODS)):
            reports.append(analyze(cap, MARKER_METHODS, index=cap.example.index))
    return reports


def marker_hit_rate(reports: list, method: str) -> float:
    hits = 0
    for report in reports:
        scores = next(s for s in report.token_scores if s.method == method)
        values = report.word_scores(scores)
        hits += int(np.argmax(values)) == report.capture.example.metadata["marker_index"]
    return hits / len(reports)


def test_marker_classifier_predicts_from_the_marker(marker_reports: list) -> None:
    correct = [r.capture.prediction.text == r.capture.example.label for r in marker_reports]
    assert np.mean(correct) >= 0.98


def test_relevancy_ranks_the_marker_first(marker_reports: list) -> None:
    """Chance is about 1/9 (5-12 filler words plus the marker); relevancy must be far above it."""
    assert marker_hit_rate(marker_reports, "relevancy") >= 0.9


def test_marker_hit_rates_of_raw_attention_and_rollout_are_reported(marker_reports: list) -> None:
    """The README quotes these; they are measured, not asserted to be high."""
    rates = {m: marker_hit_rate(marker_reports, m) for m in ("attention", "rollout", "relevancy")}
    assert all(0.0 <= r <= 1.0 for r in rates.values())
    print("marker ranked first:", rates)


def test_generated_reversal_is_correct_and_anti_diagonal() -> None:
    """Without a target attnviz generates; the reversal model must reverse and align anti-diagonally."""
    loaded = fixture("reverse-seq2seq")
    source = "amber iris koala delta grove"
    example = Example(id="g", source="t:1", fields={"source": source}, index=0)
    cap = capture_batch(loaded, [example], max_length=32, needs=HEAD_MEANS)[0]
    assert cap.prediction.text.split() == source.split()[::-1]
    assert cap.prediction.details["generated"]
    target, src = cap.sequences["target"], cap.sequences["source"]
    rows = [i for i, s in enumerate(target.special) if not s]
    cols = [j for j, s in enumerate(src.special) if not s]
    mean = cap.attentions["cross"].head_mean[-1]  # last layer, mean of heads
    assert [cols.index(cols[int(np.argmax(mean[i, cols]))]) for i in rows] == list(range(len(cols)))[::-1]
