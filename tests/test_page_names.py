"""Page names: one file per example id, safe on every common file system, also for ids that slug alike."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from bs4 import BeautifulSoup
from typer.testing import CliRunner

from attnviz.analysis.pipeline import page_name
from attnviz.cli import app

# Ids that map to one name under a naive slug, on a case-insensitive disk, or on Windows.
CLASHING = ["a b", "a-b", "A-B", "a_b", "con", "CON", "nul", "com1", "a\rb", "x/../y", "..", "", "é", "x" * 300]


@pytest.fixture(scope="module")
def model(tiny_path: Callable[..., Path]) -> str:
    return str(tiny_path("bert-classifier"))


def test_names_are_distinct_ignoring_case_portable_and_stable() -> None:
    crafted = f"a-b-{hashlib.sha256(b'A-B').hexdigest()[:16]}"  # an id spelled like another id's hashed name
    ids = [*CLASHING, crafted, "a", "A"]
    names = [page_name(i) for i in ids]
    assert len({n.lower() for n in names}) == len(ids)
    for name in names:
        assert 1 <= len(name) <= 64 and name == name.lower() and "." not in name and name.isascii()
        assert name not in ("con", "prn", "aux", "nul", "com1", "lpt1") and name[0].isalnum()
    assert page_name("r0") == "r0" and page_name("text-1") == "text-1"  # a safe id is kept as it is
    assert page_name("A-B") == page_name("A-B") != page_name("a-b")


def test_a_run_writes_one_page_per_id_showing_its_own_example(tmp_path: Path, model: str) -> None:
    ids = ["a b", "a-b", "A-B", "con", "a\rb", "x/../y", "x" * 300]
    words = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf"]
    data = tmp_path / "in.jsonl"
    lines = [json.dumps({"id": i, "text": f"{w} film"}) for i, w in zip(ids, words, strict=True)]
    data.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = tmp_path / "out"
    args = [str(data), "--model", model, "--method", "attention", "--format", "html,json,png", "--out", str(out)]
    result = CliRunner().invoke(app, ["render", *args])
    assert result.exit_code == 0, result.output
    entries = json.loads((out / "summary.json").read_text(encoding="utf-8"))["examples"]
    assert [e["id"] for e in entries] == ids
    pages = [e["page"] for e in entries]
    assert len({p.lower() for p in pages}) == len(ids)
    assert sorted(p.name for p in (out / "examples").glob("*.html")) == sorted(Path(p).name for p in pages)
    for entry, word in zip(entries, words, strict=True):
        page = BeautifulSoup((out / entry["page"]).read_text(encoding="utf-8"), "html.parser")
        shown = [tok.get_text() for tok in page.select(".words-view .tok")]
        assert word in shown and not set(shown) & (set(words) - {word})
        assert (out / entry["page"]).with_suffix("").is_dir()  # its PNG folder, beside the page


def test_the_same_id_twice_is_refused_naming_both_records(tmp_path: Path, model: str) -> None:
    data = tmp_path / "in.jsonl"
    data.write_text('{"id": "dup", "text": "first"}\n{"id": "dup", "text": "second"}\n', encoding="utf-8")
    quick = ["--model", model, "--method", "attention", "--format", "html,json"]
    result = CliRunner().invoke(app, ["render", str(data), *quick, "--out", str(tmp_path / "a")])
    assert result.exit_code == 3
    assert f"{data}:2: field 'id': duplicate id 'dup' (first at {data}:1)" in result.stderr
    skipped = CliRunner().invoke(app, ["render", str(data), *quick, "--on-error", "skip", "--out", str(tmp_path / "b")])
    assert skipped.exit_code == 0, skipped.output
    (entry,) = json.loads((tmp_path / "b" / "summary.json").read_text(encoding="utf-8"))["examples"]
    page = BeautifulSoup((tmp_path / "b" / entry["page"]).read_text(encoding="utf-8"), "html.parser")
    assert "first" in [tok.get_text() for tok in page.select(".words-view .tok")]  # the page is the first record's
