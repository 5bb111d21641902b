"""``render`` under a launcher: every rank renders its shard into ``out/.ranks/rank-N``, the ranks meet, and rank 0
merges the shards into ``out`` exactly as ``attnviz merge`` does.

The run is four steps, each ending in a meeting of all ranks (:class:`attnviz.model.distributed.ProcessGroup`):

1. rank 0 claims ``out`` (locked for the whole run, refused when it holds an earlier report, as render does);
2. every rank renders shard ``rank/world`` (whole batches, see ``attnviz.api._batches``) into its rank folder;
3. rank 0 merges the rank folders into ``out`` and removes them (unless ``keep_shards``);
4. every rank returns, or raises the same :class:`RankError`, whose message names the failing rank.

A rank's error never ends it before the next meeting: it is caught and becomes that rank's outcome, so all ranks
stop together with the failing rank's message and exit status. A rank that dies is noticed at the next meeting
(see ``RANK_TIMEOUT_SECONDS``). The rank folders of a run that failed stay, so ``resume`` continues every rank
where it stopped.
"""

from __future__ import annotations

import dataclasses
import shutil
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from attnviz.config import RenderOptions
from attnviz.errors import AttnvizError, ExitStatus, UsageError
from attnviz.model.distributed import Launch, ProcessGroup, RankError, rank_device
from attnviz.output.folder import claim_folder, replacing
from attnviz.types import OnProgress

if TYPE_CHECKING:
    from attnviz.output.check import Threshold

__all__ = ["RANKS_FOLDER", "RankError", "RankOutcome", "rank_folder", "render_launched"]

#: The ranks' own report folders (and progress files) inside ``out``.
RANKS_FOLDER = ".ranks"
#: Seconds between rank 0's readings of the ranks' progress files.
PROGRESS_INTERVAL = 0.5


@dataclass(frozen=True)
class RankOutcome:
    """What one rank reports at a meeting.

    Attributes:
        rank: the rank.
        status: 0 when the step went well, else the exit status of its error.
        message: the error's message ("" when it went well).
    """

    rank: int
    status: int = 0
    message: str = ""

    @classmethod
    def of(cls, rank: int, err: BaseException | None) -> RankOutcome:
        if err is None:
            return cls(rank)
        if isinstance(err, AttnvizError):
            return cls(rank, int(err.exit_status), str(err))
        return cls(rank, int(ExitStatus.ERROR), f"unexpected {type(err).__name__}: {err}")


def rank_folder(out: Path, rank: int) -> Path:
    """Where ``rank`` renders its shard: ``out/.ranks/rank-N``."""
    return out / RANKS_FOLDER / f"rank-{rank}"


def render_launched(
    inputs: Sequence[str],
    options: RenderOptions,
    launch: Launch,
    *,
    keep_shards: bool = False,
    on_progress: OnProgress | None = None,
    thresholds: Sequence[Threshold] = (),
    records: int | None = None,
) -> dict[str, Any] | None:
    """Render ``inputs`` with ``options`` as one rank of a launched run (see the module docstring).

    Each rank renders on :func:`attnviz.model.distributed.rank_device` when ``options.model.device`` is ``auto`` or
    ``cuda``. ``options.overwrite`` and ``options.resume`` apply to ``out``; the rank folders are always replaced,
    except under ``options.resume``, which continues each rank's interrupted shard.

    Args:
        inputs: texts or file paths (not ``-``: stdin cannot be split between processes).
        options: the run's options; ``shard`` must be ``(0, 1)``, since each rank takes its shard itself.
        launch: this process's place in the run (:func:`attnviz.model.distributed.detect_launch`).
        keep_shards: keep ``out/.ranks`` after merging.
        on_progress: called on rank 0 only, with the examples finished by all ranks together.
        thresholds: ``--min``/``--max`` bounds whose outcome the merged summary.md records.
        records: the inputs' record count when the caller has counted them (``render_reports`` takes it).

    Returns:
        On rank 0, the merged summary with the short index rows as ``examples`` (as ``render_reports(...,
        keep_examples=False)``); None on the other ranks.

    Raises:
        UsageError: ``options.shard`` is not ``(0, 1)``, or an input is ``-`` (exit 2).
        RankError: a rank failed (its message and exit status) or stopped answering (exit 1).
    """
    if options.shard != (0, 1):
        raise UsageError(
            f"--shard {options.shard[0]}/{options.shard[1]} under a launcher: each of the {launch.world_size} ranks "
            "renders its own shard already; drop --shard (or run without the launcher)"
        )
    if "-" in inputs and not options.literal_text:
        raise UsageError("stdin (-) cannot be split between launched ranks: write it to a file and pass that")
    out = options.out_dir
    ranks = out / RANKS_FOLDER
    with ExitStack() as stack:
        group = stack.enter_context(ProcessGroup(launch))

        def step(action: Callable[[], Any]) -> Any:
            """Run ``action`` on this rank, then meet; every rank raises when any rank's action failed."""
            result, error = None, None
            try:
                result = action()
            except Exception as err:  # noqa: BLE001 - becomes this rank's outcome, raised below on every rank
                error = err
            _raise_failed(group.gather(RankOutcome.of(launch.rank, error)), launch, error)
            return result

        def prepare() -> None:
            # Held until the merge is written: no other run may write into out meanwhile.
            stack.enter_context(claim_folder(out, overwrite=options.overwrite or options.resume))
            for stale in ranks.glob("rank-*.progress"):
                stale.unlink()

        step(prepare if launch.rank == 0 else lambda: None)
        watch = _watch_progress(ranks, launch.world_size, on_progress) if launch.rank == 0 else _nothing()
        with watch:
            step(lambda: _render_rank(inputs, options, launch, records))
        merged = step(lambda: _merge(out, launch, options, thresholds, keep_shards) if launch.rank == 0 else None)
    if merged is not None and on_progress is not None:
        on_progress(merged["counts"]["examples"])
    return merged


