"""Dataset inputs: CSV, TSV, Parquet (by row group), datasets folders and --dataset (streamed) read like JSONL, with
--field, file:row errors naming the column, skip mode and cheap record counts."""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from attnviz.cli import app
from attnviz.errors import ExitStatus, InputError, UnknownNameError, UsageError
from attnviz.inputs import (
    DatasetSource,
    InputSpec,
    Reader,
    count_records,
    examples_only,
    get_reader,
    list_readers,
    parse_field_map,
    read_inputs,
    register_reader,
)
from attnviz.types import Example, SkippedRecord

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")
datasets = pytest.importorskip("datasets")

runner = CliRunner()
ROWS: list[dict[str, Any]] = [
    {"id": "r1", "text": "A fine, quiet film.", "label": "pos", "rationale": [[2, 6]], "note": "a"},
    {"id": "r2", "text": 'Said "no"\nand left.', "label": "neg", "rationale": [[6, 8]], "note": "b"},
    {"id": "r3", "text": "Dull.", "label": "neg", "rationale": None, "note": "c"},
    {"id": "r4", "text": "Warm and funny.", "label": "pos", "rationale": [[0, 4], [9, 14]], "note": "d"},
    {"id": "r5", "text": "Too long by half.", "label": "neg", "rationale": None, "note": "e"},
]
FORMATS = ("jsonl", "csv", "tsv", "parquet", "saved")


@pytest.fixture(scope="module")
def model(tiny_path: Callable[..., Path]) -> str:
    return str(tiny_path("bert-classifier"))


