"""What a record is: the fields an input may carry, how one run reads them (:class:`InputSpec`), and the checks
every reader's records go through (:func:`record_example`), so that a JSONL line, a CSV row and a Parquet row are
validated by the same code. JSON decoding lives here too: JSONL lines and CSV rationale cells use it."""

from __future__ import annotations

import json
import math
import re
import sys
import unicodedata
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, NoReturn

from attnviz.errors import InputError
from attnviz.types import Example, SkippedRecord

TEXT_FIELDS = ("text", "text_pair", "question", "context", "source", "target")
KNOWN_FIELDS = ("id", *TEXT_FIELDS, "label", "rationale")


OnError = Literal["stop", "skip"]


@dataclass(frozen=True)
class InputSpec:
    """How to read inputs for one run.

    Attributes:
        required: fields every example must have (the task decides: ``text``, or ``question`` and
            ``context``, or ``source``).
        line_field: the field a plain-text line fills (``text``, or ``source`` for seq2seq).
        field_map: canonical field name → column name in the file (``--field text=review``).
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


def text_record(text: str, spec: InputSpec) -> dict[str, str]:
    """The record of a plain text (a literal argument, a ``.txt`` or stdin line): the text in ``spec.line_field``,
    under the column ``--field`` maps that field to, so a mapping meant for a table does not hide it."""
    return {spec.field_map.get(spec.line_field, spec.line_field): text}


def skip_or_raise(problem: InputError, spec: InputSpec) -> SkippedRecord:
    """The record a bad input becomes: raised with ``on_error="stop"``, a :class:`SkippedRecord` with ``skip``."""
    if spec.on_error == "stop":
        raise problem
    return SkippedRecord(problem.source, problem.reason, problem.field)


def build_or_skip(build: Callable[[], Example], spec: InputSpec) -> Example | SkippedRecord:
    """``build()``, or the skipped record its :class:`InputError` becomes (see :func:`skip_or_raise`)."""
    try:
        return build()
    except InputError as problem:
        return skip_or_raise(problem, spec)


def json_example(text: str, source: str, default_id: str, spec: InputSpec) -> Example:
    """The example of one JSONL line."""
    return _example(_decode_record(text, source), source, default_id, spec)


def json_value(text: str, source: str, column: str) -> Any:
    """The one JSON value ``text`` holds (a CSV cell); anything else is an :class:`InputError` naming ``column``."""
    value, pos = _value(text, _skip(text, 0), source, column)
    pos = _skip(text, pos)
    if pos < len(text):
        raise _malformed(source, "Extra data", pos, column)
    return value


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


def refuse_surrogates(record: Mapping[str, Any], source: str) -> None:
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
    if is_blank(str(value)):
        raise InputError(source, "is empty", column)
    return str(value)


def is_blank(text: str) -> bool:
    """Nothing a reader could see: only whitespace, control and format characters (a zero-width space, a byte-order
    mark, a bidirectional mark). A model given it sees only its special tokens."""
    return all(char.isspace() or unicodedata.category(char) in ("Cc", "Cf") for char in text)


def _example(record: Mapping[str, Any], source: str, default_id: str, spec: InputSpec) -> Example:
    refuse_surrogates(record, source)
    columns = {name: spec.field_map.get(name, name) for name in KNOWN_FIELDS}
    fields: dict[str, str] = {}
    for name in TEXT_FIELDS:
        column = columns[name]
        if column not in record or record[column] is None:
            continue
        value = record[column]
        if not isinstance(value, str):
            raise InputError(source, f"must be a string, got {type(value).__name__}", column)
        if is_blank(value):
            raise InputError(source, "is empty", column)
        fields[name] = value
    for name in spec.required:
        if name not in fields:
            raise InputError(source, "is missing", columns[name])
    example_id = _id_or_label(record.get(columns["id"]), source, columns["id"]) or default_id
    label = _id_or_label(record.get(columns["label"]), source, columns["label"])
    rationale = _rationale(record.get(columns["rationale"]), source, columns["rationale"])
    if rationale and "text" in fields and not isinstance(rationale[0], str):
        # Spans mark characters of the text: one past its end is a mistake in the data, not a smaller rationale.
        length = len(fields["text"])
        for start, end in rationale:
            if end > length:
                raise InputError(
                    source, f"span [{start}, {end}] ends past the text ({length} characters)", columns["rationale"]
                )
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
