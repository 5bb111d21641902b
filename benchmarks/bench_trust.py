"""What the trust checks (faithfulness, agreement) cost, against a bare forward+backward of the same model.

    python benchmarks/bench_trust.py full --examples 200 --json trust-full.json
    python benchmarks/bench_trust.py sampled --examples 2000 --sample 100 --json trust-sampled.json

In one process, on the review-like sentences of ``bench_capture.py`` and the demo model (MiniLM + linear head),
batches of 8, ``--format html,json,markdown`` (no PNG), everything written:

* ``full``: (a) a bare batched SDPA forward+backward; (b) ``render_reports`` with the default methods minus the
  trust checks; (c) every default method, trust checks on every example (``--trust-sample 0``). Also the edited
  copies asked for and scored per example, and the Integrated Gradients steps taken.
* ``sampled``: (b) and (c) on a larger set, (c) with the trust checks on a seeded sample (``--trust-sample``).

Medians of ``--repeats`` alternating runs after one warm-up, and ratios to (a) (``full``) or (b) (``sampled``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_capture import (  # noqa: E402
    bare_step,
    batches_of,
    default_max_length,
    load_bare_classifier,
    review_texts,
    write_jsonl,
)

FORMATS = ("html", "json", "markdown")
TRUST = ("agreement", "faithfulness")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=("full", "sampled"))
    parser.add_argument("--examples", type=int, default=200)
    parser.add_argument("--sample", type=int, default=100, help="--trust-sample of the sampled mode")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    import torch

    from attnviz.api import render_reports
    from attnviz.config import DEFAULT_METHODS, ModelOptions, RenderOptions
    from attnviz.model.loading import load_model

    torch.manual_seed(0)
    texts = review_texts(args.examples, seed=0)
    work = Path(tempfile.mkdtemp(prefix="attnviz-trust-"))
    data = write_jsonl(work / "reviews.jsonl", texts)
    loaded = load_model(ModelOptions())
    documents: dict[str, Any] = {}

    def render(name: str, methods: tuple[str, ...], trust_sample: int) -> Any:
        def run() -> None:
            options = RenderOptions(
                out_dir=work / f"{time.perf_counter_ns()}",
                methods=methods,
                formats=FORMATS,
                batch_size=8,
                trust_sample=trust_sample,
            )
            documents[name] = render_reports([str(data)], options, loaded=loaded)

        return run

    without = tuple(m for m in DEFAULT_METHODS if m not in TRUST)
    passes: dict[str, Any] = {}
    if args.mode == "full":
        bare_model, tokenizer = load_bare_classifier("demo-sentiment")
        bare_model.to(loaded.device)  # the device attnviz picked (a GPU when there is one)
        max_length = default_max_length(bare_model.encoder, tokenizer)

        def bare() -> None:
            for batch in batches_of(texts, 8):
                bare_step(bare_model, tokenizer, batch, max_length)

        passes["(a) bare SDPA forward + backward"] = bare
        passes["(b) render, no trust checks"] = render("without", without, 0)
        passes["(c) render, every default method"] = render("trust", DEFAULT_METHODS, 0)
    else:
        passes["(b) render, no trust checks"] = render("without", without, 0)
        passes[f"(c) render, every default method, --trust-sample {args.sample}"] = render(
            "trust", DEFAULT_METHODS, args.sample
        )
    for run in passes.values():  # warm-up
        run()
    times: dict[str, list[float]] = {name: [] for name in passes}
    for _ in range(args.repeats):
        for name, run in passes.items():
            start = time.perf_counter()
            run()
            if torch.cuda.is_available():
                torch.cuda.synchronize()  # a GPU's queued work counts in the pass that queued it
            times[name].append(time.perf_counter() - start)
    medians = {name: statistics.median(values) for name, values in times.items()}
    base = next(iter(medians.values()))
    print(f"demo-sentiment · {args.examples} sentences · batch 8 · --format {','.join(FORMATS)} · {args.mode}")
    print("\n| pass | median s | ms / sentence | ratio |\n| --- | ---: | ---: | ---: |")
    for name, median in medians.items():
        print(f"| {name} | {median:.3f} | {1000 * median / args.examples:.1f} | {median / base:.2f}× |")
    work_done = trust_work(documents["trust"])
    for key, value in work_done.items():
        print(f"- {key}: {value}")
    if args.json:
        args.json.write_text(json.dumps({"times": times, "medians": medians, "trust": work_done}, indent=1))


def trust_work(document: dict[str, Any]) -> dict[str, Any]:
    """Per measured example: edited copies asked for and scored, IG steps, and where the checks' time went."""
    measured = [entry["metrics"] for entry in document["examples"] if "erasure_model_calls" in entry["metrics"]]
    if not measured:
        return {"measured examples": 0}
    return {
        "measured examples": len(measured),
        "edited copies asked for / example (mean)": round(
            statistics.mean(s["erasure_model_calls"] for s in measured), 1
        ),
        "distinct copies scored / example (mean)": round(
            statistics.mean(s["erasure_distinct_copies"] for s in measured), 1
        ),
        "IG steps (examples)": dict(sorted(Counter(int(s["ig_steps"]) for s in measured if "ig_steps" in s).items())),
        "timing": document["timing"],
    }


if __name__ == "__main__":
    main()
