"""A whole run on a tiny model: HTML parsed for structure, escaping, no remote loads; PNGs; summary.json."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from bs4 import BeautifulSoup
from PIL import Image

from attnviz.analysis.pipeline import page_name
from attnviz.api import render_reports
from attnviz.config import RenderOptions
from attnviz.output.colors import rgb

HOSTILE = ["<script>alert(1)</script> was great", '"><img src=x onerror=alert(1)> awful']


@pytest.fixture(scope="module")
def run(tiny_loaded: Callable, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    data = tmp_path_factory.mktemp("in") / "reviews.jsonl"
    rows = [
        {"id": f"r{i}", "text": t, "label": "positive" if i == 0 else "negative", "stars": i}
        for i, t in enumerate(HOSTILE)
    ]
    rows[1]["extra"] = {"<b>k</b>": [1.5, True, None]}
    rows.append({"id": "long one", "text": " ".join(["word"] * 80), "label": "positive"})
    data.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    out = tmp_path_factory.mktemp("out")
    options = RenderOptions(out_dir=out, max_length=32, batch_size=2, save_tensors=True)
    summary = render_reports([str(data)], options, loaded=tiny_loaded("bert-classifier"))
    return out, summary


def soup(path: Path) -> BeautifulSoup:
    return BeautifulSoup(path.read_text(encoding="utf-8"), "html.parser")


def all_pages(out: Path) -> list[Path]:
    return [out / "index.html", *sorted((out / "examples").glob("*.html"))]


def test_files_written(run: tuple[Path, dict[str, Any]]) -> None:
    out, summary = run
    assert summary["status"] == "complete" and summary["counts"] == {
        "examples": 3,
        "skipped": 0,
        "truncated": 1,
    }
    for ex in summary["examples"]:
        assert (out / ex["page"]).is_file()
    assert (out / "examples" / f"{page_name('long one')}.npz").is_file()
    assert json.loads((out / "summary.json").read_text(encoding="utf-8")) == summary


def test_hostile_tokens_are_text_everywhere(run: tuple[Path, dict[str, Any]]) -> None:
    out, _ = run
    for path in all_pages(out):
        page = soup(path)
        scripts = page.find_all("script")
        # only our inline script and the JSON data block; no script came from a token
        assert all(s.get("type") in (None, "application/json") for s in scripts)
        assert not any("alert(1)" in (s.string or "") for s in scripts if s.get("type") is None)
        assert page.find("img", src="x") is None
        assert not [t for t in page.find_all(True) if any(a.startswith("on") for a in t.attrs)]
    page = soup(out / "examples" / "r0.html")
    shown = " ".join(t.get_text() for t in page.select(".words-view .tok"))
    assert "<" in shown and "script" in shown  # the markup is visible as text
    # Metadata values are shown as the JSON they were (not Python's True/None), escaped like everything else.
    note = next(p.get_text() for p in soup(out / "examples" / "r1.html").select("p.note") if "metadata" in p.get_text())
    assert note == 'metadata: stars = 1; extra = {"<b>k</b>": [1.5, true, null]}'


def test_no_remote_urls_and_csp(run: tuple[Path, dict[str, Any]]) -> None:
    out, _ = run
    for path in all_pages(out):
        page = soup(path)
        csp = page.find("meta", attrs={"http-equiv": "Content-Security-Policy"})
        assert csp is not None and "default-src 'none'" in csp["content"]
        for tag in page.find_all(src=True):
            assert tag["src"].startswith("data:image/png;base64,")
        for tag in page.find_all(href=True):
            assert "://" not in tag["href"] and not tag["href"].startswith("//")
        assert page.find("link") is None


def _cells(payload: dict[str, Any], shape: tuple[int, ...]) -> np.ndarray:
    """Dequantised matrices of a page's packed heatmap data: value = level / levels · scale."""
    levels = np.frombuffer(zlib.decompress(base64.b64decode(payload["data"])), dtype=np.uint8).reshape(shape)
    return levels / payload["levels"] * np.asarray(payload["scale"])[:, :, None, None]


