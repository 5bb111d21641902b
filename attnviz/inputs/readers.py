"""The input reader registry, and the line readers: ``.txt`` (one example a line) and ``.jsonl`` (one JSON object
a line).

A reader reads one kind of file (by suffix) or folder (by what is inside it), lazily, and counts its records
cheaply. Built-ins register the way a plugin would::

    register_reader(Reader("csv", "comma-separated values with a header row", read_csv, count_csv, (".csv",)))
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import BinaryIO

from attnviz.errors import InputError
from attnviz.inputs.records import (
    InputSpec,
    build_or_skip,
    is_blank,
    json_example,
    record_example,
    skip_or_raise,
    text_record,
)
from attnviz.registry import Registry
from attnviz.types import Example, SkippedRecord

Records = Iterator[Example | SkippedRecord]
FALLBACK_READER = "txt"  # a file whose suffix no reader claims is read one example a line


@dataclass(frozen=True)
class Reader:
    """One kind of input file or folder.

    Attributes:
        name: registry key (lower_snake).
        reads: what it reads, in a few words (``attnviz render --help`` and the README list them).
        read: ``(path, spec)`` → its records in order, lazily: examples, and under ``spec.on_error="skip"`` the
            bad ones as skipped records. Sources are ``<path>:<n>``; default ids ``<stem>:<n>``.
        count: ``path`` → how many records ``read`` yields (examples and bad records alike), found cheaply: this
            sizes the progress bar and the trust-check sample.
        suffixes: the file suffixes it reads (lower case, with the dot); none for a folder reader.
        folder: for a folder reader, whether it reads the folder given.
    """

    name: str
    reads: str
    read: Callable[[Path, InputSpec], Records]
    count: Callable[[Path], int]
    suffixes: tuple[str, ...] = ()
    folder: Callable[[Path], bool] | None = None

    def __post_init__(self) -> None:
        if bool(self.suffixes) == (self.folder is not None):
            raise ValueError(f"input reader '{self.name}' must read files by suffix or folders, not both or neither")
        if any(suffix != suffix.lower() or not suffix.startswith(".") for suffix in self.suffixes):
            raise ValueError(f"input reader '{self.name}': suffixes are lower case and start with a dot")


_READERS: Registry[Reader] = Registry("input reader")


def register_reader(reader: Reader) -> Reader:
    """Add a reader; a suffix another reader already claims is refused.

    Raises:
        ValueError: the name or one of the suffixes is taken.
    """
    taken = {suffix: other.name for other in map(_READERS.get, _READERS.names()) for suffix in other.suffixes}
    for suffix in reader.suffixes:
        if suffix in taken:
            raise ValueError(f"suffix '{suffix}' is already read by input reader '{taken[suffix]}'")
    return _READERS.register(reader.name)(reader)


def get_reader(name: str) -> Reader:
    """The reader registered as ``name``.

    Raises:
        UnknownNameError: no such reader; the message lists the registered ones.
    """
    return _READERS.get(name)


def list_readers() -> list[str]:
    """Names of the registered readers, in registration order."""
    return _READERS.names()


def reader_suffixes() -> tuple[str, ...]:
    """Every suffix a registered reader claims."""
    return tuple(suffix for name in list_readers() for suffix in get_reader(name).suffixes)


def reader_for(path: Path, is_dir: bool) -> Reader | None:
    """The reader of a file (by its suffix, any case; else the ``txt`` reader) or of a folder (the first folder
    reader that claims it; None when none does)."""
    readers = [get_reader(name) for name in list_readers()]
    if is_dir:
        return next((r for r in readers if r.folder is not None and r.folder(path)), None)
    suffix = path.suffix.lower()
    return next((r for r in readers if suffix in r.suffixes), None) or get_reader(FALLBACK_READER)


def decoded_lines(stream: BinaryIO, name: str) -> Iterator[tuple[str, str | InputError]]:
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


def read_lines(stream: BinaryIO, name: str, id_prefix: str, spec: InputSpec) -> Records:
    """One example a non-blank line (a ``.txt`` file, stdin), its text in ``spec.line_field``."""
    for source, text in decoded_lines(stream, name):
        if isinstance(text, InputError):
            yield skip_or_raise(text, spec)
        elif not is_blank(text):
            line_id = f"{id_prefix}:{source.rsplit(':', 1)[1]}"
            yield build_or_skip(partial(record_example, text_record(text, spec), source, line_id, spec), spec)


def _read_txt(path: Path, spec: InputSpec) -> Records:
    with path.open("rb") as handle:
        yield from read_lines(handle, str(path), path.stem, spec)


def _read_jsonl(path: Path, spec: InputSpec) -> Records:
    with path.open("rb") as handle:
        for source, text in decoded_lines(handle, str(path)):
            if isinstance(text, InputError):
                yield skip_or_raise(text, spec)
            elif not is_blank(text):
                line_id = f"{path.stem}:{source.rsplit(':', 1)[1]}"
                yield build_or_skip(partial(json_example, text, source, line_id, spec), spec)


def _count_lines(path: Path) -> int:
    """The lines the readers take as records: not blank once decoded as they decode them (a byte-order mark, or
    only spaces and invisible characters, is blank: see ``is_blank``), and every undecodable line (a record in
    error)."""
    with path.open("rb") as handle:
        lines = decoded_lines(handle, str(path))
        return sum(1 for _, text in lines if isinstance(text, InputError) or not is_blank(text))


register_reader(
    Reader(
        "txt", "one example a non-blank line (also any file no other reader claims)", _read_txt, _count_lines, (".txt",)
    )
)
register_reader(Reader("jsonl", "one JSON object a line", _read_jsonl, _count_lines, (".jsonl", ".ndjson", ".json")))