def _tsv_safe(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """TSV values cannot hold a line break (no quoting): the same rows with spaces for them."""
    return [{**row, "text": row["text"].replace("\n", " ")} for row in rows]


def write_rows(folder: Path, kind: str, rows: list[dict[str, Any]], name: str = "data") -> Path:
    """The rows as a file (or folder) of ``kind``; rationales as JSON text in CSV and TSV, lists elsewhere."""
    columns = list(dict.fromkeys(key for row in rows for key in row))
    if kind == "jsonl":
        path = folder / f"{name}.jsonl"
        path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    elif kind in ("csv", "tsv"):
        path = folder / f"{name}.{kind}"
        with path.open("w", encoding="utf-8", newline="") as handle:
            if kind == "csv":
                writer = csv.writer(handle)
            else:
                writer = csv.writer(handle, delimiter="\t", quoting=csv.QUOTE_NONE, escapechar=None, quotechar=None)
            writer.writerow(columns)
            for row in rows:
                writer.writerow([_cell(row.get(column)) for column in columns])
    elif kind == "parquet":
        path = folder / f"{name}.parquet"
        pq.write_table(pa.Table.from_pylist(rows), path, row_group_size=2)  # several row groups
    else:
        path = folder / name
        datasets.Dataset.from_list(rows).save_to_disk(str(path))
    return path


def _cell(value: Any) -> str:
    if value is None:
        return ""
    return json.dumps(value) if isinstance(value, list) else str(value)


def _read(path: Path, spec: InputSpec | None = None) -> list[Example | SkippedRecord]:
    return list(read_inputs([str(path)], spec or InputSpec()))


def _meaning(example: Example) -> tuple[Any, ...]:
    return (example.id, dict(example.fields), example.label, example.rationale, dict(example.metadata))


# --- the registry ---------------------------------------------------------------------------------------------------


def test_every_format_is_an_entry_of_one_reader_registry(tmp_path: Path) -> None:
    assert list_readers()[:6] == ["txt", "jsonl", "csv", "tsv", "parquet", "datasets_folder"]
    assert get_reader("parquet").suffixes == (".parquet",) and get_reader("datasets_folder").folder is not None
    with pytest.raises(UnknownNameError, match="valid: txt, jsonl, csv, tsv, parquet, datasets_folder"):
        get_reader("xlsx")
    with pytest.raises(ValueError, match="suffix '.csv' is already read by input reader 'csv'"):
        register_reader(Reader("csv2", "csv again", get_reader("csv").read, get_reader("csv").count, (".csv",)))
    # A suffix in any case is the reader's; a folder no reader claims is still refused.
    upper = tmp_path / "DATA.CSV"
    upper.write_text("text\nhello\n", encoding="utf-8")
    assert [e.fields["text"] for e in examples_only(_read(upper))] == ["hello"]
    (tmp_path / "plain").mkdir()
    with pytest.raises(InputError, match="is a directory; pass the files inside it, or a folder written by datasets"):
        _read(tmp_path / "plain")


# --- the same examples as JSONL -------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", FORMATS[1:])
def test_each_format_reads_the_examples_its_jsonl_twin_reads(tmp_path: Path, kind: str) -> None:
    rows = _tsv_safe(ROWS) if kind == "tsv" else ROWS
    twin = examples_only(_read(write_rows(tmp_path, "jsonl", rows)))
    path = write_rows(tmp_path, kind, rows)
    read = _read(path)
    assert [_meaning(e) for e in examples_only(read)] == [_meaning(e) for e in twin]
    assert [e.index for e in read] == list(range(len(rows)))
    assert count_records([str(path)]) == len(rows)


def test_csv_rows_are_numbered_by_the_line_they_start_on(tmp_path: Path) -> None:
    """Header line 1; a quoted line break moves the next row on; blank lines (also of spaces) are left out, as in
    JSONL."""
    path = tmp_path / "reviews.csv"
    path.write_text('text,label\n"two\nlines, quoted",1\n\nnext,0\n"say ""hi""",1\n   \n\u200b\n', encoding="utf-8")
    read = examples_only(_read(path))
    assert [(e.id, e.source, e.fields["text"], e.label) for e in read] == [
        ("reviews:2", f"{path}:2", "two\nlines, quoted", "1"),
        ("reviews:5", f"{path}:5", "next", "0"),
        ("reviews:6", f"{path}:6", 'say "hi"', "1"),
    ]
    assert count_records([str(path)]) == 3


def test_tsv_takes_quotes_as_text_and_parquet_rows_count_from_one(tmp_path: Path) -> None:
    tsv = tmp_path / "glue.tsv"
    tsv.write_text('sentence\tlabel\n"quoted" words stay\t1\n', encoding="utf-8")
    spec = InputSpec(field_map={"text": "sentence"})
    assert [e.fields["text"] for e in examples_only(_read(tsv, spec))] == ['"quoted" words stay']
    parquet = write_rows(tmp_path, "parquet", [{"text": f"row {n}"} for n in range(5)], name="p")
    assert [(e.id, e.source) for e in examples_only(_read(parquet))][-1] == ("p:5", f"{parquet}:5")


@pytest.mark.parametrize("kind", FORMATS)
def test_field_mapping_works_for_every_format(tmp_path: Path, kind: str) -> None:
    rows = [{"review": "Good.", "gold": "pos", "key": "k1"}, {"review": "Bad.", "gold": "neg", "key": "k2"}]
    path = write_rows(tmp_path, kind, rows)
    spec = InputSpec(field_map=parse_field_map(["text=review", "label=gold", "id=key"]))
    read = examples_only(_read(path, spec))
    assert [(e.id, e.fields, e.label, dict(e.metadata)) for e in read] == [
        ("k1", {"text": "Good."}, "pos", {}),
        ("k2", {"text": "Bad."}, "neg", {}),
    ]


# --- bad rows -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "rows", "where", "column", "reason"),
    [
        ("csv", [{"text": "ok", "label": "1"}, {"text": "", "label": "0"}], 3, "text", "is empty"),
        (
            "csv",
            [{"text": "ok", "rationale": None}, {"text": "ok", "rationale": "good bits"}],
            3,
            "rationale",
            "must be JSON: [[start, end], ...] character spans",
        ),
        (
            "csv",
            [{"text": "ok", "rationale": None}, {"text": "ok", "rationale": "[[4, 2]]"}],
            3,
            "rationale",
            "span [4, 2] is not [start, end]",
        ),
        ("tsv", [{"text": "ok", "label": "1"}, {"text": "  ", "label": "0"}], 3, "text", "is empty"),
        ("parquet", [{"text": "ok"}, {"text": "ok"}, {"text": None}], 3, "text", "is missing"),
        ("parquet", [{"text": 7}], 1, "text", "must be a string, got int"),
        ("parquet", [{"text": "ok", "label": 2.5}], 1, "label", "must be a string or integer, got float"),
        ("parquet", [{"text": "ok", "rationale": [1, 2]}], 1, "rationale", "span 1 is not [start, end]"),
        ("saved", [{"text": "ok"}, {"text": ""}], 2, "text", "is empty"),
    ],
)
def test_a_bad_row_names_file_row_and_column_and_skip_mode_goes_on(
    tmp_path: Path, kind: str, rows: list[dict[str, Any]], where: int, column: str, reason: str
) -> None:
    if kind in ("csv", "tsv"):
        path = tmp_path / f"bad.{kind}"
        sep = "," if kind == "csv" else "\t"
        columns = list(rows[0])
        lines = [sep.join(columns)] + [sep.join(_quoted(row.get(c), kind) for c in columns) for row in rows]
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    else:
        path = write_rows(tmp_path, kind, rows, name="bad")
    with pytest.raises(InputError) as info:
        _read(path)
    assert (info.value.source, info.value.field) == (f"{path}:{where}", column)
    assert str(info.value).startswith(f"{path}:{where}: field '{column}': {reason}")
    assert info.value.exit_status == ExitStatus.BAD_INPUT
    read = _read(path, InputSpec(on_error="skip"))
    skipped = [item for item in read if isinstance(item, SkippedRecord)]
    assert [(s.source, s.field) for s in skipped] == [(f"{path}:{where}", column)]
    assert len(examples_only(read)) == len(rows) - 1


