"""summary.md rendered by GitHub's own Markdown library (cmark-gfm with its autolink and table extensions): no
untrusted value becomes a link, an image, a mention, an issue reference or HTML."""

from __future__ import annotations

import re
from typing import Any

import cmarkgfm  # GitHub's own Markdown library (the test extra)
import pytest
from bs4 import BeautifulSoup
from test_markdown import document, entry

from attnviz.output.markdown import md_escape, summary_markdown

# Plain text GitHub turns into links, mentions or markup, and HTML a renderer could pass through.
PAYLOADS = (
    "http://evil.example/x",
    "https://evil.example",
    "HTTPS://EVIL.EXAMPLE",
    "ftp://evil.example",
    "www.evil.example",
    "WWW.EVIL.EXAMPLE",
    "(www.evil.example)",
    "*www.evil.example*",
    "_http://evil.example_",
    "~https://evil.example~",
    "<http://evil.example>",
    "<mailto:a@evil.example>",
    "someone@evil.example",
    "mailto:someone@evil.example",
    "xmpp:someone@evil.example",
    "@octocat",
    "@org/team",
    "#123",
    "GH-123",
    "owner/repo#123",
    "[x](http://evil.example)",
    "![i](http://evil.example/i.png)",
    "[ref]: http://evil.example",
    "[x][ref]",
    "<img src=x onerror=alert(1)>",
    "<script>alert(1)</script>",
    "<!-- hidden -->",
    "&lt;b&gt; &#60;i&#62;",
    "`code`",
    "**bold** _em_ ~~strike~~",
    "| cell | break |",
    "line\nbreak # heading",
    "javascript:alert(1)",
    "data:text/html,<b>x</b>",
    "\\<b\\>",
    ":smile: :+1:",
)
# GitHub-only references that cmark-gfm does not link but github.com does: checked on the raw text.
GITHUB_REFERENCES = re.compile(r"(?<![\w\u2060])@[A-Za-z0-9]|(?<![\w\u2060&])#[0-9]")


def render(markdown: str) -> BeautifulSoup:
    html = cmarkgfm.github_flavored_markdown_to_html(markdown, options=cmarkgfm.cmark.Options.CMARK_OPT_UNSAFE)
    return BeautifulSoup(html, "html.parser")


def hostile_document(payload: str) -> dict[str, Any]:
    bad = entry(
        1,
        id=payload,
        label=payload,
        prediction={"text": payload, "score": 0.2, "correct": False},
        scores={"attention": {"top_words": [[payload, 0.5]]}},
    )
    doc = document([entry(0), bad], error=payload)
    doc["run"] = {**doc["run"], "model": payload, "inputs": [payload], "revision": payload}
    doc["dataset"]["disagreements"] = [{"id": payload, "page": "examples/x.html", "min_spearman": -0.4}]
    doc["skipped"] = [{"index": 9, "source": f"{payload}:3", "reason": payload}]
    doc["dataset"]["metrics"][payload] = 1.0
    return doc


@pytest.mark.parametrize("payload", PAYLOADS)
def test_payload_stays_text_in_every_field(payload: str) -> None:
    markdown = summary_markdown(hostile_document(payload))
    html = render(markdown)
    assert html.find_all(["a", "img", "script", "code", "strong", "em", "del"]) == []
    headings = [h.name for h in render(summary_markdown(hostile_document("plain"))).find_all(["h1", "h2", "h3", "h4"])]
    assert [h.name for h in html.find_all(["h1", "h2", "h3", "h4"])] == headings
    assert GITHUB_REFERENCES.search(markdown) is None
    # The payload reads as itself (word joiners are invisible; line breaks become spaces).
    text = html.get_text().replace("\u2060", "")
    assert re.sub(r"\s+", " ", payload)[:30] in re.sub(r"\s+", " ", text)


def test_tables_keep_their_columns_with_payloads() -> None:
    html = render(summary_markdown(hostile_document("| a | b |")))
    for table in html.find_all("table"):
        widths = {len(row.find_all(["td", "th"])) for row in table.find_all("tr")}
        assert len(widths) == 1


def test_word_joiners_only_where_github_would_link() -> None:
    assert md_escape("see http://x.example or www.x.example") == "see http:\u2060//x.example or www\u2060.x.example"
    assert md_escape("a plain sentence: 3.5 stars") == "a plain sentence: 3.5 stars"
