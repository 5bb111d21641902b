"""Combine the outputs of sharded runs (``render --shard i/N``) into one report.

Examples are ordered by their position in the whole input and the dataset aggregates are recomputed in
that order, so the merged summary.json and index equal those of an unsharded run (timing aside).

Shard folders are untrusted input (CI artifacts anyone with write access to a job can change), so everything is
checked before anything is written: each summary.json against the shipped schema, each example's page against
the one render writes for its id, the shards against each other (one run, no overlap), and each file to copy
(a regular file inside the shard, never a link).
"""

from __future__ import annotations

import json
import shutil
import stat
from collections.abc import Callable, Iterator, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from attnviz.analysis.pipeline import page_name
from attnviz.config import DEFAULT_FORMATS
from attnviz.errors import InputError, OutputError, UsageError
from attnviz.output.aggregate import DatasetAggregate
from attnviz.output.base import get_renderer, list_renderers, write_run_files
from attnviz.output.check import Threshold, recorded_check
from attnviz.output.folder import claim_folder, spool_file
from attnviz.output.schema import document_kind, read_summary
from attnviz.output.summary import RunDocument, page_path, run_header

# Run fields that must agree across shards (besides every option but the shard; device and timing may differ).
SHARED_RUN_FIELDS = ("model", "revision", "task", "dtype", "capture", "inputs", "versions")
# Values quoted in messages are cut to this many characters.
SHOWN_CHARS = 80


@dataclass(frozen=True, eq=False)
class Shard:
    """One shard folder and its summary.json, read and validated against the schema."""

    folder: Path
    summary: Path
    document: dict[str, Any]

    @property
    def options(self) -> dict[str, Any]:
        options: dict[str, Any] = self.document["run"]["options"]
        return options


def merge_reports(
    folders: Sequence[Path],
    out: Path,
    formats: Sequence[str] | None = None,
    thresholds: Sequence[Threshold] = (),
    overwrite: bool = False,
    claimed: bool = False,
) -> dict[str, Any]:
    """Merge shard report folders into ``out`` and return the merged summary.

    Args:
        folders: the ``--out`` folders of every ``render --shard i/N`` run of one input.
        out: the merged report folder.
        formats: the run files to write, as render's ``--format``; default: the formats the shards were rendered
            with (``run.options.formats``; render's default formats for shards that do not record them).
            Example files are copied from the shards as they are.
        thresholds: ``--min``/``--max`` bounds whose outcome summary.md records.
        overwrite: replace an earlier report in ``out`` (``--overwrite``) instead of refusing the folder.
        claimed: the caller holds ``out`` already (:func:`attnviz.output.folder.claim_folder`; a launched run).

    Raises:
        InputError: a folder has no summary.json, or one that does not match the schema; an example's page is
            not the one render writes for its id; the shards do not make one run (different model, inputs or
            options, a repeated or missing shard) or overlap (an example id or index in two shards); a file to
            copy is a link or not a regular file inside its shard. Raised before anything is written (exit 3).
        UnknownNameError: a name in ``formats`` is not a registered format (exit 2).
        UsageError: ``out`` is one of the shards, or holds an earlier report and ``overwrite`` is not set (exit 2).
        OutputError: ``out`` cannot be written, or another run is writing it (exit 5).
    """
    for folder in folders:
        if _same_folder(folder, out):
            raise UsageError(f"--out '{out}' is the shard '{folder}': merge into a new folder")
    shards = [_load(folder) for folder in folders]
    _check_one_run(shards)
    examples = _check_examples(shards)
    copies = [copy for shard in shards for copy in _example_files(shard)]
    if formats is None:
        formats = _recorded_formats(shards[0])
    renderers = [get_renderer(name) for name in formats]
    documents = [shard.document for shard in shards]
    skipped = sorted((s for doc in documents for s in doc["skipped"]), key=lambda s: s["index"])
    failed = [doc for doc in documents if doc["status"] != "complete"]
    run = dict(documents[0]["run"])
    run["options"] = {**run["options"], "shard": "0/1", "formats": list(formats)}
    timing = {
        "total_seconds": round(sum(d["timing"].get("total_seconds", 0.0) for d in documents), 3),
        "shards": len(documents),
    }
    try:
        with nullcontext() if claimed else claim_folder(out, overwrite, resumable=False), spool_file(out) as spool:
            aggregate = _write_examples(examples, copies, out, spool)
            header = run_header(
                run,
                aggregate.result(len(skipped)),
                skipped,
                status="failed" if failed else "complete",
                error=failed[0]["error"] if failed else None,
                timing=timing,
            )
            check = recorded_check(header, thresholds)
            write_run_files(renderers, RunDocument(header, spool, aggregate.rows, check), out)
            return {**header, "examples": [placed.entry for placed in examples]}
    except OSError as err:
        raise OutputError(f"cannot write merged report in '{out}': {err}") from None


