"""Input readers: literal text, stdin, ``.txt`` (one example a line) and ``.jsonl`` (streamed).

Each reader yields :class:`Example` objects lazily. A bad line raises :class:`InputError` naming
``file:line`` and the field; with ``on_error="skip"`` it yields a :class:`SkippedRecord` instead.
"""

from __future__ import annotations

import json
import math
import os
import re
import stat
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path, PurePath
from typing import Any, BinaryIO, Literal, NoReturn

from attnviz.errors import InputError
from attnviz.types import Example, SkippedRecord

TEXT_FIELDS = ("text", "text_pair", "question", "context", "source", "target")
KNOWN_FIELDS = ("id", *TEXT_FIELDS, "label", "rationale")
FILE_SUFFIXES = (".jsonl", ".txt", ".json", ".ndjson")
# Names of data files a user may mistype: such an argument is a missing file, never a one-word text.
DATA_SUFFIXES = (".csv", ".tsv", ".parquet", ".arrow")
MAX_PATH_BYTES = 4096  # longer arguments are literal texts: no system takes a path this long
MAX_NAME_BYTES = 255  # nor a file or folder name longer than this (NAME_MAX on Linux, macOS and Windows)
PATH_SEPARATORS = tuple(sep for sep in (os.sep, os.altsep) if sep)

OnError = Literal["stop", "skip"]


@dataclass(frozen=True)
class InputSpec:
    """How to read inputs for one run.

    Attributes:
        required: fields every example must have (the task decides: ``text``, or ``question`` and
            ``context``, or ``source``).
        line_field: the field a plain-text line fills (``text``, or ``source`` for seq2seq).
        field_map: canonical field name → column name in the JSONL (``--field text=review``).
        on_error: ``stop`` raises on the first bad record; ``skip`` records it and goes on.
        literal: every argument is a literal text (``--text``): none is read as stdin or looked up on disk.
    """

    required: tuple[str, ...] = ("text",)
    line_field: str = "text"
    field_map: Mapping[str, str] = field(default_factory=dict)
    on_error: OnError = "stop"
    literal: bool = False


def parse_field_map(pairs: Sequence[str]) -> dict[str, str]:
    """Parse ``NAME=COLUMN`` pairs from ``--field``.

    Raises:
        InputError: malformed pair or unknown canonical name.
    """
    mapping: dict[str, str] = {}
    for pair in pairs:
        name, sep, column = pair.partition("=")
        if not sep or not name or not column:
            raise InputError("--field", f"expected NAME=COLUMN, got '{pair}'")
        if name not in KNOWN_FIELDS:
            raise InputError("--field", f"unknown field '{name}'; valid: {', '.join(KNOWN_FIELDS)}")
        mapping[name] = column
    return mapping


def read_inputs(
    args: Sequence[str], spec: InputSpec, stdin: BinaryIO | None = None
) -> Iterator[Example | SkippedRecord]:
    """Yield examples from every argument in order: ``-`` is stdin, an existing path is a file, a missing one
    that looks like a path (see :func:`looks_like_path`) is an error, and anything else is a literal text; with
    ``spec.literal`` every argument is a literal text.

    Duplicate ids are an error (ids name the output files).
    """
    seen: dict[str, str] = {}  # id → where it first appeared, so the message points at both records
    position = 0
    for arg_no, arg in enumerate(args, start=1):
        for item in _read_one(arg, arg_no, spec, stdin):
            position += 1
            item = replace(item, index=position - 1)
            if isinstance(item, Example):
                if item.id in seen:
                    problem = InputError(item.source, f"duplicate id '{item.id}' (first at {seen[item.id]})", "id")
                    yield replace(_handle(problem, spec), index=item.index)
                    continue
                seen[item.id] = item.source
            yield item


def existing_file(arg: str) -> Path | None:
    """The regular file an argument names, or None (see :func:`_on_disk`)."""
    return Path(arg) if _on_disk(arg) == "file" else None


