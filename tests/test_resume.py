"""``render --resume``: a run killed (SIGKILL, no clean-up) at any write goes on after its last complete example,
repeats none and ends with the files of an uninterrupted run; a resume with other options or inputs is refused."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from attnviz.cli import app
from attnviz.output.folder import STATE_NAME

runner = CliRunner()
TEXTS = ["the film was good", "a dull and tired plot", "great acting", "i would not watch it again", "fine"]
# Every kind of file: pages, summary.json and .md, PNG figures and dataset maps; batches of 2 so that a kill
# can fall inside a batch.
OPTIONS = ["--method", "attention,rollout", "--format", "html,json,markdown,png", "--batch-size", "2"]

# Runs the CLI in a fresh process that dies with SIGKILL at the N-th file it moves into place (every file of a
# report is written to a temporary name, then renamed), or in the middle of the N-th journal line.
DRIVER = """
import os, signal, sys
from pathlib import Path
from attnviz.output import journal
mode, at = sys.argv[1], int(sys.argv[2])
seen = [0]
def die():
    os.kill(os.getpid(), signal.SIGKILL)
def count():
    seen[0] += 1
    return seen[0] == at
if mode == "rename":
    real = Path.replace
    def replace(self, target):
        if count():
            die()
        return real(self, target)
    Path.replace = replace
else:
    real_record = journal.Journal.record
    def record(self, entry):
        if count():
            self._handle.write('{"id": "half a li')
            self._handle.flush()
            die()
        real_record(self, entry)
    journal.Journal.record = record
from attnviz.cli import main
sys.argv = ["attnviz", *sys.argv[3:]]
main()
"""


@pytest.fixture(scope="module")
def model(tiny_path: Callable[..., Path]) -> str:
    return str(tiny_path("bert-classifier"))


def render(*args: str):  # type: ignore[no-untyped-def]
    return runner.invoke(app, ["render", *args])


def report_files(out: Path) -> dict[str, bytes]:
    """Every file of a report with summary.json's timing taken out (the one field that differs between runs)."""
    files = {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}
    summary = json.loads(files["summary.json"])
    assert set(summary["timing"]) == {"total_seconds", "model_seconds", "faithfulness_seconds"}
    summary["timing"] = None
    files["summary.json"] = json.dumps(summary).encode()
    return files


@pytest.fixture(scope="module")
def uninterrupted(model: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    out = tmp_path_factory.mktemp("whole") / "out"
    result = render(*TEXTS, "--model", model, *OPTIONS, "--out", str(out))
    assert result.exit_code == 0, result.output
    return report_files(out)


def killed_run(model: str, out: Path, mode: str, at: int) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-c", DRIVER, mode, str(at), "render", *TEXTS, "--model", model, *OPTIONS]
    return subprocess.run([*command, "--out", str(out)], capture_output=True, text=True, timeout=300)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("mode", "at"),
    [
        ("rename", 1),  # the journal's state file: nothing of the run exists yet
        ("rename", 12),  # inside the second batch
        ("rename", 30),  # among the last examples' files or the run files
        ("journal", 4),  # half a line, in the middle of a batch
    ],
)
def test_resume_after_kill_9_ends_with_the_uninterrupted_files(
    model: str, tmp_path: Path, uninterrupted: dict[str, bytes], mode: str, at: int
) -> None:
    out = tmp_path / "out"
    killed = killed_run(model, out, mode, at)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    again = render(*TEXTS, "--model", model, *OPTIONS, "--out", str(out))
    assert again.exit_code == 2 and "--resume" in again.stderr  # a cut run is never mistaken for a free folder
    resumed = render(*TEXTS, "--model", model, *OPTIONS, "--out", str(out), "--resume")
    assert resumed.exit_code == 0, resumed.output
    assert report_files(out) == uninterrupted | {STATE_NAME: report_files(out)[STATE_NAME]}
    assert json.loads((out / STATE_NAME).read_text(encoding="utf-8"))["spool"] is None