def _same_folder(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve()
    except OSError:  # a folder that cannot be resolved is not one that exists
        return False


def _load(folder: Path) -> Shard:
    path = folder / "summary.json"
    if not path.is_file():
        raise InputError(str(folder), "has no summary.json; pass the --out folders of render --shard runs")
    document = read_summary(path)
    if document_kind(document) != "render":
        raise InputError(str(path), "is a compare summary; merge takes the --out folders of render --shard runs")
    return Shard(folder, path, document)


def _check_one_run(shards: Sequence[Shard]) -> None:
    """Every shard comes from the same run (model, inputs, options but the shard), and together they are all of it."""
    first = shards[0]
    for shard in shards[1:]:
        for name in SHARED_RUN_FIELDS:
            _same(first, shard, f"$.run.{name}", first.document["run"].get(name), shard.document["run"].get(name))
        for key in sorted((first.options.keys() | shard.options.keys()) - {"shard"}):
            _same(first, shard, f"$.run.options.{key}", first.options.get(key), shard.options.get(key))
    # N folders must be shards 0/N … N-1/N, as render writes them (a summary.json without the option is a whole run).
    found = sorted(shard.options.get("shard", "0/1") for shard in shards)
    if found != sorted(f"{i}/{len(shards)}" for i in range(len(shards))):
        where = ", ".join(str(s.folder) for s in shards)
        raise InputError(where, f"shards {', '.join(found)} do not make one complete run", "$.run.options.shard")


def _same(first: Shard, shard: Shard, field: str, expected: Any, found: Any) -> None:
    if found != expected:
        raise InputError(
            str(shard.summary),
            f"is {_shown(found)} here but {_shown(expected)} in {first.summary}; every shard must come from one run",
            field,
        )


@dataclass(frozen=True, eq=False)
class Placed:
    """An example entry and where it was read (for messages)."""

    shard: Shard
    position: int
    entry: dict[str, Any]

    @property
    def path(self) -> str:
        return f"$.examples[{self.position}]"


def _check_examples(shards: Sequence[Shard]) -> list[Placed]:
    """Every example entry with where it was read, in input order, once pages and overlap are checked.

    A page must be exactly what render writes for the example's id: index.html links it and ``--single-file``
    inlines it, so any other path (``javascript:``, absolute, ``../``, another example's) is refused.
    """
    seen: dict[str, dict[Any, Placed]] = {"id": {}, "index": {}}
    placed = []
    for shard in shards:
        for position, entry in enumerate(shard.document["examples"]):
            here = Placed(shard, position, entry)
            expected = page_path(page_name(entry["id"]))
            if entry["page"] != expected:
                raise InputError(
                    str(shard.summary),
                    f"is {_shown(entry['page'])}, but render writes example {_shown(entry['id'])} to "
                    f"{_shown(expected)}",
                    f"{here.path}.page",
                )
            for key, found in seen.items():
                other = found.setdefault(entry[key], here)
                if other is not here:
                    raise InputError(
                        str(shard.summary),
                        f"example {key} {_shown(entry[key])} is also at {other.path}.{key} of {other.shard.summary}; "
                        "shards must not overlap",
                        f"{here.path}.{key}",
                    )
            placed.append(here)
    return sorted(placed, key=lambda item: item.entry["index"])


def _write_examples(
    examples: Sequence[Placed], copies: Sequence[tuple[Path, Path]], out: Path, spool: Path
) -> DatasetAggregate:
    """Spool the entries and recompute the dataset block in input order, as render does, then copy the shards'
    example files.

    Raises:
        InputError: an entry does not fit the others (before any file is copied).
    """
    aggregate = DatasetAggregate()
    with spool.open("w", encoding="utf-8") as handle:
        for item in examples:
            handle.write(json.dumps(item.entry, ensure_ascii=False, allow_nan=False) + "\n")
            try:
                aggregate.add(item.entry)
            # The schema cannot say that matrices are rectangular or that flags lie inside the layer × head grid.
            except (KeyError, IndexError, TypeError, ValueError) as err:
                raise InputError(
                    str(item.shard.summary),
                    f"does not fit the run's other examples ({type(err).__name__}: {err})",
                    item.path,
                ) from None
    for source, relative in copies:
        target = out / "examples" / relative
        target.parent.mkdir(exist_ok=True)  # an example's figure folder
        shutil.copyfile(source, target)
    return aggregate


def _example_files(shard: Shard) -> Iterator[tuple[Path, Path]]:
    """The files render writes for the shard's examples (page, tensors, figure folder) that exist, as
    (source, path under ``examples/``). Anything else in the shard is left behind.

    Raises:
        InputError: one of them is a link, or not a regular file (a folder for the figures) inside the shard.
    """
    root = shard.folder / "examples"
    if not _present(shard, root, stat.S_ISDIR, "a folder"):
        return
    base = root.resolve()
    for entry in shard.document["examples"]:
        name = page_name(entry["id"])
        for relative in (Path(f"{name}.html"), Path(f"{name}.npz")):
            if _present(shard, root / relative, stat.S_ISREG, "a regular file", base):
                yield root / relative, relative
        folder = root / name
        if _present(shard, folder, stat.S_ISDIR, "a folder", base):
            for path in sorted(folder.iterdir()):
                _present(shard, path, stat.S_ISREG, "a regular file", base)
                yield path, path.relative_to(root)


def _present(shard: Shard, path: Path, wanted: Callable[[int], bool], noun: str, base: Path | None = None) -> bool:
    """Whether ``path`` exists; when it does, it must be ``noun`` (checked without following links) inside ``base``.

    Raises:
        InputError: it is a link, something else, or resolves outside ``base``: a shard must not bring in files
            from elsewhere (``--single-file`` would inline them).
    """
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        return False
    if stat.S_ISLNK(mode):
        raise InputError(str(path), f"is a symbolic link; merge copies only regular files inside {shard.folder}")
    if not wanted(mode):
        raise InputError(str(path), f"is not {noun}; merge copies only regular files inside {shard.folder}")
    if base is not None and not path.resolve().is_relative_to(base):
        raise InputError(str(path), f"lies outside {base}; merge copies only regular files inside {shard.folder}")
    return True


def _recorded_formats(shard: Shard) -> tuple[str, ...]:
    """The formats the shards were rendered with (they agree: options are checked), each a registered one."""
    formats = tuple(shard.options.get("formats", DEFAULT_FORMATS))
    known = list_renderers()
    for position, name in enumerate(formats):
        if name not in known:
            raise InputError(
                str(shard.summary),
                f"names format {_shown(name)}, which this attnviz does not have; known: {', '.join(known)}",
                f"$.run.options.formats[{position}]",
            )
    return formats


def _shown(value: Any) -> str:
    """A value for a message: as JSON, cut to ``SHOWN_CHARS``."""
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= SHOWN_CHARS else text[: SHOWN_CHARS - 1] + "…"