def looks_like_path(arg: str) -> bool:
    """The rule for an argument that names nothing on disk: one word (no whitespace) that could be a path and
    ends in a data-file suffix or holds a path separator is a mistyped file name; anything else is a text.

    So ``data.csv`` and ``dir/file`` are missing files, while ``either/or is fine`` and a 300-character word
    (longer than any file name) are texts.
    """
    if any(c.isspace() for c in arg) or not _could_be_path(arg):
        return False
    return arg.lower().endswith(FILE_SUFFIXES + DATA_SUFFIXES) or any(sep in arg for sep in PATH_SEPARATORS)


def _could_be_path(arg: str) -> bool:
    """Whether a file system could hold this name at all, decided without asking it."""
    if not arg or "\n" in arg or "\0" in arg or _byte_length(arg) > MAX_PATH_BYTES:
        return False
    return all(_byte_length(part) <= MAX_NAME_BYTES for part in PurePath(arg).parts)


def _byte_length(text: str) -> int:
    return len(text.encode("utf-8", "surrogatepass"))  # argv's undecodable bytes arrive as lone surrogates


def _on_disk(arg: str) -> Literal["file", "dir", "other"] | None:
    """What an argument names on disk; only an argument that could be a path is looked up, so a literal text,
    however long, never touches the file system."""
    if not _could_be_path(arg):
        return None
    try:
        mode = os.stat(arg).st_mode
    except (OSError, ValueError):  # missing, unreadable, or a name the system refuses
        return None
    return "file" if stat.S_ISREG(mode) else "dir" if stat.S_ISDIR(mode) else "other"


def count_records(args: Sequence[str], literal: bool = False) -> int | None:
    """How many input records the arguments hold (non-blank lines of files, one per literal text), read cheaply
    before the run; None when stdin is among them (it can be read only once). ``literal`` as in
    :class:`InputSpec`."""
    if literal:
        return len(args)
    total = 0
    for arg in args:
        if arg == "-":
            return None
        path = existing_file(arg)
        if path is not None:
            with path.open("rb") as handle:
                total += sum(1 for raw in handle if raw.strip())
        else:
            total += 1
    return total


def _read_one(arg: str, arg_no: int, spec: InputSpec, stdin: BinaryIO | None) -> Iterator[Example | SkippedRecord]:
    if not spec.literal:
        if arg == "-":
            stream = stdin if stdin is not None else sys.stdin.buffer
            yield from _read_lines(stream, "<stdin>", "stdin", spec)
            return
        kind = _on_disk(arg)
        if kind == "file":
            path = Path(arg)
            with path.open("rb") as handle:
                if path.suffix in (".jsonl", ".ndjson", ".json"):
                    yield from _read_jsonl(handle, str(path), spec)
                else:
                    yield from _read_lines(handle, str(path), path.stem, spec)
            return
        if kind == "dir":
            raise InputError(arg, "is a directory; pass the .jsonl or .txt files inside it")
        if kind == "other":  # a pipe or device: it cannot be read twice (once to count records, once to render)
            raise InputError(arg, "is not a regular file; save it to a file, or pipe it to - (stdin)")
        if looks_like_path(arg):
            raise InputError(arg, "file not found (pass --text to render it as a literal text)")
    source = f"<argument {arg_no}>"
    yield _handle_build(partial(_example, {spec.line_field: arg}, source, f"text-{arg_no}", spec), spec)


def _decoded_lines(stream: BinaryIO, name: str) -> Iterator[tuple[str, str | InputError]]:
    """Yield ``(file:line, text)``; an undecodable line yields an :class:`InputError` in place of text."""
    for line_no, raw in enumerate(stream, start=1):
        source = f"{name}:{line_no}"
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as err:
            yield (
                source,
                InputError(
                    source,
                    f"not valid UTF-8 (byte 0x{raw[err.start]:02x} at column {err.start + 1}); "
                    "re-encode the file as UTF-8",
                ),
            )
            continue
        # A byte-order mark opens a file, and any line of files joined with cat: it is never part of the text.
        yield source, text.removeprefix("\ufeff").rstrip("\r\n")


def _read_lines(stream: BinaryIO, name: str, id_prefix: str, spec: InputSpec) -> Iterator[Example | SkippedRecord]:
    for source, text in _decoded_lines(stream, name):
        if isinstance(text, InputError):
            yield _handle(text, spec)
        elif text.strip():
            line_id = f"{id_prefix}:{source.rsplit(':', 1)[1]}"
            yield _handle_build(partial(_example, {spec.line_field: text}, source, line_id, spec), spec)