def fail_at_capture(monkeypatch: pytest.MonkeyPatch, call: int) -> None:
    """The model breaks on its ``call``-th batch: the run fails there, keeping its journal."""
    from attnviz import api

    real, calls = api.capture_batch, []

    def breaking(*args: object, **kwargs: object) -> object:
        calls.append(1)
        if len(calls) == call:
            raise RuntimeError("the device fell over")
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(api, "capture_batch", breaking)


def interrupted(model: str, out: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``out`` after a run of TEXTS that failed on its second batch, its journal kept."""
    with monkeypatch.context() as patch:
        fail_at_capture(patch, 2)
        assert render(*TEXTS, "--model", model, *OPTIONS, "--out", str(out)).exit_code == 1
    return out


def test_resume_repeats_no_finished_example(
    model: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, uninterrupted: dict[str, bytes]
) -> None:
    from attnviz import api

    out = interrupted(model, tmp_path / "out", monkeypatch)
    analysed: list[str] = []
    real = api.analyze_batch

    def counting(captures, *args, **kwargs):  # type: ignore[no-untyped-def]
        analysed.extend(capture.example.id for capture in captures)
        return real(captures, *args, **kwargs)

    monkeypatch.setattr(api, "analyze_batch", counting)
    resumed = render(*TEXTS, "--model", model, *OPTIONS, "--out", str(out), "--resume")
    assert resumed.exit_code == 0, resumed.output
    assert analysed == ["text-3", "text-4", "text-5"]
    assert report_files(out) == uninterrupted | {STATE_NAME: report_files(out)[STATE_NAME]}
    # A finished run resumes to the same files, analysing nothing.
    analysed.clear()
    before = report_files(out)
    assert render(*TEXTS, "--model", model, *OPTIONS, "--out", str(out), "--resume").exit_code == 0
    assert analysed == [] and report_files(out) == before


def test_a_real_sigkill_midway_then_resume(model: str, tmp_path: Path, uninterrupted: dict[str, bytes]) -> None:
    out = tmp_path / "out"
    command = [sys.executable, "-m", "attnviz", "render", *TEXTS, "--model", model, *OPTIONS, "--out", str(out)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not any(out.glob("examples/*.html")) and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.01)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    resumed = render(*TEXTS, "--model", model, *OPTIONS, "--out", str(out), "--resume")
    assert resumed.exit_code == 0, resumed.output
    assert report_files(out) == uninterrupted | {STATE_NAME: report_files(out)[STATE_NAME]}


def test_resume_with_other_options_or_inputs_is_refused_naming_the_difference(
    model: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = interrupted(model, tmp_path / "out", monkeypatch)
    other = render(
        *TEXTS, "--model", model, *OPTIONS, "--batch-size", "3", "--seed", "7", "--out", str(out), "--resume"
    )
    assert other.exit_code == 2
    assert "batch_size: 2 → 3" in other.stderr and "seed: 0 → 7" in other.stderr
    fewer = render(*TEXTS[:4], "--model", model, *OPTIONS, "--out", str(out), "--resume")
    assert fewer.exit_code == 2 and "inputs:" in fewer.stderr
    # Same options, but the texts behind a file changed: the finished examples are no longer the input's.
    data = tmp_path / "data.txt"
    data.write_text("one\ntwo\nthree\n", encoding="utf-8")
    out2 = tmp_path / "out2"
    first = render(str(data), "--model", model, *OPTIONS, "--out", str(out2))
    assert first.exit_code == 0
    data.write_text("\nzero\none\ntwo\nthree\n", encoding="utf-8")
    changed = render(str(data), "--model", model, *OPTIONS, "--out", str(out2), "--resume")
    assert changed.exit_code == 2 and "inputs changed" in changed.stderr and "'data:1'" in changed.stderr
    both = render("x", "--model", model, *OPTIONS, "--out", str(out2), "--resume", "--overwrite")
    assert both.exit_code == 2 and "pass one" in both.stderr


def test_resume_in_an_empty_folder_starts_the_run_and_a_merged_folder_is_refused(model: str, tmp_path: Path) -> None:
    out = tmp_path / "fresh"
    started = render(
        "one", "two", "--model", model, "--method", "attention", "--format", "json", "--out", str(out), "--resume"
    )
    assert started.exit_code == 0, started.output
    merged = tmp_path / "merged"
    assert runner.invoke(app, ["merge", str(out), "--out", str(merged)]).exit_code == 0
    refused = render(
        "one", "--model", model, "--method", "attention", "--format", "json", "--out", str(merged), "--resume"
    )
    assert refused.exit_code == 2 and "no run journal" in refused.stderr


def tamper_spool(out: Path, line: str) -> None:
    spool = next(out.glob(".examples-*.jsonl"))
    spool.write_text(spool.read_text(encoding="utf-8") + line + "\n", encoding="utf-8")


def tamper_state(out: Path, **fields: object) -> None:
    state = json.loads((out / STATE_NAME).read_text(encoding="utf-8"))
    (out / STATE_NAME).write_text(json.dumps(state | fields), encoding="utf-8")


def linked_spool(out: Path) -> None:
    """A spool name of the right shape that is a link to the file outside (``.victim`` points there)."""
    name = ".examples-" + "a" * 12 + ".jsonl"
    (out / name).symlink_to((out / ".victim").resolve())
    tamper_state(out, spool=name)


@pytest.mark.parametrize(
    ("tamper", "message"),
    [
        (lambda out: tamper_spool(out, "garbage"), "line 3 of its spool '.examples-"),
        (lambda out: tamper_spool(out, "[1, 2]"), "does not match the schema of an example entry at $"),
        (lambda out: tamper_state(out, key=[1]), f"'{STATE_NAME}' is not a run journal"),
        (lambda out: tamper_state(out, spool="../elsewhere.jsonl"), "names no spool of this folder"),
        (lambda out: tamper_state(out, spool=".victim"), "names no spool of this folder"),
        (lambda out: tamper_spool(out, '{"id": NaN}'), "holds nan, which is not a JSON number at $.id"),
        (lambda out: tamper_spool(out, '{"id": "a", "id": "b"}'), 'gives the key "id" twice in one object'),
        (linked_spool, "names no spool of this folder"),
    ],
)
def test_a_tampered_journal_is_refused_and_nothing_outside_is_written(
    model: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tamper: Callable[[Path], None], message: str
) -> None:
    out = interrupted(model, tmp_path / "out", monkeypatch)
    victim = tmp_path / "victim.txt"
    victim.write_text("keep1\nkeep2 without a newline", encoding="utf-8")
    (out / ".victim").symlink_to(victim)
    tamper(out)
    before = report_files(out)
    refused = render(*TEXTS, "--model", model, *OPTIONS, "--out", str(out), "--resume")
    assert refused.exit_code == 2, refused.output
    assert message in refused.stderr and "pass --overwrite" in refused.stderr
    assert victim.read_text(encoding="utf-8") == "keep1\nkeep2 without a newline"
    assert report_files(out) == before  # nothing written, summary.json included


def test_a_journal_entry_naming_another_page_is_refused(
    model: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = interrupted(model, tmp_path / "out", monkeypatch)
    spool = next(out.glob(".examples-*.jsonl"))
    first, *rest = spool.read_text(encoding="utf-8").splitlines()
    entry = json.loads(first) | {"page": "examples/text-2.html"}
    spool.write_text("\n".join([json.dumps(entry), *rest]) + "\n", encoding="utf-8")
    refused = render(*TEXTS, "--model", model, *OPTIONS, "--out", str(out), "--resume")
    assert refused.exit_code == 2 and 'names the page "examples/text-2.html", not the one render writes' in (
        refused.stderr
    )