def test_example_page_structure(run: tuple[Path, dict[str, Any]]) -> None:
    out, summary = run
    entry = summary["examples"][0]
    page = soup(out / "examples" / "r0.html")
    assert page.find("h1").get_text() == "r0"
    assert page.select_one(".pred").get_text() == entry["prediction"]["text"]
    tokens = entry["sequences"]["input"]["tokens"]
    n = len(tokens)
    heat = page.select_one('.hm[data-kind="self"]')
    # Labels are text (sharp, selectable), one per row and column, the full token in the title.
    assert [span["title"] for span in heat.select(".hm-cols span")] == tokens
    assert [span["title"] for span in heat.select(".hm-rows span")] == tokens
    # The static heatmap (scripts off): one pixel per cell, the last layer's head mean in the shared palette.
    tensors = np.load(out / "examples" / "r0.npz")["attention_self"].astype(np.float64)  # (L, H, n, n)
    mean = tensors[-1].mean(axis=0)
    still = Image.open(io.BytesIO(base64.b64decode(heat.select_one("img.hm-static")["src"].split(",", 1)[1])))
    assert still.size == (n, n)
    np.testing.assert_array_equal(np.asarray(still.convert("RGB")), rgb(mean / mean.max()))
    # The script's data: every layer's head mean (256 levels) and every head (16 levels), packed once.
    data = json.loads(page.find("script", id="attnviz-data").string)
    (payload,) = data["attentions"]
    assert [payload[k] for k in ("kind", "num_layers", "num_heads", "q", "k")] == ["self", 2, 4, n, n]
    means = _cells(payload["mean"], (2, 1, n, n))[:, 0]
    np.testing.assert_allclose(means, tensors.mean(axis=1), atol=0.5 / 255 * means.max() + 1e-6)
    heads = _cells(payload["heads"], (2, 4, n, n))
    np.testing.assert_allclose(heads, tensors, atol=0.5 / 15 * tensors.max() + 1e-6)
    assert len(page.select("details.head-grid")) == 2  # every layer's heads, collapsed until opened
    # Nothing embedded twice and nothing the page does not show: the only image is the static heatmap.
    assert [img["class"] for img in page.find_all("img")] == [["hm-static"]]
    metric_tables = page.select("table.heat.metric")
    assert len(metric_tables) == 8 and len(metric_tables[0].select("tbody tr")) == 2  # one table per head metric
    assert data["names"][0] == "attention" and len(data["methods"][0]) == 2  # stages (layers) of each method


def test_page_allows_only_its_own_scripts(run: tuple[Path, dict[str, Any]]) -> None:
    """The Content-Security-Policy lists the hash of each inline script on the page, and nothing else runs."""
    out, _ = run
    html = (out / "examples" / "r0.html").read_text(encoding="utf-8")
    page = BeautifulSoup(html, "html.parser")
    csp = page.find("meta", attrs={"http-equiv": "Content-Security-Policy"})["content"]
    scripts = [tag.string for tag in page.find_all("script") if not tag.get("type")]
    assert len(scripts) == 1
    digest = base64.b64encode(hashlib.sha256(scripts[0].encode("utf-8")).digest()).decode("ascii")
    assert f"script-src 'sha256-{digest}';" in csp
    assert "unsafe-inline' ;" not in csp and "unsafe-eval" not in csp and "script-src 'unsafe-inline'" not in csp


def test_truncation_stated_on_page(run: tuple[Path, dict[str, Any]]) -> None:
    out, summary = run
    long_entry = next(e for e in summary["examples"] if e["id"] == "long one")
    assert long_entry["truncated"] and long_entry["original_length"] == 82
    warn = soup(out / long_entry["page"]).select_one(".warn")
    assert warn is not None and "82 tokens" in warn.get_text() and "32" in warn.get_text()


def test_index_lists_every_example(run: tuple[Path, dict[str, Any]]) -> None:
    out, summary = run
    page = soup(out / "index.html")
    rows = page.select("table#examples tbody tr")
    assert [r.select_one("a").get_text() for r in rows] == [e["id"] for e in summary["examples"]]
    assert [r.select_one("a")["href"] for r in rows] == [e["page"] for e in summary["examples"]]
    assert page.select_one("table#examples th[data-type=num]") is not None  # sortable numeric columns