def _quoted(value: Any, kind: str) -> str:
    text = "" if value is None else str(value)
    return f'"{text}"' if kind == "csv" and "," in text else text


def test_table_level_problems_stop_the_run_in_either_mode(tmp_path: Path) -> None:
    csv_path = tmp_path / "t.csv"
    csv_path.write_text("review,label\ngood,1\n", encoding="utf-8")
    for mode in ("stop", "skip"):
        with pytest.raises(
            InputError,
            match=r"t.csv:1: field 'text': is not a column \(columns: review, label\); "
            r"map one with --field text=COLUMN",
        ):
            _read(csv_path, InputSpec(on_error=mode))  # type: ignore[arg-type]
    twice = tmp_path / "twice.csv"
    twice.write_text("text,text\na,b\n", encoding="utf-8")
    with pytest.raises(InputError, match="twice.csv:1: field 'text': is the name of two columns"):
        _read(twice)
    parquet = write_rows(tmp_path, "parquet", [{"review": "good"}], name="nocol")
    with pytest.raises(InputError, match=r"nocol.parquet: field 'sentence': is not a column \(columns: review\)$"):
        _read(parquet, InputSpec(field_map={"text": "sentence"}))
    not_parquet = tmp_path / "fake.parquet"
    not_parquet.write_text("text\nhello\n", encoding="utf-8")
    with pytest.raises(InputError, match="fake.parquet: is not a readable Parquet file"):
        _read(not_parquet)


def test_csv_rows_of_another_width_or_bytes_that_are_not_utf8_are_bad_rows(tmp_path: Path) -> None:
    path = tmp_path / "odd.csv"
    path.write_bytes(b"text,label\nfine,1\ntoo,many,values\ncaf\xe9,1\nlast,0\n")
    read = _read(path, InputSpec(on_error="skip"))
    assert [e.fields["text"] for e in examples_only(read)] == ["fine", "last"]
    assert [(s.source, s.field, s.reason) for s in read if isinstance(s, SkippedRecord)] == [
        (f"{path}:3", None, "has 3 values; the header has 2 columns"),
        (f"{path}:4", "text", "not valid UTF-8 (byte 0xe9 at character 4); re-encode the file as UTF-8"),
    ]


@pytest.mark.parametrize("kind", ["csv", "tsv"])
def test_a_value_longer_than_pythons_csv_limit_is_read_whole(tmp_path: Path, kind: str) -> None:
    long_text = "word " * 60_000  # 300,000 characters: over csv's default limit of 131,072
    path = tmp_path / f"long.{kind}"
    path.write_text(f"text\n{long_text}\nshort\n", encoding="utf-8")
    assert [e.fields["text"] for e in _read(path, InputSpec())] == [long_text, "short"]


