"""Running under a launcher (``torchrun``, ``accelerate launch``, SLURM's ``srun``): who this process is, which
device it takes, and the process group the ranks report their outcomes through.

Only small Python objects cross ranks (each rank's outcome), so the group is always gloo over TCP, also on GPU
machines: NCCL would add nothing but its watchdog. It is attnviz's own group, never torch's default one, so the
model and its libraries see no process group. torch is imported inside the functions that need it, so
:func:`detect_launch` costs nothing and importing this module creates no process group.
"""

from __future__ import annotations

import pickle
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from attnviz.config import Device
from attnviz.errors import AttnvizError, ExitStatus, UsageError

#: How long a rank waits for the others at a meeting point (the end of the run, where the finished ranks wait for
#: the slowest one). A rank that dies (killed, out of memory) is noticed at once, when its connection closes; this
#: bounds the wait for one that hangs. ``ATTNVIZ_RANK_TIMEOUT`` (seconds) overrides it.
RANK_TIMEOUT_SECONDS = 1800.0
#: The environment variable that overrides :data:`RANK_TIMEOUT_SECONDS`.
TIMEOUT_VARIABLE = "ATTNVIZ_RANK_TIMEOUT"
#: ``srun`` without ``MASTER_PORT``: the port is this plus (job id × 100 + step id) modulo 20,000.
SLURM_BASE_PORT = 20000
_SLURM_ADDRESS_HINT = (
    'export MASTER_ADDR=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1) before srun '
    "(the first node hosts rank 0)"
)


class RankError(AttnvizError):
    """A rank of a launched run failed or stopped answering; the message names it, and the exit status is that
    rank's error's (1 for a rank that was killed or hung)."""

    def __init__(self, message: str, exit_status: ExitStatus = ExitStatus.ERROR) -> None:
        super().__init__(message)
        self.exit_status = exit_status


@dataclass(frozen=True)
class Launch:
    """This process's place in a launched run, read from the launcher's environment by :func:`detect_launch`.

    Attributes:
        rank: this process, 0 … ``world_size`` - 1.
        world_size: processes in the run (at least 2).
        local_rank: this process among those on its machine (picks the GPU).
        master_addr: host of the rendezvous store (rank 0's machine, or the torchrun agent's).
        master_port: its port.
        launcher: ``torchrun`` (any launcher that sets ``RANK`` and ``WORLD_SIZE``) or ``srun``.
        timeout: seconds a rank waits for the others (see :data:`RANK_TIMEOUT_SECONDS`).
    """

    rank: int
    world_size: int
    local_rank: int
    master_addr: str
    master_port: int
    launcher: str = "torchrun"
    timeout: float = RANK_TIMEOUT_SECONDS

    def __post_init__(self) -> None:
        if self.world_size < 2 or not 0 <= self.rank < self.world_size or self.local_rank < 0:
            raise UsageError(
                f"a launched run needs 0 <= rank < world size >= 2, got rank {self.rank} of "
                f"{self.world_size} (local rank {self.local_rank})"
            )
        if not 0 < self.master_port < 65536:
            raise UsageError(f"MASTER_PORT must be a TCP port (1-65535), got {self.master_port}")
        if self.timeout <= 0:
            raise UsageError(f"{TIMEOUT_VARIABLE} must be a positive number of seconds, got {self.timeout:g}")

    @property
    def name(self) -> str:
        """``rank 1 of 4``, for messages."""
        return f"rank {self.rank} of {self.world_size}"