def _read_jsonl(stream: BinaryIO, name: str, spec: InputSpec) -> Iterator[Example | SkippedRecord]:
    stem = Path(name).stem
    for source, text in _decoded_lines(stream, name):
        if isinstance(text, InputError):
            yield _handle(text, spec)
        elif text.strip():
            line_id = f"{stem}:{source.rsplit(':', 1)[1]}"
            yield _handle_build(partial(_from_json, text, source, line_id, spec), spec)


def _handle(problem: InputError, spec: InputSpec) -> SkippedRecord:
    if spec.on_error == "stop":
        raise problem
    return SkippedRecord(problem.source, problem.reason, problem.field)


def _handle_build(build: Callable[[], Example], spec: InputSpec) -> Example | SkippedRecord:
    try:
        return build()
    except InputError as problem:
        return _handle(problem, spec)


def _from_json(text: str, source: str, default_id: str, spec: InputSpec) -> Example:
    return _example(_decode_record(text, source), source, default_id, spec)


def _reject_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not a JSON number (write null, or a string)")


def _parse_int(digits: str) -> int:
    try:
        return int(digits)
    except ValueError:  # more digits than sys.get_int_max_str_digits(): Python refuses to convert them
        raise ValueError(
            f"an integer of {len(digits.lstrip('-'))} digits is over the {sys.get_int_max_str_digits()} digits "
            "Python reads (quote it as a string)"
        ) from None


def _parse_float(digits: str) -> float:
    number = float(digits)
    if math.isinf(number):  # 1e999 would otherwise become the Infinity JSON forbids
        raise ValueError(f"the number {digits[:20]} is too large for a float")
    return number


# Python's json reads NaN and Infinity, which JSON forbids; the hooks refuse them and give clear messages.
_DECODER = json.JSONDecoder(parse_int=_parse_int, parse_float=_parse_float, parse_constant=_reject_constant)
_WHITESPACE = re.compile(r"[ \t\n\r]*")  # JSON's whitespace (str.isspace knows more)


def _decode_record(text: str, source: str) -> dict[str, Any]:
    """Decode one JSONL line member by member, so that a bad value (NaN, an integer over Python's digit limit,
    nesting past the parser's recursion limit, malformed JSON) names its field; a field given twice is refused
    rather than silently overwritten."""
    pos = _skip(text, 0)
    if not text.startswith("{", pos):
        value, _ = _value(text, pos, source, None)
        raise InputError(source, f"expected a JSON object, got {type(value).__name__}")
    record: dict[str, Any] = {}
    pos = _skip(text, pos + 1)
    closed = text.startswith("}", pos)
    while not closed:
        if not text.startswith('"', pos):
            raise _malformed(source, "Expecting property name enclosed in double quotes", pos)
        key, pos = _value(text, pos, source, None)
        pos = _skip(text, pos)
        if not text.startswith(":", pos):
            raise _malformed(source, "Expecting ':' delimiter", pos)
        column = _printable(key)
        value, pos = _value(text, _skip(text, pos + 1), source, column)
        if key in record:
            raise InputError(source, "is given twice", column)
        record[key] = value
        pos = _skip(text, pos)
        closed = text.startswith("}", pos)
        if not closed:
            if not text.startswith(",", pos):
                raise _malformed(source, "Expecting ',' delimiter", pos)
            pos = _skip(text, pos + 1)
    pos = _skip(text, pos + 1)
    if pos < len(text):
        raise _malformed(source, "Extra data", pos)
    return record


def _skip(text: str, pos: int) -> int:
    return _WHITESPACE.match(text, pos).end()  # type: ignore[union-attr]  # matches the empty string anywhere


def _value(text: str, pos: int, source: str, column: str | None) -> tuple[Any, int]:
    """The JSON value at ``pos`` and the position after it; any failure is an :class:`InputError`."""
    try:
        return _DECODER.raw_decode(text, pos)
    except json.JSONDecodeError as err:
        raise _malformed(source, err.msg, err.pos, column) from None
    except ValueError as err:  # from the hooks above
        raise InputError(source, str(err), column) from None
    except RecursionError:
        raise InputError(
            source, f"is nested too deeply (the JSON parser stops near {sys.getrecursionlimit()} levels)", column
        ) from None


