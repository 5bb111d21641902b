"""Library entry points; the CLI is a thin layer over these."""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, BinaryIO

from attnviz.analysis.pipeline import ExampleReport, analyze, combined_needs, expand_methods, trust_sample
from attnviz.config import RenderOptions
from attnviz.errors import InputError, OutputError, UsageError
from attnviz.inputs import InputSpec, count_records, existing_file, read_inputs
from attnviz.model.capture import capture_batch, resolve_max_length
from attnviz.model.loading import LoadedModel, load_model
from attnviz.model.tasks import get_task
from attnviz.output import get_renderer
from attnviz.output.aggregate import DatasetAggregate
from attnviz.output.base import Renderer
from attnviz.output.check import CheckResult, check_summary, parse_thresholds
from attnviz.output.summary import RunDocument, example_summary, run_header, skipped_summary, versions
from attnviz.types import Example, Needs, SkippedRecord

Progress = Callable[[int], None]


def render_reports(
    inputs: Sequence[str],
    options: RenderOptions,
    *,
    stdin: BinaryIO | None = None,
    loaded: LoadedModel | None = None,
    on_progress: Progress | None = None,
    keep_examples: bool = True,
) -> dict[str, Any]:
    """Read inputs, run the model, analyse and write every requested report into ``options.out_dir``.

    Each example's files are written as soon as it is processed; index and summary are written at the
    end, also when a bad input stops the run (then with ``status: "failed"``) before the error is
    raised again.

    Args:
        inputs: texts, file paths or ``-`` for stdin.
        options: the run's options.
        stdin: byte stream to read ``-`` from (default: the process's stdin).
        loaded: an already loaded model (skips loading; used by tests and ``compare``).
        on_progress: called with the number of examples finished after each batch.
        keep_examples: return every example entry (as in summary.json); False returns the short index
            rows instead, so memory stays flat for large runs.

    Returns:
        The summary document written to summary.json.

    Raises:
        InputError: bad input (exit 3), after writing what was done.
        ModelError: the model could not be loaded or gives no attention (exit 4).
        OutputError: the output folder cannot be written (exit 5).
    """
    started = time.perf_counter()
    methods = expand_methods(options.methods)
    renderers = [get_renderer(name) for name in options.formats]
    if options.save_tensors:
        renderers.append(get_renderer("tensors"))
    loaded = loaded or load_model(options.model)
    task = get_task(loaded.task)
    spec = InputSpec(
        required=task.required_fields,
        line_field=task.line_field,
        field_map=dict(options.field_map),
        on_error=options.on_error,
    )
    out = _prepare_out(options.out_dir)
    explainer = _Explainer(loaded, options, methods, [r.needs for r in renderers])
    records = count_records(inputs) if options.trust_sample else None
    explainer.measured = trust_sample(records, options.trust_sample, options.seed)
    run = run_info(loaded, options, methods, explainer.max_length, inputs)
    # Whether the trust checks ran on a sample, of how many records (pages and summary.md say so).
    run["options"]["trust_sample"] = {
        "size": options.trust_sample,
        "sampled": explainer.measured is not None,
        "records": records,
    }
    aggregate = DatasetAggregate()
    skipped: list[SkippedRecord] = []
    status, error = "complete", None
    spool = out / ".examples.jsonl"
    try:
        with spool.open("w", encoding="utf-8") as spooled:
            for batch in _batches(read_inputs(inputs, spec, stdin), options.batch_size, skipped, options.shard):
                for report in explainer.reports(batch):
                    _write_example(renderers, report, out, run, options)
                    entry = example_summary(report)
                    spooled.write(json.dumps(entry, ensure_ascii=False, allow_nan=False) + "\n")
                    aggregate.add(entry)
                if on_progress is not None:
                    on_progress(aggregate.count)
        # An input with nothing in it is a mistake a CI job must hear about (a shard may be empty on its own).
        if not aggregate.count and not skipped and not options.allow_empty and count_records(inputs) in (0, None):
            raise InputError(", ".join(inputs), "has no examples (pass --allow-empty if that is expected)")
    except InputError as err:
        status, error = "failed", str(err)
        raise
    finally:
        elapsed = time.perf_counter() - started
        header = run_header(
            run,
            aggregate.result(len(skipped)),
            [skipped_summary(s) for s in skipped],
            status=status,
            error=error,
            timing={
                "total_seconds": round(elapsed, 3),
                "model_seconds": round(explainer.model_seconds, 3),
                "faithfulness_seconds": round(explainer.recheck_seconds, 3),
            },
        )
        document = RunDocument(header=header, spool=spool, rows=aggregate.rows)
        _write_run(renderers, document, out)
    result = document.as_dict() if keep_examples else {**header, "examples": aggregate.rows}
    spool.unlink()
    return result


