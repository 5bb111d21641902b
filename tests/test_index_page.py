"""The run index (index.html): the first page of rows as HTML, every row in one JSON block that the page's
script pages, sorts and filters; untrusted ids, labels and words stay text. The browser test opens a
10,000-example index in headless Chromium (skipped, with the reason, where Playwright or Chromium is missing)."""

from __future__ import annotations

import json
import random
import time
from pathlib import Path
from typing import Any

from bs4 import BeautifulSoup

from attnviz.analysis.pipeline import page_name
from attnviz.output.aggregate import DatasetAggregate
from attnviz.output.html import INDEX_FIELDS, INDEX_PAGE_ROWS, index_page
from attnviz.output.summary import run_header

HOSTILE = [
    "<script>alert(1)</script>",
    '"><img src=x onerror=alert(2)>',
    "</script><script>alert(3)</script>",
    "a'b&amp;c<!--",
]
LABELS = ["positive", "negative", "<b>bold</b>"]


def make_run(n: int) -> dict[str, Any]:
    return {
        "model": "tiny <model>",
        "revision": None,
        "task": "classify",
        "device": "cpu",
        "dtype": "float32",
        "capture": "fast",
        "attnviz_version": "0.0.test",
        "versions": {"transformers": "x", "torch": "y"},
        "inputs": ["generated"],
        "options": {"max_length": 32, "methods": ["attention"], "seed": 0},
    }


def make_header(n: int) -> dict[str, Any]:
    dataset = DatasetAggregate().result(0)
    dataset["metrics"]["examples"] = n
    return run_header(make_run(n), dataset, [], status="complete")


