"""Input readers: every source kind, field mapping, errors naming file:line and field, skip mode, shards."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import pytest

from attnviz.errors import ExitStatus, InputError
from attnviz.inputs import InputSpec, count_records, examples_only, parse_field_map, read_inputs
from attnviz.types import Example, SkippedRecord


def write_jsonl(path: Path, lines: list[object]) -> Path:
    path.write_text("\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines) + "\n", encoding="utf-8")
    return path


def test_literal_text_and_stdin_and_txt(tmp_path: Path) -> None:
    txt = tmp_path / "lines.txt"
    txt.write_text("first line\n\n  \nsecond line\n\u200b\u200e\n", encoding="utf-8")  # invisible alone: blank
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
        ('{"text": "\\u200b\\u200b\\ufeff"}', "text", "is empty"),  # nothing to see: the model would get no token
        ('{"text": "\\u0007\\u0008"}', "text", "is empty"),
        ('{"text": "ok", "id": "\\u200e"}', "id", "is empty"),
        ('["text"]', None, "expected a JSON object"),
        ('{"text": "t", "rationale": [[3, 1]]}', "rationale", "is not [start, end]"),
        ('{"text": "four", "rationale": [[0, 4], [2, 9]]}', "rationale", "span [2, 9] ends past the text (4 char"),
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
    assert skipped[2].reason == f"duplicate id 'd' (first at {path}:4)" and skipped[2].field == "id"


def test_required_fields_come_from_the_task(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "qa.jsonl", [{"question": "who?"}])
    with pytest.raises(InputError, match="field 'context': is missing"):
        list(read_inputs([str(path)], InputSpec(required=("question", "context"))))


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="file not found"):
        list(read_inputs([str(tmp_path / "nope.jsonl")], InputSpec()))
    with pytest.raises(InputError, match="is a directory"):
        list(read_inputs([str(tmp_path)], InputSpec()))


def test_missing_path_like_arguments_are_exit_3_and_other_words_are_texts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    for arg in ("data.jsonl", "DATA.CSV", "dir/file", "./notes", "/no/such/place"):
        with pytest.raises(InputError) as info:
            list(read_inputs([arg], InputSpec()))
        assert str(info.value).startswith(f"{arg}: file not found (pass --text")
        assert info.value.exit_status == ExitStatus.BAD_INPUT
    texts = ["either/or is fine", "hello", "and/or\nmore", "a" * 300, "a" * 300 + "/b", "/" + "a" * 300]
    assert [e.fields["text"] for e in examples_only(read_inputs(texts, InputSpec()))] == texts
    # Linux file names may hold a line break: an existing one is read as the file it is.
    (tmp_path / "two\nlines.txt").write_text("from the file\n", encoding="utf-8")
    [example] = examples_only(read_inputs(["two\nlines.txt"], InputSpec()))
    assert example.fields["text"] == "from the file" and example.source == "two\nlines.txt:1"


def test_long_texts_and_literal_mode_never_touch_the_file_system(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    existing = tmp_path / "notes.txt"
    existing.write_text("a file\n", encoding="utf-8")
    literal = ["data.csv", "-", str(existing), "dir/file", str(tmp_path)]
    long_texts = ["a" * 300, "a" * 300 + "/b", "/" + "a" * 300, "x" * 5000]

    def no_disk(path: object, *args: object, **kwargs: object) -> None:
        raise AssertionError(f"looked up {path!r} on disk")

    with monkeypatch.context() as patched:
        patched.setattr(os, "stat", no_disk)  # Path.is_file and friends stat through it too
        read = examples_only(read_inputs(literal, InputSpec(literal=True)))
        long_read = examples_only(read_inputs(long_texts, InputSpec()))
        assert count_records(literal, literal=True) == len(literal)
    assert [e.fields["text"] for e in read] == literal
    assert [e.source for e in read] == [f"<argument {n}>" for n in range(1, len(literal) + 1)]
    assert [e.fields["text"] for e in long_read] == long_texts


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes are POSIX")
def test_a_pipe_or_device_is_refused_by_name(tmp_path: Path) -> None:
    """It could not be read twice (once to count records, once to render), so it is not taken for a file."""
    pipe = tmp_path / "pipe"
    os.mkfifo(pipe)
    with pytest.raises(InputError, match=f"^{pipe}: is not a regular file"):
        list(read_inputs([str(pipe)], InputSpec()))


def test_byte_order_marks_of_joined_files_are_dropped(tmp_path: Path) -> None:
    bom = "\ufeff".encode()
    path = tmp_path / "joined.jsonl"
    path.write_bytes(bom + b'{"text": "one"}\n' + bom + b'{"text": "two"}\n')
    assert [e.fields["text"] for e in examples_only(read_inputs([str(path)], InputSpec()))] == ["one", "two"]


def test_null_id_is_the_default_and_a_bool_label_is_refused(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "d.jsonl", [{"text": "a", "id": None, "label": 0}, {"text": "b", "label": False}])
    items = list(read_inputs([str(path)], InputSpec(on_error="skip")))
    assert isinstance(items[0], Example) and (items[0].id, items[0].label) == ("d:1", "0")
    assert isinstance(items[1], SkippedRecord) and (items[1].field, items[1].reason) == (
        "label",
        "must be a string or integer, got bool",
    )


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


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("bom.txt", "\ufeff"),  # what some editors save for an empty UTF-8 file
        ("spaces.jsonl", '\ufeff\r\n{"text": "one"}\n\u00a0\n\u3000 \n{"text": "two"}\n\x1c\n'),
        ("spaces.txt", "one\n\u00a0\u00a0\n\u2003\ntwo\n"),
    ],
)
def test_the_record_count_is_what_the_readers_read(tmp_path: Path, name: str, content: str) -> None:
    """Lines blank only once decoded (a byte-order mark, Unicode spaces) are no records for the count either: the
    empty-input check and the trust sample rely on it."""
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    read = examples_only(read_inputs([str(path)], InputSpec()))
    assert count_records([str(path)]) == len(read) == content.count("one") + content.count("two")
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(b'{"text": "ok"}\n\xff\xfe\n \n')
    assert count_records([str(bad)]) == 2  # an undecodable line is a record, in error


def test_a_file_that_cannot_be_read_is_bad_input_naming_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_jsonl(tmp_path / "locked.jsonl", [{"text": "hi"}])
    real = Path.open

    def locked(self: Path, *args: object, **kwargs: object):  # type: ignore[no-untyped-def]
        if self.name == "locked.jsonl":
            raise PermissionError(13, "Permission denied")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Path, "open", locked)
    for attempt in (lambda: count_records([str(path)]), lambda: list(read_inputs([str(path)], InputSpec()))):
        with pytest.raises(InputError) as found:
            attempt()
        assert str(found.value) == f"{path}: cannot be read (Permission denied); check that it is readable"
        assert found.value.exit_status == ExitStatus.BAD_INPUT


def test_two_inputs_of_one_name_collide_on_default_ids_with_a_message_that_says_so(tmp_path: Path) -> None:
    (tmp_path / "x").mkdir()
    (tmp_path / "y").mkdir()
    first, second = tmp_path / "x" / "data.txt", tmp_path / "y" / "data.txt"
    first.write_text("Great movie.\n", encoding="utf-8")
    second.write_text("Awful film.\n", encoding="utf-8")
    with pytest.raises(InputError) as found:
        list(read_inputs([str(first), str(second)], InputSpec()))
    assert found.value.field is None  # no id field is to blame: the records have none
    assert str(found.value) == (
        f"{second}:1: its default id 'data:1' (file name and line) is also the one of {first}:1: "
        "give the records an id field, or rename one of the files"
    )
