"""``attnviz check``: compare a summary.json's dataset metrics with thresholds, for CI.

A threshold is ``NAME=VALUE`` given as a minimum (the metric must be ``>=`` VALUE) or a maximum (``<=``).
Both bounds are inclusive, so a value equal to its threshold passes. A metric whose value is null (e.g.
``accuracy`` on inputs without labels) fails: a gate that cannot be evaluated must not pass silently.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from attnviz.errors import ThresholdError, UnknownNameError, UsageError
from attnviz.output.schema import metric_names

Op = Literal[">=", "<="]
NOT_AVAILABLE = "n/a"


@dataclass(frozen=True)
class Threshold:
    """One bound on one metric.

    Attributes:
        metric: a name from ``dataset.metrics``.
        op: ``">="`` for a minimum, ``"<="`` for a maximum.
        value: the bound (inclusive).
    """

    metric: str
    op: Op
    value: float


@dataclass(frozen=True)
class CheckRow:
    """One threshold with the document's value; ``value`` is None when the metric is null."""

    metric: str
    op: Op
    threshold: float
    value: float | None
    passed: bool

    @property
    def shown_value(self) -> str:
        return NOT_AVAILABLE if self.value is None else format_number(self.value)

    def describe(self) -> str:
        """One line for messages, e.g. ``accuracy = 0.7 (needs >= 0.8)``."""
        return f"{self.metric} = {self.shown_value} (needs {self.op} {format_number(self.threshold)})"


@dataclass(frozen=True)
class CheckResult:
    """Every threshold's outcome, in the order the thresholds were given (minimums first)."""

    rows: tuple[CheckRow, ...]

    @property
    def passed(self) -> bool:
        return all(row.passed for row in self.rows)

    @property
    def failed(self) -> tuple[CheckRow, ...]:
        return tuple(row for row in self.rows if not row.passed)

    def raise_if_failed(self) -> None:
        """Turn failed thresholds into the ``check`` exit status.

        Raises:
            ThresholdError: at least one threshold failed (exit 6); the message lists each failure.
        """
        failed = self.failed
        if failed:
            details = "; ".join(row.describe() for row in failed)
            raise ThresholdError(f"{len(failed)} of {len(self.rows)} thresholds failed: {details}")


def format_number(value: float) -> str:
    """Integers as integers, other values with up to 6 significant digits (summary.json keeps 6 decimals)."""
    if float(value).is_integer() and abs(value) < 1e15:
        return str(int(value))
    return f"{value:.6g}"


def parse_thresholds(mins: Sequence[str], maxs: Sequence[str]) -> list[Threshold]:
    """Parse ``--min NAME=VALUE`` and ``--max NAME=VALUE`` options.

    Args:
        mins: minimums; the metric must be at least VALUE.
        maxs: maximums; the metric must be at most VALUE.

    Returns:
        The thresholds, minimums first, each list in the order given.

    Raises:
        UsageError: an entry is not ``NAME=VALUE`` or VALUE is not a finite number (exit 2).
    """
    thresholds = []
    bounds: tuple[tuple[str, Op, Sequence[str]], ...] = (("--min", ">=", mins), ("--max", "<=", maxs))
    for option, op, texts in bounds:
        for text in texts:
            name, sep, raw = text.partition("=")
            name, raw = name.strip(), raw.strip()
            if not sep or not name or not raw:
                raise UsageError(f"{option} '{text}': expected NAME=VALUE, e.g. {option} accuracy=0.8")
            try:
                value = float(raw)
            except ValueError:
                raise UsageError(f"{option} '{text}': '{raw}' is not a number") from None
            if not math.isfinite(value):
                raise UsageError(f"{option} '{text}': the value must be a finite number")
            thresholds.append(Threshold(metric=name, op=op, value=value))
    return thresholds


def check_summary(document: Mapping[str, Any], thresholds: Sequence[Threshold]) -> CheckResult:
    """Evaluate thresholds against ``document["dataset"]["metrics"]``.

    Args:
        document: a summary.json document (render or compare).
        thresholds: from :func:`parse_thresholds`.

    Returns:
        One row per threshold. A null (or NaN) value fails and is shown as ``n/a``.

    Raises:
        UsageError: the document has no dataset metrics at all (exit 2).
        UnknownNameError: a threshold names a metric the document does not have; the message lists the
            document's metric names, sorted (exit 2).
    """
    valid = metric_names(document)
    if not valid:
        raise UsageError("this summary.json has no dataset metrics to check (written by an older attnviz?)")
    metrics = document["dataset"]["metrics"]
    rows = []
    for threshold in thresholds:
        if threshold.metric not in metrics:
            raise UnknownNameError("metric", threshold.metric, valid)
        raw = metrics[threshold.metric]
        # bool is an int subclass but never a metric value; NaN cannot be compared, so both count as missing.
        value = float(raw) if isinstance(raw, (int, float)) and not isinstance(raw, bool) else None
        if value is not None and math.isnan(value):
            value = None
        if value is None:
            passed = False
        elif threshold.op == ">=":
            passed = value >= threshold.value
        else:
            passed = value <= threshold.value
        rows.append(CheckRow(threshold.metric, threshold.op, threshold.value, value, passed))
    return CheckResult(tuple(rows))


def recorded_check(document: Mapping[str, Any], thresholds: Sequence[Threshold]) -> CheckResult | None:
    """The outcome summary.md records when a run's files are written (render, merge).

    Returns:
        None without thresholds, or when one names a metric the document lacks: the run's files are written
        all the same, and the caller's :func:`check_summary` on the returned document then reports the name.
    """
    names = set(metric_names(document))
    if not thresholds or not all(threshold.metric in names for threshold in thresholds):
        return None
    return check_summary(document, thresholds)


def format_table(result: CheckResult) -> str:
    """A plain-text table that is also a valid Markdown pipe table.

    Columns are padded so the table reads in a terminal or CI log as it does rendered.
    """
    header = ("metric", "rule", "value", "result")
    body = [
        (
            row.metric.replace("|", "\\|"),  # a pipe would split the cell in Markdown
            f"{row.op} {format_number(row.threshold)}",
            row.shown_value,
            "pass" if row.passed else "FAIL",
        )
        for row in result.rows
    ]
    widths = [max(len(cells[i]) for cells in (header, *body)) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(cell.ljust(width) for cell, width in zip(cells, widths, strict=True)) + " |"

    rule = "| " + " | ".join("-" * width for width in widths) + " |"
    return "\n".join([line(header), rule, *(line(cells) for cells in body)])
