"""The command line: exit codes and stderr messages for bad input, model and usage errors; stdin; skip mode."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from attnviz.cli import app

runner = CliRunner()


@pytest.fixture(scope="module")
def model(tiny_path: Callable[..., Path]) -> str:
    return str(tiny_path("bert-classifier"))


def render(args: list[str], stdin: str | bytes | None = None):  # type: ignore[no-untyped-def]
    return runner.invoke(app, ["render", *args], input=stdin)


def write(path: Path, text: str | bytes) -> Path:
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"text": "fine"}\n{"text": "broken"\n', ":2: malformed JSON"),
        ('{"text": "fine"}\n{"id": "x"}\n', ":2: field 'text': is missing"),
        ('{"text": "fine"}\n{"text": ["a"]}\n', ":2: field 'text': must be a string, got list"),
        ('{"text": "fine"}\n{"text": ""}\n', ":2: field 'text': is empty"),
        (b'{"text": "fine"}\n{"text": "caf\xe9"}\n', ":2: not valid UTF-8"),
    ],
)
def test_bad_input_exits_3_naming_file_and_line_and_keeps_earlier_pages(
    tmp_path: Path, model: str, content: str | bytes, message: str
) -> None:
    data = write(tmp_path / "in.jsonl", content)
    out = tmp_path / "out"
    result = render([str(data), "--model", model, "--out", str(out), "--batch-size", "1", "--format", "html,json"])
    assert result.exit_code == 3, result.output
    assert f"attnviz: error: {data}{message}" in result.stderr
    assert "Traceback" not in result.stderr
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert summary["status"] == "failed" and message.removeprefix(":2: ") in summary["error"]
    assert [e["id"] for e in summary["examples"]] == ["in:1"]
    assert (out / summary["examples"][0]["page"]).is_file()
    assert (out / "index.html").is_file()


def test_skip_mode_records_bad_lines_in_summary_and_index(tmp_path: Path, model: str) -> None:
    data = write(tmp_path / "in.jsonl", '{"text": "good one"}\n{"text": 7}\nnot json\n{"text": "another"}\n')
    out = tmp_path / "out"
    result = render([str(data), "--model", model, "--out", str(out), "--on-error", "skip", "--format", "html,json"])
    assert result.exit_code == 0, result.stderr
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert [e["id"] for e in summary["examples"]] == ["in:1", "in:4"]
    assert [(s["source"], s["field"]) for s in summary["skipped"]] == [
        (f"{data}:2", "text"),
        (f"{data}:3", None),
    ]
    index = (out / "index.html").read_text(encoding="utf-8")
    assert f"{data}:3" in index and "malformed JSON" in index
    assert f"skipped {data}:2: field 'text': " in result.stdout  # the field named, as the error would
    assert f"skipped {data}:3: malformed JSON" in result.stdout


def test_a_line_break_in_a_field_name_stays_on_the_error_line(tmp_path: Path, model: str) -> None:
    data = write(tmp_path / "in.jsonl", '{"text": "ok"}\n{"text": "x", "a\\nFAKE": 1, "a\\nFAKE": 2}\n')
    result = render([str(data), "--model", model, "--out", str(tmp_path / "out"), "--format", "json"])
    assert result.exit_code == 3
    error = next(line for line in result.stderr.splitlines() if line.startswith("attnviz: error:"))
    assert error == f"attnviz: error: {data}:2: field 'a\\nFAKE': is given twice", result.stderr


def test_text_argument_stdin_and_several_inputs(tmp_path: Path, model: str) -> None:
    txt = write(tmp_path / "lines.txt", "from a file\n")
    out = tmp_path / "out"
    result = render(
        ["a literal text", "-", str(txt), "--model", model, "--out", str(out), "--format", "json"],
        stdin="from stdin\n",
    )
    assert result.exit_code == 0, result.stderr
    assert result.stderr == ""  # no progress bar when stderr is not a terminal
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert [e["id"] for e in summary["examples"]] == ["text-1", "stdin:1", "lines:1"]
    assert summary["run"]["inputs"] == ["<text>", "-", str(txt)]


def test_model_not_found_exits_4_with_the_name(tmp_path: Path) -> None:
    result = render(["hello", "--model", str(tmp_path / "missing-model"), "--out", str(tmp_path / "o")])
    assert result.exit_code == 4
    assert f"could not load model '{tmp_path / 'missing-model'}'" in result.stderr
    assert "Traceback" not in result.stderr


def test_unknown_method_and_format_list_valid_names(tmp_path: Path, model: str) -> None:
    result = render(["hi", "--model", model, "--method", "magic", "--out", str(tmp_path)])
    assert (
        result.exit_code == 2
        and "unknown method 'magic'; valid: attention, rollout, flow, relevancy, norms, heads" in result.stderr
    )
    result = render(["hi", "--model", model, "--format", "pdf", "--out", str(tmp_path)])
    assert result.exit_code == 2 and "unknown format 'pdf'; valid: html, json, tensors, png" in result.stderr


def test_bad_option_values_are_usage_errors(tmp_path: Path, model: str) -> None:
    assert render(["hi", "--model", model, "--on-error", "ignore"]).exit_code == 2
    assert render(["hi", "--model", model, "--shard", "3/3"]).exit_code == 2
    assert render(["hi", "--model", model, "--device", "tpu"]).exit_code == 2
    assert render(["hi", "--model", model, "--task", "translate"]).exit_code == 2


def test_output_folder_that_is_a_file_exits_5(tmp_path: Path, model: str) -> None:
    blocker = write(tmp_path / "blocker", "x")
    result = render(["hi", "--model", model, "--out", str(blocker / "sub")])
    assert result.exit_code == 5 and "cannot create output folder" in result.stderr


def test_truncation_is_stated_in_the_terminal(tmp_path: Path, model: str) -> None:
    result = render(
        [
            " ".join(["word"] * 40),
            "--model",
            model,
            "--max-length",
            "16",
            "--out",
            str(tmp_path),
            "--format",
            "json",
        ]
    )
    assert result.exit_code == 0
    assert "1 truncated at 16 tokens (--max-length): text-1" in result.stdout


def test_python_dash_m_and_help(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "attnviz", "--help"], capture_output=True, text=True, check=False)
    assert done.returncode == 0 and "render" in done.stdout
    done = subprocess.run([sys.executable, "-m", "attnviz", "list"], capture_output=True, text=True, check=False)
    assert "methods: attention, rollout, flow, relevancy, norms, heads" in done.stdout


def test_every_command_and_option_has_help() -> None:
    import typer.main

    command = typer.main.get_command(app)
    for name, sub in command.commands.items():  # type: ignore[attr-defined]
        assert sub.help, f"command {name} has no help"
        for param in sub.params:
            if param.param_type_name == "option":
                assert param.help, f"{name} {param.opts} has no help"


def test_show_prints_prediction_and_shaded_words_without_interpreting_markup(model: str) -> None:
    result = runner.invoke(app, ["show", "the cat [bold]sat[/bold] here", "--model", model])
    assert result.exit_code == 0, result.stderr
    assert "prediction: " in result.stdout and "raw attention (head mean) (layer 2):" in result.stdout
    # The markup's words are shown as text (each with its level, since the output is not a terminal), not applied.
    assert re.search(r"\[\[\d\.\d\d\] bold\[\d\.\d\d\] \]\[\d\.\d\d\] sat\[", result.stdout), result.stdout
    assert "\x1b" not in result.stdout
    assert "heads are diffuse" in result.stdout
    empty = runner.invoke(app, ["show", "   ", "--model", model])
    assert empty.exit_code == 3 and "is empty" in empty.stderr


def test_one_word_input_completes_with_undefined_numbers_as_null(tmp_path: Path, model: str) -> None:
    """Kendall τ over one token is undefined: null in summary.json, a dash on the page, and the run completes."""
    from attnviz.output.schema import validate_summary

    out = tmp_path / "out"
    result = render(
        ["cat", "--model", model, "--method", "attention,agreement", "--format", "json,html", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    validate_summary(summary)
    assert summary["status"] == "complete"
    metrics = summary["examples"][0]["metrics"]
    assert metrics["agreement_ig.attention"] is None and metrics["ig_total"] is not None
    assert "undefined for this example" in (out / summary["examples"][0]["page"]).read_text(encoding="utf-8")


def test_long_literal_text_and_missing_data_file(tmp_path: Path, model: str) -> None:
    """A literal text longer than a file name can be is a text (no OSError); a missing data.csv is exit 3."""
    out = tmp_path / "out"
    long_text = "wonderful " * 60
    result = render([long_text, "--model", model, "--method", "attention", "--format", "json", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert json.loads((out / "summary.json").read_text(encoding="utf-8"))["run"]["inputs"] == ["<text>"]
    missing = render(["data.csv", "--model", model, "--method", "attention", "--out", str(tmp_path / "o2")])
    assert missing.exit_code == 3 and "data.csv" in missing.output and "file not found" in missing.output


def test_mistyped_paths_are_exit_3_and_text_forces_a_literal_text(
    tmp_path: Path, model: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    quick = ["--model", model, "--method", "attention", "--format", "json", "--overwrite"]  # each run reuses a folder
    for typo in ("data.jsonl", "dir/file"):
        result = render([typo, *quick, "--out", "o"])
        assert result.exit_code == 3, result.output
        assert f"attnviz: error: {typo}: file not found (pass --text" in result.stderr
    for flag, text in (("--text", "data.csv"), ("-t", "a" * 150 + "/" + "a" * 150)):
        result = render([flag, text, *quick, "--out", "lit"])
        assert result.exit_code == 0, result.output
        summary = json.loads((tmp_path / "lit" / "summary.json").read_text(encoding="utf-8"))
        assert summary["run"]["inputs"] == ["<text>"] and summary["examples"][0]["source"] == "<argument 1>"
    long_word = render(["a" * 300 + "/b", *quick, "--out", "long"])  # no file name is 300 bytes: a text
    assert long_word.exit_code == 0, long_word.output


def test_hostile_jsonl_lines_exit_3_naming_file_line_and_field_or_are_skipped(tmp_path: Path, model: str) -> None:
    deep = "[" * 5000 + "]" * 5000
    data = write(
        tmp_path / "in.jsonl",
        '{"text": "good one"}\n'
        '{"text": "caf\\ud800"}\n'
        f'{{"text": "fine", "id": {"1" * 4301}}}\n'
        '{"text": "fine", "score": NaN}\n'
        f'{{"text": "fine", "extra": {deep}}}\n'
        '{"text": "another"}\n',
    )
    quick = ["--model", model, "--method", "attention", "--format", "html,json"]
    stopped = render([str(data), *quick, "--out", str(tmp_path / "a")])
    assert stopped.exit_code == 3, stopped.output
    assert f"attnviz: error: {data}:2: field 'text': holds a lone surrogate '\\ud800'" in stopped.stderr
    assert "Traceback" not in stopped.stderr
    out = tmp_path / "b"
    skipped = render([str(data), *quick, "--on-error", "skip", "--out", str(out)])
    assert skipped.exit_code == 0, skipped.output
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert [e["id"] for e in summary["examples"]] == ["in:1", "in:6"]
    assert [(s["source"], s["field"]) for s in summary["skipped"]] == [
        (f"{data}:2", "text"),
        (f"{data}:3", "id"),
        (f"{data}:4", "score"),
        (f"{data}:5", "extra"),
    ]
    assert f"skipped {data}:3" in skipped.stdout
    assert "NaN is not a JSON number" in (out / "index.html").read_text(encoding="utf-8")


def test_check_needs_a_threshold(tmp_path: Path) -> None:
    result = runner.invoke(app, ["check", str(tmp_path / "summary.json")])
    assert result.exit_code == 2 and "at least one threshold" in result.output


def test_model_help_keeps_the_extra_name() -> None:
    assert "attnviz[demo]" in runner.invoke(app, ["render", "--help"], terminal_width=200).output


def test_empty_input_is_exit_3_unless_allowed(tmp_path: Path, model: str) -> None:
    empty = write(tmp_path / "empty.jsonl", "\n\n")
    result = render([str(empty), "--model", model, "--out", str(tmp_path / "a")])
    assert result.exit_code == 3 and "empty.jsonl: has no examples" in result.output
    summary = json.loads((tmp_path / "a" / "summary.json").read_text(encoding="utf-8"))
    assert summary["status"] == "failed" and "no examples" in summary["error"]
    allowed = render([str(empty), "--model", model, "--allow-empty", "--format", "json", "--out", str(tmp_path / "b")])
    assert allowed.exit_code == 0, allowed.output


def test_option_errors_are_usage_and_other_value_errors_are_unexpected(
    tmp_path: Path, model: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    bad = render(["hello", "--model", model, "--trust-sample", "-1", "--out", str(tmp_path / "a")])
    assert bad.exit_code == 2 and "trust_sample must be 0 (every example) or more" in bad.output

    def broken(*args: object, **kwargs: object) -> None:
        raise ValueError("a bug, not a usage error")

    monkeypatch.setattr("attnviz.api.example_summary", broken)
    crashed = render(
        ["hello", "--model", model, "--method", "attention", "--format", "json", "--out", str(tmp_path / "b")]
    )
    assert crashed.exit_code == 1 and "unexpected ValueError: a bug, not a usage error" in crashed.output
