"""Every sample input renders end to end with a tiny offline model of the family it needs."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from bs4 import BeautifulSoup
from page_helpers import heatmaps

from attnviz.api import render_reports
from attnviz.config import GenerationOptions, RenderOptions
from attnviz.output.schema import validate_summary

SAMPLES = Path(__file__).resolve().parent.parent / "sample_inputs"


@pytest.mark.parametrize(
    ("sample", "kind", "task"),
    [
        ("reviews.jsonl", "bert-classifier", "classify"),
        ("sentences.txt", "gpt2-classifier", "classify"),
        ("nli_pairs.jsonl", "roberta-classifier", "classify"),
        ("qa.jsonl", "bert-qa", "qa"),
        ("prompts.jsonl", "llama-lm", "lm"),
        ("translation.jsonl", "marian-seq2seq", "seq2seq"),
        ("summarization.jsonl", "t5-seq2seq", "seq2seq"),
    ],
)
def test_sample_renders(tiny_loaded: Callable, tmp_path: Path, sample: str, kind: str, task: str) -> None:
    path = SAMPLES / sample
    lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    options = RenderOptions(out_dir=tmp_path, formats=("html", "json"), generation=GenerationOptions(max_new_tokens=4))
    summary = render_reports([str(path)], options, loaded=tiny_loaded(kind))
    assert summary["status"] == "complete" and summary["run"]["task"] == task
    validate_summary(summary)
    assert summary["counts"]["examples"] == len(lines)
    page = BeautifulSoup((tmp_path / summary["examples"][0]["page"]).read_text(encoding="utf-8"), "html.parser")
    kinds = list(heatmaps(page))
    expected = {"seq2seq": ["cross", "encoder", "decoder"]}.get(task, ["self"])
    assert kinds == expected
    if task == "qa":
        assert page.select_one("mark.answer").get_text() == summary["examples"][0]["prediction"]["text"]
    if task in ("lm", "seq2seq"):
        first = page.select_one('.card.method[data-method="attention"]')
        rows = first.select("table.rows tbody tr")
        assert len(rows) == len(summary["examples"][0]["scores"]["attention"]["rows"]) > 0
