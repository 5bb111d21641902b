"""Table readers: ``.csv`` and ``.tsv`` (a header row names the columns), ``.parquet`` (read one row group at a
time) and a folder written by ``datasets``' ``save_to_disk`` (memory-mapped, read in batches).

A row is a record like a JSONL object, its columns the fields (``--field`` maps them), and it goes through the same
checks (:func:`~attnviz.inputs.records.record_example`). Rows are numbered so that ``file:n`` finds them: in CSV and
TSV, ``n`` is the line the row starts on (the header is line 1, so the first row is usually line 2, and a quoted
value spanning lines moves the next row's number on); in Parquet and ``datasets`` folders, which have no lines, it
is the 1-based row. The default id is ``<stem>:<n>``, as for JSONL. A column the task requires but the header or
schema lacks, a column named twice, or CSV that cannot be parsed stops the run whatever ``on_error`` says: no row of
such a file could be read.

pyarrow and datasets are optional (``pip install 'attnviz[data]'``) and imported only when such an input is read.
"""

from __future__ import annotations

import csv
import importlib
import json
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from types import ModuleType
from typing import Any

from attnviz.errors import InputError
from attnviz.inputs.readers import Reader, Records, register_reader
from attnviz.inputs.records import KNOWN_FIELDS, InputSpec, build_or_skip, is_blank, json_value, record_example
from attnviz.types import Example

BATCH_ROWS = 256  # rows turned into Python objects at a time (a Parquet row group may hold a million)
MAX_CSV_VALUE = 2**31 - 1  # characters in one CSV or TSV value: any text a file holds
NAMED_COLUMNS = 20  # an error about a missing column lists at most this many of those there are
DATA_EXTRA = "pip install 'attnviz[data]'"
# Surrogate escapes stand for the bytes that are not UTF-8 (errors="surrogateescape"): U+DC80..U+DCFF.
_ESCAPED_BYTES = range(0xDC80, 0xDD00)


def require(module: str, needed_for: str, source: str) -> ModuleType:
    """Import an optional dependency of the ``data`` extra, or say how to install it.

    Raises:
        InputError: the module is not installed (naming ``source``, what needs it and the pip command).
    """
    try:
        return importlib.import_module(module)
    except ImportError:
        top = module.partition(".")[0]
        raise InputError(source, f"reading {needed_for} needs {top}: {DATA_EXTRA}") from None


def check_columns(columns: Sequence[str], source: str, spec: InputSpec) -> None:
    """Refuse a table whose columns cannot give any example: one named twice, a required one missing, or one that
    ``--field`` names missing.

    Raises:
        InputError: naming ``source`` (the file, or its header line) and the column.
    """
    seen: set[str] = set()
    for column in columns:
        if column in seen:
            raise InputError(source, "is the name of two columns", _shown(column))
        seen.add(column)
    # Every required field, and every field --field maps explicitly (a typo would silently give no labels).
    for name in dict.fromkeys([*spec.required, *spec.field_map]):
        column = spec.field_map.get(name, name)
        if column not in seen:
            listed = ", ".join(_shown(c) for c in columns[:NAMED_COLUMNS])
            more = f" and {len(columns) - NAMED_COLUMNS} more" if len(columns) > NAMED_COLUMNS else ""
            hint = "" if name in spec.field_map else f"; map one with --field {name}=COLUMN"
            raise InputError(source, f"is not a column (columns: {listed}{more}){hint}", column)


