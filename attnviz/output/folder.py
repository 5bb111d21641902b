"""The report folder: written by one run at a time, never mixed with an earlier run's files, each file replaced
whole so that an interrupted run leaves no half-written page or temporary file behind."""

from __future__ import annotations

import os
import re
import secrets
import stat
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from attnviz.errors import OutputError, UsageError

try:
    import fcntl
except ImportError:  # Windows: the lock is the lock file's existence instead (see _acquire)
    fcntl = None  # type: ignore[assignment]

#: Held by the run writing the folder (it holds that run's process id); removed when the run ends.
LOCK_NAME = ".attnviz.lock"
#: The run's options and spool, for ``--resume`` (see ``attnviz.output.journal``).
STATE_NAME = ".attnviz-run.json"
#: Example entries of a run in progress, one JSON line each (a unique name per run; removed when it completes).
SPOOL_PREFIX, SPOOL_SUFFIX = ".examples-", ".jsonl"
_NAME_BYTES = 6  # random bytes in the name of a spool or temporary file, written as hex
#: The name of a spool :func:`new_spool` makes.
SPOOL_NAME = re.compile(rf"{re.escape(SPOOL_PREFIX)}[0-9a-f]{{{2 * _NAME_BYTES}}}{re.escape(SPOOL_SUFFIX)}")
_RUN_FILES = ("index.html", "summary.json", "summary.md", "compare.html")
#: The folders a report writes inside ``--out``: a render's (or merge's) pages and maps, and a compare's two reports.
REPORT_FOLDERS = ("examples", "dataset")
COMPARE_FOLDERS = ("a", "b")
#: Temporary files of writes killed before they could clean up (see ``replacing``): never part of a report.
TEMP_FILES = (
    *(f".{name}.*.tmp" for name in (*_RUN_FILES, STATE_NAME)),
    "examples/.*.tmp",
    "examples/*/.*.tmp",
    "dataset/.*.tmp",
)
#: A report's files, and the journal's state file, as glob patterns.
REPORT_FILES = (*_RUN_FILES, STATE_NAME, "examples/*.html", "examples/*.npz", "examples/*/*.png", "dataset/*.png")
#: What attnviz writes into a report folder; ``overwrite`` removes these and nothing else.
OWN_FILES = (*REPORT_FILES, *TEMP_FILES, f"{SPOOL_PREFIX}*{SPOOL_SUFFIX}")


def check_bundle_path(out: Path, bundle: Path) -> None:
    """Refuse a ``--single-file`` path that is one of the files the report in ``out`` writes (its index, a page):
    the bundle would replace it, and a later bundle or merge would take the bundle for a page.

    Raises:
        UsageError: naming the path (exit 2).
    """
    try:
        inside = bundle.resolve().relative_to(out.resolve())
    except ValueError:  # not inside --out
        return
    if any(inside.match(pattern) and len(inside.parts) == len(Path(pattern).parts) for pattern in OWN_FILES):
        raise UsageError(
            f"--single-file '{bundle}' is one of the report's own files: write the bundle outside --out, or under "
            "another name"
        )


@contextmanager
def claim_folder(
    out: Path,
    overwrite: bool = False,
    resume: bool = False,
    folders: tuple[str, ...] = REPORT_FOLDERS,
    resumable: bool = True,
) -> Iterator[Path]:
    """Create ``out`` and lock it for the body's run; it must not hold another run's files.

    The lock is taken before the folder is looked at, so a locked folder is never cleared. It is an advisory
    ``flock``, which the system releases when its process dies, so a killed run never blocks the next one.

    Args:
        out: the report folder.
        overwrite: remove the files an earlier run wrote there (see ``OWN_FILES``) instead of refusing it;
            any other file in the folder is kept.
        resume: keep the files of the run journalled there (see ``attnviz.output.journal``), removing only
            temporary files; a folder with a report but no journal is refused as without it.
        folders: the folders the run writes inside ``out`` (:data:`REPORT_FOLDERS`, or :data:`COMPARE_FOLDERS`,
            whose reports claim them in turn); none may be a symbolic link.
        resumable: the command can ``--resume`` (render), so a refusal may suggest it; merge and compare cannot.

    Yields:
        ``out``, with its ``examples/`` folder when ``folders`` has one.

    Raises:
        UsageError: ``out`` holds an earlier run's files, and neither ``overwrite`` nor ``resume`` with a journal
            (exit 2).
        OutputError: another run holds the lock, or the folder cannot be created or cleared (exit 5).
    """
    try:
        out.mkdir(parents=True, exist_ok=True)
        lock = _acquire(out)
    except OSError as err:
        raise OutputError(f"cannot create output folder '{out}': {err.strerror or err}") from None
    try:
        _make_ready(out, overwrite, resume, folders, resumable)
        yield out
    finally:
        _release(out, lock)


def new_spool(out: Path) -> Path:
    """A new, empty, uniquely named spool file in ``out``."""
    return _new_file(out, SPOOL_PREFIX, SPOOL_SUFFIX)


@contextmanager
def spool_file(out: Path) -> Iterator[Path]:
    """A new spool file in ``out`` (see :func:`new_spool`), removed when the body ends however it ends."""
    path = new_spool(out)
    try:
        yield path
    finally:
        path.unlink(missing_ok=True)


