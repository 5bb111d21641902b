"""What each ``--preset`` costs per example, as a multiple of a bare forward pass of the same model and inputs.

    python benchmarks/bench_presets.py                      # demo model, the 24 sample reviews, 3 repeats
    python benchmarks/bench_presets.py --repeats 5 --json out.json

Both sides run in this process with the model already loaded: the bare side is the SDPA model a user would load,
forward only under ``inference_mode`` in batches of ``--batch-size``; the attnviz side is ``render_reports`` with
the preset's methods and formats into a temporary folder. Each figure is the median over the repeats; the ratio is
of medians measured in the same run. The first-look command (``attnviz render TEXT`` for one sentence, which takes
the quick preset) is also timed as a user runs it, in a fresh process: wall seconds, import and model load included.
The ratios are what ``Preset.cost`` in attnviz/config.py records.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_capture import batches_of, child_env, default_max_length, load_bare_classifier  # noqa: E402
from bench_pages import timed  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
FIRST_LOOK = "The pizza was surprisingly good."


def median_seconds(run, repeats: int) -> float:  # type: ignore[no-untyped-def]
    return statistics.median(timed(run) for _ in range(repeats))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=ROOT / "sample_inputs" / "reviews.jsonl")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--presets", nargs="*", default=None, help="Presets to time (default: every one).")
    parser.add_argument(
        "--full-examples", type=int, default=4, help="Examples the full preset runs on (attention flow is slow)."
    )
    args = parser.parse_args()

    import torch

    from attnviz.api import render_reports
    from attnviz.config import PRESETS, ModelOptions, RenderOptions
    from attnviz.model.loading import load_model

    texts = [json.loads(line)["text"] for line in args.data.read_text(encoding="utf-8").splitlines() if line.strip()]
    bare, tokenizer = load_bare_classifier("demo-sentiment")
    max_length = default_max_length(bare, tokenizer)

    def bare_forward(items: list[str]) -> None:
        with torch.inference_mode():
            for batch in batches_of(items, args.batch_size):
                bare(**tokenizer(batch, truncation=True, max_length=max_length, padding=True, return_tensors="pt"))

    bare_forward(texts)  # warm-up
    loaded = load_model(ModelOptions())
    results: dict = {"repeats": args.repeats, "presets": {}}
    for name in args.presets or PRESETS:
        preset = PRESETS[name]
        count = args.full_examples if name == "full" else len(texts)
        with tempfile.TemporaryDirectory() as tmp:
            data = Path(tmp) / "data.jsonl"
            data.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts[:count]), encoding="utf-8")
            options = RenderOptions(
                methods=preset.methods,
                formats=preset.formats,
                batch_size=args.batch_size,
                out_dir=Path(tmp) / "out",
                overwrite=True,
            )
            subset = texts[:count]
            bare_seconds = median_seconds(lambda subset=subset: bare_forward(subset), max(5, args.repeats))
            seconds = median_seconds(
                lambda options=options, data=data: render_reports([str(data)], options, loaded=loaded), args.repeats
            )
        results["presets"][name] = {
            "examples": count,
            "seconds": seconds,
            "bare_forward_seconds": bare_seconds,
            "ratio": seconds / bare_seconds,
        }
        print(
            f"{name}: {seconds:.2f} s for {count} examples, {seconds / bare_seconds:.1f}x the bare forward", flush=True
        )

    one_bare = median_seconds(lambda: bare_forward([FIRST_LOOK]), 5)
    # The same sentence without attnviz, also in a fresh process: import, load the SDPA model, one forward.
    bare_script = (
        f"import sys, torch; sys.path.insert(0, {str(Path(__file__).resolve().parent)!r})\n"
        "from bench_capture import load_bare_classifier\n"
        "model, tokenizer = load_bare_classifier('demo-sentiment')\n"
        "with torch.inference_mode():\n"
        f"    model(**tokenizer([{FIRST_LOOK!r}], return_tensors='pt'))\n"
    )
    bare_process = median_seconds(
        lambda: subprocess.run([sys.executable, "-c", bare_script], check=True, env=child_env()), args.repeats
    )
    with tempfile.TemporaryDirectory() as tmp:
        out = str(Path(tmp) / "out")
        command = [sys.executable, "-m", "attnviz", "render", FIRST_LOOK, "--out", out, "--quiet", "--overwrite"]
        first = median_seconds(lambda: subprocess.run(command, check=True, env=child_env()), args.repeats)
    results["first_look"] = {
        "wall_seconds": first,
        "bare_process_seconds": bare_process,
        "bare_forward_seconds": one_bare,
    }
    print(
        f"first look (attnviz render TEXT, fresh process): {first:.2f} s wall; a fresh process that loads the model "
        f"and runs one forward: {bare_process:.2f} s; the forward alone {one_bare * 1000:.1f} ms",
        flush=True,
    )
    if args.json:
        args.json.write_text(json.dumps(results, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
