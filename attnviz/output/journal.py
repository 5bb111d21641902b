"""The run journal: what lets ``render --resume`` continue an interrupted run where it stopped.

A run keeps two hidden files in its report folder. ``.attnviz-run.json`` holds the run's options (its resume key)
and whether it completed; the spool (``.examples-<random>.jsonl``) holds one summary entry per finished example, in
input order, each appended only after that example's files are written. A run killed at any point therefore leaves
a journal whose entries are a prefix of the run's examples (a line cut short by the kill is dropped), and a resumed
run replays them instead of computing them again. The spool goes when the run completes; the state file stays, so
that ``--resume`` on a finished report is a cheap no-op that rewrites the same files.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from attnviz.analysis.pipeline import page_name
from attnviz.errors import OutputError, UsageError
from attnviz.output.folder import SPOOL_NAME, STATE_NAME, new_spool, replacing
from attnviz.output.schema import entry_problem, read_summary, untrusted_json
from attnviz.output.summary import page_path


class Journal:
    """One run's journal in an open report folder (see the module docstring)."""

    def __init__(self, out: Path, key: Mapping[str, Any], spool: Path, done: list[dict[str, Any]]) -> None:
        self.out, self.key, self.spool = out, dict(key), spool
        #: summary entries of the examples an earlier, interrupted run finished, in input order.
        self.done = done
        self._next = 0  # position in ``done`` of the next example the inputs must give
        self._handle = spool.open("a", encoding="utf-8")

    def is_done(self, example_id: str) -> bool:
        """Whether the earlier run finished this example; asked for every example read, in order.

        Raises:
            UsageError: the inputs no longer give the examples the earlier run finished, in the same order (exit 2).
        """
        if self._next >= len(self.done):
            return False
        expected = self.done[self._next]["id"]
        if example_id != expected:
            raise UsageError(
                f"cannot resume in '{self.out}': the inputs changed since the interrupted run (example "
                f"{self._next + 1} was '{expected}', now '{example_id}'); pass --overwrite to render them anew"
            )
        self._next += 1
        return True

    def check_all_seen(self) -> None:
        """After the last input: every finished example must have been read again.

        Raises:
            UsageError: the inputs are shorter than the interrupted run's (exit 2).
        """
        if self._next < len(self.done):
            raise UsageError(
                f"cannot resume in '{self.out}': the inputs changed since the interrupted run (it finished "
                f"{len(self.done)} examples, the inputs now give {self._next} of them); pass --overwrite"
            )

    def record(self, entry: Mapping[str, Any]) -> None:
        """Append a finished example's entry; flushed, so a killed process loses at most this line."""
        self._handle.write(json.dumps(entry, ensure_ascii=False, allow_nan=False) + "\n")
        self._handle.flush()

    def complete(self) -> None:
        """Mark the run complete (its run files are written) and drop the spool."""
        self._handle.close()
        _write_state(self.out, self.key, None)
        self.spool.unlink(missing_ok=True)

    def close(self) -> None:
        self._handle.close()


@contextmanager
def open_journal(out: Path, key: Mapping[str, Any], resume: bool) -> Iterator[Journal]:
    """The journal of a run in ``out`` (locked and made ready by ``claim_folder``).

    Args:
        out: the report folder.
        key: the run's options as JSON values; a resumed run must give the same.
        resume: continue the run journalled in ``out``, if there is one (without one, the run starts afresh).

    Raises:
        UsageError: the options differ from the interrupted run's, naming each difference (exit 2).
        OutputError: the journal cannot be read or written (exit 5).
    """
    key = json.loads(json.dumps(key))  # as the state file will hold it: tuples are lists, and so on
    try:
        state = _read_state(out) if resume else None
        if state is None:
            spool, done = new_spool(out), []
            _write_state(out, key, spool.name)
        else:
            _check_same(out, state.get("key", {}), key)
            spool, done = _replay(out, state)
            if state.get("spool") != spool.name:
                _write_state(out, key, spool.name)
        journal = Journal(out, key, spool, done)
    except OSError as err:
        raise OutputError(f"cannot use the run journal in '{out}': {err.strerror or err}") from None
    try:
        yield journal
    finally:
        journal.close()