def make_rows(n: int, seed: int = 0) -> list[dict[str, Any]]:
    """Rows shaped like ``aggregate.index_row``: hostile ids first (so they are on the static page too) and
    once more past the first page; the lowest and highest score sit far beyond the first page."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        example_id = HOSTILE[i] if i < len(HOSTILE) else f"ex-{i:05d}"
        if i == n - 7:
            example_id = HOSTILE[1] + " late"
        label = LABELS[i % len(LABELS)]
        predicted = LABELS[(i // 2) % 2]
        score = None if i % 97 == 13 else round(0.05 + 0.9 * rng.random(), 6)
        if i == n - 50:
            score = 0.001
        if i == n - 60:
            score = 0.999
        rows.append(
            {
                "id": example_id,
                "index": i,
                "page": f"examples/{page_name(example_id)}.html",
                "label": label,
                "prediction": {"text": predicted, "score": score, "correct": label == predicted},
                "top_words": [["<i>word</i>" if i == 0 else f"w{i}", 0.5], ["great", 0.2], ["film", 0.1]],
                "mean_entropy": round(rng.random(), 6),
                "mean_special_share": round(rng.random(), 6),
                "comprehensiveness_margin": None,
                "truncated": i % 500 == 3,
                "original_length": 40 if i % 500 == 3 else 12,
            }
        )
    return rows


def write_index(folder: Path, n: int) -> tuple[Path, list[dict[str, Any]]]:
    rows = make_rows(n)
    path = folder / "index.html"
    path.write_text(index_page(make_header(n), rows), encoding="utf-8")
    return path, rows


# --- the HTML as written -------------------------------------------------------------------------------


def test_static_table_holds_first_page_and_json_holds_all(tmp_path: Path) -> None:
    path, rows = write_index(tmp_path, 250)
    text = path.read_text(encoding="utf-8")
    page = BeautifulSoup(text, "html.parser")
    static = page.select("table#examples tbody tr")
    assert len(static) == INDEX_PAGE_ROWS == 100
    ids = [tr.select("td")[1].get_text() for tr in static]
    assert ids == [row["id"] for row in rows[:INDEX_PAGE_ROWS]]
    assert [tr.select_one("a")["href"] for tr in static] == [row["page"] for row in rows[:INDEX_PAGE_ROWS]]
    assert [tr.select_one("a")["title"] for tr in static[: len(HOSTILE)]] == HOSTILE  # full id on hover
    note = page.select_one("#examples-more").get_text(" ", strip=True)
    assert "first 100 of 250 examples" in note and "summary.json" in note and "scripts" in note
    assert page.select_one("#examples-pager")["hidden"] is not None  # shown by the script only
    assert static[3].select_one("td.notes").get_text() == "truncated (40 tokens)"

    block = page.find("script", id="examples-data")
    assert block["type"] == "application/json"
    data = json.loads(block.string)
    assert tuple(data["fields"]) == INDEX_FIELDS
    assert len(data["rows"]) == 250
    f = {name: i for i, name in enumerate(data["fields"])}
    assert [r[f["id"]] for r in data["rows"]] == [row["id"] for row in rows]
    assert [r[f["page"]] for r in data["rows"]] == [row["page"] for row in rows]
    assert [r[f["score"]] for r in data["rows"]] == [row["prediction"]["score"] for row in rows]
    assert [r[f["label"]] for r in data["rows"]] == [row["label"] for row in rows]
    assert data["rows"][0][f["top_words"]] == ["<i>word</i>", "great", "film"]
    assert data["rows"][3][f["truncated"]] is True and data["rows"][3][f["original_length"]] == 40


def test_hostile_text_stays_text(tmp_path: Path) -> None:
    path, rows = write_index(tmp_path, 250)
    text = path.read_text(encoding="utf-8")
    page = BeautifulSoup(text, "html.parser")
    # Only our two scripts: the JSON block and the page script; no markup made from data.
    assert [s.get("type") for s in page.find_all("script")] == ["application/json", None]
    assert page.find("img") is None and page.find("i") is None and not page.select("table#examples b")
    assert text.count("</script") == 2
    raw = text.split('<script type="application/json" id="examples-data">', 1)[1].split("</script>", 1)[0]
    assert not any(ch in raw for ch in "<>&'")  # htmlsafe JSON: nothing the HTML parser could act on
    assert HOSTILE[1] + " late" in json.loads(raw)["rows"][-7]
    pills = [p.get_text() for p in page.select("table#examples tbody tr")[0].select("td.words .pill")]
    assert pills[0] == "<i>word</i>"


def test_unsafe_links_are_dropped(tmp_path: Path) -> None:
    rows = make_rows(3)
    rows[0]["page"] = "javascript:alert(1)"
    rows[1]["page"] = "//evil.example/x.html"
    page = BeautifulSoup(index_page(make_header(3), rows), "html.parser")
    links = [tr.select_one("a") for tr in page.select("table#examples tbody tr")]
    assert links[0] is None and links[1] is None and links[2]["href"] == rows[2]["page"]
    data = json.loads(page.find("script", id="examples-data").string)
    assert [r[INDEX_FIELDS.index("page")] for r in data["rows"]][:2] == ["", ""]
    assert page.select_one("#examples-more") is None  # everything fits on the first page
    assert page.select_one("th[data-key=notes]") is None  # no example was truncated: no notes column


# --- in a real browser ---------------------------------------------------------------------------------


def test_big_index_in_browser(browser: Any, tmp_path: Path) -> None:
    n = 10_000
    path, rows = write_index(tmp_path, n)
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    problems: list[str] = []
    remote: list[str] = []
    page.on("console", lambda m: m.type in ("error", "warning") and problems.append(f"console {m.type}: {m.text}"))
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on("dialog", lambda d: (problems.append(f"dialog: {d.message}"), d.dismiss()))
    page.on("request", lambda r: None if r.url.startswith(("file:", "data:")) else remote.append(r.url))

    started = time.perf_counter()
    page.goto(path.as_uri())
    page.wait_for_selector("table#examples[data-ready]", timeout=20_000)
    ready_ms = float(page.get_attribute("table#examples", "data-ready"))
    wall = time.perf_counter() - started
    assert ready_ms < 10_000, f"interactive after {ready_ms:.0f} ms (target: under 2 s; wall {wall:.1f} s)"

    table = page.locator("table#examples tbody")

    def ids() -> list[str]:
        return table.locator("tr td:nth-child(2)").all_text_contents()

    assert ids() == [row["id"] for row in rows[:100]]
    assert page.locator("#examples-more").is_hidden() and page.locator("#examples-pager").is_visible()
    top = page.locator("#examples-pager")
    assert top.locator("[data-out=status]").text_content() == "examples 1–100 of 10,000"

    top.locator("[data-act=last]").click()
    assert ids() == [row["id"] for row in rows[-100:]]
    assert HOSTILE[1] + " late" in ids()  # built by the script: still text
    assert top.locator("[data-act=page]").input_value() == "100"
    page.locator("#examples-pager-bottom [data-act=prev]").click()
    assert ids()[0] == rows[-200]["id"]

    # Sorting covers every row: the lowest and highest scores are far past the first page.
    scored = [row for row in rows if row["prediction"]["score"] is not None]
    by_score = sorted(scored, key=lambda row: (row["prediction"]["score"], row["index"]))
    page.locator("table#examples th[data-key=score]").click()
    assert page.get_attribute("table#examples th[data-key=score]", "aria-sort") == "ascending"
    assert top.locator("[data-act=page]").input_value() == "1"
    assert ids()[:3] == [row["id"] for row in by_score[:3]] and ids()[0] == rows[n - 50]["id"]
    top.locator("[data-act=page]").fill("2")
    top.locator("[data-act=page]").dispatch_event("change")
    assert ids()[0] == by_score[100]["id"]
    page.locator("table#examples th[data-key=score]").click()
    assert page.get_attribute("table#examples th[data-key=score]", "aria-sort") == "descending"
    assert ids()[0] == rows[n - 60]["id"]
    top.locator("[data-act=last]").click()
    missing = [row["id"] for row in rows if row["prediction"]["score"] is None]
    assert ids()[-1] == missing[-1]  # rows without a score come last in either direction

    page.locator("table#examples th[data-key=id]").click()
    assert ids()[0] == HOSTILE[1]  # '"' sorts first; the collator compares digits as numbers

    top.locator("[data-act=filter]").fill("ex-0999")
    assert ids() == [f"ex-0999{d}" for d in range(10) if d != 3]  # 9993 has a hostile id
    assert "matching the filter" in (top.locator("[data-out=status]").text_content() or "")
    top.locator("[data-act=filter]").fill("no such example")
    assert table.locator("tr").count() == 1 and "No example matches" in (table.text_content() or "")
    top.locator("[data-act=filter]").fill("")
    top.locator("[data-act=size]").select_option("250")
    assert len(ids()) == 250

    pages = {row["id"]: row["page"] for row in rows}
    links = table.locator("tr td:nth-child(2) a")
    assert [links.nth(i).get_attribute("href") for i in range(3)] == [pages[i] for i in ids()[:3]]
    assert page.locator("img").count() == 0 and page.locator("script").count() == 2
    assert not problems, problems
    assert not remote, remote
    context.close()


def test_index_without_scripts_in_browser(browser: Any, tmp_path: Path) -> None:
    path, rows = write_index(tmp_path, 250)
    context = browser.new_context(viewport={"width": 800, "height": 900}, java_script_enabled=False)
    page = context.new_page()
    page.goto(path.as_uri())
    assert page.locator("table#examples tbody tr").count() == 100
    assert page.locator("#examples-more").is_visible() and page.locator("#examples-pager").is_hidden()
    # At 800 px an id sits on one line (ellipsis, not a letter per line).
    box = page.locator("table#examples tbody tr").nth(10).locator("td").nth(1).bounding_box()
    assert box is not None and box["height"] < 40
    context.close()


def test_rows_built_by_script_follow_bundle_links(browser: Any, tmp_path: Path) -> None:
    """In the one-file bundle the index's links point at sections; rows the script builds must too."""
    from attnviz.output.bundle import rewrite_links

    rows = make_rows(250)
    anchors = {row["page"]: f"example-{Path(row['page']).stem}" for row in rows}
    text = rewrite_links(index_page(make_header(250), rows), "index.html", anchors)
    path = tmp_path / "index.html"
    path.write_text(text, encoding="utf-8")
    context = browser.new_context()
    page = context.new_page()
    page.goto(path.as_uri())
    page.wait_for_selector("table#examples[data-ready]")
    page.locator("#examples-pager [data-act=last]").click()
    link = page.locator("table#examples tbody tr").first.locator("a")
    assert link.text_content() == rows[200]["id"]
    assert link.get_attribute("href") == "#" + anchors[rows[200]["page"]] and link.get_attribute("target") == "_top"
    context.close()


