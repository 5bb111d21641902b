"""The one-file bundle: every page in its own srcdoc frame, links rewritten to sections, nothing remote."""

from __future__ import annotations

from pathlib import Path

import pytest
from bs4 import BeautifulSoup

from attnviz.errors import OutputError
from attnviz.output.bundle import bundle_report, rewrite_links

PIXEL = (
    "data:image/png;base64,"
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)
CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'"
# What a hostile token looks like once attnviz has escaped it into a page: text, never markup.
HOSTILE = "&lt;/iframe&gt;&lt;script&gt;alert(1)&lt;/script&gt; &#34;&gt;&lt;img src=x onerror=alert(1)&gt;"

INDEX = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{CSP}">
<title>attnviz report · tiny</title>
<script>document.addEventListener("DOMContentLoaded", () => document.getElementById("examples").title = "ok");</script>
</head><body>
<ul><li>methods disagree most on <a href="examples/ex-1.html">ex-1</a></li></ul>
<table id="examples">
<tr><td><a href="examples/ex-2.html">ex-2</a></td></tr>
<tr><td><a class="id" href="examples/ex-1.html#importance">ex-1</a></td></tr>
</table>
<a href="https://example.org/docs">docs</a>
</body></html>
"""


def example(name: str) -> str:
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{CSP}">
<title>{name} · attnviz</title>
</head><body>
<header><a href="../index.html">← all examples</a></header>
<h1 id="title">page {name}</h1>
<p class="tokens">{HOSTILE}</p>
<img alt="heads" src="{PIXEL}">
<script type="application/json" id="attnviz-data">{{"tokens": ["a", "<a href=\\"../index.html\\">"]}}</script>
<script>const link = '<a href="../index.html">'; document.getElementById("title").dataset.ran = "1";</script>
</body></html>
"""


@pytest.fixture
def report(tmp_path: Path) -> Path:
    out = tmp_path / "report"
    (out / "examples").mkdir(parents=True)
    (out / "index.html").write_text(INDEX, encoding="utf-8")
    for name in ("ex-1", "ex-2", "ex-3"):  # ex-3 is not linked from the index
        (out / "examples" / f"{name}.html").write_text(example(name), encoding="utf-8")
    (out / "summary.json").write_text("{}", encoding="utf-8")
    return out


@pytest.fixture
def bundle(report: Path, tmp_path: Path) -> BeautifulSoup:
    target = tmp_path / "shared" / "report.html"
    assert bundle_report(report, target) == target
    assert [p.name for p in target.parent.iterdir()] == ["report.html"]  # one file, no temp file left
    return BeautifulSoup(target.read_text(encoding="utf-8"), "html.parser")


def frames(page: BeautifulSoup) -> dict[str, BeautifulSoup]:
    """Section id → the document its frame shows."""
    found = {}
    for section in page.find_all("section"):
        (frame,) = section.find_all("iframe")
        found[section["id"]] = BeautifulSoup(frame["srcdoc"], "html.parser")
    return found


def test_csp_forbids_remote_loads(bundle: BeautifulSoup) -> None:
    csp = bundle.find("meta", attrs={"http-equiv": "Content-Security-Policy"})
    assert csp is not None
    assert "default-src 'none'" in csp["content"]
    assert "img-src data:" in csp["content"]
    assert "http" not in csp["content"]


def test_index_first_then_every_example_in_table_order(bundle: BeautifulSoup) -> None:
    assert list(frames(bundle)) == ["index", "example-ex-2", "example-ex-1", "example-ex-3"]
    documents = frames(bundle)
    for name in ("ex-1", "ex-2", "ex-3"):
        document = documents[f"example-{name}"]
        assert document.find("h1").get_text() == f"page {name}"
        assert document.find("title").get_text() == f"{name} · attnviz"
    assert documents["index"].find("table", id="examples") is not None


def test_index_links_point_to_sections(bundle: BeautifulSoup) -> None:
    ids = {tag["id"] for tag in bundle.find_all(id=True)}
    index = frames(bundle)["index"]
    links = [(a["href"], a.get("target"), a.get("class")) for a in index.find_all("a")]
    assert links == [
        ("#example-ex-1", "_top", None),  # a highlight above the table
        ("#example-ex-2", "_top", None),
        ("#example-ex-1", "_top", ["id"]),  # other attributes are kept; the in-page fragment is dropped
        ("https://example.org/docs", None, None),  # not a report page: left alone
    ]
    assert {"example-ex-1", "example-ex-2"} <= ids
    for section in bundle.find_all("section"):
        heading = section.find("h2")
        if heading is not None:  # every example section links back to the index
            assert [a["href"] for a in heading.find_all("a")] == [f"#{section['id']}", "#index"]


def test_example_back_links_go_to_the_index_section(bundle: BeautifulSoup) -> None:
    document = frames(bundle)["example-ex-1"]
    back = document.find("header").find("a")
    assert (back["href"], back["target"]) == ("#index", "_top")


def test_scripts_keep_their_text(bundle: BeautifulSoup, report: Path) -> None:
    """Markup inside scripts is not a link: only real <a> tags are rewritten."""
    document = frames(bundle)["example-ex-1"]
    original = BeautifulSoup((report / "examples" / "ex-1.html").read_text(encoding="utf-8"), "html.parser")
    assert [s.string for s in document.find_all("script")] == [s.string for s in original.find_all("script")]
    assert document.find("img")["src"] == PIXEL


def test_no_remote_urls_anywhere(bundle: BeautifulSoup) -> None:
    documents = [bundle, *frames(bundle).values()]
    for document in documents:
        for tag in document.find_all(src=True):
            assert tag["src"].startswith("data:")
        for tag in document.find_all(["link", "iframe", "object", "embed", "base"]):
            assert tag.name == "iframe" and not tag.get("src")
    remote = [a["href"] for d in documents for a in d.find_all("a", href=True) if not a["href"].startswith("#")]
    assert remote == ["https://example.org/docs"]  # from the index itself; the CSP stops nothing a click opens


def test_hostile_text_stays_text(bundle: BeautifulSoup) -> None:
    # The outer page has only its own script; a token cannot close the srcdoc attribute or the frame.
    assert len(bundle.find_all("script")) == 1
    assert len(bundle.find_all("iframe")) == 4
    assert bundle.find("img") is None
    document = frames(bundle)["example-ex-1"]
    shown = document.find("p", class_="tokens").get_text()
    assert shown == '</iframe><script>alert(1)</script> "><img src=x onerror=alert(1)>'
    assert document.find("img", src="x") is None


def test_not_a_report(tmp_path: Path) -> None:
    with pytest.raises(OutputError, match="no index.html"):
        bundle_report(tmp_path, tmp_path / "out.html")


def test_unwritable_target_is_an_output_error(report: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("", encoding="utf-8")
    with pytest.raises(OutputError, match="cannot write bundle"):
        bundle_report(report, blocker / "report.html")


def test_rewrite_links_resolves_relative_paths() -> None:
    anchors = {"index.html": "index", "examples/a b.html": "example-a b"}
    text = '<p><a href="../index.html" title="x &amp; y">i</a> <a href="a%20b.html">a</a> <a href="#top">t</a></p>'
    rewritten = rewrite_links(text, "examples/c.html", anchors)
    links = [
        (a["href"], a.get("target"), a.get("title")) for a in BeautifulSoup(rewritten, "html.parser").find_all("a")
    ]
    assert links == [("#index", "_top", "x & y"), ("#example-a b", "_top", None), ("#top", None, None)]
    assert rewrite_links("<p>no links</p>", "index.html", anchors) == "<p>no links</p>"
