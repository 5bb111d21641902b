"""Speed and memory of `render` as the number of examples grows.

Each measurement runs in a fresh process (peak RSS is per process) on generated review-like texts:

    python benchmarks/bench_render.py                 # tiny BERT, N = 50, 200, 800, 3 repeats
    python benchmarks/bench_render.py --model demo-sentiment --sizes 24 96 --repeats 3

Prints a Markdown table: median seconds per example and peak resident memory for each N.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

WORDS = [
    "the",
    "food",
    "was",
    "great",
    "service",
    "slow",
    "movie",
    "plot",
    "acting",
    "brilliant",
    "boring",
    "battery",
    "screen",
    "cheap",
    "price",
    "loved",
    "hated",
    "never",
    "again",
    "would",
    "recommend",
    "friendly",
    "staff",
    "cold",
    "rooms",
    "warm",
]


def one(size: int, model: str, methods: str, formats: str) -> dict[str, float]:
    from attnviz.api import render_reports
    from attnviz.config import ModelOptions, RenderOptions
    from attnviz.model.loading import load_model

    rng = random.Random(0)
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data.jsonl"
        with data.open("w", encoding="utf-8") as handle:
            for i in range(size):
                text = " ".join(rng.choice(WORDS) for _ in range(rng.randint(8, 24)))
                handle.write(json.dumps({"id": f"x{i}", "text": text}) + "\n")
        loaded = load_model(ModelOptions(name=model))
        options = RenderOptions(
            out_dir=Path(tmp) / "out", methods=tuple(methods.split(",")), formats=tuple(formats.split(","))
        )
        start = time.perf_counter()
        render_reports([str(data)], options, loaded=loaded, keep_examples=False)
        seconds = time.perf_counter() - start
    return {
        "size": size,
        "seconds_per_example": seconds / size,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def tiny_model() -> str:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    from tiny_models import build_tiny_model

    folder = Path(tempfile.gettempdir()) / "attnviz-bench-bert"
    if not (folder / "config.json").exists():
        build_tiny_model("bert-classifier", folder)
    return str(folder)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="hub id or folder (default: a tiny BERT built offline)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[50, 200, 800])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--methods", default="attention,rollout,relevancy,heads,faithfulness")
    parser.add_argument("--formats", default="json,html")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    model = args.model or tiny_model()
    if args.one is not None:
        print(json.dumps(one(args.one, model, args.methods, args.formats)))
        return
    print(f"model: {model} · methods: {args.methods} · formats: {args.formats} · repeats: {args.repeats}\n")
    print("| examples | median s / example | median peak RSS (MiB) | runs |")
    print("| ---: | ---: | ---: | --- |")
    for size in args.sizes:
        runs = []
        for _ in range(args.repeats):
            done = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--one",
                    str(size),
                    "--model",
                    model,
                    "--methods",
                    args.methods,
                    "--formats",
                    args.formats,
                ],
                check=True,
                capture_output=True,
                text=True,
            )
            runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
        per = statistics.median(r["seconds_per_example"] for r in runs)
        rss = statistics.median(r["peak_rss_mb"] for r in runs)
        detail = ", ".join(f"{r['seconds_per_example']:.3f}s/{r['peak_rss_mb']:.0f}MiB" for r in runs)
        print(f"| {size} | {per:.3f} | {rss:.0f} | {detail} |", flush=True)


if __name__ == "__main__":
    main()
