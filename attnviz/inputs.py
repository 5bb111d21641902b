"""Input readers: literal text, stdin, ``.txt`` (one example a line) and ``.jsonl`` (streamed).

Each reader yields :class:`Example` objects lazily. A bad line raises :class:`InputError` naming
``file:line`` and the field; with ``on_error="skip"`` it yields a :class:`SkippedRecord` instead.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any, BinaryIO, Literal

from attnviz.errors import InputError
from attnviz.types import Example, SkippedRecord

TEXT_FIELDS = ("text", "text_pair", "question", "context", "source", "target")
KNOWN_FIELDS = ("id", *TEXT_FIELDS, "label", "rationale")
FILE_SUFFIXES = (".jsonl", ".txt", ".json", ".ndjson")
# Names of data files a user may mistype: such an argument is a missing file, never a one-word text.
DATA_SUFFIXES = (".csv", ".tsv", ".parquet", ".arrow")
MAX_PATH_BYTES = 4096  # longer arguments are literal texts: no system takes a path this long

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
    """

    required: tuple[str, ...] = ("text",)
    line_field: str = "text"
    field_map: Mapping[str, str] = field(default_factory=dict)
    on_error: OnError = "stop"


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
    """Yield examples from every argument in order: ``-`` is stdin, an existing path is a file, and
    anything else is a literal text.

    Duplicate ids are an error (ids name the output files).
    """
    seen: set[str] = set()
    position = 0
    for arg_no, arg in enumerate(args, start=1):
        for item in _read_one(arg, arg_no, spec, stdin):
            position += 1
            item = replace(item, index=position - 1)
            if isinstance(item, Example):
                if item.id in seen:
                    problem = InputError(item.source, f"duplicate id '{item.id}'", "id")
                    yield replace(_handle(problem, spec), index=item.index)
                    continue
                seen.add(item.id)
            yield item


def existing_file(arg: str) -> Path | None:
    """The file an argument names, or None: a literal text never touches the file system as a path, also when
    it is too long to be a file name."""
    if "\n" in arg or len(arg.encode("utf-8", "surrogatepass")) > MAX_PATH_BYTES:
        return None
    try:
        path = Path(arg)
        return path if path.is_file() else None
    except (OSError, ValueError):  # a name the system refuses (too long a component, a NUL byte)
        return None


def _is_dir(arg: str) -> bool:
    if "\n" in arg or len(arg.encode("utf-8", "surrogatepass")) > MAX_PATH_BYTES:
        return False
    try:
        return Path(arg).is_dir()
    except (OSError, ValueError):
        return False


def count_records(args: Sequence[str]) -> int | None:
    """How many input records the arguments hold (non-blank lines of files, one per literal text), read cheaply
    before the run; None when stdin is among them (it can be read only once)."""
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
    if arg == "-":
        stream = stdin if stdin is not None else sys.stdin.buffer
        yield from _read_lines(stream, "<stdin>", "stdin", spec)
        return
    path = existing_file(arg)
    if path is not None:
        with path.open("rb") as handle:
            if path.suffix in (".jsonl", ".ndjson", ".json"):
                yield from _read_jsonl(handle, str(path), spec)
            else:
                yield from _read_lines(handle, str(path), path.stem, spec)
        return
    if _is_dir(arg):
        raise InputError(arg, "is a directory; pass the .jsonl or .txt files inside it")
    if not any(c.isspace() for c in arg) and arg.lower().endswith(FILE_SUFFIXES + DATA_SUFFIXES):
        raise InputError(arg, "file not found")
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
        if line_no == 1:
            text = text.removeprefix("\ufeff")
        yield source, text.rstrip("\r\n")


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
    try:
        record = json.loads(text)
    except json.JSONDecodeError as err:
        raise InputError(source, f"malformed JSON ({err.msg} at column {err.colno})") from None
    if not isinstance(record, dict):
        raise InputError(source, f"expected a JSON object, got {type(record).__name__}")
    return _example(record, source, default_id, spec)


def _example(record: Mapping[str, Any], source: str, default_id: str, spec: InputSpec) -> Example:
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
    raw_id = record.get(columns["id"], default_id)
    if not isinstance(raw_id, (str, int)) or isinstance(raw_id, bool) or str(raw_id) == "":
        raise InputError(source, "must be a non-empty string or integer", columns["id"])
    label = record.get(columns["label"])
    if label is not None and not isinstance(label, (str, int)):
        raise InputError(source, f"must be a string or integer, got {type(label).__name__}", columns["label"])
    rationale = _rationale(record.get(columns["rationale"]), source, columns["rationale"])
    used = {columns[name] for name in KNOWN_FIELDS}
    metadata = {key: value for key, value in record.items() if key not in used}
    return Example(
        id=str(raw_id),
        source=source,
        fields=fields,
        label=None if label is None else str(label),
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