@contextmanager
def replacing(path: Path) -> Iterator[Path]:
    """A uniquely named temporary file next to ``path`` for the body to write; it replaces ``path`` when the body
    succeeds and is removed when it fails, so ``path`` is either the old file or the whole new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _new_file(path.parent, f".{path.name}.", ".tmp")
    try:
        yield tmp
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


def _new_file(folder: Path, prefix: str, suffix: str) -> Path:
    """A new empty file named ``prefix + random + suffix``, with the permissions the umask gives (a page must be
    as readable as before; ``tempfile.mkstemp`` makes files only their owner can read)."""
    while True:
        path = folder / f"{prefix}{secrets.token_hex(_NAME_BYTES)}{suffix}"
        try:
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        except FileExistsError:
            continue
        return path


def _make_ready(out: Path, overwrite: bool, resume: bool, folders: tuple[str, ...], resumable: bool) -> None:
    try:
        _refuse_links(out, folders)
        if resume and (out / STATE_NAME).is_file():
            _remove(_matching(out, TEMP_FILES))
        elif resume and next(_matching(out, REPORT_FILES), None) is None:
            _clear(out)  # at most what a run killed before its journal existed leaves: nothing to resume
        elif next(_matching(out, OWN_FILES), None) is not None:
            if not overwrite:
                raise UsageError(
                    f"output folder '{out}' holds the report of an earlier run"
                    + (" that has no run journal to resume (merge and compare write none)" if resume else "")
                    + "; pass --overwrite to replace it (only attnviz's own files are removed)"
                    + ("" if resume or not resumable else ", --resume to continue it if it was interrupted,")
                    + " or choose another --out"
                )
            _clear(out)
        if "examples" in folders:
            (out / "examples").mkdir(exist_ok=True)
    except OSError as err:
        # Name the file: a clearing that stopped halfway has removed some of the earlier run's files already.
        where = f" ('{err.filename}')" if err.filename else ""
        raise OutputError(f"cannot prepare output folder '{out}': {err.strerror or err}{where}") from None


def _refuse_links(out: Path, folders: tuple[str, ...]) -> None:
    """A folder of attnviz's inside ``out`` that is a symbolic link would take its writes and ``--overwrite``'s
    removals to wherever it points: refused, as attnviz writes only inside ``--out``."""
    examples = out / "examples"
    inside = examples.iterdir() if examples.is_dir() and not examples.is_symlink() else iter(())
    for folder in (*(out / name for name in folders), *inside):
        if folder.is_symlink():
            raise OutputError(
                f"'{folder}' is a symbolic link, and attnviz writes only inside --out: "
                "remove the link or choose another --out"
            )


def _matching(out: Path, patterns: tuple[str, ...]) -> Iterator[Path]:
    """Files in ``out`` matching ``patterns``, found lazily (the first answers whether the folder holds a run)."""
    for pattern in patterns:
        for path in out.glob(pattern):
            if path.is_file():
                yield path


def _clear(out: Path) -> None:
    """Remove attnviz's files from ``out``, then its folders that are left empty (a user's files stay)."""
    _remove(_matching(out, OWN_FILES))
    for folder in [*(out / "examples").glob("*"), out / "examples", out / "dataset"]:
        with suppress(OSError):  # a file, missing, or a folder that holds a file attnviz did not write
            folder.rmdir()


def _remove(paths: Iterator[Path]) -> None:
    for path in list(paths):
        path.unlink(missing_ok=True)


def _acquire(out: Path) -> int:
    """Lock ``out`` for this process and record its id in the lock file; returns the lock file's descriptor.

    Raises:
        OutputError: another process holds the lock (exit 5).
    """
    path = out / LOCK_NAME
    # A lock file that is a link would take the process id attnviz writes into it to wherever it points.
    flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | (os.O_EXCL if fcntl is None else 0)
    while True:
        if path.is_symlink():
            raise OutputError(
                f"'{path}' is a symbolic link, and attnviz writes only inside --out: remove it or choose another --out"
            )
        try:
            handle = os.open(path, flags, 0o644)
        except FileExistsError:
            raise _busy(out) from None
        found = os.fstat(handle)
        if not stat.S_ISREG(found.st_mode) or found.st_nlink != 1:  # a hard link is another file's contents too
            os.close(handle)
            raise OutputError(
                f"'{path}' is not a lock file of attnviz's (it is linked to another file, or not a regular file), and "
                "attnviz writes only inside --out: remove it or choose another --out"
            )
        if fcntl is None:
            break
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(handle)
            raise _busy(out) from None
        # The previous holder removes the file when it is done: a lock on a removed file locks nothing.
        if _same_file(handle, path):
            break
        os.close(handle)
    os.ftruncate(handle, 0)
    os.write(handle, str(os.getpid()).encode("ascii"))
    return handle


def _release(out: Path, handle: int) -> None:
    # Removed before it is unlocked, so a run waiting on this file finds it gone and takes a new one.
    (out / LOCK_NAME).unlink(missing_ok=True)
    os.close(handle)


def _same_file(handle: int, path: Path) -> bool:
    try:
        return os.path.samestat(os.fstat(handle), os.lstat(path))
    except FileNotFoundError:
        return False


def _busy(out: Path) -> OutputError:
    try:
        pid = (out / LOCK_NAME).read_text(encoding="ascii").strip() or "unknown"
    except (OSError, UnicodeDecodeError):
        pid = "unknown"
    # Without flock a killed run leaves its lock file behind, and only the user can tell it is stale.
    stale = "" if fcntl is not None else f" (if none is, delete '{out / LOCK_NAME}')"
    return OutputError(
        f"another attnviz run is writing to '{out}' (pid {pid}){stale}; wait for it to end or choose another --out"
    )
