"""``attnviz check`` logic: threshold parsing, inclusive bounds, null metrics, unknown names, exit statuses."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from attnviz.errors import ExitStatus, ThresholdError, UnknownNameError, UsageError
from attnviz.output.check import CheckResult, Threshold, check_summary, format_table, parse_thresholds


def document(**metrics: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"examples": 4, "skipped": 0, "truncated": 0, "accuracy": 0.75, "mean_entropy": 0.5}
    return {"schema_version": "1.0", "dataset": {"metrics": {**base, **metrics}, "spread": {}}}


def check(doc: dict[str, Any], mins: Sequence[str] = (), maxs: Sequence[str] = ()) -> CheckResult:
    return check_summary(doc, parse_thresholds(mins, maxs))


def test_parse_min_and_max_in_order() -> None:
    parsed = parse_thresholds(["accuracy=0.8", " mean_entropy = 1e-1 "], ["sink_head_share=0.5"])
    assert parsed == [
        Threshold("accuracy", ">=", 0.8),
        Threshold("mean_entropy", ">=", 0.1),
        Threshold("sink_head_share", "<=", 0.5),
    ]


@pytest.mark.parametrize(
    ("mins", "maxs", "message"),
    [
        (["accuracy"], [], "--min 'accuracy': expected NAME=VALUE"),
        (["=0.5"], [], "expected NAME=VALUE"),
        ([], ["accuracy="], "--max 'accuracy=': expected NAME=VALUE"),
        (["accuracy=high"], [], "'high' is not a number"),
        ([], ["accuracy=nan"], "finite number"),
        (["accuracy=inf"], [], "finite number"),
    ],
)
def test_parse_errors_are_usage_errors(mins: list[str], maxs: list[str], message: str) -> None:
    with pytest.raises(UsageError, match=message) as info:
        parse_thresholds(mins, maxs)
    assert info.value.exit_status == ExitStatus.USAGE == 2


def test_value_equal_to_threshold_passes_both_ways() -> None:
    result = check(document(), ["accuracy=0.75"], ["accuracy=0.75", "examples=4"])
    assert result.passed and [row.passed for row in result.rows] == [True, True, True]
    result.raise_if_failed()  # no error: exit 0


def test_just_past_a_bound_fails_with_check_status() -> None:
    result = check(document(), ["accuracy=0.750001"], ["mean_entropy=0.499999"])
    assert not result.passed and len(result.failed) == 2
    with pytest.raises(ThresholdError) as info:
        result.raise_if_failed()
    assert info.value.exit_status == ExitStatus.CHECK_FAILED == 6
    assert "2 of 2 thresholds failed" in str(info.value)
    assert "accuracy = 0.75 (needs >= 0.750001)" in str(info.value)


def test_null_metric_fails_as_not_available() -> None:
    result = check(document(accuracy=None), ["accuracy=0"], ["accuracy=1"])
    assert [row.value for row in result.rows] == [None, None]
    assert not any(row.passed for row in result.rows)
    assert {row.shown_value for row in result.rows} == {"n/a"}
    with pytest.raises(ThresholdError, match="accuracy = n/a"):
        result.raise_if_failed()


def test_unknown_metric_lists_the_documents_names_sorted() -> None:
    doc = document(**{"comprehensiveness.rollout": 0.2, "comprehensiveness": 0.2})
    with pytest.raises(UnknownNameError) as info:
        check(doc, ["acuracy=0.8"])
    valid = ["accuracy", "comprehensiveness", "comprehensiveness.rollout", "examples", "mean_entropy", "skipped"]
    valid.append("truncated")
    assert info.value.valid == valid
    assert str(info.value) == f"unknown metric 'acuracy'; valid: {', '.join(valid)}"
    assert info.value.exit_status == ExitStatus.USAGE


def test_document_without_dataset_metrics_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="no dataset metrics"):
        check({"schema_version": "1.0", "examples": []}, ["accuracy=0.5"])


def test_compare_metrics_are_checked_like_any_other() -> None:
    doc = {"kind": "compare", "dataset": {"metrics": {"prediction_flips": 2, "mean_rank_correlation": 0.9}}}
    result = check(doc, ["mean_rank_correlation=0.8"], ["prediction_flips=1"])
    assert [row.passed for row in result.rows] == [True, False]


def test_no_thresholds_pass() -> None:
    assert check(document()).passed


def test_format_table_is_aligned_and_markdown() -> None:
    result = check(document(accuracy=None), ["examples=4", "accuracy=0.5"], ["mean_entropy=0.25"])
    lines = format_table(result).splitlines()
    assert lines[0].split("|")[1:-1] == [" metric       ", " rule    ", " value ", " result "]
    assert set(lines[1]) <= {"|", "-", " "}
    assert len({len(line) for line in lines}) == 1  # every row padded to the same width
    cells = [[cell.strip() for cell in line.split("|")[1:-1]] for line in lines[2:]]
    assert cells == [
        ["examples", ">= 4", "4", "pass"],
        ["accuracy", ">= 0.5", "n/a", "FAIL"],
        ["mean_entropy", "<= 0.25", "0.5", "FAIL"],
    ]
