"""An example page driven in a real browser (the ``browser`` fixture: headless Chromium through Playwright;
skipped, with the reason, where either is missing; ``.ci/run`` installs both)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from attnviz.api import render_reports
from attnviz.config import RenderOptions
from attnviz.output.colors import rgb

CELL_SIZE = "() => parseInt(getComputedStyle(document.querySelector('.hm')).getPropertyValue('--cell'))"
STATIC_SIZE = "() => { const i = document.querySelector('.hm-static'); return [i.clientWidth, i.naturalWidth]; }"


@pytest.fixture(scope="module")
def report(tiny_loaded: Callable, tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = tmp_path_factory.mktemp("in") / "one.txt"
    data.write_text("the cat sat on the mat and <b>purred</b>\n", encoding="utf-8")
    out = tmp_path_factory.mktemp("out")
    options = RenderOptions(out_dir=out, methods=("attention", "heads"), formats=("html",), save_tensors=True)
    render_reports([str(data)], options, loaded=tiny_loaded("bert-classifier"))
    return (
        out / "examples" / "one.txt-1.html"
        if (out / "examples" / "one.txt-1.html").exists()
        else next((out / "examples").glob("*.html"))
    )


def _open(browser: Any, page_path: Path, scripts: bool = True) -> tuple[Any, list[str], list[str]]:
    context = browser.new_context(java_script_enabled=scripts, viewport={"width": 1000, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    requests: list[str] = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("request", lambda request: requests.append(request.url))
    page.goto(page_path.as_uri())
    return page, errors, requests


def _pixels(page: Any) -> np.ndarray:
    """The heatmap canvas's pixels, (height, width, 3)."""
    width, height, flat = page.evaluate(
        """() => { const c = document.querySelector('.hm[data-kind="self"] .hm-canvas');
                   const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
                   return [c.width, c.height, Array.from(d)]; }"""
    )
    return np.asarray(flat, dtype=np.uint8).reshape(height, width, 4)[..., :3]


def test_canvas_heatmap_draws_and_redraws(browser: Any, report: Path) -> None:
    page, errors, requests = _open(browser, report)
    page.wait_for_selector("body[data-heatmaps=drawn]", timeout=10_000)
    tensors = np.load(report.with_suffix(".npz"))["attention_self"].astype(np.float64)  # (L, H, n, n)
    layers, heads, n, _ = tensors.shape
    cell = int(
        page.evaluate("() => parseInt(getComputedStyle(document.querySelector('.hm')).getPropertyValue('--cell'))")
    )
    assert page.is_visible(".hm-canvas") and not page.is_visible(".hm-static")
    # The token view is built by the script: one span per token, special tokens marked, shaded like the words.
    page.select_option("#unit-select", "tokens")
    token_spans = page.locator('.card.method[data-method="attention"] .tokens-view .tok')
    assert token_spans.count() == n and token_spans.first.get_attribute("class") == "tok special"
    pixels = _pixels(page)
    assert pixels.shape[:2] == (n * cell, n * cell)  # one cell per query × key
    centres = pixels[cell // 2 :: cell, cell // 2 :: cell]
    mean = tensors[-1].mean(axis=0)
    expected = rgb(np.round(mean / mean.max() * 255) / 255)  # the head mean travels as 256 levels
    assert np.abs(centres.astype(int) - expected.astype(int)).max() <= 1
    # Another layer and one head: the canvas and the title change to what was picked.
    page.select_option('.heat-layer[data-kind="self"]', index=0)
    page.select_option('.heat-head[data-kind="self"]', index=2)  # after "mean": head 2
    assert page.text_content('.heat-title[data-kind="self"]') == "layer 1, head 2"
    head = tensors[0, 1]
    expected = rgb(np.round(head / head.max() * 15) / 15)
    centres = _pixels(page)[cell // 2 :: cell, cell // 2 :: cell]
    assert np.abs(centres.astype(int) - expected.astype(int)).max() <= 1
    # Hovering reads a cell's weight; opening a layer's section draws each of its heads.
    page.hover(".hm-canvas", position={"x": cell * 1.5, "y": cell * 0.5})
    assert "→" in page.text_content('.heat-value[data-kind="self"]')
    page.click('details.head-grid[data-layer="1"] summary')
    page.wait_for_selector('details.head-grid[data-layer="1"] figure canvas')  # drawn on the "toggle" event
    assert page.locator('details.head-grid[data-layer="1"] canvas').count() == heads
    assert errors == []
    assert all(url.startswith("file://") for url in requests)


def test_page_reads_without_scripts(browser: Any, report: Path) -> None:
    page, errors, _ = _open(browser, report, scripts=False)
    assert page.is_visible(".hm-static") and not page.is_visible(".hm-canvas")
    assert page.locator(".tokens.words-view .tok").count() > 0 and page.is_visible("table.heat.metric")
    size = page.evaluate(
        "() => { const i = document.querySelector('.hm-static'); return [i.clientWidth, i.naturalWidth]; }"
    )
    assert size[0] > size[1]  # the one-pixel-per-cell image is scaled up (pixelated), not shown tiny
    words = page.locator(".tokens.words-view .tok").all_text_contents()
    assert words[words.index("purred") - 3 : words.index("purred") + 1] == ["<", "b", ">", "purred"]  # text, not markup
    assert page.locator(".tokens b").count() == 0
    assert errors == []


def test_single_file_bundle_runs_every_page_script(browser: Any, report: Path, tmp_path: Path) -> None:
    """The bundle's policy allows the pages' scripts by hash (frames inherit it): no violation, heatmaps drawn."""
    from attnviz.output.bundle import bundle_report

    bundle = bundle_report(report.parent.parent, tmp_path / "one.html")
    page, errors, requests = _open(browser, bundle)
    page.wait_for_function(
        "() => Array.from(document.querySelectorAll('iframe')).some("
        "f => f.contentDocument && f.contentDocument.body && f.contentDocument.body.dataset.heatmaps === 'drawn')",
        timeout=10_000,
    )
    assert errors == []
    assert all(url.startswith(("file://", "about:")) for url in requests)
