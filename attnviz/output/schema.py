"""JSON Schemas of summary.json (``render`` and ``compare`` documents) and validation against them.

The schema files live in ``attnviz/output/schema_files/`` next to this module and ship inside the wheel; they are read
with :mod:`importlib.resources` so an installed copy finds them wherever it is imported from.
"""

from __future__ import annotations

import json
import math
import re
import sys
from collections.abc import Mapping
from functools import cache
from importlib.resources import files
from pathlib import Path
from typing import Any, Literal

from attnviz.errors import InputError, OutputError, UnknownNameError

Kind = Literal["render", "compare"]
SCHEMA_FILES: dict[str, str] = {"render": "summary.schema.json", "compare": "compare.schema.json"}
# Schema errors quote the offending value (and paths its keys); a whole example entry would bury the message.
MAX_MESSAGE = 300
# attnviz writes summary.json at most about 10 levels deep; a bound far above that keeps a hostile file from
# exhausting the stack in anything that walks it later (validation, rendering, writing).
MAX_DEPTH = 64
# The spelling of JSON paths that jsonschema uses (``$.a.b[0]['c.d']``), so every message reads alike.
_PLAIN_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# A path as deep as MAX_DEPTH would bury the message: paths show this many keys, then "…".
SHOWN_PATH_KEYS = 16


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


def schema_problem(document: Any) -> str | None:
    """Where and how a parsed summary.json departs from the schema of its kind.

    Args:
        document: any parsed JSON value; a mapping's ``kind`` picks the schema (anything else is checked against
            the render schema, whose top level is an object).

    Returns:
        None when it matches, else ``does not match the <kind> schema at <JSON path>: <what is wrong>`` for the
        most relevant error.
    """
    kind = document_kind(document) if isinstance(document, Mapping) else "render"
    return _problem(kind, document, f"the {kind} schema")


def entry_problem(entry: Any) -> str | None:
    """Where and how one example entry (an item of a render summary's ``examples``) departs from the schema;
    None when it matches."""
    return _problem("example", entry, "the schema of an example entry")


@cache
def _validator(kind: str) -> Any:
    """A validator of a summary of ``kind``, or (``"example"``) of one of its example entries."""
    from jsonschema import Draft202012Validator

    if kind != "example":
        return Draft202012Validator(load_schema(kind))  # type: ignore[arg-type]
    return Draft202012Validator({"$ref": "#/$defs/example", "$defs": load_schema("render")["$defs"]})


def _problem(kind: str, value: Any, name: str) -> str | None:
    from jsonschema.exceptions import best_match

    error = best_match(_validator(kind).iter_errors(value))
    if error is None:
        return None
    return _cut(f"does not match {name} at {error.json_path}: {error.message}")


def validate_summary(document: Mapping[str, Any]) -> None:
    """Check a summary.json document that attnviz wrote against the schema of its kind.

    Args:
        document: the parsed document; its ``kind`` picks the schema.

    Raises:
        OutputError: the document does not match; the message names the JSON path of the most relevant
            error (``$.examples[0].prediction.score``) and what is wrong there (exit 5).
    """
    problem = schema_problem(document)
    if problem is not None:
        raise OutputError(f"summary.json {problem}")


def read_summary(path: Path) -> dict[str, Any]:
    """Read a summary.json given to ``check`` or ``merge``: parsed, bounded and validated before any use.

    Args:
        path: the file.

    Returns:
        The document, which matches the schema of its kind, nests at most ``MAX_DEPTH`` levels deep and holds
        only finite numbers.

    Raises:
        InputError: the file is missing, unreadable, not UTF-8 JSON, nested too deeply, holds NaN, Infinity, an
            integer no float can hold or a key twice in one object, or does not match its schema; the message names
            the file and the JSON path of what is wrong (exit 3).
    """
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(source, "file not found") from None
    except UnicodeDecodeError as err:
        raise InputError(source, f"is not UTF-8 text (byte {err.start})") from None
    except OSError as err:
        raise InputError(source, f"cannot be read: {err.strerror or err}") from None
    try:
        document = untrusted_json(text)
    except ValueError as err:
        raise InputError(source, str(err)) from None
    problem = schema_problem(document)
    if problem is not None:
        raise InputError(source, problem)
    return document


