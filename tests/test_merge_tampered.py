"""Shard folders are untrusted: `merge` (and `check`) refuse tampered summaries, pages and links with exit 3,
naming the file and what is wrong, before anything is written; a merged report links only its own pages and
runs only its own scripts."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from bs4 import BeautifulSoup
from typer.testing import CliRunner

from attnviz.analysis.pipeline import page_name
from attnviz.api import render_reports
from attnviz.cli import app
from attnviz.config import RenderOptions
from attnviz.output.schema import MAX_DEPTH, validate_summary

runner = CliRunner()
FORMATS = ("html", "json", "markdown")
# One id that is not file-name safe, so its page name carries a hash.
IDS = ("r0", "r1", "a b/c", "r3")
Edit = Callable[[Path, Path], Any]


@pytest.fixture(scope="module")
def rendered(tiny_loaded: Callable[..., Any], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Shards 0/2 and 1/2 of four examples (batches of one: shard 0 holds inputs 0 and 2, shard 1 inputs 1 and 3)."""
    root = tmp_path_factory.mktemp("shards")
    data = root / "in.jsonl"
    texts = ("a good film", "a bad film", "fine food", "cold rooms")
    data.write_text("".join(json.dumps({"id": i, "text": t}) + "\n" for i, t in zip(IDS, texts, strict=True)))
    loaded = tiny_loaded("bert-classifier")
    for shard in (0, 1):
        options = RenderOptions(
            out_dir=root / f"s{shard}",
            formats=FORMATS,
            methods=("attention", "rollout", "heads"),
            batch_size=1,
            shard=(shard, 2),
        )
        render_reports([str(data)], options, loaded=loaded)
    return root


@pytest.fixture
def shards(rendered: Path, tmp_path: Path) -> tuple[Path, Path]:
    """A fresh copy of both shard folders to tamper with."""
    return shutil.copytree(rendered / "s0", tmp_path / "s0"), shutil.copytree(rendered / "s1", tmp_path / "s1")


def read(folder: Path) -> dict[str, Any]:
    return json.loads((folder / "summary.json").read_text(encoding="utf-8"))


def write(folder: Path, document: Any) -> None:
    (folder / "summary.json").write_text(json.dumps(document), encoding="utf-8")


def edit(change: Callable[[dict[str, Any]], Any]) -> Edit:
    """Change shard 1's summary.json in place."""

    def apply(s0: Path, s1: Path) -> None:
        document = read(s1)
        change(document)
        write(s1, document)

    return apply


def raw(text: str) -> Edit:
    def apply(s0: Path, s1: Path) -> None:
        (s1 / "summary.json").write_text(text, encoding="utf-8")

    return apply