def detect_launch(environ: Mapping[str, str]) -> Launch | None:
    """This process's launch, or None when no launcher started it (or started only one process).

    ``torchrun`` and ``accelerate launch`` set ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and
    ``MASTER_PORT``. ``srun`` sets ``SLURM_PROCID``, ``SLURM_STEP_NUM_TASKS`` and ``SLURM_LOCALID`` (a batch script
    itself, outside ``srun``, has no step and is not a launch); its ``MASTER_ADDR`` defaults to 127.0.0.1 when the
    step runs on one node, and ``MASTER_PORT`` to ``SLURM_BASE_PORT + (job id × 100 + step id) % 20000``.

    Args:
        environ: the process environment (``os.environ``).

    Raises:
        UsageError: a variable is not a number, or a multi-node ``srun`` step has no ``MASTER_ADDR`` (exit 2).
    """
    timeout = _number(environ, TIMEOUT_VARIABLE, RANK_TIMEOUT_SECONDS, float)
    if "RANK" in environ and "WORLD_SIZE" in environ:
        world = _number(environ, "WORLD_SIZE", 1, int)
        if world < 2:
            return None
        rank = _number(environ, "RANK", 0, int)
        missing = [name for name in ("MASTER_ADDR", "MASTER_PORT") if not environ.get(name)]
        if missing:
            raise UsageError(
                f"RANK and WORLD_SIZE are set but {' and '.join(missing)} not: launch with torchrun, "
                "accelerate launch or srun, or set them to rank 0's host and a free port"
            )
        return Launch(
            rank=rank,
            world_size=world,
            local_rank=_number(environ, "LOCAL_RANK", rank, int),
            master_addr=environ["MASTER_ADDR"],
            master_port=_number(environ, "MASTER_PORT", 0, int),
            launcher="torchrun",
            timeout=timeout,
        )
    if "SLURM_PROCID" in environ and "SLURM_STEP_NUM_TASKS" in environ:
        world = _number(environ, "SLURM_STEP_NUM_TASKS", 1, int)
        if world < 2:
            return None
        address = environ.get("MASTER_ADDR")
        if not address:
            if _number(environ, "SLURM_STEP_NUM_NODES", 1, int) > 1:
                raise UsageError(
                    f"srun runs this step on several nodes but MASTER_ADDR is not set: {_SLURM_ADDRESS_HINT}"
                )
            address = "127.0.0.1"
        job = _number(environ, "SLURM_JOB_ID", 0, int) * 100 + _number(environ, "SLURM_STEP_ID", 0, int)
        port = _number(environ, "MASTER_PORT", SLURM_BASE_PORT + job % 20000, int)
        return Launch(
            rank=_number(environ, "SLURM_PROCID", 0, int),
            world_size=world,
            local_rank=_number(environ, "SLURM_LOCALID", 0, int),
            master_addr=address,
            master_port=port,
            launcher="srun",
            timeout=timeout,
        )
    return None


def _number(environ: Mapping[str, str], name: str, default: Any, kind: type) -> Any:
    text = environ.get(name, "")
    if not text.strip():
        return default
    try:
        return kind(text)
    except ValueError:
        raise UsageError(f"environment variable {name} must be a number, got '{text}'") from None


def rank_device(launch: Launch) -> Device:
    """The ``--device`` this rank renders on: GPU ``LOCAL_RANK`` where CUDA is available (modulo the GPUs this
    process sees, so one GPU per task, as ``srun --gpus-per-task=1`` gives, is its GPU 0), else ``cpu``.

    The GPU is made the current CUDA device and the answer is ``cuda``: the model and its inputs land on it, and
    summary.json names the device as a single-process run does.
    """
    import torch

    if not torch.cuda.is_available():
        return "cpu"
    torch.cuda.set_device(launch.local_rank % torch.cuda.device_count())
    return "cuda"