def _render_rank(inputs: Sequence[str], options: RenderOptions, launch: Launch, records: int | None) -> None:
    from attnviz.api import render_reports

    model = options.model
    if model.device in ("auto", "cuda"):
        model = dataclasses.replace(model, device=rank_device(launch))
    progress = rank_folder(options.out_dir, launch.rank).with_suffix(".progress")
    rank_options = dataclasses.replace(
        options,
        model=model,
        out_dir=rank_folder(options.out_dir, launch.rank),
        shard=(launch.rank, launch.world_size),
        # merge reads the shards' summary.json; it writes only the formats asked for.
        formats=options.formats if "json" in options.formats else (*options.formats, "json"),
        overwrite=not options.resume,
    )

    def report(done: float) -> None:
        with replacing(progress) as tmp:
            tmp.write_text(repr(float(done)), encoding="ascii")

    render_reports(inputs, rank_options, on_progress=report, keep_examples=False, records=records)


def _merge(
    out: Path, launch: Launch, options: RenderOptions, thresholds: Sequence[Threshold], keep_shards: bool
) -> dict[str, Any]:
    from attnviz.output.aggregate import DatasetAggregate
    from attnviz.output.merge import merge_reports

    folders = [rank_folder(out, rank) for rank in range(launch.world_size)]
    merged = merge_reports(folders, out, options.formats, thresholds, claimed=True)
    if not keep_shards:
        shutil.rmtree(out / RANKS_FOLDER, ignore_errors=True)
    # The short index rows render_reports returns (the terminal summary reads them), rebuilt in input order.
    aggregate = DatasetAggregate()
    for entry in merged["examples"]:
        aggregate.add(entry)
    aggregate.result(merged["counts"]["skipped"])
    return {**merged, "examples": aggregate.rows}


def _raise_failed(outcomes: Sequence[RankOutcome], launch: Launch, own: BaseException | None) -> None:
    """Raise one :class:`RankError` on every rank when any outcome failed: the lowest failing rank's exit status,
    and each distinct message once with the ranks that gave it."""
    failed = [o for o in outcomes if o.status]
    if not failed:
        return
    by_message: dict[str, list[int]] = {}
    for outcome in failed:
        by_message.setdefault(outcome.message, []).append(outcome.rank)
    parts = [
        f"{'rank' if len(ranks) == 1 else 'ranks'} {', '.join(map(str, ranks))} of {launch.world_size} failed: {text}"
        for text, ranks in by_message.items()
    ]
    error = RankError("; ".join(parts), ExitStatus(failed[0].status))
    if own is not None:
        raise error from own  # --debug shows this rank's own traceback
    raise error


@contextmanager
def _watch_progress(ranks: Path, world: int, on_progress: OnProgress | None) -> Iterator[None]:
    """While the body runs, report the examples finished by all ranks (the sum of their progress files)."""
    if on_progress is None:
        yield
        return
    stop = threading.Event()

    def total() -> float:
        done = 0.0
        for rank in range(world):
            with suppress(OSError, ValueError):  # not started yet
                done += float((ranks / f"rank-{rank}.progress").read_text(encoding="ascii"))
        return done

    def watch() -> None:
        shown = -1
        while not stop.wait(PROGRESS_INTERVAL):
            done = total()
            if done != shown:
                on_progress(done)
                shown = done

    thread = threading.Thread(target=watch, name="attnviz-progress", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


@contextmanager
def _nothing() -> Iterator[None]:
    yield
