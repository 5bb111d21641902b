"""Nothing from the data acts on the terminal: escape sequences in ids, texts, labels, file names and option values
are shown as visible escapes in tables, ``show``, warnings and error messages."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from attnviz.cli import app
from attnviz.output.terminal import visible

# What a hostile tester put in data: OSC title, OSC 52 clipboard, OSC 8 link, screen clear, a one-byte C1 CSI,
# a bell, a right-to-left override, and rich markup.
PAYLOADS = (
    "\x1b]0;pwned\x07",
    "\x1b]52;c;ZXZpbA==\x07",
    "\x1b]8;;https://evil.example\x1b\\click\x1b]8;;\x1b\\",
    "\x1b[2J\x1b[H",
    "\x9b2J",
    "bell\x07",
    "\u202egnp.exe",
    "[bold red]markup[/]",
)
ACTING = ("\x1b", "\x9b", "\x07", "\u202e")


def clean(output: str) -> None:
    for char in ACTING:
        assert char not in output, f"{char!r} reached the terminal"


@pytest.mark.parametrize("payload", PAYLOADS)
def test_visible_shows_every_control_as_an_escape(payload: str) -> None:
    shown = visible(payload)
    clean(shown)
    # One line whatever the data holds: a line break in an id or label must not start a line that seems attnviz's.
    assert visible("plain text, tabs\tand\nnew\r\u2028lines") == "plain text, tabs\tand\\nnew\\r\\u2028lines"


def test_an_id_with_a_line_break_fakes_no_line_in_errors(tmp_path: Path, model: str) -> None:
    data = tmp_path / "in.jsonl"
    record = json.dumps({"id": "a\nreport: ok, 0 errors", "text": "fine"})
    data.write_text(f"{record}\n{record}\n", encoding="utf-8")
    quick = ["--method", "attention", "--format", "json"]
    result = CliRunner().invoke(app, ["render", str(data), "--model", model, *quick, "--out", str(tmp_path)])
    assert result.exit_code == 3
    assert "duplicate id 'a\\nreport: ok, 0 errors'" in result.stderr
    assert not any(line.startswith("report:") for line in result.stderr.splitlines())


@pytest.fixture(scope="module")
def model(tiny_path: Callable[..., Path]) -> str:
    return str(tiny_path("bert-classifier"))


def test_summary_table_and_skipped_lines_show_payloads_as_text(tmp_path: Path, model: str) -> None:
    data = tmp_path / "in.jsonl"
    rows = [{"id": f"id{p}", "text": f"good {p} film", "label": p} for p in PAYLOADS]
    data.write_text("\n".join(json.dumps(r) for r in rows) + '\n{"id": "\\u001b]0;x\\u0007", "text": 3}\n')
    result = CliRunner().invoke(
        app,
        ["render", str(data), "--model", model, "--out", str(tmp_path / "out"), "--format", "json"]
        + ["--method", "attention", "--on-error", "skip"],
    )
    assert result.exit_code == 0, result.output
    clean(result.stdout + result.stderr)
    assert "\\x1b" in result.stdout  # shown, so a reader sees what the data holds
    assert "skipped" in result.stdout


def test_show_prints_hostile_words_visibly(model: str) -> None:
    result = CliRunner().invoke(app, ["show", " ".join(PAYLOADS), "--model", model, "--method", "attention"])
    assert result.exit_code == 0, result.output
    clean(result.stdout + result.stderr)


@pytest.mark.parametrize(
    "args",
    [
        ["render", "missing\x1b]0;t\x07.jsonl"],  # a file name in an error message
        ["render", "text", "--method", "\x1b[2Jnope"],  # an unknown name in a usage error
        ["render", "text", "--on-error", "\x1b]52;c;eA==\x07"],  # an option value quoted by a usage error
        ["render", "text", "--model", "./no\x1b]0;t\x07such"],  # a model name in a model error
    ],
)
def test_error_messages_show_payloads_visibly(tmp_path: Path, args: list[str]) -> None:
    result = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "out")])
    assert result.exit_code in (2, 3, 4), result.output
    clean(result.stdout + result.stderr)


@pytest.mark.parametrize("command", ["render", "show"])
def test_an_argument_that_is_not_utf8_is_bad_input(tmp_path: Path, model: str, command: str) -> None:
    """Bytes that do not decode reach Python as lone surrogates: bad input naming the argument, nothing written."""
    out = tmp_path / "out"
    extra = ["--out", str(out), "--method", "attention", "--format", "json"] if command == "render" else []
    result = CliRunner().invoke(app, [command, "good \udcff movie", "--model", model, *extra])
    assert result.exit_code == 3, result.output
    assert "holds a lone surrogate '\\udcff', which is not text" in result.stderr
    assert not out.exists()


def test_show_refuses_text_of_invisible_characters_as_render_does(model: str) -> None:
    result = CliRunner().invoke(app, ["show", "\u200b\u2060", "--model", model])
    assert result.exit_code == 3 and "is empty" in result.stderr
