"""summary.json schemas: they are valid draft 2020-12, a real run matches, and errors name the JSON path."""

from __future__ import annotations

import copy
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from attnviz.api import render_reports
from attnviz.config import RenderOptions
from attnviz.errors import ExitStatus, InputError, OutputError, UnknownNameError
from attnviz.output.schema import MAX_DEPTH, load_schema, metric_names, read_summary, validate_summary


def render_document() -> dict[str, Any]:
    """A small hand-written render summary.json with one example (the shape attnviz writes)."""
    example = {
        "id": "r0",
        "index": 0,
        "page": "examples/r0.html",
        "source": "data.jsonl:1",
        "label": "positive",
        "prediction": {
            "text": "positive",
            "score": 0.7,
            "probabilities": {"negative": 0.3, "positive": 0.7},
            "correct": True,
            "details": {"class_index": 1},
        },
        "truncated": False,
        "original_length": 4,
        "sequences": {
            "input": {"tokens": ["[CLS]", "good", "[SEP]"], "words": ["good"], "special": [True, False, True]}
        },
        "explained": ["[CLS]"],
        "explained_attention": "self",
        "scores": {
            "attention": {
                "label": "raw attention",
                "stage": "layer 2",
                "sequence": "input",
                "tokens": [0.2, 0.5, 0.3],
                "words": [0.5],
                "top_words": [["good", 0.5]],
                "rows": [{"row": "[CLS]", "top_words": [["good", 0.5]], "first_token": 0.2}],
            }
        },
        "heads": {"self": {"entropy": [[0.5, 0.6], [0.7, 0.8]]}},
        "flags": {"diffuse": [], "sink_bound": [[1, 2]]},
        "metrics": {"diffuse_head_share": 0.0, "sink_head_share": 0.25},
        "messages": ["1 of 4 heads is sink-bound"],
        "method_correlations": [{"a": "attention", "b": "rollout", "spearman": None}],
        "mean_entropy": 0.65,
        "mean_special_share": 0.4,
    }
    return {
        "schema_version": "1.0",
        "kind": "render",
        "status": "complete",
        "error": None,
        "run": {
            "model": "tiny",
            "revision": None,
            "task": "classify",
            "device": "cpu",
            "dtype": "float32",
            "attnviz_version": "0.1.0",
            "versions": {"attnviz": "0.1.0", "torch": "2", "transformers": "5", "numpy": "2", "python": "3.11"},
            "inputs": ["data.jsonl"],
            "options": {
                "max_length": 32,
                "batch_size": 8,
                "methods": ["attention"],
                "word_merge": "sum",
                "on_error": "stop",
                "shard": "0/1",
                "future_option": {"anything": True},
            },
        },
        "counts": {"examples": 1, "skipped": 0, "truncated": 0},
        "dataset": {
            "primary_method": "attention",
            "metrics": {
                "examples": 1,
                "skipped": 0,
                "truncated": 0,
                "accuracy": 1.0,
                "comprehensiveness.attention": None,
            },
            "spread": {"comprehensiveness.attention": None},
            "confusion": None,
        },
        "examples": [example],
        "skipped": [{"source": "data.jsonl:2", "field": "text", "reason": "is missing", "index": 1}],
        "timing": {"total_seconds": 1.5, "model_seconds": 0.5},
    }


def compare_document() -> dict[str, Any]:
    return {
        "schema_version": "1.0",
        "kind": "compare",
        "run": {
            "a": {"model": "base", "task": "classify"},
            "b": {"model": "tuned", "revision": "v2", "task": "classify"},
        },
        "dataset": {"metrics": {"prediction_flips": 1, "mean_rank_correlation": 0.8, "entropy_drift": -0.02}},
        "examples": [{"id": "r0", "flipped": False}],
    }


@pytest.mark.parametrize("kind", ["render", "compare"])
def test_schemas_are_valid_draft_2020_12(kind: str) -> None:
    schema = load_schema(kind)  # type: ignore[arg-type]
    Draft202012Validator.check_schema(schema)
    assert schema["properties"]["schema_version"] == {"const": "1.0"}
    schema["title"] = "changed"
    assert load_schema(kind)["title"] != "changed"  # each call returns a fresh copy  # type: ignore[arg-type]


def test_unknown_schema_kind() -> None:
    with pytest.raises(UnknownNameError, match="valid: compare, render"):
        load_schema("other")  # type: ignore[arg-type]


def test_valid_documents_pass() -> None:
    validate_summary(render_document())
    validate_summary(compare_document())
    older = render_document()
    del older["dataset"], older["kind"], older["examples"][0]["explained_attention"]
    validate_summary(older)  # written before the dataset block existed


