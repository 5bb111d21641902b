"""Presets (``--preset``, and quick for a literal text alone), progress with a total, ``--quiet``, the summary
table's scores and wrong marks, ``show`` piped, and ``attnviz list`` without torch."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from attnviz.api import expected_examples
from attnviz.config import DEFAULT_PRESET, LITERAL_PRESET, PRESETS, ModelOptions, RenderOptions
from attnviz.inputs import count_records

runner = CliRunner()
README = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def model(tiny_path: Callable[..., Path]) -> str:
    return str(tiny_path("bert-classifier"))


def invoke(*args: str):  # type: ignore[no-untyped-def]
    from attnviz.cli import app

    return runner.invoke(app, list(args))


def test_list_shows_every_preset_and_imports_no_torch() -> None:
    script = (
        "import sys\nfrom typer.testing import CliRunner\nfrom attnviz.cli import app\n"
        "result = CliRunner().invoke(app, ['list'])\nassert result.exit_code == 0, result.output\n"
        "print(result.output)\nprint('imported:', 'torch' in sys.modules, 'transformers' in sys.modules)\n"
    )
    output = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    assert "imported: False False" in output
    from attnviz.model.tasks import list_tasks

    assert f"tasks: {', '.join(list_tasks())}" in output  # the torch-free names are the registry's
    for name, preset in PRESETS.items():
        line = next(line for line in output.splitlines() if line.strip().startswith(f"{name}:"))
        assert f"methods {', '.join(preset.methods)}" in line and f"formats {', '.join(preset.formats)}" in line
        assert f"about {preset.cost:g}x a forward pass" in line and preset.cost > 0
        # The README's preset table states the same sets and cost.
        row = next(row for row in README.splitlines() if row.startswith(f"| `{name}` |"))
        assert f"| {preset.purpose} |" in row and f"{preset.cost:g}×" in row
        assert ", ".join(preset.methods) in row and ", ".join(preset.formats) in row


def test_a_literal_text_alone_gets_the_quick_preset_its_page_path_and_a_hint(model: str, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = invoke("render", "the soup was cold", "--model", model, "--out", str(out))
    assert result.exit_code == 0, result.output
    quick = PRESETS[LITERAL_PRESET]
    assert quick.formats == ("html",)
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == ["examples", "index.html"]
    assert f"page: {out / 'examples' / 'text-1.html'}" in result.stdout
    assert f"--preset {DEFAULT_PRESET} for the trust panel" in result.stdout
    assert "summary.json" not in result.stdout  # not written, so not named
    page = (out / "examples" / "text-1.html").read_text(encoding="utf-8")
    assert "attention rollout" in page.lower()


def test_preset_sets_methods_and_formats_and_explicit_options_win(model: str, tmp_path: Path) -> None:
    out = tmp_path / "out"
    data = tmp_path / "data.txt"
    data.write_text("one fine day\n", encoding="utf-8")
    result = invoke("render", str(data), "--model", model, "--preset", "quick", "--format", "json", "--out", str(out))
    assert result.exit_code == 0, result.output
    run = json.loads((out / "summary.json").read_text(encoding="utf-8"))["run"]
    assert run["options"]["methods"] == list(PRESETS["quick"].methods) and run["options"]["formats"] == ["json"]
    assert "page:" not in result.stdout and "--preset" not in result.stdout  # a file is no first look
    unknown = invoke("render", "x", "--model", model, "--preset", "fastest", "--out", str(tmp_path / "o2"))
    assert unknown.exit_code == 2 and all(name in unknown.output for name in PRESETS)


def test_progress_lines_with_a_total_without_a_terminal_and_quiet_silences_them(model: str, tmp_path: Path) -> None:
    data = tmp_path / "data.txt"
    data.write_text("".join(f"line number {i}\n" for i in range(12)), encoding="utf-8")
    args = ["render", str(data), "--model", model, "--method", "attention", "--format", "json", "--batch-size", "5"]
    result = invoke(*args, "--out", str(tmp_path / "a"))
    assert result.exit_code == 0, result.output
    lines = [line for line in result.stderr.splitlines() if line.startswith("rendering:")]
    # Every 10 % of 12 (rounded up to 2 examples), updated within batches of 5, and the last.
    done = [int(re.match(r"rendering: (\d+)/12 examples, [\d.]+ examples/s", line).group(1)) for line in lines]
    assert done == [2, 4, 6, 8, 10, 12]
    assert "s left" in lines[0] and "s left" not in lines[-1]
    quiet = invoke(*args, "--out", str(tmp_path / "b"), "--quiet")
    assert quiet.exit_code == 0 and "rendering:" not in quiet.stderr and quiet.stdout == ""


def test_progress_moves_within_a_batch_analysed_together_and_never_back(model: str, tmp_path: Path) -> None:
    from attnviz.api import render_reports

    data = tmp_path / "data.txt"
    data.write_text("".join(f"a fine line {i}\n" for i in range(6)), encoding="utf-8")
    seen: list[float] = []
    options = RenderOptions(
        model=ModelOptions(name=model),
        out_dir=tmp_path / "out",
        methods=("attention", "faithfulness"),
        formats=("json",),
        batch_size=4,
    )
    render_reports([str(data)], options, on_progress=seen.append)
    assert seen == sorted(seen) and seen[-1] == 6
    assert 4 in seen  # the first batch ends on a whole example
    within = [value for value in seen if 0 < value < 4 and value != int(value)]
    assert within, seen  # its examples are analysed together: the share analysed moves the count first


def test_expected_examples_is_the_shard_share_of_the_records(tmp_path: Path) -> None:
    data = tmp_path / "data.txt"
    data.write_text("".join(f"t{i}\n\n" for i in range(10)), encoding="utf-8")  # blank lines are no records
    records = count_records([str(data)])
    assert records == 10
    # Batches of 3: 3, 3, 3, 1; shard 1 of 2 takes the second and the fourth.
    assert expected_examples(records, RenderOptions(batch_size=3, shard=(1, 2))) == 4
    assert expected_examples(records, RenderOptions(batch_size=3, shard=(0, 2))) == 6
    assert expected_examples(records, RenderOptions(batch_size=3)) == 10
    assert count_records(["-"]) is None and expected_examples(None, RenderOptions()) is None


def test_render_counts_no_records_the_caller_counted(
    model: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The CLI counts the input once (progress and the trust sample); render_reports takes that count."""
    from attnviz import api

    data = tmp_path / "data.txt"
    data.write_text("".join(f"a fine line {i}\n" for i in range(3)), encoding="utf-8")

    def counted_again(*args: object) -> None:
        raise AssertionError("counted again")

    monkeypatch.setattr(api, "count_records", counted_again)
    options = RenderOptions(
        model=ModelOptions(name=model), out_dir=tmp_path / "out", methods=("attention",), formats=("json",)
    )
    summary = api.render_reports([str(data)], options, records=3)
    assert summary["run"]["options"]["trust_sample"]["records"] == 3
    assert len(summary["examples"]) == 3