class ProcessGroup:
    """The launch's process group, for outcomes only: open it with ``with``, meet the other ranks with
    :meth:`gather`, and it is destroyed on leaving.

    Each :meth:`gather` waits at most ``launch.timeout`` seconds; a rank that died is noticed as soon as its
    connection closes. Either way every waiting rank raises :class:`RankError` naming the ranks that never came.
    """

    def __init__(self, launch: Launch) -> None:
        self.launch = launch
        self._store: Any = None
        self._group: Any = None
        self._meetings = 0

    def __enter__(self) -> ProcessGroup:
        import torch.distributed as dist

        host = f"[{self.launch.master_addr}]" if ":" in self.launch.master_addr else self.launch.master_addr
        timeout = timedelta(seconds=self.launch.timeout)
        try:
            # torch's own rendezvous: under torchrun the agent hosts the store, under srun rank 0 does.
            store, _, _ = next(
                dist.rendezvous(
                    f"tcp://{host}:{self.launch.master_port}",
                    self.launch.rank,
                    self.launch.world_size,
                    timeout=timeout,
                )
            )
            store.set_timeout(timeout)
            # Each group a process opens gets fresh keys: the launcher's store outlives it (a second run in one
            # launch, e.g. a notebook or a driver script, must not meet the first one's keys).
            generation = (store.add("attnviz/groups", 1) - 1) // self.launch.world_size
            self._store = dist.PrefixStore(f"attnviz/{generation}", store)
            # A group of attnviz's own, not torch's default one: libraries that look for a default group
            # (transformers does while loading a model) keep references to it, and a gloo group still alive at
            # interpreter exit can abort the process when its worker thread frees the last collective's tensors.
            self._group = dist.ProcessGroupGloo(
                dist.PrefixStore(f"attnviz/{generation}/group", store),
                self.launch.rank,
                self.launch.world_size,
                timeout,
            )
        except (RuntimeError, ValueError) as err:  # DistError and its kin are RuntimeErrors
            raise RankError(
                f"{self.launch.name} could not join the others at {host}:{self.launch.master_port} within "
                f"{self.launch.timeout:g}s: {_first_line(err)}"
            ) from err
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def gather(self, obj: Any) -> list[Any]:
        """Every rank's ``obj`` (picklable), in rank order, once all ranks have called this.

        Raises:
            RankError: a rank never came: it died, or it did not come within the timeout.
        """
        meeting = self._meetings
        self._meetings += 1
        try:
            # Marked in the store first, so that a failed meeting can name the ranks that never arrived.
            self._store.set(f"arrived/{meeting}/{self.launch.rank}", b"1")
            return self._all_gather(obj)
        except RuntimeError as err:
            raise RankError(self._lost(meeting, err)) from err

    def _all_gather(self, obj: Any) -> list[Any]:
        """Every rank's pickled ``obj``: the sizes first, then the bytes padded to the longest."""
        import torch

        data = torch.frombuffer(bytearray(pickle.dumps(obj)), dtype=torch.uint8)
        world = self.launch.world_size
        sizes = [torch.zeros(1, dtype=torch.long) for _ in range(world)]
        self._group.allgather([sizes], [torch.tensor([data.numel()], dtype=torch.long)]).wait()
        lengths = [int(size.item()) for size in sizes]
        padded = torch.zeros(max(lengths), dtype=torch.uint8)
        padded[: data.numel()] = data
        found = [torch.zeros(max(lengths), dtype=torch.uint8) for _ in range(world)]
        self._group.allgather([found], [padded]).wait()
        return [pickle.loads(item[:length].numpy().tobytes()) for item, length in zip(found, lengths, strict=True)]

    def close(self) -> None:
        """Free the group: its worker threads are joined here, not at interpreter exit (safe to call twice)."""
        self._group = None
        self._store = None

    def _lost(self, meeting: int, err: BaseException) -> str:
        """The message for a meeting that failed: which ranks never arrived, when the store can still say."""
        ranks = range(self.launch.world_size)
        try:
            absent = [r for r in ranks if not self._store.check([f"arrived/{meeting}/{r}"])]
        except RuntimeError:  # the store went with the process that hosted it (rank 0 under srun)
            absent = []
            who = "rank 0 (which hosts the rendezvous store)"
        else:
            who = _ranks(absent) if absent else "a rank"
        reason = "timed out" if "timed out" in str(err).lower() else "lost its connection"
        return (
            f"{who} of {self.launch.world_size} stopped without finishing (killed, out of memory, crashed, or hung "
            f"past the {self.launch.timeout:g}s rank timeout); {self.launch.name} {reason} waiting for it: "
            f"{_first_line(err)}"
        )


def _ranks(ranks: list[int]) -> str:
    """``rank 1`` or ``ranks 1, 3``."""
    return ("rank " if len(ranks) == 1 else "ranks ") + ", ".join(str(r) for r in ranks)


def _first_line(err: BaseException) -> str:
    """The first sentence of an error, without gloo's ``[source.cc:553]`` prefix."""
    lines = str(err).strip().splitlines()
    text = re.sub(r"^\[[^\]]*\.cc:\d+\]\s*", "", lines[0] if lines else "")
    return text.split(". ")[0].rstrip(".") or type(err).__name__