@pytest.mark.parametrize(
    ("content", "line", "reason"),
    [
        ('text,label\n"good film,1\nbad film,0\nfine,1\n', 2, "unexpected end of data"),  # never closed
        ('text,label\nfine,1\n"good" film,1\nbad film,0\n', 3, "',' expected after '\"'"),  # a stray quote
    ],
)
def test_malformed_csv_quoting_stops_the_run_at_its_line_in_either_mode(
    tmp_path: Path, content: str, line: int, reason: str
) -> None:
    """Read leniently, the first file would lose its last two rows into one value and the second the quotes."""
    path = tmp_path / "quotes.csv"
    path.write_text(content, encoding="utf-8")
    for mode in ("stop", "skip"):
        with pytest.raises(InputError) as caught:
            list(read_inputs([str(path)], InputSpec(on_error=mode)))  # type: ignore[arg-type]
        assert str(caught.value).startswith(f"{path}:{line}: is not valid CSV") and reason in str(caught.value)


def test_parquet_values_that_are_not_json_become_json_in_metadata(tmp_path: Path) -> None:
    import datetime

    table = pa.table(
        {
            "text": ["ok"],
            "score": [float("nan")],
            "when": [datetime.date(2024, 5, 1)],
            "blob": [b"\x00\x01"],
            "tags": [["a", "b"]],
        }
    )
    pq.write_table(table, tmp_path / "m.parquet")
    (example,) = examples_only(_read(tmp_path / "m.parquet"))
    assert example.metadata == {"score": None, "when": "2024-05-01", "blob": "<2 bytes>", "tags": ["a", "b"]}
    json.dumps(dict(example.metadata), allow_nan=False)


# --- Parquet is read one row group at a time ------------------------------------------------------------------------


