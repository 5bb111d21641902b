"""Combine the outputs of sharded runs (``render --shard i/N``) into one report.

Examples are ordered by their position in the whole input and the dataset aggregates are recomputed in
that order, so the merged summary.json and index equal those of an unsharded run (timing aside).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from attnviz.errors import InputError, OutputError
from attnviz.output import get_renderer
from attnviz.output.aggregate import DatasetAggregate
from attnviz.output.summary import RunDocument, run_header

# Run fields that must agree across shards (the shard itself and timing may differ).
SHARED_RUN_FIELDS = ("model", "revision", "task", "dtype", "capture", "inputs", "versions")


def merge_reports(
    folders: Sequence[Path], out: Path, formats: Sequence[str] = ("html", "png", "json")
) -> dict[str, Any]:
    """Merge shard report folders into ``out`` and return the merged summary.

    Raises:
        InputError: a folder has no summary.json, or the shards do not belong to one run (different
            model, inputs or options, a repeated or missing shard, or a repeated example id).
        OutputError: ``out`` cannot be written.
    """
    documents = [_load(folder) for folder in folders]
    _check_compatible(folders, documents)
    examples = sorted((entry for doc in documents for entry in doc["examples"]), key=lambda e: e["index"])
    seen: set[str] = set()
    for entry in examples:
        if entry["id"] in seen:
            raise InputError(str(out), f"example id '{entry['id']}' appears in more than one shard", "id")
        seen.add(entry["id"])
    skipped = sorted((s for doc in documents for s in doc["skipped"]), key=lambda s: s.get("index", 0))
    failed = [doc for doc in documents if doc["status"] != "complete"]
    run = dict(documents[0]["run"])
    run["options"] = {**run["options"], "shard": "0/1"}
    try:
        (out / "examples").mkdir(parents=True, exist_ok=True)
        for folder in folders:
            shutil.copytree(folder / "examples", out / "examples", dirs_exist_ok=True)
    except OSError as err:
        raise OutputError(f"cannot write merged report in '{out}': {err}") from None
    aggregate = DatasetAggregate()
    spool = out / ".examples.jsonl"
    with spool.open("w", encoding="utf-8") as handle:
        for entry in examples:
            handle.write(json.dumps(entry, ensure_ascii=False, allow_nan=False) + "\n")
            aggregate.add(entry)
    timing = {
        "total_seconds": round(sum(d["timing"].get("total_seconds", 0.0) for d in documents), 3),
        "shards": len(documents),
    }
    header = run_header(
        run,
        aggregate.result(len(skipped)),
        skipped,
        status="failed" if failed else "complete",
        error=failed[0]["error"] if failed else None,
        timing=timing,
    )
    document = RunDocument(header=header, spool=spool, rows=aggregate.rows)
    for name in formats:
        get_renderer(name).write_run(document, out)
    merged = document.as_dict()
    spool.unlink()
    return merged


def _load(folder: Path) -> dict[str, Any]:
    path = folder / "summary.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(str(folder), "has no summary.json; pass the --out folders of render --shard runs") from None
    except json.JSONDecodeError as err:
        raise InputError(str(path), f"is not valid JSON ({err.msg} at line {err.lineno})") from None


def _check_compatible(folders: Sequence[Path], documents: Sequence[dict[str, Any]]) -> None:
    first = documents[0]["run"]
    shards = []
    for folder, doc in zip(folders, documents, strict=True):
        run = doc["run"]
        for name in SHARED_RUN_FIELDS:
            if run.get(name) != first.get(name):
                raise InputError(str(folder / "summary.json"), f"differs from {folders[0]} in run.{name}", name)
        options = {k: v for k, v in run["options"].items() if k != "shard"}
        if options != {k: v for k, v in first["options"].items() if k != "shard"}:
            raise InputError(
                str(folder / "summary.json"), f"was rendered with other options than {folders[0]}", "options"
            )
        index, _, count = run["options"]["shard"].partition("/")
        shards.append((int(index), int(count)))
    counts = {count for _, count in shards}
    indices = sorted(index for index, _ in shards)
    if len(counts) != 1 or indices != list(range(next(iter(counts)))):
        found = ", ".join(f"{i}/{n}" for i, n in sorted(shards))
        raise InputError(", ".join(map(str, folders)), f"shards {found} do not make one complete run", "shard")
