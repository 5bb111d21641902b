"""What each input argument is (a literal text, stdin, a file, a folder) and reading them all in order: files and
folders go to the reader the registry picks (see :mod:`attnviz.inputs.readers`), then ``--dataset`` last."""

from __future__ import annotations

import os
import stat
import sys
from collections.abc import Sequence
from dataclasses import replace
from functools import partial
from pathlib import Path, PurePath
from typing import BinaryIO, Literal

from attnviz.errors import InputError
from attnviz.inputs.hub import DatasetSource, count_dataset, read_dataset
from attnviz.inputs.readers import Reader, Records, read_lines, reader_for, reader_suffixes
from attnviz.inputs.records import (
    InputSpec,
    build_or_skip,
    record_example,
    refuse_surrogates,
    skip_or_raise,
    text_record,
)
from attnviz.types import Example

FILE_SUFFIXES = (".jsonl", ".txt", ".json", ".ndjson")
# Names of data files a user may mistype: such an argument is a missing file, never a one-word text.
DATA_SUFFIXES = (".csv", ".tsv", ".parquet", ".arrow")
MAX_PATH_BYTES = 4096  # longer arguments are literal texts: no system takes a path this long
MAX_NAME_BYTES = 255  # nor a file or folder name longer than this (NAME_MAX on Linux, macOS and Windows)
PATH_SEPARATORS = tuple(sep for sep in (os.sep, os.altsep) if sep)


def read_inputs(
    args: Sequence[str], spec: InputSpec, stdin: BinaryIO | None = None, dataset: DatasetSource | None = None
) -> Records:
    """Yield examples from every argument in order, then from ``dataset``: ``-`` is stdin, an existing path is a
    file or folder (read by the reader registered for it), a missing one that looks like a path (see
    :func:`looks_like_path`) is an error, and anything else is a literal text; with ``spec.literal`` every argument
    is a literal text.

    Duplicate ids are an error (ids name the output files).
    """
    seen: dict[str, str] = {}  # id → where it first appeared, so the message points at both records
    position = 0
    sources = [partial(_read_one, arg, arg_no, spec, stdin) for arg_no, arg in enumerate(args, start=1)]
    if dataset is not None:
        sources.append(partial(read_dataset, dataset, spec))
    for source in sources:
        for item in source():
            position += 1
            item = replace(item, index=position - 1)
            if isinstance(item, Example):
                if item.id in seen:
                    problem = _duplicate(item, seen[item.id])
                    yield replace(skip_or_raise(problem, spec), index=item.index)
                    continue
                seen[item.id] = item.source
            yield item


def existing_file(arg: str) -> Path | None:
    """The regular file an argument names, or None (see :func:`_on_disk`)."""
    return Path(arg) if _on_disk(arg) == "file" else None


def input_path(arg: str) -> Path | None:
    """The file, or folder a reader reads (a ``save_to_disk`` folder), that an argument names; else None."""
    kind = _on_disk(arg)
    if kind == "file" or (kind == "dir" and reader_for(Path(arg), is_dir=True) is not None):
        return Path(arg)
    return None


def only_texts(args: Sequence[str], literal: bool = False) -> bool:
    """Whether every argument is a literal text (``literal``: ``--text``), none a file, folder or stdin."""
    return literal or all(arg != "-" and _on_disk(arg) is None and not looks_like_path(arg) for arg in args)


def looks_like_path(arg: str) -> bool:
    """The rule for an argument that names nothing on disk: one word (no whitespace) that could be a path and
    ends in a data-file suffix or holds a path separator is a mistyped file name; anything else is a text.

    So ``data.csv`` and ``dir/file`` are missing files, while ``either/or is fine`` and a 300-character word
    (longer than any file name) are texts.
    """
    if any(c.isspace() for c in arg) or not _could_be_path(arg):
        return False
    suffixes = FILE_SUFFIXES + DATA_SUFFIXES + reader_suffixes()
    return arg.lower().endswith(suffixes) or any(sep in arg for sep in PATH_SEPARATORS)


def _could_be_path(arg: str) -> bool:
    """Whether a file system could hold this name at all, decided without asking it."""
    if not arg or "\0" in arg or _byte_length(arg) > MAX_PATH_BYTES:  # a line break is allowed: Linux takes it
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


