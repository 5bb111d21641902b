"""Hostile JSONL (issue 12, point 6): every line reads as a valid example or is refused with an InputError naming
``file:line`` (and the field), in both error modes; never any other exception. The fuzz test generates lines over
every field the readers know and every JSON type; ``fixtures/fuzz_corpus`` keeps the cases it found."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from attnviz.errors import ExitStatus, InputError
from attnviz.inputs import KNOWN_FIELDS, InputSpec, read_inputs
from attnviz.model.tasks import get_task, list_tasks
from attnviz.types import Example, SkippedRecord

CORPUS = Path(__file__).parent / "fixtures" / "fuzz_corpus" / "hostile_lines.txt"
# What each task adapter asks of a record: the specs a real run builds.
SPECS = sorted({(get_task(name).required_fields, get_task(name).line_field) for name in list_tasks()})
# Lines 1 and 3 satisfy every task, so only the fuzzed line 2 can fail.
GOOD = {"text": "good", "text_pair": "pair", "question": "why?", "context": "because", "source": "src"}
HOSTILE_VALUES = (
    "NaN",
    "-NaN",
    "Infinity",
    "-Infinity",
    "1e999",
    "-1e400",
    "1" * 4301,
    "-" + "9" * 4301,
    "9" * 4300,  # the longest integer Python reads: allowed
    "[" * 5000 + "]" * 5000,
    '{"a":' * 5000 + "1" + "}" * 5000,
    '"\\ud800"',
    '"\\udfff"',
    '"ok \\udc80 ok"',
    '"\\udc00\\ud800"',  # a surrogate pair in the wrong order
    '"\\ud83d\\ude00"',  # a real pair (an emoji): allowed
    '["\\ud800"]',
    '{"\\ud800": 1}',
    '""',
    '"  \\t "',
    "[]",
    "{}",
    "[[0, 2]]",
    "[[2, 0]]",
    "[[true, 2]]",
    '["word", [0, 1]]',
    '"\\u0000"',
    "[NaN]",
    "[1, 2",
    "tru",
)


def _json_values() -> st.SearchStrategy[str]:
    """Any JSON value as text, ASCII-escaped or raw UTF-8."""
    scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text()
    values = st.recursive(
        scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    )
    return st.builds(json.dumps, values, ensure_ascii=st.booleans())


def _keys() -> st.SearchStrategy[str]:
    names = st.sampled_from((*KNOWN_FIELDS, "review", "stars", "", "TEXT", "\\ud800", "\\ud800text")).map(
        lambda name: f'"{name}"'
    )
    return names | st.text(max_size=8).map(json.dumps)


def _lines() -> st.SearchStrategy[bytes]:
    value = _json_values() | st.sampled_from(HOSTILE_VALUES)
    members = st.lists(st.tuples(_keys(), value), max_size=6)
    # Half the records start with every required field, so that hostile values are not hidden by a missing one.
    start = st.sampled_from([[], [(json.dumps(key), json.dumps(val)) for key, val in GOOD.items()]])
    record = st.builds(lambda head, tail: "{" + ", ".join(f"{k}: {v}" for k, v in head + tail) + "}", start, members)
    text_line = record | value | st.tuples(record, st.integers(0, 200)).map(lambda cut: cut[0][: cut[1]])
    raw = st.binary(max_size=40).map(lambda data: data.replace(b"\n", b""))  # invalid UTF-8 among it
    return text_line.map(lambda line: line.encode("utf-8", "surrogatepass")) | raw


def _read(path: Path, spec: InputSpec) -> list[Example | SkippedRecord]:
    return list(read_inputs([str(path)], spec))


def _assert_writable(example: Example, spec: InputSpec) -> None:
    """What the reader accepts can be written: non-blank text fields and strict JSON in UTF-8."""
    assert all(name in example.fields for name in spec.required)
    assert all(isinstance(v, str) and v.strip() for v in example.fields.values())
    assert example.id.strip() and (example.label is None or example.label.strip())
    entry = [example.id, example.label, dict(example.fields), example.rationale, dict(example.metadata)]
    json.dumps(entry, allow_nan=False, ensure_ascii=False).encode("utf-8")


def _write(path: Path, line: bytes) -> None:
    good = [json.dumps({**GOOD, "id": name}).encode() for name in ("good-first", "good-last")]
    path.write_bytes(b"\n".join([good[0], line, good[1]]) + b"\n")


@settings(
    max_examples=200,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(line=_lines(), shape=st.sampled_from(SPECS))
def test_any_line_is_an_example_or_an_input_error_naming_file_and_line(
    tmp_path: Path, line: bytes, shape: tuple[tuple[str, ...], str]
) -> None:
    path = tmp_path / "fuzz.jsonl"
    _write(path, line)
    spec = InputSpec(required=shape[0], line_field=shape[1])
    sources = [f"{path}:1", f"{path}:2", f"{path}:3"]
    skipped = _read(path, replace(spec, on_error="skip"))  # never raises
    try:
        read = _read(path, spec)
    except InputError as err:
        message = str(err)
        assert message.startswith(f"{path}:2: field '{err.field}': " if err.field else f"{path}:2: "), message
        assert [type(item) for item in skipped] == [Example, SkippedRecord, Example]
        assert skipped[1] == SkippedRecord(sources[1], err.reason, err.field, index=1)
    else:
        assert skipped == read
        assert [item.source for item in read] in (sources, sources[::2])  # line 2 gives nothing when blank
        for example in read:
            assert isinstance(example, Example)
            _assert_writable(example, spec)


def _corpus() -> list[object]:
    """The cases of the corpus, one a row: ``FIELD<tab>REASON<tab>LINE`` (``-``: no field); ``#`` starts a comment."""
    cases = []
    for row in CORPUS.read_bytes().decode("utf-8").split("\n"):  # only \n ends a row, as it ends a JSONL line
        if row and not row.startswith("#"):
            field, reason, line = row.split("\t", 2)
            cases.append(pytest.param(None if field == "-" else field, reason, line, id=f"{field}: {reason}"))
    return cases


@pytest.mark.parametrize(("field", "reason", "line"), _corpus())
def test_corpus_line_is_exit_3_naming_file_line_field_or_skipped(
    tmp_path: Path, field: str | None, reason: str, line: str
) -> None:
    path = tmp_path / "corpus.jsonl"
    _write(path, line.encode("utf-8"))
    with pytest.raises(InputError) as info:
        _read(path, InputSpec())
    where = f"{path}:2: field '{field}': " if field else f"{path}:2: "
    assert str(info.value).startswith(where) and reason in str(info.value), str(info.value)
    assert info.value.field == field and info.value.exit_status == ExitStatus.BAD_INPUT
    items = _read(path, InputSpec(on_error="skip"))
    assert [type(item) for item in items] == [Example, SkippedRecord, Example]
    assert (items[1].source, items[1].field) == (f"{path}:2", field) and reason in items[1].reason
