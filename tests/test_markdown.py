"""summary.md: untrusted text escaped, tables intact, short enough for a PR comment, thresholds reported."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from bs4 import BeautifulSoup
from markdown_it import MarkdownIt

from attnviz.output.check import CheckResult, check_summary, parse_thresholds
from attnviz.output.markdown import MarkdownRenderer, md_escape, summary_markdown

HOSTILE_ID = "<script>alert(1)</script>"
HOSTILE_TEXT = "neg | ative &lt;b&gt;\n# heading [x](https://evil.example) **bold** `code` @octocat"
HOSTILE_WORDS = [["<img src=x onerror=alert(1)>", 0.5], ["|", 0.3], ["\\", 0.1]]
METHODS = ["attention", "rollout", "relevancy", "norms", "flow", "input_x_gradient", "integrated_gradients"]


def entry(index: int, **changes: Any) -> dict[str, Any]:
    base = {
        "id": f"ex-{index}",
        "index": index,
        "page": f"examples/ex-{index}.html",
        "label": "positive",
        "prediction": {"text": "positive", "score": 0.9 - index / 100, "correct": True},
        "scores": {"attention": {"top_words": [["good", 0.4], ["fine", 0.2]]}},
        "method_correlations": [{"a": "attention", "b": "rollout", "spearman": 0.5}],
        "metrics": {},
    }
    return {**base, **changes}


def document(examples: list[dict[str, Any]] | None = None, **changes: Any) -> dict[str, Any]:
    metrics: dict[str, Any] = {
        "examples": 24,
        "skipped": 2,
        "truncated": 3,
        "accuracy": 0.75,
        "mean_entropy": 0.57,
        "diffuse_head_share": 0.02,
        "sink_head_share": 0.41,
    }
    spread: dict[str, Any] = {"mean_entropy": 0.01}
    for i, method in enumerate(METHODS):
        for family in (
            "comprehensiveness",
            "sufficiency",
            "comprehensiveness_margin",
            "agreement_ig",
            "plausibility_f1",
        ):
            metrics[f"{family}.{method}"] = 0.1 * i - 0.2
            spread[f"{family}.{method}"] = 0.05
    base = {
        "schema_version": "1.0",
        "kind": "render",
        "status": "failed",
        "error": "data.jsonl:7: field 'text': must be a string | got <int>",
        "run": {
            "model": "tiny/bert",
            "revision": None,
            "task": "classify",
            "inputs": ["data.jsonl"],
            "options": {"methods": METHODS, "max_length": 128},
        },
        "counts": {"examples": 24, "skipped": 2, "truncated": 3},
        "dataset": {
            "primary_method": "attention",
            "metrics": metrics,
            "spread": spread,
            "disagreements": [{"id": HOSTILE_ID, "page": "examples/x.html", "min_spearman": -0.4}],
        },
        "examples": [entry(i) for i in range(24)] if examples is None else examples,
        "skipped": [],
    }
    return {**base, **changes}


def hostile_document() -> dict[str, Any]:
    hostile = entry(
        3,
        id=HOSTILE_ID,
        label="pos|itive",
        prediction={"text": HOSTILE_TEXT, "score": 0.2, "correct": False},
        scores={"attention": {"top_words": HOSTILE_WORDS}},
    )
    doc = document([entry(0), entry(1), hostile])
    doc["dataset"]["metrics"]["a|b <i>"] = 1.0  # a metric name is untrusted too
    return doc


def rendered(markdown: str) -> BeautifulSoup:
    """GitHub-like rendering: CommonMark with raw HTML on, plus tables."""
    return BeautifulSoup(MarkdownIt("commonmark").enable("table").render(markdown), "html.parser")


def tables(markdown: str) -> Iterator[list[str]]:
    """Each Markdown table as its lines."""
    block: list[str] = []
    for line in [*markdown.splitlines(), ""]:
        if line.startswith("|"):
            block.append(line)
        elif block:
            yield block
            block = []


def test_md_escape() -> None:
    assert md_escape("<b>|*_`[x]#~&\\</b>") == r"\<b\>\|\*\_\`\[x\]\#" + "\u2060" + r"\~\&\\\</b\>"
    assert md_escape("a\nb\r\nc\u2028d") == "a b c d"
    assert md_escape("@octocat") == "@\u2060octocat"
    # Terminal controls and bidirectional overrides are shown, not run: escape sequences, NUL, C1, U+202E.
    hostile = "a\x1b]0;owned\x07\x1bc\x00\x9b\u202eb\u2066"
    assert md_escape(hostile) == r"a\x1b\]0;owned\x07\x1bc\x00\x9b\u202eb\u2066"
    assert md_escape(None) == ""


def test_hostile_text_cannot_inject_html_or_links() -> None:
    markdown = summary_markdown(hostile_document())
    assert re.search(r"(?<!\\)<", markdown) is None  # every "<" is escaped
    html = rendered(markdown)
    assert html.find(["script", "img", "b", "code", "strong"]) is None
    assert not [a for a in html.find_all("a") if "evil" in a.get("href", "")]
    assert [h.get_text() for h in html.find_all(["h1", "h2", "h3", "h4"])][0].startswith("attnviz report")
    text = html.get_text()
    assert HOSTILE_ID in text and "<img src=x onerror=alert(1)>" in text and "&lt;b&gt;" in text


def test_tables_keep_their_shape() -> None:
    doc = hostile_document()
    markdown = summary_markdown(doc, check_summary(doc, parse_thresholds(["a|b <i>=1"], [])))
    for block in tables(markdown):
        widths = {len(re.findall(r"(?<!\\)\|", line)) for line in block}
        assert len(widths) == 1, block  # no escaped pipe or newline adds or splits a cell
    html = rendered(markdown)
    for table in html.find_all("table"):
        header = len(table.find("thead").find_all("th"))
        assert all(len(row.find_all("td")) == header for row in table.find("tbody").find_all("tr"))
    worst = [t for t in html.find_all("table") if t.find("th").get_text() == "id"][0]
    first = [td.get_text() for td in worst.find("tbody").find("tr").find_all("td")]
    assert first[0] == HOSTILE_ID  # the wrong prediction comes first
    assert first[1].replace("\u2060", "").startswith("neg | ative &lt;b&gt; # heading") and first[3] == "pos|itive ✗"
    thresholds = [t for t in html.find_all("table") if t.find("th").get_text() == "metric"][0]
    assert [td.get_text() for td in thresholds.find("tbody").find_all("td")][:2] == ["a|b <i>", "≥ 1"]


def test_short_enough_for_a_comment() -> None:
    doc = document()
    result = check_summary(doc, parse_thresholds(["accuracy=0.8", "comprehensiveness_margin.attention=0"], []))
    markdown = summary_markdown(doc, result)
    assert len(markdown.splitlines()) <= 60
    assert markdown.count("| ex-") == 5  # the worst examples only, not all 24
    assert "The run stopped early" in markdown and "2 input lines were skipped" in markdown
    assert "3 examples were truncated at 128 tokens" in markdown
    assert "at comprehensiveness" in markdown and "attention, rollout" in markdown  # margins ≤ 0


def test_key_numbers_and_faithfulness() -> None:
    markdown = summary_markdown(document())
    assert "| mean head entropy | mean\\_entropy | 0.570 ± 0.010 |" in markdown
    assert "| accuracy | accuracy | 0.750 |" in markdown
    assert "| relevancy | 0.000 ± 0.050 |" in markdown
    assert "Methods disagree most on: \\<script\\>alert(1)\\</script\\> (ρ -0.400)." in markdown


def test_thresholds_section() -> None:
    doc = document(**{"status": "complete", "error": None})
    doc["dataset"]["metrics"]["accuracy"] = None
    passed = check_summary(doc, parse_thresholds(["examples=24"], ["sink_head_share=0.41"]))
    markdown = summary_markdown(doc, passed)
    assert "#### Thresholds: ✅ all 2 passed" in markdown
    assert "| examples | ≥ 24 | 24 | ✅ pass |" in markdown
    assert "| sink\\_head\\_share | ≤ 0.41 | 0.41 | ✅ pass |" in markdown
    failed = check_summary(doc, parse_thresholds(["accuracy=0.5", "examples=24"], []))
    markdown = summary_markdown(doc, failed)
    assert "#### Thresholds: ❌ 1 of 2 failed" in markdown
    assert "| accuracy | ≥ 0.5 | n/a | ❌ fail |" in markdown
    assert "Thresholds" not in summary_markdown(doc)


def test_older_document_without_dataset() -> None:
    doc = document()
    del doc["dataset"]
    markdown = summary_markdown(doc)
    assert "Key numbers" not in markdown and "Faithfulness" not in markdown
    assert "| ex-23 |" in markdown  # the examples still come from the entries


def test_examples_may_be_a_generator() -> None:
    doc = document()
    expected = summary_markdown(doc)
    assert summary_markdown({**doc, "examples": iter(doc["examples"])}) == expected


def test_encode_orders_by_method_agreement() -> None:
    examples = [
        entry(0, method_correlations=[{"a": "x", "b": "y", "spearman": 0.9}]),
        entry(1, method_correlations=[{"a": "x", "b": "y", "spearman": -0.2}]),
    ]
    doc = document(
        examples,
        run={"model": "enc", "task": "encode", "score_is_confidence": False, "options": {"methods": ["attention"]}},
    )
    markdown = summary_markdown(doc)
    assert "lowest agreement between methods" in markdown
    assert markdown.index("| ex-1 |") < markdown.index("| ex-0 |")


class FakeRun:
    """What ``write_run`` reads from the pipeline's run document: the header, streamed example entries and the
    thresholds' outcome."""

    def __init__(self, doc: dict[str, Any], check: CheckResult | None = None) -> None:
        self.header = {k: v for k, v in doc.items() if k != "examples"}
        self._examples = doc["examples"]
        self.check = check

    def examples(self) -> Iterator[dict[str, Any]]:
        yield from self._examples


def test_renderer_writes_summary_md(tmp_path: Path) -> None:
    renderer = MarkdownRenderer()
    assert renderer.name == "markdown" and renderer.needs_figures == frozenset()
    doc = document()
    renderer.write_run(FakeRun(doc), tmp_path)  # type: ignore[arg-type]
    assert (tmp_path / "summary.md").read_text(encoding="utf-8") == summary_markdown(doc)
    check = check_summary(doc, parse_thresholds(["accuracy=0.9"], []))
    renderer.write_run(FakeRun(doc, check), tmp_path)  # type: ignore[arg-type]
    assert (tmp_path / "summary.md").read_text(encoding="utf-8") == summary_markdown(doc, check)
    assert "| accuracy | ≥ 0.9 | 0.75 | ❌ fail |" in summary_markdown(doc, check)


@pytest.mark.parametrize("value", ["a\nb", "x" * 500])
def test_rows_stay_on_one_line(value: str) -> None:
    doc = document([entry(0, id=value, prediction={"text": value, "score": 0.1, "correct": False})])
    (row,) = [line for line in summary_markdown(doc).splitlines() if line.startswith("| a b") or "xxxx" in line]
    assert len(row) < 300
