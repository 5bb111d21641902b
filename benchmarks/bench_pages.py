"""What writing the reports costs: a whole in-process render against a bare forward+backward of the same model.

    python benchmarks/bench_pages.py --json pages.json

In one process, on the 200-sentence set of ``bench_capture.py`` and the demo model (MiniLM + linear head):

* (a) a bare batched SDPA forward+backward over the 200 sentences (batches of 8);
* (b) ``render_reports`` with the default methods minus the trust checks, ``--format html,json,markdown``;
* (c) the same with ``png`` added.

Medians of ``--repeats`` alternating runs, and ratios to (a). Then, for one 30-token example: the page and
its summary.json entry on disk, the CPU time to render the page, and the default PNG set's CPU time and size.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
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

THIRTY_TOKENS = (
    "I loved this movie from the first scene to the last; the performances were brilliant, "
    "the soundtrack was wonderful and the ending made me cry."
)
WITHOUT_TRUST = ("attention", "rollout", "relevancy", "norms", "heads", "plausibility")


def timed(run: Any) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    import torch

    from attnviz.api import render_reports
    from attnviz.config import ModelOptions, RenderOptions
    from attnviz.model.loading import load_model

    torch.manual_seed(0)
    texts = review_texts(args.examples, seed=0)
    work = Path(tempfile.mkdtemp(prefix="attnviz-pages-"))
    data = write_jsonl(work / "reviews.jsonl", texts)
    bare_model, tokenizer = load_bare_classifier("demo-sentiment")
    max_length = default_max_length(bare_model.encoder, tokenizer)
    loaded = load_model(ModelOptions())

    def bare() -> None:
        for batch in batches_of(texts, 8):
            bare_step(bare_model, tokenizer, batch, max_length)

    def render(formats: tuple[str, ...], tag: str, methods: tuple[str, ...] = WITHOUT_TRUST) -> Any:
        def run() -> None:
            out = work / f"{tag}-{time.perf_counter_ns()}"
            options = RenderOptions(out_dir=out, methods=methods, formats=formats, batch_size=8)
            render_reports([str(data)], options, loaded=loaded)

        return run

    passes = {
        "bare SDPA forward+backward": bare,
        "render html,json,markdown": render(("html", "json", "markdown"), "pages"),
        "render html,json,markdown,png": render(("html", "json", "markdown", "png"), "pngs"),
    }
    for run in passes.values():  # warm-up
        run()
    times: dict[str, list[float]] = {name: [] for name in passes}
    for _ in range(args.repeats):
        for name, run in passes.items():
            times[name].append(timed(run))
    medians = {name: statistics.median(values) for name, values in times.items()}
    base = medians["bare SDPA forward+backward"]
    print(f"demo-sentiment · {args.examples} sentences · batch 8 · methods {','.join(WITHOUT_TRUST)}")
    print("\n| pass | median s | ms / sentence | ratio to bare |\n| --- | ---: | ---: | ---: |")
    for name, median in medians.items():
        print(f"| {name} | {median:.3f} | {1000 * median / args.examples:.1f} | {median / base:.2f}× |")

    example = example_costs(loaded, work)
    print("\nOne 30-token example:")
    for key, value in example.items():
        print(f"- {key}: {value}")
    if args.json:
        args.json.write_text(json.dumps({"times": times, "medians": medians, "example": example}, indent=1))


def example_costs(loaded: Any, work: Path) -> dict[str, Any]:
    """Page and JSON bytes on disk, page render CPU time, default PNG set CPU time and bytes."""
    from attnviz.api import explain_text, render_reports
    from attnviz.config import RenderOptions
    from attnviz.output.html import example_page
    from attnviz.output.png import draw_example

    data = work / "thirty.jsonl"
    data.write_text(json.dumps({"id": "thirty", "text": THIRTY_TOKENS}) + "\n", encoding="utf-8")
    out = work / "thirty"
    options = RenderOptions(out_dir=out, methods=WITHOUT_TRUST, formats=("html", "json"))
    summary = render_reports([str(data)], options, loaded=loaded)
    (entry,) = summary["examples"]
    page_bytes = (out / entry["page"]).stat().st_size
    entry_bytes = len(json.dumps(entry, ensure_ascii=False, indent=None).encode("utf-8"))
    report = explain_text(THIRTY_TOKENS, options, loaded)
    run = summary["run"]
    page_cpu = _cpu_median(lambda: example_page(report, run), 20)
    figures = draw_example(report)
    png_cpu = _cpu_median(lambda: draw_example(report), 5)
    return {
        "tokens": len(entry["sequences"]["input"]["tokens"]),
        "page KB": round(page_bytes / 1000, 1),
        "summary.json entry KB": round(entry_bytes / 1000, 1),
        "page + entry KB": round((page_bytes + entry_bytes) / 1000, 1),
        "page render CPU ms (median of 20)": round(1000 * page_cpu, 2),
        "PNG set": f"{len(figures)} files, {round(sum(map(len, figures.values())) / 1000, 1)} KB",
        "PNG set CPU ms (median of 5)": round(1000 * png_cpu, 1),
    }


def _cpu_median(run: Any, repeats: int) -> float:
    values = []
    for _ in range(repeats):
        start = time.process_time()
        run()
        values.append(time.process_time() - start)
    return statistics.median(values)


if __name__ == "__main__":
    main()
