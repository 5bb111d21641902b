"""Library entry points; the CLI is a thin layer over these."""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import ExitStack
from functools import partial
from pathlib import Path
from typing import Any, BinaryIO

from attnviz.analysis.pipeline import (
    BatchReruns,
    ExampleReport,
    analyze_batch,
    combined_needs,
    expand_methods,
    trust_sample,
)
from attnviz.config import RenderOptions
from attnviz.errors import AttnvizError, InputError, OutputError, UsageError
from attnviz.inputs import InputSpec, check_arguments, count_records, input_path, read_inputs
from attnviz.inputs.records import is_blank, refuse_surrogates
from attnviz.model.capture import capture_batch, resolve_max_length
from attnviz.model.loading import LoadedModel, load_model
from attnviz.model.predictor import attribute, score_copies
from attnviz.model.tasks import get_task
from attnviz.output import get_renderer
from attnviz.output.aggregate import DatasetAggregate
from attnviz.output.base import Renderer, write_run_files
from attnviz.output.check import CheckResult, Threshold, check_summary, recorded_check
from attnviz.output.folder import COMPARE_FOLDERS, claim_folder
from attnviz.output.journal import open_journal
from attnviz.output.schema import read_summary
from attnviz.output.summary import RunDocument, example_summary, run_header, skipped_summary, versions
from attnviz.types import Example, Needs, OnProgress, SkippedRecord