@pytest.mark.parametrize(
    ("change", "path"),
    [
        (lambda d: d.update(schema_version="2.0"), "$.schema_version"),
        (lambda d: d.update(status="done"), "$.status"),
        (lambda d: d.update(status="failed"), "$.error"),  # a failed run must say why
        (lambda d: d.update(extra=1), "$"),
        (lambda d: d["counts"].pop("skipped"), "$.counts"),
        (lambda d: d["examples"][0]["prediction"].update(score="high"), "$.examples[0].prediction.score"),
        (lambda d: d["examples"][0].update(page="../../etc/passwd"), "$.examples[0].page"),
        (lambda d: d["examples"][0]["flags"].update(diffuse=[[0, 1]]), "$.examples[0].flags.diffuse[0][0]"),
        (lambda d: d["dataset"]["metrics"].update(accuracy="0.9"), "$.dataset.metrics.accuracy"),
        (
            lambda d: d["dataset"]["metrics"].update({"comprehensiveness.rollout": "x"}),
            "$.dataset.metrics['comprehensiveness.rollout']",
        ),
        (lambda d: d["skipped"][0].update(reason=None), "$.skipped[0].reason"),
    ],
)
def test_errors_name_the_json_path(change: Callable[[dict[str, Any]], Any], path: str) -> None:
    document = render_document()
    change(document)
    with pytest.raises(OutputError) as info:
        validate_summary(document)
    assert f"does not match the render schema at {path}:" in str(info.value)


def test_compare_errors() -> None:
    document = compare_document()
    del document["run"]["b"]
    with pytest.raises(OutputError, match=r"compare schema at \$\.run: 'b' is a required property"):
        validate_summary(document)


def test_long_messages_are_cut() -> None:
    document = render_document()
    document["examples"] = {"x" * 1000: 1}
    with pytest.raises(OutputError) as info:
        validate_summary(document)
    assert len(str(info.value)) < 400 and str(info.value).endswith("…")


def test_metric_names() -> None:
    assert metric_names(render_document()) == [
        "accuracy",
        "comprehensiveness.attention",
        "examples",
        "skipped",
        "truncated",
    ]
    assert metric_names(compare_document()) == ["entropy_drift", "mean_rank_correlation", "prediction_flips"]
    assert metric_names({"schema_version": "1.0"}) == []


def test_a_real_run_matches(tiny_loaded: Callable[..., Any], tmp_path: Path) -> None:
    data = tmp_path / "in.jsonl"
    rows = [{"id": "a", "text": "good film", "label": "positive"}, {"id": "b", "text": "bad <b>film</b> | x"}]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    out = tmp_path / "out"
    render_reports([str(data)], RenderOptions(out_dir=out, formats=("json",)), loaded=tiny_loaded("bert-classifier"))
    document = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    validate_summary(document)
    validate_summary(copy.deepcopy(document) | {"status": "failed", "error": "data.jsonl:3: bad"})


def test_read_summary_returns_a_valid_document(tmp_path: Path) -> None:
    path = tmp_path / "summary.json"
    path.write_text(json.dumps(render_document()), encoding="utf-8")
    assert read_summary(path) == render_document()


def deep(levels: int) -> Any:
    value: Any = 1
    for _ in range(levels):
        value = {"a.b": value}
    return value


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (None, "file not found"),
        (b"\xff{}", "is not UTF-8 text (byte 0)"),
        ("{", "is not valid JSON (Expecting property name enclosed in double quotes at line 1, column 2)"),
        ("[" * 100_000, f"is nested more than {MAX_DEPTH} levels deep at $"),
        (json.dumps(deep(MAX_DEPTH + 1)), f"is nested more than {MAX_DEPTH} levels deep at $['a.b']['a.b']"),
        ('{"schema_version": NaN}', "holds nan, which is not a JSON number at $.schema_version"),
        (
            '{"timing": {"total_seconds": -Infinity}}',
            "holds -inf, which is not a JSON number at $.timing.total_seconds",
        ),
        (
            '{"timing": {"total_seconds": 1' + "0" * 400 + "}}",
            "holds an integer of 401 digits, too large for a float at $.timing.total_seconds",
        ),
        (
            '{"a": 1' + "0" * 5000 + "}",
            f"holds an integer of more than {sys.get_int_max_str_digits()} digits",
        ),
        ('{"run": {"model": "a", "model": "b"}}', 'gives the key "model" twice in one object'),
        ("{}", "does not match the render schema at $: 'schema_version' is a required property"),
        ("[]", "does not match the render schema at $: [] is not of type 'object'"),
    ],
)
def test_read_summary_refuses_bad_input_naming_file_and_path(
    tmp_path: Path, text: str | bytes | None, message: str
) -> None:
    path = tmp_path / "summary.json"
    if isinstance(text, bytes):
        path.write_bytes(text)
    elif text is not None:
        path.write_text(text, encoding="utf-8")
    with pytest.raises(InputError) as info:
        read_summary(path)
    assert info.value.exit_status == ExitStatus.BAD_INPUT
    assert str(info.value).startswith(f"{path}: {message}")
    assert len(str(info.value)) < len(str(path)) + 320  # a long path or value is cut


def test_read_summary_names_the_schema_path_of_a_tampered_entry(tmp_path: Path) -> None:
    document = render_document()
    document["examples"][0]["page"] = "javascript:alert(1)//"
    path = tmp_path / "summary.json"
    path.write_text(json.dumps(document), encoding="utf-8")
    with pytest.raises(
        InputError, match=r"summary\.json: does not match the render schema at \$\.examples\[0\]\.page: "
    ):
        read_summary(path)
