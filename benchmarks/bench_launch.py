"""Wall time of `render` in one process vs. N processes under torchrun (each renders its shard; rank 0 merges).

Each run is a fresh command, timed from start to exit (imports, model load, rendering, merging), on the sample
reviews with the demo model unless told otherwise:

    python benchmarks/bench_launch.py                          # 1 vs 2 processes, medians of 3
    python benchmarks/bench_launch.py --copies 4               # the 24 reviews 4 times over (96)
    python benchmarks/bench_launch.py --procs 1 2 4 8 --repeats 3   # a GPU machine: one rank per GPU

One process runs plain ``attnviz render`` with the threads torch picks (every core); under torchrun each rank gets
``OMP_NUM_THREADS`` = cores / N, so both use the whole CPU. Prints a Markdown table and every single run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
LAUNCH_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


def command(procs: int, render: list[str]) -> list[str]:
    if procs == 1:
        return [sys.executable, "-m", "attnviz", *render]
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={procs}"]
    return [*launcher, "-m", "attnviz", *render]


def one(procs: int, args: argparse.Namespace) -> float:
    """Seconds from start to exit of one render with ``procs`` processes."""
    env = {k: v for k, v in os.environ.items() if k not in LAUNCH_VARIABLES and not k.startswith("SLURM_")}
    env["HF_HUB_OFFLINE"] = "1"
    if procs > 1:
        env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // procs))
    model = [] if args.model is None else ["--model", args.model]
    with tempfile.TemporaryDirectory() as tmp:
        data = args.data
        if args.copies > 1:  # the same records again under new ids: more work, same kind
            data = Path(tmp) / f"{args.copies}x-{args.data.name}"
            records = [json.loads(line) for line in args.data.read_text(encoding="utf-8").splitlines() if line]
            with data.open("w", encoding="utf-8") as handle:
                for copy in range(args.copies):
                    for number, record in enumerate(records):
                        handle.write(json.dumps({**record, "id": f"c{copy}-{record.get('id', number)}"}) + "\n")
        render = ["render", str(data), *model, "--out", f"{tmp}/out", "--quiet"]
        render += ["--method", args.methods, "--format", args.formats, "--batch-size", str(args.batch_size)]
        start = time.perf_counter()
        done = subprocess.run(command(procs, render), env=env, capture_output=True, text=True)
        seconds = time.perf_counter() - start
        if done.returncode != 0:
            raise SystemExit(f"{procs} processes failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--procs", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--data", type=Path, default=REPO / "sample_inputs" / "reviews.jsonl")
    parser.add_argument("--model", default=None, help="Default: the demo model.")
    parser.add_argument("--methods", default="attention,rollout,relevancy,norms,heads")
    parser.add_argument("--formats", default="html,json,markdown")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--copies", type=int, default=1, help="Render the JSONL data this many times over.")
    args = parser.parse_args()
    runs: dict[int, list[float]] = {procs: [] for procs in args.procs}
    loads = [os.getloadavg()[0]]  # other work on the machine skews every number: reported beside them
    for _ in range(args.repeats):  # interleaved, so that drift on a noisy machine hits every setting alike
        for procs in args.procs:
            runs[procs].append(one(procs, args))
            loads.append(os.getloadavg()[0])
    base = statistics.median(runs[args.procs[0]])
    print(f"| processes | median wall s | speed-up vs {args.procs[0]} | runs (s) |")
    print("| ---: | ---: | ---: | --- |")
    for procs, seconds in runs.items():
        median = statistics.median(seconds)
        print(f"| {procs} | {median:.1f} | {base / median:.2f}× | {', '.join(f'{s:.1f}' for s in seconds)} |")
    print(f"\n{os.cpu_count()} cores; 1-minute load average after each run: {', '.join(f'{x:.2f}' for x in loads)}")


if __name__ == "__main__":
    main()