def untrusted_json(text: str) -> Any:
    """Parse JSON that came from outside this run (a summary.json, a run journal) with what the schema cannot say
    checked: nesting past ``MAX_DEPTH``, NaN or Infinity, integers no float holds, a key twice in one object.

    Raises:
        ValueError: what is wrong and, where known, its JSON path (``holds nan, which is not a JSON number at $.a``).
    """
    try:
        document = _DECODER.decode(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"is not valid JSON ({err.msg} at line {err.lineno}, column {err.colno})") from None
    except _RepeatedKey as err:
        raise ValueError(_cut(str(err))) from None
    except ValueError:  # the only other: an integer longer than Python converts
        raise ValueError(f"holds an integer of more than {sys.get_int_max_str_digits()} digits") from None
    except RecursionError:
        # The parser recurses per level: a file of nothing but "[[[[…" must be bad input, not a crash.
        raise ValueError(f"is nested more than {MAX_DEPTH} levels deep at $") from None
    unsafe = _first_unsafe(document)
    if unsafe is not None:
        raise ValueError(_cut(f"{unsafe[1]} at {_json_path(unsafe[0])}"))
    return document


class _RepeatedKey(ValueError):
    pass


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """An object, refusing a key given twice: JSON parsers disagree on which one wins, so readers would too."""
    found: dict[str, Any] = {}
    for key, value in pairs:
        if key in found:
            raise _RepeatedKey(f"gives the key {json.dumps(key)} twice in one object")
        found[key] = value
    return found


_DECODER = json.JSONDecoder(object_pairs_hook=_unique_keys)


def _first_unsafe(value: Any, depth: int = 0) -> tuple[list[str | int], str] | None:
    """What the schema cannot say: nesting past ``MAX_DEPTH``, NaN or Infinity (Python's parser accepts them,
    the writers refuse them), and integers no float can hold (the readers compute in floats). Returns the keys
    leading to the first such value and what is wrong with it.

    Recursion stops at ``MAX_DEPTH``, so this walk cannot exhaust the stack itself.
    """
    if isinstance(value, float) and not math.isfinite(value):
        return [], f"holds {value}, which is not a JSON number"
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > sys.float_info.max:
        return [], f"holds an integer of {len(str(abs(value)))} digits, too large for a float"
    if not isinstance(value, (dict, list)):
        return None
    if depth == MAX_DEPTH:
        return [], f"is nested more than {MAX_DEPTH} levels deep"
    items = value.items() if isinstance(value, dict) else enumerate(value)
    for key, child in items:
        found = _first_unsafe(child, depth + 1)
        if found is not None:
            found[0].insert(0, key)
            return found
    return None


def _cut(text: str) -> str:
    return text if len(text) <= MAX_MESSAGE else text[: MAX_MESSAGE - 1] + "…"


def _json_path(keys: list[str | int]) -> str:
    """``$.examples[0]['a.b']`` for these keys (the first ``SHOWN_PATH_KEYS``)."""
    path = "$"
    for key in keys[:SHOWN_PATH_KEYS]:
        if isinstance(key, int):
            path += f"[{key}]"
        elif _PLAIN_KEY.match(key):
            path += f".{key}"
        else:
            path += "['" + key.replace("\\", "\\\\").replace("'", "\\'") + "']"
    return path if len(keys) <= SHOWN_PATH_KEYS else path + "…"


def metric_names(document: Mapping[str, Any]) -> list[str]:
    """The names ``attnviz check`` accepts for this document: the keys of ``dataset.metrics``, sorted.

    Returns:
        An empty list when the document has no ``dataset`` block (written before it existed).
    """
    dataset = document.get("dataset")
    metrics = dataset.get("metrics") if isinstance(dataset, Mapping) else None
    return sorted(metrics) if isinstance(metrics, Mapping) else []