def test_bundle_keeps_input_order_past_the_first_page(tmp_path: Path) -> None:
    """The bundle orders pages as the index lists them, also the rows only its data block holds."""
    from attnviz.output.bundle import find_pages

    n = INDEX_PAGE_ROWS + 50
    _, rows = write_index(tmp_path, n)
    (tmp_path / "examples").mkdir()
    for row in rows:
        (tmp_path / row["page"]).write_text("<title>x</title>", encoding="utf-8")
    _, pages = find_pages(tmp_path)
    assert [page.relative for page in pages] == [row["page"] for row in rows]


def test_run_options_show_their_values(tmp_path: Path) -> None:
    run = make_run(1)
    run["options"] |= {
        "generation": {"max_new_tokens": 20, "do_sample": False},
        "trust_sample": {"size": 500, "sampled": False},
        "target_label": None,
        "overwrite": True,
    }
    dataset = DatasetAggregate().result(0)
    page = BeautifulSoup(index_page(run_header(run, dataset, [], status="complete"), []), "html.parser")
    shown = {row.th.get_text(): row.td.get_text() for row in page.select("tr") if row.th and row.td}
    assert "None" not in page.get_text()  # no method gave words: the headers name none
    assert shown["generation"] == '{"max_new_tokens": 20, "do_sample": false}'
    assert shown["trust_sample"] == '{"size": 500, "sampled": false}'
    assert (shown["target_label"], shown["overwrite"], shown["methods"], shown["max_length"]) == (
        "null",
        "true",
        "attention",
        "32",
    )


def test_page_number_filters() -> None:
    from attnviz.output.html import environment

    fmt, sig = environment().filters["fmt"], environment().filters["sig"]
    assert [fmt(0.0001234), fmt(0.5), fmt(None), fmt(float("nan"))] == ["0.000", "0.500", "–", "–"]
    # Scores on a method's own scale keep 3 significant digits (relevancy's are often all under 0.001).
    assert [sig(0.0001234), sig(0.5), sig(12.345), sig(1.234e-05), sig(None)] == [
        "0.000123",
        "0.5",
        "12.3",
        "1.23e-05",
        "–",
    ]