def test_pngs_decode_with_expected_sizes(run: tuple[Path, dict[str, Any]]) -> None:
    out, _ = run
    folder = out / "examples" / "r0"
    names = sorted(p.name for p in folder.glob("*.png"))
    assert names == sorted(
        [
            "heads_self_layer2.png",  # the last layer only: the default --png-layers
            "mean_self.png",
            "entropy_self.png",
            "special_share_self.png",
            "scores_attention.png",
            "scores_rollout.png",
            "scores_relevancy.png",
            "scores_norms.png",
            "scores_input_x_gradient.png",
            "scores_integrated_gradients.png",
            "sink_share_self.png",
        ]
    )
    for name in names:
        image = Image.open(io.BytesIO((folder / name).read_bytes()))
        image.load()
        assert image.format == "PNG" and image.width >= 300 and image.height >= 150
    width, height = Image.open(folder / "heads_self_layer2.png").size
    assert width > 2 * height  # the 4 heads of a layer side by side in one row


def test_summary_content(run: tuple[Path, dict[str, Any]]) -> None:
    from attnviz.output.schema import validate_summary

    _, summary = run
    validate_summary(summary)
    ex = summary["examples"][0]
    assert summary["schema_version"] == "1.0"
    assert summary["run"]["task"] == "classify" and summary["run"]["options"]["max_length"] == 32
    assert set(ex["heads"]["self"]) == {
        "entropy",
        "special_share",
        "first_token",
        "sink_share",
        "previous_token",
        "self_token",
        "next_token",
        "special_share_norm",
    }
    assert set(ex["flags"]) == {"diffuse", "sink_bound"} and set(ex["metrics"]) >= {"diffuse_head_share"}
    assert any("heads are diffuse" in m for m in ex["messages"])
    methods = {"attention", "rollout", "relevancy", "norms", "input_x_gradient", "integrated_gradients"}
    assert {(c["a"], c["b"]) for c in ex["method_correlations"]} == {
        (a, b)
        for i, a in enumerate(sorted(methods, key=list(ex["scores"]).index))
        for b in sorted(methods, key=list(ex["scores"]).index)[i + 1 :]
    }
    assert len(ex["heads"]["self"]["entropy"]) == 2 and len(ex["heads"]["self"]["entropy"][0]) == 4
    assert ex["scores"]["attention"]["stage"] == "layer 2"
    assert len(ex["scores"]["attention"]["tokens"]) == len(ex["sequences"]["input"]["tokens"])
    assert ex["prediction"]["correct"] == (ex["prediction"]["text"] == "positive")
    assert "timing" in summary and "total_seconds" in summary["timing"]


def test_npz_holds_raw_attention(run: tuple[Path, dict[str, Any]]) -> None:
    import numpy as np

    out, summary = run
    data = np.load(out / "examples" / "r0.npz")
    n = len(summary["examples"][0]["sequences"]["input"]["tokens"])
    assert data["attention_self"].shape == (2, 4, n, n)
    assert list(data["tokens_input"]) == summary["examples"][0]["sequences"]["input"]["tokens"]


def test_a_very_long_token_is_cut_on_the_page_and_kept_in_full_in_json(tiny_loaded: Callable, tmp_path: Path) -> None:
    """A 100,000-character word (one [UNK] whose word text is all of it): the page shows it cut, its hover text
    and summary.json keep it whole, so what the page lays out does not grow with the token."""
    from attnviz.output.base import MAX_TEXT_CHARS

    word = "x" * 100_000
    data = tmp_path / "in.jsonl"
    data.write_text(json.dumps({"id": "long", "text": f"a {word} b"}) + "\n", encoding="utf-8")
    options = RenderOptions(out_dir=tmp_path / "out", methods=("attention",), formats=("html", "json"))
    summary = render_reports([str(data)], options, loaded=tiny_loaded("bert-classifier"))
    (entry,) = summary["examples"]
    assert word in entry["sequences"]["input"]["words"]
    page = soup(tmp_path / "out" / entry["page"])
    payload = json.loads(page.find("script", id="attnviz-data").string)
    for script in page.find_all("script"):
        script.decompose()
    shown = [run for run in page.get_text(" ").split() if "xxx" in run]
    assert shown and max(map(len, shown)) <= MAX_TEXT_CHARS
    assert all(len(token) <= MAX_TEXT_CHARS for seq in payload["sequences"].values() for token in seq["tokens"])
    assert any(word in (tag.get("title") or "") for tag in page.find_all(True))
