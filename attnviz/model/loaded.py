"""The loaded model handle; its own module so task adapters can name it without an import cycle."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class LoadedModel:
    """A ready model; only the capture stage touches it.

    Attributes:
        model: the ``transformers`` model, in eval mode with eager attention.
        tokenizer: its tokenizer (fast when available: word ids and offsets need it).
        name: what the user asked for (hub id or path), or the demo model's name.
        revision: the hub revision asked for.
        task: the task adapter name.
        device: torch device string.
        dtype: parameter dtype name.
        capture: ``fast`` (SDPA forward, attention recomputed in row blocks) or ``eager`` (the reference path).
    """

    # Left out of the repr: a model prints every layer (a notebook shows the repr of a cell's last value).
    model: Any = field(repr=False)
    tokenizer: Any = field(repr=False)
    name: str
    revision: str | None
    task: str
    device: str
    dtype: str
    capture: str = "eager"
