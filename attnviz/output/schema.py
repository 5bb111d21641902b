"""JSON Schemas of summary.json (``render`` and ``compare`` documents) and validation against them.

The schema files live in ``attnviz/output/schema_files/`` next to this module and ship inside the wheel; they are read
with :mod:`importlib.resources` so an installed copy finds them wherever it is imported from.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import cache
from importlib.resources import files
from typing import Any, Literal

from attnviz.errors import OutputError, UnknownNameError

Kind = Literal["render", "compare"]
SCHEMA_FILES: dict[str, str] = {"render": "summary.schema.json", "compare": "compare.schema.json"}
# Schema errors quote the offending value; a whole example entry would bury the message.
MAX_MESSAGE = 300


@cache
def _load(kind: str) -> str:
    if kind not in SCHEMA_FILES:
        raise UnknownNameError("schema", kind, sorted(SCHEMA_FILES))
    # ``attnviz/schema`` is a data folder beside this module (no __init__.py), so address it from the package.
    return (files("attnviz.output") / "schema_files" / SCHEMA_FILES[kind]).read_text(encoding="utf-8")


def load_schema(kind: Kind = "render") -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of one kind of summary.json.

    Args:
        kind: ``"render"`` (``attnviz render``) or ``"compare"`` (``attnviz compare``).

    Returns:
        A fresh copy of the schema, safe to modify.

    Raises:
        UnknownNameError: ``kind`` is neither (exit 2).
    """
    schema: dict[str, Any] = json.loads(_load(kind))
    return schema


def document_kind(document: Mapping[str, Any]) -> Kind:
    """``"compare"`` for compare documents, else ``"render"`` (older render documents have no ``kind``)."""
    return "compare" if document.get("kind") == "compare" else "render"


def validate_summary(document: Mapping[str, Any]) -> None:
    """Check a summary.json document against the schema of its kind.

    Args:
        document: the parsed document; its ``kind`` picks the schema.

    Raises:
        OutputError: the document does not match; the message names the JSON path of the most relevant
            error (``$.examples[0].prediction.score``) and what is wrong there (exit 5).
    """
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import best_match

    kind = document_kind(document)
    validator = Draft202012Validator(load_schema(kind))
    error = best_match(validator.iter_errors(document))
    if error is None:
        return
    message = error.message
    if len(message) > MAX_MESSAGE:
        message = message[: MAX_MESSAGE - 1] + "…"
    raise OutputError(f"summary.json does not match the {kind} schema at {error.json_path}: {message}")


def metric_names(document: Mapping[str, Any]) -> list[str]:
    """The names ``attnviz check`` accepts for this document: the keys of ``dataset.metrics``, sorted.

    Returns:
        An empty list when the document has no ``dataset`` block (written before it existed).
    """
    dataset = document.get("dataset")
    metrics = dataset.get("metrics") if isinstance(dataset, Mapping) else None
    return sorted(metrics) if isinstance(metrics, Mapping) else []
