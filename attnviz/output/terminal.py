"""Terminal output with rich: a progress bar on a TTY and a short summary table after a run.

Every string that comes from data (ids, tokens, labels, file and model names, error messages quoting them) goes
through :func:`visible` before it reaches the terminal, and into ``Text`` objects rather than markup.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from attnviz.errors import located
from attnviz.types import OnProgress

MAX_ROWS = 20
# Without a terminal, progress is a log line each time this share of the total is done (or every
# LOG_EVERY_UNKNOWN examples when the total is unknown, reading stdin).
LOG_EVERY = 0.1
LOG_EVERY_UNKNOWN = 50
# C0 controls but tab (ESC starts OSC title, clipboard and link sequences and screen clears; a line break in an id
# or label would start a line that seems attnviz's own), DEL, C1 controls (0x9b is a one-byte CSI), the Unicode line
# and paragraph separators, and the bidirectional overrides that reorder what a line seems to say.
_CONTROLS = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def visible(text: object) -> str:
    """``text`` on one line, with every terminal control character and line break shown as an escape (``\\x1b``,
    ``\\n``) instead of acting."""
    return _CONTROLS.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), str(text))


@contextmanager
def progress_bar(console: Console, label: str, total: int | None = None, quiet: bool = False) -> Iterator[OnProgress]:
    """Yield a callback taking the examples' worth of work done (``attnviz.types.OnProgress``; a float between
    whole examples while a batch is analysed).

    On a terminal: a bar with the total (when known), examples per second and the time left, which counts
    everything a run does per example, trust checks included. Elsewhere (a CI log): a plain line every
    ``LOG_EVERY`` of the total (every ``LOG_EVERY_UNKNOWN`` examples without one). ``quiet``: nothing.
    """
    if quiet:
        yield lambda done: None
        return
    if not console.is_terminal:
        yield _log_lines(console, label, total)
        return
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeRemainingColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task(label, total=total, rate="")
        started = time.monotonic()

        def update(done: float) -> None:
            seconds = time.monotonic() - started
            rate = f"{done / seconds:.2f} examples/s" if done and seconds > 0 else ""
            progress.update(task, completed=done, rate=rate)

        yield update


def _log_lines(console: Console, label: str, total: int | None) -> OnProgress:
    step = max(1, math.ceil(total * LOG_EVERY)) if total else LOG_EVERY_UNKNOWN
    started, logged = time.monotonic(), [0]

    def log(done: float) -> None:
        whole = int(done)  # a line counts whole examples
        if whole == logged[0] or (whole - logged[0] < step and whole != total):
            return
        logged[0] = done = whole
        seconds = time.monotonic() - started
        rate = done / seconds if seconds > 0 else 0.0
        parts = [f"{label}: {done}/{total if total is not None else '?'} examples", f"{rate:.2f} examples/s"]
        if total and rate > 0 and done < total:
            parts.append(f"about {(total - done) / rate:.0f} s left")
        console.print(", ".join(parts), markup=False, highlight=False, soft_wrap=True)

    return log


def print_summary(console: Console, summary: Mapping[str, Any], out: str) -> None:
    """A table of the first examples (prediction, top words), then truncation and skipped-line notes.

    ``summary["examples"]`` holds the short index rows (``render_reports(..., keep_examples=False)``).
    """
    run = summary["run"]
    table = Table(title=Text(visible(f"{run['model']} · {run['task']}")), title_justify="left")
    headline = summary["dataset"].get("headline_method") or "top"
    score_name = "confidence" if run.get("score_is_confidence") else "score"
    for column in ("id", "prediction", score_name, "gold", f"{headline} words", "entropy"):
        table.add_column(Text(visible(column)), overflow="fold")
    for ex in summary["examples"][:MAX_ROWS]:
        top = ", ".join(w for w, _ in ex["top_words"])
        gold = ex["label"] if ex["label"] is not None else ""
        prediction = ex["prediction"]
        # Marked by a word as well as a colour, so that a log or a screen reader keeps it.
        wrong = prediction["correct"] is False
        table.add_row(
            Text(visible(ex["id"])),
            Text(("✗ " if wrong else "") + visible(prediction["text"]), style="red" if wrong else ""),
            "" if prediction["score"] is None else f"{prediction['score']:.3f}",
            Text(visible(gold)),
            Text(visible(top)),
            "" if ex["mean_entropy"] is None else f"{ex['mean_entropy']:.2f}",
        )
    console.print(table)
    hidden = len(summary["examples"]) - MAX_ROWS
    if hidden > 0:
        console.print(f"… and {hidden} more examples (see the index)", soft_wrap=True)
    truncated = [ex["id"] for ex in summary["examples"] if ex["truncated"]]
    if truncated:
        console.print(
            Text(
                visible(
                    f"{len(truncated)} truncated at {run['options']['max_length']} tokens "
                    f"(--max-length): {', '.join(truncated[:10])}"
                ),
                style="yellow",
            ),
            soft_wrap=True,
        )
    for skipped in summary["skipped"]:
        where = located(skipped["source"], skipped["field"])
        console.print(Text(visible(f"skipped {where}: {skipped['reason']}"), style="yellow"), soft_wrap=True)
    metrics = summary["dataset"]["metrics"]
    if metrics.get("accuracy") is not None:
        console.print(f"accuracy: {metrics['accuracy']:.3f}", soft_wrap=True)
    dataset = summary["dataset"]
    if dataset.get("headline_method"):
        console.print(Text(f"words from {dataset['headline_method']}: {dataset['headline_reason']}"), soft_wrap=True)
    margin = metrics.get("comprehensiveness_margin")
    if margin is not None:
        primary = dataset["primary_method"]
        console.print(f"{primary}: comprehensiveness margin over random {margin:+.3f}", soft_wrap=True)
    weak = dataset.get("not_clearly_above_random") or []
    if weak:
        console.print(
            Text(f"not clearly above random (95 % interval of the margin includes 0): {', '.join(weak)}"),
            style="yellow",
            soft_wrap=True,
        )
    formats = run["options"].get("formats", ())
    written = [f"report: {out}/index.html"] if "html" in formats else []
    written += [f"summary: {out}/summary.json"] if "json" in formats else []
    console.print(Text(visible(" · ".join(written) or f"report: {out}"), style="bold"), soft_wrap=True)


def print_example(console: Console, report: Any) -> None:
    """One example in the terminal: prediction, words shaded by each method, and the head findings.

    Tokens go into ``Text`` objects, never into markup strings, so a token like ``[bold]`` prints as is.
    """
    from attnviz.output.colors import hex_colour, normalize, text_colour

    capture = report.capture
    shaded = console.is_terminal and console.color_system is not None
    console.print(Text.assemble(("prediction: ", "bold"), visible(capture.prediction.text)), soft_wrap=True)
    for label, p in sorted(capture.prediction.probabilities.items(), key=lambda kv: -kv[1]):
        console.print(Text(visible(f"  {label}: {p:.3f}")), soft_wrap=True)
    for scores in report.token_scores:
        seq = capture.sequences[scores.sequence]
        values = report.word_scores(scores)
        levels = normalize(values)
        line = Text(f"{scores.label} ({scores.stage_labels[scores.default_stage]}): ", style="bold")
        for word, level in zip(seq.words, levels, strict=True):
            line.append(visible(word), style=f"{text_colour(level)} on {hex_colour(level)}")
            # Piped to a file or a pager the shading is gone: the level (0-1, of this line's largest) says it.
            line.append(" " if shaded else f"[{level:.2f}] ")
        console.print(line, soft_wrap=True)
    for message in report.messages:
        console.print(Text(visible(message), style="italic"), soft_wrap=True)
    metrics = report.scalars
    for scores in report.token_scores:
        margin = metrics.get(f"comprehensiveness_margin.{scores.method}")
        if margin is not None:
            console.print(Text(f"{scores.method}: comprehensiveness margin over random {margin:+.3f}"), soft_wrap=True)