def test_parquet_is_read_lazily_one_row_group_at_a_time(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_rows(tmp_path, "parquet", [{"text": f"row {n}"} for n in range(7)])  # groups of 2, 2, 2, 1
    assert pq.ParquetFile(path).num_row_groups == 4
    groups: list[int] = []
    real = pq.ParquetFile.read_row_group

    def spy(self: Any, i: int, *args: Any, **kwargs: Any) -> Any:
        groups.append(i)
        return real(self, i, *args, **kwargs)

    def whole(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the whole file was read")

    monkeypatch.setattr(pq.ParquetFile, "read_row_group", spy)
    monkeypatch.setattr(pq.ParquetFile, "read", whole)
    monkeypatch.setattr(pq, "read_table", whole)
    assert count_records([str(path)]) == 7 and groups == []  # the count comes from the footer
    items = read_inputs([str(path)], InputSpec())
    held = [len(groups) for _ in items]
    # Row n is yielded having read only the row groups up to its own.
    assert held == [1, 1, 2, 2, 3, 3, 4] and groups == [0, 1, 2, 3]


# --- datasets folders and --dataset ---------------------------------------------------------------------------------


def _labelled(rows: list[dict[str, Any]]) -> Any:
    features = datasets.Features({"text": datasets.Value("string"), "label": datasets.ClassLabel(names=["neg", "pos"])})
    return datasets.Dataset.from_list(rows, features=features)


def test_saved_folders_class_labels_and_folders_of_splits(tmp_path: Path) -> None:
    one = tmp_path / "one"
    _labelled([{"text": "good", "label": 1}, {"text": "bad", "label": 0}, {"text": "?", "label": -1}]).save_to_disk(
        str(one)
    )
    read = examples_only(_read(one))
    assert [(e.id, e.source, e.label) for e in read] == [
        ("one:1", f"{one}:1", "pos"),
        ("one:2", f"{one}:2", "neg"),
        ("one:3", f"{one}:3", None),  # -1: datasets' mark of an unlabelled row
    ]
    assert count_records([str(one)]) == 3
    splits = tmp_path / "splits"
    rows = [{"text": f"t{n}", "label": n % 2} for n in range(4)]
    datasets.DatasetDict({"train": _labelled(rows), "test": _labelled(rows[:3])}).save_to_disk(str(splits))
    with pytest.raises(
        InputError,
        match=rf"holds the splits (train, test|test, train) \(saved with save_to_disk\): "
        rf"pass one split's folder, such as {splits}/",
    ):
        _read(splits)
    source = DatasetSource(str(splits), "train[1:3]")
    read = examples_only(read_inputs([], InputSpec(), dataset=source))
    assert [(e.id, e.source, e.fields["text"]) for e in read] == [
        ("splits:train:2", f"{splits}:train:2", "t1"),
        ("splits:train:3", f"{splits}:train:3", "t2"),
    ]
    assert count_records(["a text"], dataset=source) == 3
    assert count_records([], dataset=DatasetSource(str(splits), "test[2:]")) == 1
    with pytest.raises(InputError, match="has no split 'validation'; valid: "):
        list(read_inputs([], InputSpec(), dataset=DatasetSource(str(splits), "validation")))


def test_dataset_option_streams_through_load_dataset(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "hubby"
    folder.mkdir()
    (folder / "train.csv").write_text("review,label\nfirst,1\nsecond,0\nthird,1\nfourth,0\n", encoding="utf-8")
    calls: list[dict[str, Any]] = []
    real = datasets.load_dataset

    def spy(*args: Any, **kwargs: Any) -> Any:
        calls.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(datasets, "load_dataset", spy)
    spec = InputSpec(field_map={"text": "review"})
    read = list(read_inputs(["a text"], spec, dataset=DatasetSource(str(folder), "train[1:3]")))
    assert calls == [{"split": "train", "streaming": True}]
    assert [(e.id, e.source, e.fields["text"]) for e in examples_only(read)] == [
        ("text-1", "<argument 1>", "a text"),
        ("hubby:train:2", f"{folder}:train:2", "second"),
        ("hubby:train:3", f"{folder}:train:3", "third"),
    ]
    with pytest.raises(InputError, match=r"--dataset .*hubby: cannot be loaded \(Bad split: test"):
        list(read_inputs([], spec, dataset=DatasetSource(str(folder))))
    # A CSV stream does not know its columns before its first row: each row is checked alone.
    with pytest.raises(InputError, match=r"hubby:train:1: field 'text': is missing"):
        list(read_inputs([], InputSpec(), dataset=DatasetSource(str(folder), "train")))


@pytest.mark.parametrize("split", ["test[:5%]", "test[3:1]", "te st", "test[-2:]"])
def test_a_split_that_is_not_name_or_rows_is_a_usage_error(split: str) -> None:
    with pytest.raises(UsageError, match=r"--split"):
        DatasetSource("imdb", split)


def test_missing_optional_dependencies_say_how_to_install_them(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_rows(tmp_path, "parquet", [{"text": "x"}])
    saved = write_rows(tmp_path, "saved", [{"text": "x"}])
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)  # import fails as if not installed
    monkeypatch.setitem(sys.modules, "datasets", None)
    with pytest.raises(
        InputError, match=r"data.parquet: reading Parquet files needs pyarrow: pip install 'attnviz\[data\]'"
    ):
        _read(path)
    with pytest.raises(InputError, match=r"reading datasets folders needs datasets: pip install 'attnviz\[data\]'"):
        count_records([str(saved)])
    with pytest.raises(InputError, match=r"--dataset imdb: reading --dataset needs datasets"):
        list(read_inputs([], InputSpec(), dataset=DatasetSource("imdb")))


# --- through the command line ---------------------------------------------------------------------------------------

QUICK = ["--method", "attention", "--format", "json", "--batch-size", "2"]


def _render(args: list[str]) -> Any:
    return runner.invoke(app, ["render", *args])


def _summary(out: Path) -> dict[str, Any]:
    return json.loads((out / "summary.json").read_text(encoding="utf-8"))


@pytest.mark.parametrize("kind", ["csv", "parquet"])
def test_cli_bad_row_is_exit_3_naming_file_row_and_column_and_skip_goes_on(
    tmp_path: Path, model: str, kind: str
) -> None:
    rows = [{"review": "A fine film."}, {"review": "Dull."}, {"review": ""}, {"review": "Warm."}]
    data = write_rows(tmp_path, kind, rows, name="in")
    row = 4 if kind == "csv" else 3  # CSV: the line (header is line 1); Parquet: the 1-based row
    stopped = _render([str(data), "--model", model, *QUICK, "--field", "text=review", "--out", str(tmp_path / "a")])
    assert stopped.exit_code == 3, stopped.output
    assert f"attnviz: error: {data}:{row}: field 'review': is empty" in stopped.stderr
    assert "Traceback" not in stopped.stderr
    out = tmp_path / "b"
    skipped = _render(
        [str(data), "--model", model, *QUICK, "--field", "text=review", "--on-error", "skip", "--out", str(out)]
    )
    assert skipped.exit_code == 0, skipped.output
    summary = _summary(out)
    assert [e["id"] for e in summary["examples"]] == (
        ["in:2", "in:3", "in:5"] if kind == "csv" else ["in:1", "in:2", "in:4"]
    )
    assert [(s["source"], s["field"]) for s in summary["skipped"]] == [(f"{data}:{row}", "review")]
    assert summary["run"]["inputs"] == [str(data)]


def test_cli_reads_a_saved_folder_and_a_streamed_dataset(tmp_path: Path, model: str) -> None:
    saved = write_rows(tmp_path, "saved", [{"text": "Good."}, {"text": "Bad."}], name="saved")
    folder = tmp_path / "local_hub"
    folder.mkdir()
    (folder / "train.csv").write_text("text,label\nfirst one,1\nsecond one,0\nthird one,1\n", encoding="utf-8")
    out = tmp_path / "out"
    result = _render(
        [str(saved), "--dataset", str(folder), "--split", "train[:2]", "--model", model, *QUICK, "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    summary = _summary(out)
    assert [e["id"] for e in summary["examples"]] == ["saved:1", "saved:2", "local_hub:train:1", "local_hub:train:2"]
    assert summary["run"]["inputs"] == [str(saved), f"--dataset {folder}:train[:2]"]
    alone = _render(
        ["--dataset", str(folder), "--split", "train[2:]", "--model", model, *QUICK, "--out", str(tmp_path / "alone")]
    )
    assert alone.exit_code == 0, alone.output
    assert [e["id"] for e in _summary(tmp_path / "alone")["examples"]] == ["local_hub:train:3"]


def test_cli_usage_errors_for_dataset_options(tmp_path: Path, model: str) -> None:
    assert _render(["--model", model]).exit_code == 2  # neither inputs nor --dataset
    assert _render(["hi", "--split", "train", "--model", model]).exit_code == 2  # --split without --dataset
    bad = _render(["--dataset", "imdb", "--split", "test[:10%]", "--model", model])
    assert bad.exit_code == 2 and "give rows" in bad.output
    offline = _render(["--dataset", "no-such/dataset", "--model", model, *QUICK, "--out", str(tmp_path / "o")])
    assert offline.exit_code == 3, offline.output
    assert "attnviz: error: --dataset no-such/dataset: cannot be loaded" in offline.stderr


def test_hostile_ids_from_a_table_still_make_safe_page_names(tmp_path: Path, model: str) -> None:
    data = tmp_path / "ids.csv"
    data.write_text('id,text\n../../escape,one\n"<script>x</script>",two\nCON,three\n', encoding="utf-8")
    out = tmp_path / "out"
    result = _render([str(data), "--model", model, "--method", "attention", "--format", "html,json", "--out", str(out)])
    assert result.exit_code == 0, result.output
    pages = [e["page"] for e in _summary(out)["examples"]]
    for page in pages:
        assert (out / page).resolve().parent == (out / "examples").resolve()
        assert (out / page).is_file()
    assert "<script>x" not in (out / pages[1]).read_text(encoding="utf-8")


def test_a_field_mapped_to_a_missing_column_is_refused(tmp_path: Path, model: str) -> None:
    """``--field label=lable`` (a typo) named no column: every label came out null, silently."""
    data = write_rows(tmp_path, "csv", [{"text": "A fine film.", "label": "pos"}], name="in")
    result = _render([str(data), "--model", model, *QUICK, "--field", "label=lable", "--out", str(tmp_path / "o")])
    assert result.exit_code == 3 and "field 'lable': is not a column (columns: " in result.stderr


def test_an_empty_saved_dataset_is_bad_input(tmp_path: Path, model: str) -> None:
    from datasets import Dataset, Features, Value

    folder = tmp_path / "empty"
    Dataset.from_dict({"text": []}, features=Features({"text": Value("string")})).save_to_disk(str(folder))
    result = _render([str(folder), "--model", model, *QUICK, "--allow-empty", "--out", str(tmp_path / "o")])
    # datasets itself cannot load a saved dataset of no rows: bad input naming the folder (it was an IndexError)
    assert result.exit_code == 3, result.output
    assert f"{folder}: cannot be loaded with datasets.load_from_disk" in result.stderr