def nested(levels: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(levels - 1):
        value = [value]
    return value


def page_of(document: dict[str, Any], position: int) -> Path:
    return Path(document["examples"][position]["page"])


def symlink_page(s0: Path, s1: Path) -> None:
    secret = s1.parent / "secret.html"
    secret.write_text("<script>steal()</script>", encoding="utf-8")
    page = s1 / page_of(read(s1), 0)
    page.unlink()
    page.symlink_to(secret)


def symlink_examples(s0: Path, s1: Path) -> None:
    outside = shutil.copytree(s1 / "examples", s1.parent / "elsewhere")
    shutil.rmtree(s1 / "examples")
    (s1 / "examples").symlink_to(outside, target_is_directory=True)


def symlink_in_figures(s0: Path, s1: Path) -> None:
    folder = s1 / "examples" / page_name(read(s1)["examples"][0]["id"])
    folder.mkdir()
    (folder / "mean_self.png").symlink_to("/etc/hostname")


def page_is_a_folder(s0: Path, s1: Path) -> None:
    page = s1 / page_of(read(s1), 0)
    page.unlink()
    page.mkdir()


def other_page(s0: Path, s1: Path) -> None:
    document = read(s1)
    document["examples"][0]["page"] = read(s0)["examples"][0]["page"]
    write(s1, document)


def overlap(key: str) -> Edit:
    def apply(s0: Path, s1: Path) -> None:
        document = read(s1)
        if key == "id":
            document["examples"].append(read(s0)["examples"][0])
        else:
            document["examples"][0]["index"] = read(s0)["examples"][0]["index"]
        write(s1, document)

    return apply


def set_path(keys: tuple[str | int, ...], value: Any) -> Edit:
    def change(document: dict[str, Any]) -> None:
        target = document
        for key in keys[:-1]:
            target = target[key]
        target[keys[-1]] = value

    return edit(change)


def unknown_format(s0: Path, s1: Path) -> None:
    """Both shards, so that their options agree and the format itself is what is refused."""
    for folder in (s0, s1):
        set_path(("run", "options", "formats"), ["evil"])(s0, folder)


def ragged(document: dict[str, Any]) -> None:
    document["examples"][0]["heads"]["self"]["entropy"] = [[0.1], [0.2, 0.3]]


SUMMARY = "s1/summary.json"
# (case, tampering, file named in the message, what the message says)
CORPUS: list[tuple[str, Edit, str, str]] = [
    ("empty object", raw("{}"), SUMMARY, "does not match the render schema at $: 'schema_version' is a required"),
    ("list", raw("[]"), SUMMARY, "does not match the render schema at $: [] is not of type 'object'"),
    ("deep nesting", raw("[" * 100_000), SUMMARY, f"is nested more than {MAX_DEPTH} levels deep at $"),
    (
        "deep nesting in an open field",
        set_path(("examples", 0, "prediction", "details"), {"x": nested(200)}),
        SUMMARY,
        f"is nested more than {MAX_DEPTH} levels deep at $.examples[0].prediction.details.x[0][0]",
    ),
    ("not JSON", raw('{"schema_version": '), SUMMARY, "is not valid JSON (Expecting value at line 1, column 20)"),
    ("NaN", set_path(("examples", 0, "mean_entropy"), float("nan")), SUMMARY, "holds nan, which is not a JSON number"),
    ("missing field", edit(lambda d: d["examples"][0].pop("prediction")), SUMMARY, "at $.examples[0]: 'prediction'"),
    ("missing run", edit(lambda d: d.pop("run")), SUMMARY, "at $: 'run' is a required property"),
    ("wrong type", set_path(("examples", 0, "index"), "1"), SUMMARY, "at $.examples[0].index: '1' is not of type"),
    ("wrong type in run", set_path(("run", "options", "batch_size"), "1"), SUMMARY, "at $.run.options.batch_size"),
    ("javascript page", set_path(("examples", 0, "page"), "javascript:alert(1)//"), SUMMARY, "at $.examples[0].page"),
    ("absolute page", set_path(("examples", 0, "page"), "/etc/passwd.html"), SUMMARY, "at $.examples[0].page"),
    ("../ page", set_path(("examples", 0, "page"), "examples/../../x.html"), SUMMARY, "at $.examples[0].page"),
    ("page of another example", other_page, SUMMARY, "field '$.examples[0].page': is \"examples/r0.html\", but"),
    ("page of the same shape", set_path(("examples", 0, "page"), "examples/r9.html"), SUMMARY, "but render writes"),
    ("symlinked page", symlink_page, "s1/examples/r1.html", "is a symbolic link"),
    ("symlinked examples folder", symlink_examples, "s1/examples", "is a symbolic link"),
    ("symlink among figures", symlink_in_figures, "s1/examples/r1/mean_self.png", "is a symbolic link"),
    ("page is a folder", page_is_a_folder, "s1/examples/r1.html", "is not a regular file"),
    ("overlapping ids", overlap("id"), SUMMARY, 'example id "r0" is also at $.examples[0].id of '),
    ("overlapping indices", overlap("index"), SUMMARY, "field '$.examples[0].index': example index 0 is also at"),
    ("other model", set_path(("run", "model"), "other"), SUMMARY, "field '$.run.model': is \"other\" here but"),
    ("other options", set_path(("run", "options", "batch_size"), 2), SUMMARY, "field '$.run.options.batch_size'"),
    ("other methods", set_path(("run", "options", "methods"), ["attention"]), SUMMARY, "'$.run.options.methods'"),
    ("unknown format", unknown_format, "s0/summary.json", "field '$.run.options.formats[0]': names format \"evil\""),
    ("ragged matrix", edit(ragged), SUMMARY, "field '$.examples[0]': does not fit the run's other examples"),
    ("compare summary", raw(json.dumps({"schema_version": "1.0", "kind": "compare"})), SUMMARY, "compare schema at $"),
]


@pytest.mark.parametrize(("tamper", "named", "message"), [case[1:] for case in CORPUS], ids=[c[0] for c in CORPUS])
def test_merge_refuses_tampered_shards_before_writing(
    shards: tuple[Path, Path], tamper: Edit, named: str, message: str
) -> None:
    s0, s1 = shards
    tamper(s0, s1)
    out = s0.parent / "merged"
    result = runner.invoke(app, ["merge", str(s0), str(s1), "--out", str(out), "--single-file", str(out / "x.html")])
    assert result.exit_code == 3, result.output
    stderr = " ".join(result.stderr.split())  # the console may wrap long paths
    assert f"attnviz: error: {s0.parent / named}" in stderr
    assert message in stderr
    assert "Traceback" not in stderr
    # Nothing claims to be a merged report: no summary, index, summary.md or bundle, and no copied page.
    assert not out.exists() or not [p for p in out.rglob("*") if p.is_file()]


@pytest.mark.parametrize(
    ("tamper", "message"),
    [
        (raw("{}"), "does not match the render schema at $"),
        (raw("[]"), "at $: [] is not of type 'object'"),
        (raw("[" * 100_000), "is nested more than"),
        (set_path(("dataset", "metrics", "examples"), "2"), "at $.dataset.metrics.examples: '2' is not of type"),
        (set_path(("dataset", "metrics", "accuracy"), float("inf")), "holds inf, which is not a JSON number"),
    ],
    ids=["empty object", "list", "deep nesting", "wrong type", "infinity"],
)
def test_check_refuses_tampered_summaries(shards: tuple[Path, Path], tamper: Edit, message: str) -> None:
    s0, s1 = shards
    tamper(s0, s1)
    result = runner.invoke(app, ["check", str(s1 / "summary.json"), "--min", "examples=1"])
    assert result.exit_code == 3, result.output
    assert f"attnviz: error: {s1 / 'summary.json'}: " in result.stderr
    assert message in " ".join(result.stderr.split())


def test_merge_ignores_files_render_did_not_write(shards: tuple[Path, Path]) -> None:
    s0, s1 = shards
    (s1 / "examples" / "extra.html").write_text("<script>steal()</script>", encoding="utf-8")
    out = s0.parent / "merged"
    result = runner.invoke(app, ["merge", str(s0), str(s1), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (out / "examples").iterdir()) == sorted(f"{page_name(i)}.html" for i in IDS)


def test_merged_index_links_only_its_pages_and_runs_only_its_scripts(shards: tuple[Path, Path]) -> None:
    s0, s1 = shards
    out = s0.parent / "merged"
    result = runner.invoke(app, ["merge", str(s0), str(s1), "--out", str(out), "--single-file", str(out / "all.html")])
    assert result.exit_code == 0, result.output
    for path in (out / "index.html", *sorted((out / "examples").glob("*.html")), out / "all.html"):
        page = BeautifulSoup(path.read_text(encoding="utf-8"), "html.parser")
        hrefs = [a["href"] for a in page.find_all("a", href=True)]
        assert not [h for h in hrefs if h.strip().lower().startswith("javascript:") or "://" in h], path
        csp = page.find("meta", attrs={"http-equiv": "Content-Security-Policy"})["content"]
        directives = dict(part.strip().split(" ", 1) for part in csp.split(";"))
        sources = directives["script-src"].split()
        assert sources and all(re.fullmatch(r"'sha256-[A-Za-z0-9+/=]+'", s) for s in sources), (path, sources)
        assert "'unsafe-inline'" not in sources and directives["default-src"] == "'none'"
    index = BeautifulSoup((out / "index.html").read_text(encoding="utf-8"), "html.parser")
    linked = {a["href"] for a in index.select("#examples a[href]")}
    assert linked == {f"examples/{page_name(i)}.html" for i in IDS}


def test_merge_writes_the_formats_the_shards_were_rendered_with(shards: tuple[Path, Path]) -> None:
    s0, s1 = shards
    assert read(s0)["run"]["options"]["formats"] == list(FORMATS)
    out = s0.parent / "merged"
    result = runner.invoke(app, ["merge", str(s0), str(s1), "--out", str(out), "--min", "examples=100"])
    assert result.exit_code == 6, result.output
    assert {p.name for p in out.iterdir()} == {"examples", "index.html", "summary.json", "summary.md"}
    assert "| examples | ≥ 100 | 4 | ❌ fail |" in (out / "summary.md").read_text(encoding="utf-8")
    merged = read(out)
    validate_summary(merged)
    assert merged["run"]["options"]["shard"] == "0/1" and merged["run"]["options"]["formats"] == list(FORMATS)
    assert [e["id"] for e in merged["examples"]] == list(IDS)
    only_json = s0.parent / "only-json"
    result = runner.invoke(app, ["merge", str(s0), str(s1), "--out", str(only_json), "--format", "json"])
    assert result.exit_code == 0, result.output
    assert {p.name for p in only_json.iterdir()} == {"examples", "summary.json"}
    assert read(only_json)["run"]["options"]["formats"] == ["json"]
    unknown = runner.invoke(app, ["merge", str(s0), str(s1), "--out", str(only_json), "--format", "pdf"])
    assert unknown.exit_code == 2 and "unknown format 'pdf'" in unknown.stderr
