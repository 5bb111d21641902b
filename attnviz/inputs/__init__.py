"""Input readers: literal text, stdin, and files and folders by registry (``.txt``, ``.jsonl``, ``.csv``,
``.tsv``, ``.parquet``, a ``datasets`` ``save_to_disk`` folder), plus ``--dataset`` (streamed through
``datasets.load_dataset``).

Each reader yields :class:`~attnviz.types.Example` objects lazily. A bad record raises :class:`InputError` naming
``file:line`` (or ``file:row``) and the field; with ``on_error="skip"`` it yields a
:class:`~attnviz.types.SkippedRecord` instead. Every reader's records go through the same checks
(:func:`record_example`).
"""

from __future__ import annotations

from attnviz.inputs import tables as _tables  # noqa: F401  (registers the table readers)
from attnviz.inputs.hub import DEFAULT_SPLIT, DatasetSource
from attnviz.inputs.readers import Reader, get_reader, list_readers, reader_for, register_reader
from attnviz.inputs.records import (
    KNOWN_FIELDS,
    TEXT_FIELDS,
    InputSpec,
    OnError,
    examples_only,
    parse_field_map,
    record_example,
)
from attnviz.inputs.sources import (
    DATA_SUFFIXES,
    FILE_SUFFIXES,
    check_arguments,
    count_records,
    existing_file,
    input_path,
    looks_like_path,
    only_texts,
    read_inputs,
)

__all__ = [
    "DATA_SUFFIXES",
    "DEFAULT_SPLIT",
    "FILE_SUFFIXES",
    "KNOWN_FIELDS",
    "TEXT_FIELDS",
    "DatasetSource",
    "InputSpec",
    "OnError",
    "Reader",
    "check_arguments",
    "count_records",
    "examples_only",
    "existing_file",
    "get_reader",
    "input_path",
    "list_readers",
    "looks_like_path",
    "only_texts",
    "parse_field_map",
    "read_inputs",
    "reader_for",
    "record_example",
    "register_reader",
]
