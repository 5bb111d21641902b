"""``--dataset NAME --split SPLIT``: a dataset read through ``datasets``, streamed.

``NAME`` is what ``datasets.load_dataset`` takes (a Hub name such as ``stanfordnlp/imdb``, or a local folder of
data files), read with ``streaming=True`` so that nothing is downloaded or read whole; or a folder of splits written
by ``save_to_disk``, read memory-mapped. Rows are numbered within the split, from 1: source
``<name>:<split>:<n>`` and default id ``<last part of name>:<split>:<n>``, so a row keeps its id whatever slice
is read.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from attnviz.errors import InputError, UsageError
from attnviz.inputs.readers import Records
from attnviz.inputs.records import InputSpec
from attnviz.inputs.tables import (
    check_columns,
    dataset_records,
    dataset_rows,
    is_saved_dataset,
    load_saved,
    quiet_datasets,
    require,
    saved_splits,
)

DEFAULT_SPLIT = "test"  # a report explains a model on held-out data
_SPLIT = re.compile(r"(?P<split>[A-Za-z0-9_.-]+)(?:\[(?P<start>\d*):(?P<stop>\d*)\])?")


@dataclass(frozen=True)
class DatasetSource:
    """A dataset to read through ``datasets`` (see the module docstring).

    Attributes:
        name: a Hub dataset name, a local folder ``load_dataset`` reads, or a folder of splits ``save_to_disk``
            wrote.
        split: a split name, sliced by row or not: ``test``, ``test[:500]``, ``train[100:200]`` (0-based, the end
            left out, as in Python and in ``datasets``' own split syntax). Percentages are refused: a streamed
            split has no known length.
        config: the dataset's configuration (``sst2`` of ``nyu-mll/glue``), for datasets that have several.

    Raises:
        UsageError: an empty name, or a split that is not ``NAME`` or ``NAME[START:END]``.
    """

    name: str
    split: str = DEFAULT_SPLIT
    config: str | None = None

    def __post_init__(self) -> None:
        if not self.name.strip():
            raise UsageError("--dataset needs a dataset name or folder")
        self.split_range()

    def split_range(self) -> tuple[str, int, int | None]:
        """``(split name, first row, end row or None)`` of :attr:`split`, rows 0-based and the end left out."""
        found = _SPLIT.fullmatch(self.split)
        if found is None:
            hint = " (a streamed split has no known length: give rows)" if "%" in self.split else ""
            raise UsageError(f"--split '{self.split}': expected NAME or NAME[START:END], e.g. test[:500]{hint}")
        start = int(found["start"] or 0)
        stop = int(found["stop"]) if found["stop"] else None
        if stop is not None and stop < start:
            raise UsageError(f"--split '{self.split}': the end row comes before the start row")
        return found["split"], start, stop

    def describe(self) -> str:
        """How the run's summary and messages name it, among the inputs: ``--dataset name[config]:split``."""
        config = f"[{self.config}]" if self.config else ""
        return f"--dataset {self.name}{config}:{self.split}"


def read_dataset(source: DatasetSource, spec: InputSpec) -> Records:
    """The records of the dataset's split, in order, streamed.

    Raises:
        InputError: the dataset, config or split cannot be loaded, a required column is missing, ``datasets`` is not
            installed; or (``on_error="stop"``) a bad row, naming ``<name>:<split>:<n>`` and the column.
    """
    split, start, stop = source.split_range()
    where = f"{source.name}:{split}"
    id_prefix = f"{Path(source.name).name or source.name}:{split}"
    saved = _saved_split(source)
    if saved is not None:
        end = len(saved) if stop is None else min(stop, len(saved))
        check_columns(list(saved.column_names), where, spec)
        rows = dataset_rows(saved.select(range(min(start, end), end)))
        yield from dataset_records(rows, saved.features, where, id_prefix, start + 1, spec)
        return
    datasets = require("datasets", "--dataset", _label(source))
    errors = _load_errors(datasets)
    try:
        with quiet_datasets(datasets):
            stream = datasets.load_dataset(source.name, source.config, split=split, streaming=True)
    except errors as err:
        raise InputError(_label(source), f"cannot be loaded ({err})") from None
    if start:
        stream = stream.skip(start)
    if stop is not None:
        stream = stream.take(stop - start)
    if stream.column_names:  # known up front for most datasets; else each row is checked alone
        check_columns(list(stream.column_names), where, spec)
    yield from dataset_records(_guarded(stream, source, errors), stream.features, where, id_prefix, start + 1, spec)


def count_dataset(source: DatasetSource) -> int | None:
    """The rows :func:`read_dataset` reads, when the dataset says how many its split has (a saved folder, or a Hub
    dataset whose card records it); None when that is not known without reading the split."""
    split, start, stop = source.split_range()
    saved = _saved_split(source)
    if saved is not None:
        total: int | None = len(saved)
    else:
        datasets = require("datasets", "--dataset", _label(source))
        unknown: tuple[type[Exception], ...] = (*_load_errors(datasets), KeyError, TypeError, AttributeError)
        try:
            with quiet_datasets(datasets):
                splits = datasets.load_dataset_builder(source.name, source.config).info.splits
            total = splits[split].num_examples if splits and split in splits else None
        except unknown:
            return None  # reading will say what is wrong
        total = total or None  # 0 is what datasets records when it does not know
    if total is None:
        return None
    end = total if stop is None else min(stop, total)
    return max(end - start, 0)


def _saved_split(source: DatasetSource) -> Any | None:
    """The split of a folder of splits written by ``save_to_disk``; None for anything else."""
    path = Path(source.name)
    if not (path.is_dir() and is_saved_dataset(path)):
        return None
    splits = saved_splits(path)
    label = _label(source)
    if splits is None:
        raise InputError(label, "is one split saved with save_to_disk: pass it as an input, not with --dataset")
    if source.config is not None:
        raise InputError(
            label, "is a folder saved with save_to_disk, which has no configurations: drop --dataset-config"
        )
    split = source.split_range()[0]
    if split not in splits:
        raise InputError(label, f"has no split '{split}'; valid: {', '.join(splits)}")
    return load_saved(path / split, label)


def _label(source: DatasetSource) -> str:
    return f"--dataset {source.name}"


def _load_errors(datasets: Any) -> tuple[type[Exception], ...]:
    """What ``datasets`` raises for a dataset it cannot find, reach or parse (``DatasetsError`` since 2.15)."""
    found = getattr(getattr(datasets, "exceptions", None), "DatasetsError", None)
    return (OSError, ValueError, *([found] if found else []))


def _guarded(stream: Any, source: DatasetSource, errors: tuple[type[Exception], ...]) -> Iterator[Mapping[str, Any]]:
    """The stream's rows; a failure while streaming (the network, a malformed data file) is an :class:`InputError`."""
    rows = iter(stream)
    while True:
        try:
            row = next(rows)
        except StopIteration:
            return
        except errors as err:
            raise InputError(_label(source), f"cannot be read ({err})") from None
        yield row