def _shown(text: str) -> str:
    """A name as it can be shown: lone surrogates (undecodable bytes) as escapes."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


# --- CSV and TSV ---------------------------------------------------------------------------------------------------

# CSV follows RFC 4180 (quotes around values that hold commas, quotes or line breaks), strictly: a quote that is
# never closed would swallow every later row into one value, and a stray one (`"good" film`) would be dropped from
# the text, so both stop the run naming the row's line. TSV follows the IANA format that GLUE and most NLP data use:
# no quoting at all, so a quote is an ordinary character (and a value cannot hold a tab or a line break).
_CSV_FORMATS = {"csv": {"delimiter": ",", "strict": True}, "tsv": {"delimiter": "\t", "quoting": csv.QUOTE_NONE}}


def _csv_rows(path: Path, kind: str) -> Iterator[tuple[int, list[str]]]:
    """``(line the row starts on, values)`` of every row but blank ones, the header first.

    Raises:
        InputError: the file cannot be parsed (naming the line); the rest of it cannot be trusted.
    """
    # Python's csv refuses values over 128 KiB by default; a document in a cell is a text like any other (the
    # limit is global to the process, and only ever raised here; a C long is 32 bits on Windows).
    csv.field_size_limit(max(csv.field_size_limit(), MAX_CSV_VALUE))
    # Undecodable bytes become surrogate escapes, so one bad value is one bad row, not an unreadable file.
    with path.open(encoding="utf-8-sig", errors="surrogateescape", newline="") as handle:
        reader = csv.reader(handle, **_CSV_FORMATS[kind])  # type: ignore[arg-type]
        start = 1
        while True:
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as err:
                raise InputError(f"{path}:{start}", f"is not valid {kind.upper()} ({err})") from None
            # Blank lines are left out, as in .txt and .jsonl (spaces or invisible characters alone count as blank);
            # a lone "" (csv's way of writing one empty value) is not.
            if row and not (len(row) == 1 and row[0] and is_blank(row[0])):
                yield start, row
            start = reader.line_num + 1


def _read_table(path: Path, spec: InputSpec, kind: str) -> Records:
    rows = _csv_rows(path, kind)
    first = next(rows, None)
    if first is None:
        return
    header_line, header = first
    for column in header:
        _refuse_undecodable(column, f"{path}:{header_line}", None)
    check_columns(header, f"{path}:{header_line}", spec)
    for line, values in rows:
        source = f"{path}:{line}"
        yield build_or_skip(partial(_csv_example, header, values, source, f"{path.stem}:{line}", spec), spec)


def _csv_example(header: list[str], values: list[str], source: str, default_id: str, spec: InputSpec) -> Example:
    if len(values) != len(header):
        raise InputError(source, f"has {len(values)} values; the header has {len(header)} columns")
    required = {spec.field_map.get(name, name) for name in spec.required}
    rationale = spec.field_map.get("rationale", "rationale")
    record: dict[str, Any] = {}
    for column, value in zip(header, values, strict=True):
        _refuse_undecodable(value, source, column)
        if not value.strip():  # CSV has no null: an empty value is an absent one, except in a required column
            record[column] = value if column in required else None
        elif column == rationale:
            record[column] = _csv_rationale(value, source, column)
        else:
            record[column] = value  # strings all: a label stays the string it is written as
    return record_example(record, source, default_id, spec)


def _csv_rationale(text: str, source: str, column: str) -> Any:
    """A rationale cell is JSON, as in JSONL: ``[[0, 4], [9, 13]]`` (character spans) or ``["good", "plot"]``."""
    try:
        return json_value(text, source, column)
    except InputError as err:
        raise InputError(
            source,
            f'must be JSON: [[start, end], ...] character spans or ["word", ...] words ({err.reason})',
            column,
        ) from None


def _refuse_undecodable(text: str, source: str, column: str | None) -> None:
    for position, char in enumerate(text):
        if ord(char) in _ESCAPED_BYTES:
            raise InputError(
                source,
                f"not valid UTF-8 (byte 0x{ord(char) - 0xDC00:02x} at character {position + 1}); "
                "re-encode the file as UTF-8",
                column,
            )


def _count_table(path: Path, kind: str) -> int:
    """Rows after the header, blank lines left out; a quoted line break does not start a row."""
    count = -1  # the header
    try:
        for _ in _csv_rows(path, kind):
            count += 1
    except InputError:  # reading stops at the same place, saying why
        pass
    return max(count, 0)


# --- Parquet -------------------------------------------------------------------------------------------------------


def _parquet_file(path: Path) -> Any:
    pq = require("pyarrow.parquet", "Parquet files", str(path))
    try:
        return pq.ParquetFile(path)
    except (OSError, ValueError) as err:  # pyarrow's ArrowInvalid is a ValueError
        raise InputError(str(path), f"is not a readable Parquet file ({err})") from None


def _read_parquet(path: Path, spec: InputSpec) -> Records:
    with _parquet_file(path) as parquet:
        check_columns(parquet.schema_arrow.names, str(path), spec)
        row = 0
        for group in range(parquet.num_row_groups):  # one row group in memory at a time, never the whole file
            try:
                table = parquet.read_row_group(group)
            except (OSError, ValueError) as err:
                raise InputError(str(path), f"row group {group + 1} cannot be read ({err})") from None
            for batch in table.to_batches(max_chunksize=BATCH_ROWS):
                for record in batch.to_pylist():
                    row += 1
                    source, default_id = f"{path}:{row}", f"{path.stem}:{row}"
                    yield build_or_skip(
                        partial(record_example, plain_values(record, spec), source, default_id, spec), spec
                    )
            del table


def plain_values(record: Mapping[str, Any], spec: InputSpec) -> dict[str, Any]:
    """An Arrow row with the values of its metadata columns made JSON values, as a JSONL line's are: NaN and
    infinities (pandas' mark of a missing number) become null, bytes their length, dates and decimals their text.
    The columns of known fields are left as they are, for :func:`record_example` to check."""
    known = {spec.field_map.get(name, name) for name in KNOWN_FIELDS}
    return {key: value if key in known else _plain(value) for key, value in record.items()}


def _plain(value: Any) -> Any:
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if isinstance(value, (bytes, bytearray)):
        return f"<{len(value)} bytes>"
    isoformat = getattr(value, "isoformat", None)  # datetime, date, time
    return isoformat() if callable(isoformat) else str(value)


def _count_parquet(path: Path) -> int:
    with _parquet_file(path) as parquet:
        return int(parquet.metadata.num_rows)  # from the footer: no data is read


# --- datasets folders ----------------------------------------------------------------------------------------------


def is_saved_dataset(path: Path) -> bool:
    """Whether a folder was written by ``save_to_disk``: one split (``state.json`` and ``dataset_info.json``) or a
    ``DatasetDict`` of splits (``dataset_dict.json``)."""
    return ((path / "state.json").is_file() and (path / "dataset_info.json").is_file()) or (
        path / "dataset_dict.json"
    ).is_file()


def saved_splits(path: Path) -> list[str] | None:
    """The splits of a saved ``DatasetDict`` folder; None for a folder of one split."""
    index = path / "dataset_dict.json"
    if not index.is_file():
        return None
    try:
        splits = json.loads(index.read_text(encoding="utf-8"))["splits"]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise InputError(str(index), f"is not a datasets split list ({err})") from None
    return [str(split) for split in splits]


@contextmanager
def quiet_datasets(datasets: ModuleType) -> Iterator[None]:
    """No progress bars from ``datasets`` while it loads: the render's own bar is on the same terminal."""
    shown = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()
    try:
        yield
    finally:
        if shown:
            datasets.enable_progress_bars()


def load_saved(path: Path, source: str) -> Any:
    """``datasets.load_from_disk`` (memory-mapped: nothing is read whole) as a :class:`InputError` on failure."""
    datasets = require("datasets", "datasets folders", source)
    try:
        with quiet_datasets(datasets):
            return datasets.load_from_disk(str(path))
    # IndexError: a folder whose state lists no data files (an empty dataset saved by an older datasets).
    except (OSError, ValueError, IndexError, _datasets_error(datasets)) as err:
        raise InputError(source, f"cannot be loaded with datasets.load_from_disk ({err})") from None


def _datasets_error(datasets: ModuleType) -> type[Exception]:
    return getattr(getattr(datasets, "exceptions", None), "DatasetsError", ValueError)


def _saved_split(path: Path) -> Any:
    splits = saved_splits(path)
    if splits is not None:
        example = splits[0] if splits else "test"
        raise InputError(
            str(path),
            f"holds the splits {', '.join(splits)} (saved with save_to_disk): pass one split's folder, such as "
            f"{path / example}, or --dataset {path} --split {example}",
        )
    return load_saved(path, str(path))


def dataset_records(
    rows: Iterable[Mapping[str, Any]], features: Any, name: str, id_prefix: str, first: int, spec: InputSpec
) -> Records:
    """Examples of ``datasets`` rows numbered from ``first``: source ``<name>:<n>``, default id ``<id_prefix>:<n>``.

    A ``ClassLabel`` label becomes its class name (``-1``, the datasets mark of an unlabelled row, no label).
    """
    label = spec.field_map.get("label", "label")
    names = _class_names(features, label)
    for row_no, row in enumerate(rows, start=first):
        record = plain_values(row, spec)
        if names is not None and label in record:
            record[label] = _class_name(record[label], names)
        source = f"{name}:{row_no}"
        yield build_or_skip(partial(record_example, record, source, f"{id_prefix}:{row_no}", spec), spec)


def _class_names(features: Any, column: str) -> list[str] | None:
    feature = features.get(column) if isinstance(features, Mapping) else None
    names = getattr(feature, "names", None)  # a ClassLabel; other features have no names
    return list(names) if isinstance(names, list) else None


def _class_name(value: Any, names: list[str]) -> Any:
    if value == -1:
        return None
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < len(names):
        return names[value]
    return value  # checked like any label (an integer out of range stays that integer)


def dataset_rows(dataset: Any) -> Iterator[dict[str, Any]]:
    """The rows of a (memory-mapped) ``datasets.Dataset``, converted a batch at a time."""
    for batch in dataset.iter(batch_size=BATCH_ROWS):
        columns = list(batch)
        for values in zip(*(batch[column] for column in columns), strict=True):
            yield dict(zip(columns, values, strict=True))


def _read_saved(path: Path, spec: InputSpec) -> Records:
    dataset = _saved_split(path)
    check_columns(list(dataset.column_names), str(path), spec)
    yield from dataset_records(dataset_rows(dataset), dataset.features, str(path), path.name, 1, spec)


def _count_saved(path: Path) -> int:
    return len(_saved_split(path))


for _kind, _reads in (
    ("csv", "comma-separated values, a header row naming the columns"),
    ("tsv", "tab-separated values (no quoting), a header row naming the columns"),
):
    register_reader(
        Reader(_kind, _reads, partial(_read_table, kind=_kind), partial(_count_table, kind=_kind), (f".{_kind}",))
    )
register_reader(
    Reader("parquet", "Parquet, read one row group at a time", _read_parquet, _count_parquet, (".parquet",))
)
register_reader(
    Reader(
        "datasets_folder",
        "a folder written by datasets' save_to_disk",
        _read_saved,
        _count_saved,
        folder=is_saved_dataset,
    )
)
