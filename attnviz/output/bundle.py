"""One self-contained HTML file from a finished report folder: the index, then every example page.

Each page is a whole document with its own inline script, styles and element ids, so each one goes into
its own ``<iframe srcdoc>`` inside a ``<section id=…>``: the pages cannot clash, and they render exactly
as they do as files. Links between pages become links to the sections, opened in the top window.

The frames are not sandboxed. A sandbox without ``allow-same-origin`` gives a frame an opaque origin,
and Chromium then refuses its links to a ``file:`` URL ("Not allowed to load local resource"), even to a
fragment of the open file; with ``allow-same-origin`` a sandbox is no boundary for scripts. Unsandboxed
srcdoc frames share the outer page's origin, so its script can also size each frame to its page.

A srcdoc frame inherits the outer page's Content-Security-Policy, so the outer policy is the pages' own
(``html.CSP``) with the hashes of every script the pages and the bundle hold: remote loads are forbidden;
inline styles, ``data:`` images and exactly those scripts are allowed. ``default-src 'none'`` does not stop
the frames: srcdoc content is not fetched.
"""

from __future__ import annotations

import html
import json
import posixpath
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

from attnviz.errors import OutputError
from attnviz.output.folder import replacing
from attnviz.output.html import CSP, CSP_SCRIPTS, environment, script_hash, script_hashes, script_sources

INDEX_ANCHOR = "index"
_TITLE = re.compile(r"<title>(.*?)</title>", re.IGNORECASE | re.DOTALL)


@dataclass(frozen=True)
class Page:
    """One page of the report folder and the section that holds it in the bundle."""

    path: Path
    relative: str  # posix path from the report folder, e.g. ``examples/rev-01.html``
    anchor: str
    title: str


class _LinkFinder(HTMLParser):
    """Records every ``<a href>`` start tag with its position; script and style content is never parsed as tags."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.links: list[tuple[int, int, str, list[tuple[str, str | None]]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a" and any(name == "href" for name, _ in attrs):
            line, column = self.getpos()
            self.links.append((line, column, self.get_starttag_text() or "", attrs))


def rewrite_links(text: str, relative: str, anchors: Mapping[str, str]) -> str:
    """Point links to other pages of the report at their sections in the bundle.

    Args:
        text: the page's HTML.
        relative: the page's path in the report folder, to resolve its relative links.
        anchors: report-relative page path → section id.

    Returns:
        The HTML with each such link's ``href`` set to ``#<section>`` and ``target="_top"`` (a frame would
        otherwise navigate itself). Other links are kept as they are.
    """
    finder = _LinkFinder()
    finder.feed(text)
    finder.close()
    if not finder.links:
        return text
    # HTMLParser reports (line, column) and counts lines by "\n" alone.
    starts = [0] + [match.end() for match in re.finditer("\n", text)]
    pieces, done = [], 0
    for line, column, original, attrs in finder.links:
        href = dict(attrs)["href"] or ""
        anchor = anchors.get(_resolve(relative, href))
        if anchor is None:
            continue
        offset = starts[line - 1] + column
        kept = [(name, value) for name, value in attrs if name not in ("href", "target")]
        tag = "<a" + "".join(_attribute(name, value) for name, value in kept)
        tag += f' href="#{html.escape(anchor)}" target="_top">'
        pieces += [text[done:offset], tag]
        done = offset + len(original)
    pieces.append(text[done:])
    return "".join(pieces)


def _attribute(name: str, value: str | None) -> str:
    return f" {name}" if value is None else f' {name}="{html.escape(value)}"'


def _resolve(relative: str, href: str) -> str:
    """The report-relative path a link points to (``""`` for remote, absolute or in-page links)."""
    parts = urlsplit(href)
    if parts.scheme or parts.netloc or not parts.path or parts.path.startswith("/"):
        return ""
    return posixpath.normpath(posixpath.join(posixpath.dirname(relative), unquote(parts.path)))


def _title(path: Path, fallback: str) -> str:
    with path.open(encoding="utf-8") as handle:
        head = handle.read(4096)  # <title> is in <head>, near the top of every page we write
    found = _TITLE.search(head)
    return html.unescape(found.group(1)).strip() if found else fallback


def _listed_pages(index_text: str) -> list[str]:
    """Every example page the index's data block lists, in input order (its HTML rows hold only the first ones)."""
    from attnviz.output.html import INDEX_FIELDS

    found = re.search(r'<script type="application/json" id="examples-data">(.*?)</script>', index_text, re.S)
    if not found:
        return []
    column = INDEX_FIELDS.index("page")
    return [str(row[column]) for row in json.loads(found.group(1))["rows"] if row[column]]