def render_reports(
    inputs: Sequence[str],
    options: RenderOptions,
    *,
    stdin: BinaryIO | None = None,
    loaded: LoadedModel | None = None,
    on_progress: OnProgress | None = None,
    keep_examples: bool = True,
    thresholds: Sequence[Threshold] = (),
    records: int | None = None,
    resumable: bool = True,
) -> dict[str, Any]:
    """Read inputs, run the model, analyse and write every requested report into ``options.out_dir``.

    The folder is locked for the run, and refused when it holds an earlier run's files (unless
    ``options.overwrite``, or ``options.resume`` and that run's journal), before the model loads. Each example's
    files are written as soon as it is processed, each file atomically, and then its entry is journalled; index
    and summary are written at the end, also when anything stops the run (bad input, an error, Ctrl-C): then with
    ``status: "failed"`` and the reason, before the error is raised again. ``options.resume`` continues after the
    last journalled example of a run that was stopped in any way (kill -9 included), and the files it ends with
    equal an uninterrupted run's, timing aside (see :mod:`attnviz.output.journal`).

    Args:
        inputs: texts, file paths or ``-`` for stdin.
        options: the run's options.
        stdin: byte stream to read ``-`` from (default: the process's stdin).
        loaded: an already loaded model (skips loading; used by tests and ``compare``).
        on_progress: called as the run goes with the examples' worth of work done (see ``attnviz.types.OnProgress``):
            after each analysis of each example of a batch, and after each example is written.
        keep_examples: return every example entry (as in summary.json); False returns the short index
            rows instead, so memory stays flat for large runs.
        thresholds: ``--min``/``--max`` bounds whose outcome summary.md records (the caller checks them on the
            returned document, see :func:`finish_report`).
        records: the inputs' record count when the caller has counted them already (``count_records``); None:
            counted here when needed (the trust sample, an empty input).
        resumable: the caller's command offers ``--resume``, so refusing a used folder may suggest it (compare's
            two reports: no).

    Returns:
        The summary document written to summary.json.

    Raises:
        UnknownNameError: an unknown method or format (exit 2).
        UsageError: ``out_dir`` holds an earlier run and ``options.overwrite`` is not set; or a resume whose options
            or inputs differ from the interrupted run's (exit 2).
        InputError: bad input (exit 3), after writing what was done.
        ModelError: the model could not be loaded or gives no attention (exit 4).
        OutputError: the output folder cannot be written, or another run is writing it (exit 5).
    """
    started = time.perf_counter()
    methods = expand_methods(options.methods)
    names = [*options.formats, "tensors"] if options.save_tensors else options.formats
    renderers = [get_renderer(name) for name in dict.fromkeys(names)]  # each once, however often asked for
    # A mistyped file name is refused before the folder is touched: a failed report there would refuse the rerun.
    check_arguments(inputs, options.literal_text)
    with ExitStack() as stack:
        # Locked and checked before the model loads (minutes, for a large one); journalled after it has loaded, so
        # a model that fails to load leaves the folder as it was (no journal of a run that never started).
        out = stack.enter_context(claim_folder(options.out_dir, options.overwrite, options.resume, resumable=resumable))
        loaded = loaded or load_model(options.model)
        task = get_task(loaded.task)
        if options.target_label is not None:  # refused before the journal, so the corrected rerun is not refused
            task.check_target(loaded, options.target_label)
        journal = stack.enter_context(open_journal(out, resume_key(inputs, options), options.resume))
        spec = InputSpec(
            required=task.required_fields,
            line_field=task.line_field,
            field_map=dict(options.field_map),
            on_error=options.on_error,
            literal=options.literal_text,
        )
        explainer = _Explainer(loaded, options, methods, [r.needs for r in renderers])
        if records is None and options.trust_sample:
            records = count_records(inputs, options.literal_text, options.dataset)
        explainer.measured = trust_sample(records, options.trust_sample, options.seed)
        run = run_info(loaded, options, methods, explainer.max_length, inputs)
        # Whether the trust checks ran on a sample, of how many records (pages and summary.md say so).
        run["options"]["trust_sample"] = {
            "size": options.trust_sample,
            "sampled": explainer.measured is not None,
            "records": records,
        }
        aggregate = DatasetAggregate()
        for entry in journal.done:  # finished by the interrupted run this one resumes
            aggregate.add(entry)
        skipped: list[SkippedRecord] = []
        status, error = "complete", None
        try:
            items = read_inputs(inputs, spec, stdin, options.dataset)
            progress = _BatchProgress(on_progress)
            for batch in _batches(items, options.batch_size, skipped, options.shard):
                finished = {example.id for example in batch if journal.is_done(example.id)}
                progress.start(aggregate.count, len(batch) - len(finished))
                for report in explainer.reports(batch, skip=finished, on_step=progress.analysed):
                    _write_example(renderers, report, out, run, options)
                    entry = example_summary(report)
                    journal.record(entry)
                    aggregate.add(entry)
                    progress.written()
                if on_progress is not None and finished:  # a batch the resumed run had finished
                    on_progress(aggregate.count)
            journal.check_all_seen()
            # An input with nothing in it is a mistake a CI job must hear about (a shard may be empty on its own).
            if (
                not aggregate.count
                and not skipped
                and not options.allow_empty
                and (count_records(inputs, options.literal_text, options.dataset) if records is None else records)
                in (0, None)
            ):
                named = [*inputs, *_dataset_named(options)]
                raise InputError(", ".join(named), "has no examples (pass --allow-empty if that is expected)")
        except BaseException as err:  # Ctrl-C and bugs too: a summary must never say "complete" for a cut run
            status, error = "failed", _failure(err)
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
            journal.close()
            document = RunDocument(
                header=header, spool=journal.spool, rows=aggregate.rows, check=recorded_check(header, thresholds)
            )
            write_run_files(renderers, document, out)
        result = document.as_dict() if keep_examples else {**header, "examples": aggregate.rows}
        journal.complete()
        return result


def resume_key(inputs: Sequence[str], options: RenderOptions) -> dict[str, Any]:
    """What a resumed run must share with the run it continues: the inputs and every option that shapes the
    report (not where it goes, nor how the folder is claimed)."""
    fields = dataclasses.asdict(options)
    for name in ("out_dir", "overwrite", "resume"):
        del fields[name]
    return json.loads(json.dumps({"inputs": list(inputs), **fields}, default=str))


