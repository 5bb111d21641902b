"""The typed options objects built once at the edge (CLI or library caller)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, get_args

from attnviz.errors import UsageError
from attnviz.inputs import DatasetSource, OnError

# The task adapters (attnviz.model.tasks registers one for each), in detection order: the most specific model heads
# first, plain encoders last. Named here, away from torch, so that `attnviz list` answers without importing it.
TASK_NAMES = ("classify", "qa", "seq2seq", "lm", "encode")
DEFAULT_METHODS = (
    "attention",
    "rollout",
    "relevancy",
    "norms",
    "heads",
    "agreement",
    "faithfulness",
    "plausibility",
)
DEFAULT_FORMATS = ("html", "png", "json", "markdown")


@dataclass(frozen=True)
class Preset:
    """A named set of methods and formats (``--preset``); ``--method`` and ``--format`` override its parts.

    Attributes:
        methods: analysis names (``all``: every registered one).
        formats: renderer names.
        purpose: what it is for, as ``attnviz list`` and ``--help`` say.
        cost: seconds per example over a bare batched forward pass of the same examples, measured by
            ``benchmarks/bench_presets.py`` (demo model, the 24 sample reviews, 2-core CPU; see its README).
    """

    methods: tuple[str, ...]
    formats: tuple[str, ...]
    purpose: str
    cost: float


PRESETS = {
    "quick": Preset(("attention", "rollout", "heads"), ("html",), "a first look: no model re-runs, no PNG", 4),
    "review": Preset(DEFAULT_METHODS, DEFAULT_FORMATS, "the default: heatmaps and the trust checks", 86),
    "full": Preset(("all",), DEFAULT_FORMATS, "everything, attention flow included", 760),
}
DEFAULT_PRESET = "review"
# A render of literal texts alone, with no --preset, --method or --format: someone trying a sentence, who wants
# the page in seconds (the page path is printed, with how to get the trust panel).
LITERAL_PRESET = "quick"
# `attnviz show` prints to a terminal: the methods that need no re-run of the model, so it answers at once.
SHOW_METHODS = ("attention", "rollout", "relevancy", "heads")
# Integrated Gradients runs IG_FIRST_STEPS Gauss-Legendre steps, then doubles them (up to --ig-steps, default
# DEFAULT_IG_STEPS) while its convergence delta is above 1 % of |F(x) − F(baseline)|. Measured on the 24 demo
# reviews (share of deltas under 1 %): 8 steps 4 %, 16 steps 46 %, 24 steps 71 %, 32 steps 96 % (worst 1.2 %),
# 64 steps 100 %; on 24 benchmark sentences 17 % at 16, 96 % at 32, 100 % at 64. Starting at 32 costs about 35
# steps per example on average; starting at 16 and doubling cost 36 (demo) to 45 (benchmark).
IG_FIRST_STEPS = 32
DEFAULT_IG_STEPS = 64
# Trust checks (faithfulness, agreement) run on every example of inputs up to this size, and on a seeded random
# sample of this many records of larger ones (--trust-sample; 0: every example whatever the size).
DEFAULT_TRUST_SAMPLE = 500
# Random rankings per example for the faithfulness baseline (--random-orders). Each costs 10 edited copies, nearly
# all distinct: with 5, random orders were 45 of the ≈ 80 distinct copies scored per demo review. The dataset's
# random baseline is the mean over examples, so fewer orders per example widen its interval a little but do not
# move what it estimates; a page's own margin is against this example's orders only.
DEFAULT_RANDOM_ORDERS = 2

#: Which layers get a head-grid PNG: ``last``, ``all``, or 1-based layer numbers.
PngLayers = Literal["last", "all"] | tuple[int, ...]
#: A review reads the last layer (the one the attention scores and the mean heatmap show); the HTML page has all.
DEFAULT_PNG_LAYERS: PngLayers = "last"
PNG_LAYERS_FORMS = "last, all, or 1-based layer numbers such as 1,2"

Device = Literal["auto", "cpu", "cuda", "mps"]
DType = Literal["auto", "float32", "float16", "bfloat16"]
CapturePath = Literal["auto", "fast", "eager"]
WordMerge = Literal["sum", "mean", "max"]
WORD_MERGES: tuple[str, ...] = get_args(WordMerge)


def parse_png_layers(text: str) -> PngLayers:
    """The text of ``--png-layers`` (``last``, ``all`` or ``N,M``) as a ``RenderOptions.png_layers`` value.

    Raises:
        ValueError: any other text; the message lists the valid forms.
    """
    if text in ("last", "all"):
        return text  # type: ignore[return-value]
    try:
        layers = tuple(sorted({int(part) for part in text.split(",")}))
    except ValueError:
        layers = ()
    _check_png_layers(layers, text)
    return layers


def _check_png_layers(value: object, shown: str) -> None:
    numbers = isinstance(value, tuple) and bool(value) and all(isinstance(n, int) and n >= 1 for n in value)
    if value not in ("last", "all") and not numbers:
        raise UsageError(f"--png-layers (png_layers) must be {PNG_LAYERS_FORMS}, got '{shown}'")


@dataclass(frozen=True)
class ModelOptions:
    """How to load the model.

    Attributes:
        name: hub id or local folder; None means the bundled demo model.
        revision: hub revision (branch, tag or commit).
        device: ``auto`` picks cuda, then mps, then cpu.
        dtype: ``auto`` keeps float32 on CPU and the checkpoint's dtype elsewhere.
        trust_remote_code: allow code from the model repository (off unless asked).
        task: task adapter name; None auto-detects from the architecture.
        capture: ``fast`` runs SDPA and recomputes attention from q and k in row blocks; ``eager`` keeps the
            model's eager attention tensors (the reference); ``auto`` is fast where the architecture is covered.
    """

    name: str | None = None
    revision: str | None = None
    device: Device = "auto"
    dtype: DType = "auto"
    trust_remote_code: bool = False
    task: str | None = None
    capture: CapturePath = "auto"


@dataclass(frozen=True)
class GenerationOptions:
    """How generative tasks continue an input that has no target.

    Attributes:
        max_new_tokens: tokens to generate.
        do_sample: sample instead of greedy decoding.
        seed: random seed for sampling (results are reproducible for a fixed seed).
        temperature: sampling temperature.
        top_p: nucleus sampling mass.
    """

    max_new_tokens: int = 20
    do_sample: bool = False
    seed: int = 0
    temperature: float = 1.0
    top_p: float = 1.0

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1:
            raise UsageError("max_new_tokens must be at least 1")
        if self.temperature <= 0 or not 0 < self.top_p <= 1:
            raise UsageError("temperature must be > 0 and top_p in (0, 1]")
        if not self.do_sample and (self.temperature, self.top_p) != (1.0, 1.0):
            raise UsageError("temperature and top_p apply only when sampling: add --sample, or drop them")


@dataclass(frozen=True)
class AnalysisOptions:
    """What analyses may read besides the capture.

    Attributes:
        erasure: how faithfulness checks erase tokens: ``delete`` them (ERASER) or ``mask`` them.
        seed: seed of the random-order baseline.
        ig_steps: the most Integrated Gradients steps (``--ig-steps``).
        ig_first_steps: the steps Integrated Gradients starts with, doubled while it has not converged.
        random_orders: random rankings per example for the faithfulness baseline.
    """

    erasure: Literal["delete", "mask"] = "delete"
    seed: int = 0
    ig_steps: int = DEFAULT_IG_STEPS
    ig_first_steps: int = IG_FIRST_STEPS
    random_orders: int = DEFAULT_RANDOM_ORDERS

    def __post_init__(self) -> None:
        if not 1 <= self.ig_first_steps <= self.ig_steps:
            raise UsageError(f"ig_steps must be at least {max(self.ig_first_steps, 1)}, got {self.ig_steps}")
        if self.random_orders < 1:
            raise UsageError(f"random_orders must be at least 1, got {self.random_orders}")


@dataclass(frozen=True)
class RenderOptions:
    """Everything ``render`` needs besides the inputs.

    Attributes:
        model: model loading options.
        out_dir: report folder.
        max_length: truncate inputs to this many tokens (None: the tokenizer's limit, at most 512).
        batch_size: examples per forward pass.
        methods: analysis names (``all`` expands to every registered one).
        formats: renderer names to write.
        on_error: ``stop`` or ``skip`` bad input records.
        save_tensors: also write ``examples/<id>.npz`` with the raw attention.
        word_merge: how sub-word scores are merged into word scores.
        field_map: canonical field → JSONL column.
        shard: ``(index, count)`` slice of the input to process.
        generation: how generative tasks continue inputs that have no target.
        target_label: the class a classifier's explanations are of (a label name or index): relevancy's gradient,
            the faithfulness score, Input×Gradient and Integrated Gradients; None: the predicted class.
        erasure: how faithfulness checks erase tokens: ``delete`` them (ERASER) or ``mask`` them.
        seed: seed of the random-order baseline (and of nothing else).
        ig_steps: the most Integrated Gradients steps (it starts with fewer and doubles them while needed).
        ig_first_steps: the steps Integrated Gradients starts with.
        random_orders: random rankings per example for the faithfulness baseline (``--random-orders``).
        trust_sample: run trust checks on a seeded random sample of this many input records when there are more
            (0: on every example).
        allow_empty: an input without examples completes instead of failing.
        literal_text: every input argument is a literal text (``--text``), never stdin or a file.
        dataset: a dataset read after the input arguments (``--dataset``, ``--split``, ``--dataset-config``).
        png_layers: layers whose head grid is written as PNG: ``last`` (default), ``all``, or 1-based numbers.
        overwrite: remove the files of an earlier run from ``out_dir`` (only attnviz's own) instead of refusing it.
        resume: continue the interrupted run in ``out_dir`` after its last complete example (same options only).
    """

    model: ModelOptions = field(default_factory=ModelOptions)
    out_dir: Path = Path("attnviz-report")
    max_length: int | None = None
    batch_size: int = 8
    methods: tuple[str, ...] = DEFAULT_METHODS
    formats: tuple[str, ...] = DEFAULT_FORMATS
    on_error: OnError = "stop"
    save_tensors: bool = False
    word_merge: WordMerge = "sum"
    field_map: tuple[tuple[str, str], ...] = ()
    shard: tuple[int, int] = (0, 1)
    generation: GenerationOptions = field(default_factory=GenerationOptions)
    target_label: str | None = None
    erasure: Literal["delete", "mask"] = "delete"
    seed: int = 0
    png_layers: PngLayers = DEFAULT_PNG_LAYERS
    ig_steps: int = DEFAULT_IG_STEPS
    ig_first_steps: int = IG_FIRST_STEPS
    random_orders: int = DEFAULT_RANDOM_ORDERS
    trust_sample: int = DEFAULT_TRUST_SAMPLE
    allow_empty: bool = False
    literal_text: bool = False
    dataset: DatasetSource | None = None
    overwrite: bool = False
    resume: bool = False

    def __post_init__(self) -> None:
        """Every check that needs no model, so that options which cannot work are refused before it loads."""
        if self.overwrite and self.resume:
            raise UsageError("--overwrite starts the run in the folder anew and --resume continues it: pass one")
        if self.trust_sample < 0:
            raise UsageError(f"trust_sample must be 0 (every example) or more, got {self.trust_sample}")
        _check_png_layers(self.png_layers, str(self.png_layers))
        if self.word_merge not in WORD_MERGES:  # the CLI checks it too; the library must not fail later
            raise UsageError(f"word_merge must be one of {', '.join(WORD_MERGES)}, got {self.word_merge!r}")
        if self.batch_size < 1:
            raise UsageError("batch_size must be at least 1")
        if self.max_length is not None and self.max_length < 2:
            raise UsageError("max_length must be at least 2")
        index, count = self.shard
        if count < 1 or not 0 <= index < count:
            raise UsageError(f"shard must be i/N with 0 <= i < N, got {index}/{count}")
        if self.png_layers != DEFAULT_PNG_LAYERS and "png" not in self.formats:
            raise UsageError(
                "--png-layers picks the head grids drawn as PNG, but --format (formats) has no png: add png to "
                "--format, or drop --png-layers"
            )
        _ = self.analysis  # checks ig_steps and random_orders now, not when the first batch runs

    @property
    def analysis(self) -> AnalysisOptions:
        return AnalysisOptions(
            erasure=self.erasure,
            seed=self.seed,
            ig_steps=self.ig_steps,
            ig_first_steps=min(self.ig_first_steps, self.ig_steps),
            random_orders=self.random_orders,
        )