def run_info(
    loaded: LoadedModel,
    options: RenderOptions,
    methods: Sequence[str],
    max_length: int,
    inputs: Sequence[str],
) -> dict[str, Any]:
    """Run metadata for summary.json: no timestamps or absolute paths, so identical runs compare equal."""
    found = versions()
    return {
        "model": loaded.name,
        "revision": loaded.revision,
        "task": loaded.task,
        "device": loaded.device,
        "dtype": loaded.dtype,
        "capture": loaded.capture,
        "score_is_confidence": get_task(loaded.task).score_is_confidence,
        "attnviz_version": found["attnviz"],
        "versions": found,
        "inputs": [arg if arg == "-" or existing_file(arg) is not None else "<text>" for arg in inputs],
        "options": {
            "max_length": max_length,
            "batch_size": options.batch_size,
            "methods": list(methods),
            "word_merge": options.word_merge,
            "target_label": options.target_label,
            "erasure": options.erasure,
            "seed": options.seed,
            "on_error": options.on_error,
            "shard": f"{options.shard[0]}/{options.shard[1]}",
            "generation": dataclasses.asdict(options.generation),
            "png_layers": options.png_layers,
        },
    }


def _batches(
    items: Iterable[Example | SkippedRecord],
    size: int,
    skipped: list[SkippedRecord],
    shard: tuple[int, int] = (0, 1),
) -> Iterator[list[Example]]:
    """Group examples into batches; a bad record first flushes the examples read before it.

    Shard i of N keeps every N-th *batch* (and the skipped records at positions ≡ i mod N). Whole
    batches, not examples, are dealt out so each example runs in exactly the batch it would run in
    unsharded: padding changes floating-point sums, and merged shards must equal the unsharded run.
    """
    index, count = shard
    batch: list[Example] = []
    batch_no = 0
    try:
        for item in items:
            if isinstance(item, SkippedRecord):
                if item.index % count == index:
                    skipped.append(item)
                continue
            batch.append(item)
            if len(batch) == size:
                if batch_no % count == index:
                    yield batch
                batch, batch_no = [], batch_no + 1
    except InputError:
        if batch and batch_no % count == index:
            yield batch
        raise
    if batch and batch_no % count == index:
        yield batch


def _prepare_out(out: Path) -> Path:
    try:
        (out / "examples").mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise OutputError(f"cannot create output folder '{out}': {err.strerror or err}") from None
    return out


def _write_example(
    renderers: Sequence[Renderer], report: Any, out: Path, run: dict[str, Any], options: RenderOptions
) -> None:
    from attnviz.output.png import draw_example

    groups = frozenset().union(*(r.needs_figures for r in renderers))
    figures = draw_example(report, groups, options.png_layers) if groups else {}
    try:
        for renderer in renderers:
            renderer.write_example(report, figures, out, run)
    except OSError as err:
        raise OutputError(f"cannot write report for '{report.capture.example.id}' in '{out}': {err}") from None


def _write_run(renderers: Sequence[Renderer], summary: RunDocument, out: Path) -> None:
    try:
        for renderer in renderers:
            renderer.write_run(summary, out)
    except OSError as err:
        raise OutputError(f"cannot write run files in '{out}': {err}") from None


def check_report(document: Mapping[str, Any], mins: Sequence[str], maxs: Sequence[str]) -> CheckResult:
    """Evaluate ``--min``/``--max`` thresholds (``NAME=VALUE``) against a summary document."""
    return check_summary(document, parse_thresholds(mins, maxs))


def finish_report(
    out: Path, mins: Sequence[str] = (), maxs: Sequence[str] = (), single_file: Path | None = None
) -> CheckResult | None:
    """After render, merge or compare: apply thresholds (summary.md then records them) and bundle the
    report into one HTML file when asked.

    Returns:
        The check result when thresholds were given (the caller decides the exit status).
    """
    result = None
    if mins or maxs:
        document = json.loads((out / "summary.json").read_text(encoding="utf-8"))
        result = check_report(document, mins, maxs)
        if document.get("kind", "render") == "render":
            from attnviz.output.base import write_text
            from attnviz.output.markdown import summary_markdown

            write_text(out / "summary.md", summary_markdown(document, result))
    if single_file is not None:
        from attnviz.output.bundle import bundle_report

        try:
            bundle_report(out, single_file)
        except OSError as err:
            raise OutputError(f"cannot write '{single_file}': {err}") from None
    return result