def expected_examples(records: int | None, options: RenderOptions) -> int | None:
    """How many of the inputs' ``records`` (see ``count_records``; None: not known, as for stdin) the run will
    render, for progress: the share of them that ``options.shard`` deals to it."""
    if records is None:
        return None
    index, count = options.shard
    full, rest = divmod(records, options.batch_size)
    sizes = [options.batch_size] * full + ([rest] if rest else [])
    return sum(sizes[index::count])


def _dataset_named(options: RenderOptions) -> list[str]:
    """The ``--dataset`` input as the run names it after the input arguments (none without one)."""
    return [options.dataset.describe()] if options.dataset is not None else []


def _failure(err: BaseException) -> str:
    """What summary.json's ``error`` says about the exception that ended a run."""
    if isinstance(err, KeyboardInterrupt):
        return "interrupted"
    if isinstance(err, AttnvizError):
        return str(err)
    return f"unexpected {type(err).__name__}: {err}"


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
        "inputs": [
            "<text>" if options.literal_text or (arg != "-" and input_path(arg) is None) else arg for arg in inputs
        ]
        + _dataset_named(options),
        "options": {
            "max_length": max_length,
            "batch_size": options.batch_size,
            "methods": list(methods),
            "word_merge": options.word_merge,
            "target_label": options.target_label,
            "erasure": options.erasure,
            "random_orders": options.random_orders,
            "ig_steps": options.ig_steps,
            "seed": options.seed,
            "on_error": options.on_error,
            "shard": f"{options.shard[0]}/{options.shard[1]}",
            # merge writes the run files of the formats the shards were rendered with.
            "formats": list(options.formats),
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


def check_file(path: Path, thresholds: Sequence[Threshold]) -> CheckResult:
    """``attnviz check``: evaluate thresholds against a summary.json written by render, merge or compare.

    Raises:
        InputError: the file is missing, not JSON, or does not match its schema; the message names the file
            and the JSON path of what is wrong (exit 3).
        UsageError, UnknownNameError: as :func:`attnviz.output.check.check_summary` (exit 2).
    """
    return check_summary(read_summary(path), thresholds)


def finish_report(
    out: Path, document: Mapping[str, Any], thresholds: Sequence[Threshold] = (), single_file: Path | None = None
) -> CheckResult | None:
    """After render, merge or compare: check thresholds on the run's document in memory (as returned, so any
    ``--format`` works; summary.md already records them) and bundle the report into one HTML file when asked.

    Returns:
        The check result when thresholds were given (the caller decides the exit status).
    """
    result = check_summary(document, thresholds) if thresholds else None
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
    refuse_surrogates({"text": text}, "<text>")
    if is_blank(text):
        raise InputError("<text>", "is empty", "text")
    loaded = loaded or load_model(options.model)
    example = Example(id="text", source="<text>", fields={get_task(loaded.task).line_field: text})
    return explain_examples([example], options, loaded)[0]


def explain_examples(examples: Sequence[Example], options: RenderOptions, loaded: LoadedModel) -> list[ExampleReport]:
    """Capture and analyse a few examples without writing files (``show``, notebooks), in batches of
    ``options.batch_size``; the captures also hold what ``options.formats`` would draw, so the reports can be
    rendered afterwards.

    Raises:
        UnknownNameError: an unknown method or format. ModelError: as for :func:`render_reports`.
    """
    drawn = [get_renderer(name).needs for name in options.formats]
    explainer = _Explainer(loaded, options, expand_methods(options.methods), drawn)
    return [report for batch in _batches(examples, options.batch_size, []) for report in explainer.reports(batch)]


class _BatchProgress:
    """Progress within a batch, whose examples are analysed together and then written one by one.

    The batch's share done is the share analysed, weighted by the part of a batch's time analysis took in the
    batches before (a half for the first), plus the share written, weighted by the rest; so it only grows, and
    reaches the batch's examples when the last one is written.
    """

    def __init__(self, report: OnProgress | None) -> None:
        self.report = report
        self.analysis_seconds = self.write_seconds = 0.0
        self.start(0, 0)

    def start(self, base: int, size: int) -> None:
        self.base, self.size, self.analysed_share, self.done = base, size, 0.0, 0
        self.started = self.analysed_at = time.perf_counter()

    def analysed(self, share: float) -> None:
        self.analysed_share = share
        self.analysed_at = time.perf_counter()
        self._tell()

    def written(self) -> None:
        self.done += 1
        if self.done == self.size:  # the batch's times weigh the next batch's shares
            now = time.perf_counter()
            self.analysis_seconds += self.analysed_at - self.started
            self.write_seconds += now - self.analysed_at
        self._tell()

    def _tell(self) -> None:
        if self.report is None:
            return
        spent = self.analysis_seconds + self.write_seconds
        weight = self.analysis_seconds / spent if spent > 0 else 0.5
        share = weight * (1.0 if self.done else self.analysed_share) + (1 - weight) * self.done / max(self.size, 1)
        self.report(self.base + self.done if self.done == self.size else self.base + share * self.size)


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

    def reports(
        self,
        batch: Sequence[Example],
        skip: Collection[str] = (),
        on_step: Callable[[float], None] | None = None,
    ) -> Iterator[ExampleReport]:
        """One forward (and backward) pass for the batch, then the analyses of each example whose id is not in
        ``skip``; a batch with nothing left to analyse costs nothing. The batch is captured whole however much
        of it is skipped: padding changes floating-point sums, and a resumed run must give an uninterrupted one's
        numbers. The edited copies and gradient steps of the batch's examples are run together
        (``analyze_batch``), so its reports come together; ``on_step`` gets the share of the batch's analyses done
        as they go."""
        if all(example.id in skip for example in batch):
            return
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
        captures = [capture for capture in captures if capture.example.id not in skip]
        left_out = [self.measured is not None and c.example.index not in self.measured for c in captures]
        predictors = [
            self.task.predictor(self.loaded, capture) if self.needs.model_reruns and not out else None
            for capture, out in zip(captures, left_out, strict=True)
        ]
        yield from analyze_batch(
            captures,
            self.methods,
            word_merge=self.options.word_merge,
            options=self.options.analysis,
            predictors=predictors,
            sampled_out=left_out,
            together=BatchReruns(score_copies=score_copies, attribute=attribute),
            on_step=on_step,
        )
        self.recheck_seconds += sum(predictor.seconds for predictor in predictors if predictor is not None)


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
        UsageError: the two models do not do the same task, or label the same classes differently; ``out_dir``
            holds an earlier report and ``options_a.overwrite`` is not set (exit 2).
        OutputError: ``out_dir``, ``a/`` or ``b/`` cannot be written, or one of them is a symbolic link (exit 5).
    """
    import io
    import sys

    from attnviz.output.compare import compare_summaries, write_compare

    started = time.perf_counter()
    check_arguments(inputs, options_a.literal_text)
    out_dir = Path(out_dir)
    # Claimed before two models load (minutes, for large ones), as render claims its folder.
    with claim_folder(out_dir, options_a.overwrite, folders=COMPARE_FOLDERS, resumable=False):
        loaded_a = loaded_a or load_model(options_a.model)
        loaded_b = loaded_b or load_model(options_b.model)
        _check_comparable(loaded_a, loaded_b)
        if "-" in inputs:
            data = (stdin if stdin is not None else sys.stdin.buffer).read()
            stream_a: BinaryIO | None = io.BytesIO(data)
            stream_b: BinaryIO | None = io.BytesIO(data)
        else:
            stream_a = stream_b = stdin
        side = partial(render_reports, inputs, keep_examples=True, resumable=False)
        a = side(dataclasses.replace(options_a, out_dir=out_dir / "a"), stdin=stream_a, loaded=loaded_a)
        b = side(dataclasses.replace(options_b, out_dir=out_dir / "b"), stdin=stream_b, loaded=loaded_b)
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