def _read_state(out: Path) -> dict[str, Any] | None:
    try:
        text = (out / STATE_NAME).read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    try:
        state = json.loads(text)
    except json.JSONDecodeError:
        state = None
    if not isinstance(state, dict) or not isinstance(state.get("key", {}), dict):
        raise UsageError(f"cannot resume in '{out}': '{STATE_NAME}' is not a run journal; pass --overwrite")
    return state


def _write_state(out: Path, key: Mapping[str, Any], spool: str | None) -> None:
    with replacing(out / STATE_NAME) as tmp:
        tmp.write_text(json.dumps({"key": key, "spool": spool}, indent=1, ensure_ascii=False), encoding="utf-8")


def _check_same(out: Path, before: Mapping[str, Any], now: Mapping[str, Any]) -> None:
    changed = [
        f"{name}: {json.dumps(before.get(name), ensure_ascii=False)} → {json.dumps(now.get(name), ensure_ascii=False)}"
        for name in sorted(set(before) | set(now), key=list({**before, **now}).index)
        if before.get(name) != now.get(name)
    ]
    if changed:
        raise UsageError(
            f"cannot resume in '{out}' with other options than the interrupted run's ({'; '.join(changed)}); "
            "rerun with its options, or pass --overwrite to start again"
        )


def _replay(out: Path, state: Mapping[str, Any]) -> tuple[Path, list[dict[str, Any]]]:
    """The spool to go on with and the entries already in it.

    An interrupted run's spool is cut after its last whole line. A completed run has none: its entries are read
    back from summary.json into a new spool, so the resumed run rewrites the same files.
    """
    name = state.get("spool")
    if name is None:
        return _from_summary(out)
    if not isinstance(name, str) or not SPOOL_NAME.fullmatch(name) or (out / name).is_symlink():
        # The journal is a file in the folder, as untrusted as any: a spool elsewhere would be cut and appended to.
        raise UsageError(f"cannot resume in '{out}': '{STATE_NAME}' names no spool of this folder; pass --overwrite")
    spool = out / name
    try:
        data = spool.read_bytes()
    except FileNotFoundError:
        raise UsageError(f"cannot resume in '{out}': its spool '{name}' is gone; pass --overwrite") from None
    whole = data[: data.rfind(b"\n") + 1]
    done = [_entry(out, name, number, line) for number, line in enumerate(whole.splitlines(), start=1)]
    if len(whole) != len(data):
        with spool.open("r+b") as handle:
            handle.truncate(len(whole))
            os.fsync(handle.fileno())
    return spool, done


def _entry(out: Path, name: str, number: int, line: bytes) -> dict[str, Any]:
    """Line ``number`` of the spool: a summary entry as render writes it, or a usage error that says to start
    again."""
    try:
        entry = untrusted_json(line.decode("utf-8"))
    except UnicodeDecodeError:
        problem: str | None = "is not UTF-8 text"
    except ValueError as err:
        problem = str(err)
    else:
        problem = entry_problem(entry) or _page_problem(entry)
    if problem is not None:
        raise UsageError(
            f"cannot resume in '{out}': line {number} of its spool '{name}' {problem}, so it is not an entry an "
            "interrupted run wrote; pass --overwrite"
        )
    return entry


def _page_problem(entry: Mapping[str, Any]) -> str | None:
    """An entry must name the page render writes for its id: resuming rewrites the index from the entries."""
    if entry["page"] != page_path(page_name(entry["id"])):
        return f"names the page {json.dumps(entry['page'])}, not the one render writes for its id"
    return None


def _from_summary(out: Path) -> tuple[Path, list[dict[str, Any]]]:
    path = out / "summary.json"
    if not path.is_file():
        raise UsageError(f"cannot resume in '{out}': its run completed without summary.json; pass --overwrite")
    done = read_summary(path)["examples"]
    for position, entry in enumerate(done):
        if (problem := _page_problem(entry)) is not None:
            raise UsageError(
                f"cannot resume in '{out}': $.examples[{position}] of summary.json {problem}; pass --overwrite"
            )
    spool = new_spool(out)
    with spool.open("w", encoding="utf-8") as handle:
        for entry in done:
            handle.write(json.dumps(entry, ensure_ascii=False, allow_nan=False) + "\n")
    return spool, done
