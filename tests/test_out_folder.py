"""The --out folder: a reused one is refused unless --overwrite, one run at a time holds it, options that cannot
work together are refused before the model loads, and any failure leaves a summary that says so and no spool."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from typer.testing import CliRunner

from attnviz.cli import app
from attnviz.errors import OutputError
from attnviz.output.folder import LOCK_NAME, claim_folder

runner = CliRunner()
QUICK = ["--method", "attention", "--format", "html,json"]


@pytest.fixture(scope="module")
def model(tiny_path: Callable[..., Path]) -> str:
    return str(tiny_path("bert-classifier"))


def render(*args: str):  # type: ignore[no-untyped-def]
    return runner.invoke(app, ["render", *args])


def leftovers(out: Path) -> list[str]:
    """Spool, temporary and lock files: none may outlive a run."""
    return sorted(p.name for p in out.rglob("*") if p.name.startswith(".examples") or p.suffix in (".tmp", ".lock"))


def test_a_folder_holding_a_run_is_refused_and_overwrite_removes_only_attnviz_files(tmp_path: Path, model: str) -> None:
    out = tmp_path / "out"
    old = render("old one", "old two", "--model", model, *QUICK, "--format", "png", "--out", str(out))
    assert old.exit_code == 0, old.output
    old_files = sorted(out.rglob("*"))
    (out / "notes.txt").write_text("mine", encoding="utf-8")
    (out / "examples" / "mine.txt").write_text("mine too", encoding="utf-8")

    refused = render("new", "--model", model, *QUICK, "--out", str(out))
    assert refused.exit_code == 2
    assert f"output folder '{out}' holds the report of an earlier run; pass --overwrite" in refused.stderr
    assert sorted(p for p in out.rglob("*") if "mine" not in p.name and p.name != "notes.txt") == old_files

    replaced = render("new", "--model", model, *QUICK, "--overwrite", "--out", str(out))
    assert replaced.exit_code == 0, replaced.output
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert [e["id"] for e in summary["examples"]] == ["text-1"]
    # The old run's pages and PNG folders are gone (text-2's and text-1's), the user's files stay.
    assert sorted(p.name for p in (out / "examples").iterdir()) == ["mine.txt", "text-1.html"]
    assert not (out / "dataset").exists() and (out / "notes.txt").read_text(encoding="utf-8") == "mine"
    assert leftovers(out) == []
    umask = os.umask(0)
    os.umask(umask)
    assert (out / "index.html").stat().st_mode & 0o777 == 0o666 & ~umask  # as readable as any file the user makes


def test_a_folder_of_other_files_is_used_as_it_is(tmp_path: Path, model: str) -> None:
    (tmp_path / "data.txt").write_text("a line\n", encoding="utf-8")
    result = render(str(tmp_path / "data.txt"), "--model", model, *QUICK, "--out", str(tmp_path))
    assert result.exit_code == 0, result.output
    assert (tmp_path / "index.html").is_file() and (tmp_path / "data.txt").is_file()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--format", "json", "--single-file", "r.html"], "--single-file bundles the HTML pages: add html to --format"),
        (["--format", "html", "--png-layers", "all"], "--png-layers picks the head grids drawn as PNG"),
        (["--temperature", "0.7"], "temperature and top_p apply only when sampling"),
        (["--ig-steps", "0"], "ig_steps must be at least 1, got 0"),
        (["--random-orders", "0"], "random_orders must be at least 1, got 0"),
        (["--out", "held"], "holds the report of an earlier run"),
    ],
)
def test_options_that_cannot_work_are_refused_before_the_model_loads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, options: list[str], message: str
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "held").mkdir()
    (tmp_path / "held" / "summary.json").write_text("{}", encoding="utf-8")
    missing = ["--model", str(tmp_path / "no-such-model")]
    assert render("hi", *missing, "--out", "fresh").exit_code == 4  # the model would fail to load: exit 4
    result = render("hi", *missing, "--out", "fresh", *options)
    assert result.exit_code == 2, result.output
    assert message in result.output


@contextmanager
def held_by_another_process(out: Path) -> Iterator[int]:
    """A second process that holds ``out``'s lock until it is killed; yields its pid."""
    code = (
        "import sys, time; from pathlib import Path; from attnviz.output.folder import claim_folder\n"
        "with claim_folder(Path(sys.argv[1])):\n    print('locked', flush=True); time.sleep(60)\n"
    )
    holder = subprocess.Popen([sys.executable, "-c", code, str(out)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "locked\n"
        yield holder.pid
    finally:
        holder.send_signal(signal.SIGKILL)  # killed, not ended: the system must release its lock
        holder.wait()


def test_a_second_run_into_a_locked_folder_is_refused_and_a_killed_run_blocks_nothing(
    tmp_path: Path, model: str
) -> None:
    out = tmp_path / "out"
    with held_by_another_process(out) as pid:
        (out / "summary.json").write_text("{}", encoding="utf-8")
        for extra in ([], ["--overwrite"]):
            result = render("hi", "--model", model, *QUICK, *extra, "--out", str(out))
            assert result.exit_code == 5, result.output
            assert f"another attnviz run is writing to '{out}' (pid {pid})" in result.stderr
        assert (out / "summary.json").read_text(encoding="utf-8") == "{}"  # --overwrite never clears a locked folder
    assert (out / LOCK_NAME).is_file()  # left by the killed holder, and harmless
    after = render("hi", "--model", model, *QUICK, "--overwrite", "--out", str(out))
    assert after.exit_code == 0, after.output
    assert leftovers(out) == []


def test_without_flock_the_lock_is_the_lock_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("attnviz.output.folder.fcntl", None)
    busy = pytest.raises(OutputError, match=f"delete '{tmp_path / LOCK_NAME}'")
    with claim_folder(tmp_path), busy, claim_folder(tmp_path):
        pass
    with claim_folder(tmp_path):  # released: the file is gone
        pass


def test_an_error_midway_marks_the_summary_failed_and_resume_finishes_it(
    tmp_path: Path, model: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from attnviz import api

    real, calls = api.capture_batch, []

    def breaks_on_the_second_batch(*args: object, **kwargs: object) -> object:
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("the device fell over")
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(api, "capture_batch", breaks_on_the_second_batch)
    out = tmp_path / "out"
    result = render("one", "two", "three", "--model", model, *QUICK, "--batch-size", "1", "--out", str(out))
    assert result.exit_code == 1 and "unexpected RuntimeError: the device fell over" in result.stderr
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert summary["status"] == "failed" and summary["error"] == "unexpected RuntimeError: the device fell over"
    assert [e["id"] for e in summary["examples"]] == ["text-1"] and (out / summary["examples"][0]["page"]).is_file()
    # The journal stays for --resume (and only it: no lock, no temporary file).
    assert [name.startswith(".examples-") for name in leftovers(out)] == [True]
    monkeypatch.setattr(api, "capture_batch", real)
    resumed = render(
        "one", "two", "three", "--model", model, *QUICK, "--batch-size", "1", "--out", str(out), "--resume"
    )
    assert resumed.exit_code == 0, resumed.output
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert summary["status"] == "complete" and [e["id"] for e in summary["examples"]] == ["text-1", "text-2", "text-3"]
    assert leftovers(out) == []


def test_ctrl_c_exits_130_marking_the_summary_interrupted_and_keeping_the_pages(
    tmp_path: Path, model: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    @contextmanager
    def interrupting_bar(*args: object) -> Iterator[Callable[[int], None]]:
        def on_progress(done: int) -> None:
            if done == 2:
                raise KeyboardInterrupt

        yield on_progress

    monkeypatch.setattr("attnviz.output.terminal.progress_bar", interrupting_bar)
    out = tmp_path / "out"
    result = render("one", "two", "three", "--model", model, *QUICK, "--batch-size", "1", "--out", str(out))
    assert result.exit_code == 130 and "interrupted; what was written so far is kept" in result.stderr
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert summary["status"] == "failed" and summary["error"] == "interrupted"
    assert [e["id"] for e in summary["examples"]] == ["text-1", "text-2"]
    assert all((out / e["page"]).is_file() for e in summary["examples"]) and (out / "index.html").is_file()
    assert [name.startswith(".examples-") for name in leftovers(out)] == [True]  # the journal, for --resume


@pytest.mark.parametrize("link", ["examples", "dataset", "examples/text-1"])
@pytest.mark.parametrize("mode", [[], ["--overwrite"], ["--resume"]])
def test_a_symlinked_folder_inside_out_is_refused_and_nothing_outside_is_touched(
    tmp_path: Path, model: str, link: str, mode: list[str]
) -> None:
    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "precious.html").write_text("keep", encoding="utf-8")
    (elsewhere / "precious.png").write_bytes(b"keep")
    (out / link).parent.mkdir(parents=True)
    (out / link).symlink_to(elsewhere, target_is_directory=True)
    result = render("new", "--model", model, *QUICK, "--out", str(out), *mode)
    assert result.exit_code == 5, result.output
    assert f"'{out / link}' is a symbolic link, and attnviz writes only inside --out" in result.stderr
    assert sorted(p.name for p in elsewhere.iterdir()) == ["precious.html", "precious.png"]


def test_a_model_that_fails_to_load_leaves_the_folder_as_it_was(tmp_path: Path, model: str) -> None:
    out = tmp_path / "out"
    failed = render("hi", "--model", str(tmp_path / "no-such-model"), *QUICK, "--out", str(out))
    assert failed.exit_code == 4, failed.output
    assert [p.name for p in out.rglob("*")] == ["examples"]  # no journal or spool of a run that never started
    retried = render("hi", "--model", model, *QUICK, "--out", str(out))
    assert retried.exit_code == 0, retried.output
    assert leftovers(out) == []


@pytest.mark.parametrize("runs_before", [False, True])
@pytest.mark.parametrize(
    ("link", "message"),
    [("symlink", "is a symbolic link"), ("hardlink", "is not a lock file of attnviz's (it is linked to another")],
)
def test_a_lock_file_that_is_a_link_is_refused_and_its_target_untouched(
    tmp_path: Path, model: str, runs_before: bool, link: str, message: str
) -> None:
    out, victim = tmp_path / "out", tmp_path / "victim.txt"
    victim.write_text("important data", encoding="utf-8")
    if runs_before:  # refused for holding a report, the run must still not write through the link first
        assert render("old", "--model", model, *QUICK, "--out", str(out)).exit_code == 0
    out.mkdir(exist_ok=True)
    if link == "symlink":
        (out / LOCK_NAME).symlink_to(victim)
    else:
        os.link(victim, out / LOCK_NAME)
    result = render("new", "--model", model, *QUICK, "--out", str(out))
    assert result.exit_code == 5, result.output
    assert f"'{out / LOCK_NAME}' {message}" in result.stderr and "writes only inside --out" in result.stderr
    assert victim.read_text(encoding="utf-8") == "important data"


def compare(*args: str):  # type: ignore[no-untyped-def]
    return runner.invoke(app, ["compare", "one", *args])


def test_compare_claims_its_folder_like_render(tmp_path: Path, model: str) -> None:
    out = tmp_path / "out"
    assert render("old", "--model", model, *QUICK, "--out", str(out)).exit_code == 0
    before = sorted(out.rglob("*"))
    refused = compare("--model", model, "--against", model, *QUICK, "--out", str(out))
    assert refused.exit_code == 2 and "holds the report of an earlier run; pass --overwrite" in refused.stderr
    assert "--resume" not in refused.stderr  # compare has none
    assert sorted(out.rglob("*")) == before  # nothing of either side written
    replaced = compare("--model", model, "--against", model, *QUICK, "--out", str(out), "--overwrite")
    assert replaced.exit_code == 0, replaced.output
    assert json.loads((out / "summary.json").read_text(encoding="utf-8"))["kind"] == "compare"
    assert not (out / "index.html").exists() and not (out / "examples").exists()  # the render's files are gone
    again = compare("--model", model, "--against", model, *QUICK, "--out", str(out))
    assert again.exit_code == 2 and leftovers(out) == []


@pytest.mark.parametrize("side", ["a", "b"])
def test_compare_refuses_a_side_folder_that_is_a_link(tmp_path: Path, model: str, side: str) -> None:
    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    (elsewhere / "examples").mkdir(parents=True)
    (elsewhere / "examples" / "x.html").write_text("keep", encoding="utf-8")
    out.mkdir()
    (out / side).symlink_to(elsewhere, target_is_directory=True)
    result = compare("--model", model, "--against", model, *QUICK, "--out", str(out), "--overwrite")
    assert result.exit_code == 5 and f"'{out / side}' is a symbolic link" in result.stderr
    assert [p.name for p in elsewhere.rglob("*")] == ["examples", "x.html"]


def test_merge_claims_its_folder_and_never_merges_into_a_shard(tmp_path: Path, model: str) -> None:
    shards = [tmp_path / f"s{i}" for i in range(2)]
    for i, shard in enumerate(shards):
        result = render("one", "two", "--model", model, *QUICK, "--batch-size", "1", "--shard", f"{i}/2",
                        "--out", str(shard))  # fmt: skip
        assert result.exit_code == 0, result.output
    into_shard = runner.invoke(app, ["merge", *map(str, shards), "--out", str(shards[0]), "--overwrite"])
    assert into_shard.exit_code == 2 and f"--out '{shards[0]}' is the shard" in into_shard.stderr
    assert sorted(p.name for p in (shards[0] / "examples").iterdir()) == ["text-1.html"]

    out = tmp_path / "merged"
    assert render("old", "--model", model, *QUICK, "--out", str(out), "--format", "html,json,png").exit_code == 0
    refused = runner.invoke(app, ["merge", *map(str, shards), "--out", str(out)])
    assert refused.exit_code == 2 and "holds the report of an earlier run" in refused.stderr
    assert "--resume" not in refused.stderr  # merge has none
    merged = runner.invoke(app, ["merge", *map(str, shards), "--out", str(out), "--overwrite"])
    assert merged.exit_code == 0, merged.output
    # The old run's page and maps are gone: the report holds the merged examples only.
    assert sorted(p.name for p in (out / "examples").iterdir()) == ["text-1.html", "text-2.html"]
    assert not (out / "dataset").exists() and leftovers(out) == []

    linked = tmp_path / "linked"
    linked.mkdir()
    (linked / "examples").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    (tmp_path / "elsewhere").mkdir()
    result = runner.invoke(app, ["merge", *map(str, shards), "--out", str(linked)])
    assert result.exit_code == 5 and "is a symbolic link" in result.stderr
    assert list((tmp_path / "elsewhere").iterdir()) == []


def test_a_clearing_that_fails_names_the_file(tmp_path: Path, model: str, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "out"
    assert render("old", "--model", model, *QUICK, "--out", str(out)).exit_code == 0
    page = out / "examples" / "text-1.html"
    real = Path.unlink

    def refuse_the_page(self: Path, missing_ok: bool = False) -> None:
        if self == page:
            raise PermissionError(1, "Operation not permitted", str(self))
        real(self, missing_ok=missing_ok)

    monkeypatch.setattr(Path, "unlink", refuse_the_page)
    result = render("new", "--model", model, *QUICK, "--out", str(out), "--overwrite")
    assert result.exit_code == 5
    assert f"cannot prepare output folder '{out}': Operation not permitted ('{page}')" in result.stderr


@pytest.mark.parametrize("command", ["render", "compare"])
def test_a_mistyped_file_name_writes_nothing_so_the_corrected_run_goes_ahead(
    tmp_path: Path, model: str, command: str
) -> None:
    good = tmp_path / "reviews.txt"
    good.write_text("a fine film\n", encoding="utf-8")
    out = tmp_path / "out"
    sides = ["--against", model] if command == "compare" else []
    typo = runner.invoke(
        app, [command, str(tmp_path / "reveiws.txt"), "--model", model, *sides, *QUICK, "--out", str(out)]
    )
    assert typo.exit_code == 3 and "reveiws.txt: file not found" in typo.stderr
    assert not out.exists() or list(out.rglob("*")) == []
    fixed = runner.invoke(app, [command, str(good), "--model", model, *sides, *QUICK, "--out", str(out)])
    assert fixed.exit_code == 0, fixed.output


def test_compare_over_a_stale_side_report_does_not_suggest_resume(tmp_path: Path, model: str) -> None:
    out = tmp_path / "out"
    assert render("old", "--model", model, *QUICK, "--out", str(out / "a")).exit_code == 0  # a compare cut short
    refused = compare("--model", model, "--against", model, *QUICK, "--out", str(out))
    assert refused.exit_code == 2 and f"'{out / 'a'}' holds the report of an earlier run" in refused.stderr
    assert "--resume" not in refused.stderr


def test_an_unknown_target_label_writes_no_report_so_the_corrected_run_goes_ahead(
    tmp_path: Path, model: str, tiny_path: Callable[..., Path]
) -> None:
    out = tmp_path / "out"
    wrong = render("a fine film", "--model", model, *QUICK, "--target-label", "nope", "--out", str(out))
    assert wrong.exit_code == 2 and "unknown --target-label 'nope'; valid: " in wrong.stderr
    assert [p.name for p in out.rglob("*")] == ["examples"]
    right = render("a fine film", "--model", model, *QUICK, "--target-label", "1", "--out", str(out))
    assert right.exit_code == 0, right.output
    qa = render("a fine film", "--model", str(tiny_path("bert-qa")), *QUICK, "--target-label", "1", "--out",
                str(tmp_path / "qa"))  # fmt: skip
    assert qa.exit_code == 2 and "the qa task has no classes" in qa.stderr


@pytest.mark.parametrize("target", ["index.html", "examples/text-1.html", "summary.json"])
def test_a_bundle_over_the_reports_own_files_is_refused(tmp_path: Path, model: str, target: str) -> None:
    out = tmp_path / "out"
    result = render("one", "--model", model, *QUICK, "--out", str(out), "--single-file", str(out / target))
    assert result.exit_code == 2 and "is one of the report's own files" in result.stderr
    assert not out.exists()
    beside = render("one", "--model", model, *QUICK, "--out", str(out), "--single-file", str(out / "bundle.html"))
    assert beside.exit_code == 0, beside.output