def check_arguments(args: Sequence[str], literal: bool = False) -> None:
    """Refuse, before anything is written or loaded, an argument that is not text (bytes the shell passed that do
    not decode as UTF-8) or that reading would refuse for what it names on disk (a missing file name, a folder no
    reader takes, a pipe or device). Only looks at the file system.

    Args:
        args: the input arguments, as :func:`read_inputs` takes them (``-`` is stdin, and is not looked at).
        literal: every argument is a literal text (``--text``): none names anything on disk.

    Raises:
        InputError: naming the argument (exit 3).
    """
    for number, arg in enumerate(args, start=1):
        refuse_surrogates({"argument": arg}, f"<argument {number}>")
        if not literal and arg != "-":
            _reader_of(arg)


def _reader_of(arg: str) -> Reader | None:
    """The reader of the file or folder an argument (not ``-``) names; None when it is a literal text.

    Raises:
        InputError: a folder no reader takes, a pipe or device, or a missing file's name (see :func:`looks_like_path`).
    """
    kind = _on_disk(arg)
    if kind in ("file", "dir"):
        reader = reader_for(Path(arg), is_dir=kind == "dir")
        if reader is None:
            raise InputError(
                arg, "is a directory; pass the files inside it, or a folder written by datasets' save_to_disk"
            )
        return reader
    if kind == "other":  # a pipe or device: it cannot be read twice (once to count records, once to render)
        raise InputError(arg, "is not a regular file; save it to a file, or pipe it to - (stdin)")
    if looks_like_path(arg):
        raise InputError(arg, "file not found (pass --text to render it as a literal text)")
    return None


def count_records(args: Sequence[str], literal: bool = False, dataset: DatasetSource | None = None) -> int | None:
    """How many input records the arguments and ``dataset`` hold, found cheaply before the run: each reader's
    count for a file or folder (non-blank lines, CSV rows, Parquet's row count from its footer…), one per literal
    text. None when stdin is among them (it can be read only once), or when a streamed dataset does not say how
    long its split is. ``literal`` as in :class:`InputSpec`.

    Raises:
        InputError: a file or dataset that cannot be opened at all, or an argument that names a missing file, a
            folder no reader takes, or a pipe or device (as reading it would).
    """
    total = len(args) if literal else 0
    for arg in () if literal else args:
        if arg == "-":
            return None
        reader = _reader_of(arg)
        try:
            total += reader.count(Path(arg)) if reader is not None else 1
        except OSError as err:
            raise _unreadable(arg, err) from None
    if dataset is None:
        return total
    rows = count_dataset(dataset)
    return None if rows is None else total + rows


def _duplicate(item: Example, first: str) -> InputError:
    """``item``'s id is also the record's at ``first``: the record's own id field, or the default one attnviz made
    from the file name and line (two inputs of one name, or one file given twice)."""
    path, _, line = item.source.rpartition(":")
    if item.id == f"{Path(path).stem}:{line}":
        return InputError(
            item.source,
            f"its default id '{item.id}' (file name and line) is also the one of {first}: "
            "give the records an id field, or rename one of the files",
        )
    return InputError(item.source, f"duplicate id '{item.id}' (first at {first})", "id")


def _unreadable(arg: str, err: OSError) -> InputError:
    """A file or folder that exists but cannot be opened or read (permissions, a disk error)."""
    return InputError(arg, f"cannot be read ({err.strerror or err}); check that it is readable")


def _read_one(arg: str, arg_no: int, spec: InputSpec, stdin: BinaryIO | None) -> Records:
    if not spec.literal:
        if arg == "-":
            stream = stdin if stdin is not None else sys.stdin.buffer
            yield from read_lines(stream, "<stdin>", "stdin", spec)
            return
        reader = _reader_of(arg)
        if reader is not None:
            try:
                yield from reader.read(Path(arg), spec)
            except OSError as err:
                raise _unreadable(arg, err) from None
            return
    source = f"<argument {arg_no}>"
    yield build_or_skip(partial(record_example, text_record(arg, spec), source, f"text-{arg_no}", spec), spec)