def test_summary_table_shows_the_score_and_marks_wrong_predictions(model: str, tmp_path: Path) -> None:
    data = tmp_path / "data.jsonl"
    rows = [
        {"id": "a", "text": "same words", "label": "LABEL_0"},
        {"id": "b", "text": "same words", "label": "LABEL_1"},
    ]
    data.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    out = tmp_path / "out"
    result = invoke(
        "render", str(data), "--model", model, "--method", "attention", "--format", "json", "--out", str(out)
    )
    assert result.exit_code == 0, result.output
    entries = {e["id"]: e for e in json.loads((out / "summary.json").read_text(encoding="utf-8"))["examples"]}
    shown = {}
    for row in result.stdout.splitlines():
        cells = [cell.strip() for cell in row.split("│")[1:-1]]
        if cells and cells[0] in entries:
            shown[cells[0]] = cells
            prediction = entries[cells[0]]["prediction"]
            assert cells[1] == ("✗ " if prediction["correct"] is False else "") + prediction["text"]
            assert cells[2] == f"{prediction['score']:.3f}"
    assert shown.keys() == {"a", "b"}
    wrong = [e["id"] for e in entries.values() if e["prediction"]["correct"] is False]
    assert wrong and [i for i, cells in shown.items() if cells[1].startswith("✗")] == wrong


def test_show_piped_gives_each_word_its_level(model: str) -> None:
    result = invoke("show", "good soup today", "--model", model, "--method", "attention")
    assert result.exit_code == 0, result.output
    line = next(line for line in result.stdout.splitlines() if line.startswith("raw attention"))
    levels = [float(value) for value in re.findall(r"\[(\d\.\d\d)\]", line)]
    assert len(levels) >= 3 and max(levels) == 1.0 and all(0 <= level <= 1 for level in levels)
