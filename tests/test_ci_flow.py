"""The CI user's flow: shards and merge, thresholds with `check` and on `render`, summary.md, single file,
and schema validation of every summary.json produced."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from bs4 import BeautifulSoup
from typer.testing import CliRunner

from attnviz.api import render_reports
from attnviz.cli import app
from attnviz.config import RenderOptions
from attnviz.errors import InputError
from attnviz.output.merge import merge_reports
from attnviz.output.schema import validate_summary

runner = CliRunner()
METHODS = ("attention", "rollout", "heads", "faithfulness")


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("data") / "reviews.jsonl"
    texts = [
        "the cat sat on the mat",
        "I really loved this movie",
        "This was the worst meal ever",
        "The weather today is cold",
        "She walked into the garden",
        "bad",
        "good food and warm rooms",
    ]
    rows = [{"id": f"r{i}", "text": t, "label": "positive" if i % 2 else "negative"} for i, t in enumerate(texts)]
    lines = [json.dumps(r) for r in rows]
    lines.insert(3, '{"id": "broken", "text": 5}')
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def render(loaded: Any, data: Path, out: Path, shard: tuple[int, int] = (0, 1)) -> dict[str, Any]:
    options = RenderOptions(
        out_dir=out, formats=("html", "json", "markdown"), methods=METHODS, on_error="skip", shard=shard, batch_size=2
    )
    return render_reports([str(data)], options, loaded=loaded)


def without_timing(document: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in document.items() if k != "timing"}


def test_merge_of_three_shards_equals_the_unsharded_run(tiny_loaded: Callable, data: Path, tmp_path: Path) -> None:
    loaded = tiny_loaded("bert-classifier")
    whole = render(loaded, data, tmp_path / "whole")
    shards = [tmp_path / f"shard{i}" for i in range(3)]
    for i, folder in enumerate(shards):
        part = render(loaded, data, folder, (i, 3))
        assert part["run"]["options"]["shard"] == f"{i}/3"
    parts = [json.loads((folder / "summary.json").read_text(encoding="utf-8")) for folder in shards]
    indices = [[e["index"] for e in part["examples"]] for part in parts]
    assert sorted(i for shard in indices for i in shard) == [e["index"] for e in whole["examples"]]
    assert all(shard for shard in indices)  # batches of 2: shard i gets batches i, i + 3
    merged = merge_reports(shards, tmp_path / "merged", formats=("html", "json", "markdown"))
    assert without_timing(merged) == without_timing(whole)
    written = json.loads((tmp_path / "merged" / "summary.json").read_text(encoding="utf-8"))
    assert without_timing(written) == without_timing(json.loads((tmp_path / "whole" / "summary.json").read_text()))
    for name in ("index.html", "summary.md"):
        assert (tmp_path / "merged" / name).read_bytes() == (tmp_path / "whole" / name).read_bytes()
    assert sorted(p.name for p in (tmp_path / "merged" / "examples").glob("*.html")) == sorted(
        p.name for p in (tmp_path / "whole" / "examples").glob("*.html")
    )
    assert [s["source"] for s in merged["skipped"]] == [f"{data}:4"]
    for document in (whole, merged):
        validate_summary(document)


def test_merge_refuses_incomplete_or_mixed_shards(tiny_loaded: Callable, data: Path, tmp_path: Path) -> None:
    loaded = tiny_loaded("bert-classifier")
    render(loaded, data, tmp_path / "s0", (0, 2))
    with pytest.raises(InputError, match="shards 0/2 do not make one complete run"):
        merge_reports([tmp_path / "s0"], tmp_path / "m")
    with pytest.raises(InputError, match="has no summary.json"):
        merge_reports([tmp_path / "s0", tmp_path / "nothing"], tmp_path / "m")


def test_dataset_aggregates_equal_the_mean_of_per_example_values(
    tiny_loaded: Callable, data: Path, tmp_path: Path
) -> None:
    import numpy as np

    summary = render(tiny_loaded("bert-classifier"), data, tmp_path)
    examples = summary["examples"]
    metrics = summary["dataset"]["metrics"]
    assert metrics["mean_entropy"] == pytest.approx(np.mean([e["mean_entropy"] for e in examples]), abs=1e-6)
    for name in ("comprehensiveness.attention", "diffuse_head_share", "random_comprehensiveness"):
        values = [e["metrics"][name] for e in examples]
        assert metrics[name] == pytest.approx(np.mean(values), abs=1e-6)
        assert summary["dataset"]["spread"][name] == pytest.approx(np.std(values, ddof=1), abs=1e-6)
    assert metrics["comprehensiveness_margin"] == metrics["comprehensiveness_margin.attention"]
    correct = [e["prediction"]["correct"] for e in examples]
    assert metrics["accuracy"] == pytest.approx(np.mean(correct), abs=1e-6)
    confusion = summary["dataset"]["confusion"]
    assert sum(map(sum, confusion["matrix"])) == len(examples)
    entropy = np.mean([e["heads"]["self"]["entropy"] for e in examples], axis=0)
    np.testing.assert_allclose(summary["dataset"]["heads"]["self"]["entropy"], entropy, atol=1e-6)


def test_check_exits_6_exactly_when_a_threshold_is_crossed(tiny_loaded: Callable, data: Path, tmp_path: Path) -> None:
    summary = render(tiny_loaded("bert-classifier"), data, tmp_path)
    path = str(tmp_path / "summary.json")
    value = summary["dataset"]["metrics"]["diffuse_head_share"]
    ok = runner.invoke(app, ["check", path, "--max", f"diffuse_head_share={value}", "--min", "examples=7"])
    assert ok.exit_code == 0, ok.stderr
    assert "diffuse_head_share" in ok.stdout and "pass" in ok.stdout
    bad = runner.invoke(app, ["check", path, "--max", f"diffuse_head_share={value - 0.01}"])
    assert bad.exit_code == 6
    assert "diffuse_head_share" in bad.stderr and "FAIL" in bad.stdout
    unknown = runner.invoke(app, ["check", path, "--min", "comprehension=0.1"])
    assert unknown.exit_code == 2 and "comprehensiveness_margin" in unknown.stderr
    missing = runner.invoke(app, ["check", str(tmp_path / "nope.json"), "--min", "examples=1"])
    assert missing.exit_code == 3 and "file not found" in missing.stderr


def test_render_applies_thresholds_and_writes_markdown_and_single_file(
    tiny_path: Callable, data: Path, tmp_path: Path
) -> None:
    out, single = tmp_path / "out", tmp_path / "report.html"
    result = runner.invoke(
        app,
        [
            "render",
            str(data),
            "--model",
            str(tiny_path("bert-classifier")),
            "--out",
            str(out),
            "--method",
            ",".join(METHODS),
            "--on-error",
            "skip",
            "--format",
            "html,json,markdown",
            "--min",
            "examples=100",
            "--single-file",
            str(single),
        ],
    )
    assert result.exit_code == 6
    assert "examples" in result.stderr and (out / "summary.json").is_file()
    markdown = (out / "summary.md").read_text(encoding="utf-8")
    assert "| examples | ≥ 100 | 7 | ❌ fail |" in markdown
    bundle = BeautifulSoup(single.read_text(encoding="utf-8"), "html.parser")
    assert bundle.find("meta", attrs={"http-equiv": "Content-Security-Policy"}) is not None
    assert not [t for t in bundle.find_all(src=True) if "://" in t["src"]]


def test_render_checks_thresholds_in_memory_with_any_format(tiny_path: Callable, data: Path, tmp_path: Path) -> None:
    model = str(tiny_path("bert-classifier"))

    def render_html(out: str, *thresholds: str) -> Any:
        args = ["render", str(data), "--model", model, "--out", str(tmp_path / out), "--method", "attention"]
        return runner.invoke(app, [*args, "--on-error", "skip", "--format", "html", *thresholds])

    passed = render_html("pass", "--min", "examples=7")
    assert passed.exit_code == 0, passed.stderr
    assert "| examples | >= 7 | 7     | pass   |" in passed.stdout
    assert not (tmp_path / "pass" / "summary.json").exists()  # html only: the thresholds never read a file
    failed = render_html("fail", "--max", "examples=6")
    assert failed.exit_code == 6 and "examples = 7 (needs <= 6)" in failed.stderr
    unknown = render_html("unknown", "--min", "comprehension=0.1")
    assert unknown.exit_code == 2 and "unknown metric 'comprehension'" in unknown.stderr
    assert (tmp_path / "unknown" / "index.html").is_file()  # the run's files are written all the same
    typo = render_html("typo", "--min", "examples")
    assert typo.exit_code == 2 and "expected NAME=VALUE" in typo.stderr
    assert not (tmp_path / "typo").exists()  # refused before the model is loaded


def test_compare_command_with_itself_has_no_flips(tiny_path: Callable, data: Path, tmp_path: Path) -> None:
    model = str(tiny_path("bert-classifier"))
    result = runner.invoke(
        app,
        [
            "compare",
            str(data),
            "--model",
            model,
            "--against",
            model,
            "--out",
            str(tmp_path),
            "--method",
            "attention,heads",
            "--format",
            "json",
            "--on-error",
            "skip",
            "--max",
            "prediction_flips=0",
            "--min",
            "mean_rank_correlation=0.999",
        ],
    )
    assert result.exit_code == 0, result.stderr
    document = json.loads((tmp_path / "summary.json").read_text(encoding="utf-8"))
    assert document["kind"] == "compare" and document["dataset"]["metrics"]["prediction_flips"] == 0
    validate_summary(document)