def find_pages(out_dir: Path) -> tuple[Page, list[Page]]:
    """The index and the example pages in the order the index lists them (pages it does not link come last, by name).

    Raises:
        OutputError: the folder has no ``index.html`` (not an HTML report).
    """
    index_path = out_dir / "index.html"
    if not index_path.is_file():
        raise OutputError(f"no index.html in '{out_dir}': bundle a report written with --format html")
    examples = {f"examples/{path.name}": path for path in sorted((out_dir / "examples").glob("*.html"))}
    text = index_path.read_text(encoding="utf-8")
    finder = _LinkFinder()
    finder.feed(text)
    finder.close()
    linked = [_resolve("index.html", dict(attrs)["href"] or "") for *_, attrs in finder.links]
    linked += [_resolve("index.html", page) for page in _listed_pages(text)]
    # The index's table links every example in input order, after highlights (e.g. where methods disagree
    # most) that link a few of them first; so each page's last link gives the table's order.
    last = {rel: position for position, rel in enumerate(linked) if rel in examples}
    order = sorted(last, key=last.__getitem__) + sorted(set(examples) - set(last))
    pages = [
        Page(
            path=examples[rel],
            relative=rel,
            anchor=f"example-{examples[rel].stem}",
            title=_title(examples[rel], examples[rel].stem),
        )
        for rel in order
    ]
    index = Page(index_path, "index.html", INDEX_ANCHOR, _title(index_path, "attnviz report"))
    return index, pages


def frame_document(page: Page, anchors: Mapping[str, str]) -> str:
    """A page's HTML as its frame shows it: links to other pages point at their sections."""
    return rewrite_links(page.path.read_text(encoding="utf-8"), page.relative, anchors)


def bundle_report(out_dir: Path, target: Path) -> Path:
    """Write a finished HTML report folder as one self-contained file that opens offline.

    The pages' images are already inline (``data:`` URIs), so the file needs nothing else. Pages are read
    one at a time while the file is written, so memory does not grow with the number of examples.

    Args:
        out_dir: the report folder (``index.html`` and ``examples/*.html``).
        target: the file to write; its folder is created if needed.

    Returns:
        ``target``.

    Raises:
        OutputError: ``out_dir`` is not an HTML report, or ``target`` cannot be written (exit 5).
    """
    index, pages = find_pages(out_dir)
    anchors = {page.relative: page.anchor for page in (index, *pages)}
    # Frames inherit this page's policy, so it allows its own script and the pages' (by hash); a first pass
    # reads each page for its scripts, keeping only their hashes.
    hashes = {script_hash(environment().get_template("_bundle.js.j2").render())}
    for page in (index, *pages):
        hashes |= script_hashes(page.path.read_text(encoding="utf-8"))

    def documents() -> Iterator[tuple[Page, str]]:
        for page in pages:
            yield page, frame_document(page, anchors)

    template = environment().get_template("bundle.html.j2")
    chunks = template.generate(
        index=index,
        index_document=frame_document(index, anchors),
        pages=documents(),
        count=len(pages),
        csp=CSP.replace(CSP_SCRIPTS, script_sources(hashes)),
    )
    try:
        with replacing(target) as tmp, tmp.open("w", encoding="utf-8") as handle:
            handle.writelines(chunks)
    except OSError as err:
        raise OutputError(f"cannot write bundle '{target}': {err.strerror or err}") from None
    return target