def _malformed(source: str, problem: str, pos: int, column: str | None = None) -> InputError:
    return InputError(source, f"malformed JSON ({problem} at column {pos + 1})", column)


def _printable(text: str) -> str:
    """A field name as it can be shown and written: lone surrogates become ``\\ud800`` escapes."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _refuse_surrogates(record: Mapping[str, Any], source: str) -> None:
    """Every string of a record, keys included, must be text that UTF-8 can encode: a lone surrogate (a JSON
    escape such as ``"\\ud800"``, an undecodable byte in a command-line argument) would fail when written."""
    for key, value in record.items():
        pending = [key, value]
        while pending:  # a loop, not recursion: values may nest as deep as the parser allows
            item = pending.pop()
            if isinstance(item, dict):
                pending.extend(item)
                pending.extend(item.values())
            elif isinstance(item, list):
                pending.extend(item)
            elif isinstance(item, str):
                try:
                    item.encode("utf-8")
                except UnicodeEncodeError as err:
                    raise InputError(
                        source, f"holds a lone surrogate {ascii(item[err.start])}, which is not text", _printable(key)
                    ) from None


def _id_or_label(value: Any, source: str, column: str) -> str | None:
    """An id or a label: a string or an integer (not true/false, which Python counts as integers), not blank."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise InputError(source, f"must be a string or integer, got {type(value).__name__}", column)
    if not str(value).strip():
        raise InputError(source, "is empty", column)
    return str(value)


def _example(record: Mapping[str, Any], source: str, default_id: str, spec: InputSpec) -> Example:
    _refuse_surrogates(record, source)
    columns = {name: spec.field_map.get(name, name) for name in KNOWN_FIELDS}
    fields: dict[str, str] = {}
    for name in TEXT_FIELDS:
        column = columns[name]
        if column not in record or record[column] is None:
            continue
        value = record[column]
        if not isinstance(value, str):
            raise InputError(source, f"must be a string, got {type(value).__name__}", column)
        if not value.strip():
            raise InputError(source, "is empty", column)
        fields[name] = value
    for name in spec.required:
        if name not in fields:
            raise InputError(source, "is missing", columns[name])
    example_id = _id_or_label(record.get(columns["id"]), source, columns["id"]) or default_id
    label = _id_or_label(record.get(columns["label"]), source, columns["label"])
    rationale = _rationale(record.get(columns["rationale"]), source, columns["rationale"])
    used = {columns[name] for name in KNOWN_FIELDS}
    metadata = {key: value for key, value in record.items() if key not in used}
    return Example(
        id=example_id,
        source=source,
        fields=fields,
        label=label,
        rationale=rationale,
        metadata=metadata,
    )


def _rationale(value: Any, source: str, column: str) -> tuple[Any, ...] | None:
    if value is None:
        return None
    if not isinstance(value, list):
        raise InputError(source, "must be a list of [start, end] spans or a list of words", column)
    if all(isinstance(item, str) for item in value):
        return tuple(value)
    spans = []
    for item in value:
        if (
            not isinstance(item, list)
            or len(item) != 2
            or not all(isinstance(x, int) and not isinstance(x, bool) for x in item)
            or item[0] < 0
            or item[1] <= item[0]
        ):
            raise InputError(source, f"span {item!r} is not [start, end] with 0 <= start < end", column)
        spans.append((item[0], item[1]))
    return tuple(spans)


def examples_only(items: Iterable[Example | SkippedRecord]) -> list[Example]:
    """Keep the examples of a finite stream (for tests and small library calls)."""
    return [item for item in items if isinstance(item, Example)]


def record_example(record: Mapping[str, Any], source: str, default_id: str, spec: InputSpec) -> Example:
    """An example from a record a library caller passes as a mapping (a notebook's dict), with the same fields and
    checks as a JSONL line.

    Raises:
        InputError: as for a JSONL line (a missing or empty field, a bad id, label or rationale), naming ``source``.
    """
    return _example(record, source, default_id, spec)
