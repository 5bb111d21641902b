"""Input readers: every source kind, field mapping, errors naming file:line and field, skip mode, shards."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from attnviz.errors import ExitStatus, InputError
from attnviz.inputs import InputSpec, examples_only, parse_field_map, read_inputs
from attnviz.types import Example, SkippedRecord


def write_jsonl(path: Path, lines: list[object]) -> Path:
    path.write_text("\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines) + "\n", encoding="utf-8")
    return path


def test_literal_text_and_stdin_and_txt(tmp_path: Path) -> None:
    txt = tmp_path / "lines.txt"
    txt.write_text("first line\n\n  \nsecond line\n", encoding="utf-8")
    stdin = io.BytesIO(b"from stdin\nagain\n")
    items = examples_only(read_inputs(["a literal text", "-", str(txt)], InputSpec(), stdin=stdin))
    assert [e.fields["text"] for e in items] == [
        "a literal text",
        "from stdin",
        "again",
        "first line",
        "second line",
    ]
    assert [e.id for e in items] == ["text-1", "stdin:1", "stdin:2", "lines:1", "lines:4"]
    assert items[4].source == f"{txt}:4"
    assert [e.index for e in items] == [0, 1, 2, 3, 4]


def test_jsonl_fields_metadata_and_mapping(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "d.jsonl",
        [
            {"id": "x1", "review": "good", "text_pair": "fine", "label": 1, "stars": 5},
            {"review": "bad", "rationale": [[0, 3]]},
        ],
    )
    spec = InputSpec(field_map=parse_field_map(["text=review"]))
    first, second = examples_only(read_inputs([str(path)], spec))
    assert first.id == "x1" and first.fields == {"text": "good", "text_pair": "fine"}
    assert first.label == "1" and first.metadata == {"stars": 5}
    assert second.id == "d:2" and second.rationale == ((0, 3),)


@pytest.mark.parametrize(
    ("line", "field", "reason"),
    [
        ('{"text": "ok"', None, "malformed JSON"),
        ('{"id": "a"}', "text", "is missing"),
        ('{"text": 3}', "text", "must be a string, got int"),
        ('{"text": "   "}', "text", "is empty"),
        ('["text"]', None, "expected a JSON object"),
        ('{"text": "t", "rationale": [[3, 1]]}', "rationale", "is not [start, end]"),
    ],
)
def test_bad_jsonl_line_names_file_line_and_field(tmp_path: Path, line: str, field: str | None, reason: str) -> None:
    path = write_jsonl(tmp_path / "bad.jsonl", [{"text": "fine"}, line])
    items = read_inputs([str(path)], InputSpec())
    assert isinstance(next(items), Example)
    with pytest.raises(InputError) as info:
        next(items)
    message = str(info.value)
    assert message.startswith(f"{path}:2")
    assert reason in message
    assert info.value.field == field
    assert info.value.exit_status == ExitStatus.BAD_INPUT


def test_non_utf8_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "latin.txt"
    path.write_bytes("caf\xe9 au lait\n".encode("latin-1"))
    with pytest.raises(InputError, match=r"latin\.txt:1: not valid UTF-8 \(byte 0xe9 at column 4\)"):
        list(read_inputs([str(path)], InputSpec()))


def test_skip_mode_records_bad_lines_and_goes_on(tmp_path: Path) -> None:
    path = tmp_path / "mixed.jsonl"
    path.write_bytes(
        b'{"text": "one"}\n{"text": 5}\n\xff\xfe\n{"id": "d", "text": "two"}\n{"id": "d", "text": "dup"}\n'
    )
    items = list(read_inputs([str(path)], InputSpec(on_error="skip")))
    kinds = [type(i).__name__ for i in items]
    assert kinds == ["Example", "SkippedRecord", "SkippedRecord", "Example", "SkippedRecord"]
    skipped = [i for i in items if isinstance(i, SkippedRecord)]
    assert [s.source for s in skipped] == [f"{path}:2", f"{path}:3", f"{path}:5"]
    assert "must be a string" in skipped[0].reason and "UTF-8" in skipped[1].reason
    assert skipped[2].reason == "duplicate id 'd'" and skipped[2].field == "id"


def test_required_fields_come_from_the_task(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "qa.jsonl", [{"question": "who?"}])
    with pytest.raises(InputError, match="field 'context': is missing"):
        list(read_inputs([str(path)], InputSpec(required=("question", "context"))))


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="file not found"):
        list(read_inputs([str(tmp_path / "nope.jsonl")], InputSpec()))
    with pytest.raises(InputError, match="is a directory"):
        list(read_inputs([str(tmp_path)], InputSpec()))


def test_jsonl_is_streamed(tmp_path: Path) -> None:
    """The reader yields the first record before the rest of the file is even valid."""
    path = tmp_path / "big.jsonl"
    path.write_text('{"text": "first"}\n' + "not json\n" * 3, encoding="utf-8")
    items = read_inputs([str(path)], InputSpec())
    assert next(items).fields["text"] == "first"


def test_field_map_errors() -> None:
    with pytest.raises(InputError, match="expected NAME=COLUMN"):
        parse_field_map(["text"])
    with pytest.raises(InputError, match="unknown field 'body'"):
        parse_field_map(["body=x"])