def explain_text(text: str, options: RenderOptions, loaded: LoadedModel | None = None) -> ExampleReport:
    """Capture and analyse one text without writing files (the terminal ``show`` view); the capture also holds
    what ``options.formats`` would draw, so the report can be rendered afterwards.

    Raises:
        InputError: empty text. ModelError: as for :func:`render_reports`.
    """
    if not text.strip():
        raise InputError("<text>", "is empty", "text")
    loaded = loaded or load_model(options.model)
    example = Example(id="text", source="<text>", fields={get_task(loaded.task).line_field: text})
    drawn = [get_renderer(name).needs for name in options.formats]
    return next(_Explainer(loaded, options, expand_methods(options.methods), drawn).reports([example]))


class _Explainer:
    """Captures and analyses batches with one run's settings, which are worked out once."""

    def __init__(
        self, loaded: LoadedModel, options: RenderOptions, methods: Sequence[str], output_needs: Sequence[Needs]
    ) -> None:
        self.loaded, self.options, self.methods = loaded, options, methods
        self.task = get_task(loaded.task)
        self.max_length = resolve_max_length(loaded, options.max_length)
        self.needs = combined_needs(methods, *output_needs)
        self.measured: frozenset[int] | None = None  # input positions that get trust checks (None: every one)
        self.model_seconds = self.recheck_seconds = 0.0

    def reports(self, batch: Sequence[Example]) -> Iterator[ExampleReport]:
        """One forward (and backward) pass for the batch, then each example's analyses."""
        tick = time.perf_counter()
        captures = capture_batch(
            self.loaded,
            batch,
            max_length=self.max_length,
            needs=self.needs,
            generation=self.options.generation,
            target=self.options.target_label,
        )
        self.model_seconds += time.perf_counter() - tick
        for capture in captures:
            sampled_out = self.measured is not None and capture.example.index not in self.measured
            rerun = self.needs.model_reruns and not sampled_out
            predictor = self.task.predictor(self.loaded, capture) if rerun else None
            yield analyze(
                capture,
                self.methods,
                index=capture.example.index,
                word_merge=self.options.word_merge,
                options=self.options.analysis,
                predictor=predictor,
                sampled_out=sampled_out,
            )
            self.recheck_seconds += predictor.seconds if predictor is not None else 0.0


def compare_models(
    inputs: Sequence[str],
    options_a: RenderOptions,
    options_b: RenderOptions,
    out_dir: Path,
    *,
    loaded_a: LoadedModel | None = None,
    loaded_b: LoadedModel | None = None,
    stdin: BinaryIO | None = None,
) -> dict[str, Any]:
    """Render full reports for both models into ``out_dir/a`` and ``out_dir/b``, compare and write them.

    The ``out_dir`` of each options object is replaced. With ``-`` among the inputs, stdin is read once
    and the same bytes are given to both sides.

    Returns:
        The compare document, also written to ``out_dir/summary.json`` (with ``out_dir/compare.html``).

    Raises:
        InputError, ModelError, OutputError: as :func:`attnviz.api.render_reports` (side A runs first).
        UsageError: the two models do not do the same task, or label the same classes differently.
    """
    import io
    import sys

    from attnviz.output.compare import compare_summaries, write_compare

    started = time.perf_counter()
    loaded_a = loaded_a or load_model(options_a.model)
    loaded_b = loaded_b or load_model(options_b.model)
    _check_comparable(loaded_a, loaded_b)
    out_dir = Path(out_dir)
    if "-" in inputs:
        data = (stdin if stdin is not None else sys.stdin.buffer).read()
        streams: tuple[BinaryIO | None, BinaryIO | None] = (io.BytesIO(data), io.BytesIO(data))
    else:
        streams = (stdin, stdin)
    a = render_reports(
        inputs,
        dataclasses.replace(options_a, out_dir=out_dir / "a"),
        stdin=streams[0],
        loaded=loaded_a,
        keep_examples=True,
    )
    b = render_reports(
        inputs,
        dataclasses.replace(options_b, out_dir=out_dir / "b"),
        stdin=streams[1],
        loaded=loaded_b,
        keep_examples=True,
    )
    document = compare_summaries(a, b, pages_a="a", pages_b="b")
    document["timing"]["total_seconds"] = round(time.perf_counter() - started, 3)
    write_compare(document, out_dir)
    return document


def _check_comparable(a: LoadedModel, b: LoadedModel) -> None:
    """Two models are compared example by example only when their predictions mean the same thing."""
    if a.task != b.task:
        raise UsageError(f"cannot compare '{a.name}' ({a.task}) with '{b.name}' ({b.task}): they do different tasks")
    labels = [sorted(str(v) for v in (getattr(m.model.config, "id2label", None) or {}).values()) for m in (a, b)]
    if labels[0] != labels[1] and all(labels):
        raise UsageError(
            f"cannot compare '{a.name}' with '{b.name}': their labels differ ({', '.join(labels[0])} vs "
            f"{', '.join(labels[1])}), so flips between them would mean nothing"
        )
