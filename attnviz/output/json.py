"""summary.json (versioned schema) and, with ``--save-tensors``, ``examples/<id>.npz``."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from attnviz.analysis.pipeline import ExampleReport
from attnviz.output.base import register_renderer
from attnviz.output.folder import replacing
from attnviz.output.summary import RunDocument
from attnviz.types import FULL, Needs


class JsonRenderer:
    name = "json"
    description = "summary.json: run metadata, per-example tokens, prediction, scores and head diagnostics"
    needs_figures: frozenset[str] = frozenset()
    needs = Needs()

    def write_example(
        self, report: ExampleReport, figures: Mapping[str, bytes], out: Path, run: Mapping[str, Any]
    ) -> None:
        """Everything per example goes into summary.json at the end of the run."""

    def write_run(self, summary: RunDocument, out: Path) -> None:
        summary.write_json(out / "summary.json")


class TensorRenderer:
    name = "tensors"
    description = "examples/<id>.npz: raw attention (layers, heads, n, n) per attention kind, with tokens"
    needs_figures: frozenset[str] = frozenset()
    needs = Needs(attention=frozenset({FULL}))

    def write_example(
        self, report: ExampleReport, figures: Mapping[str, bytes], out: Path, run: Mapping[str, Any]
    ) -> None:
        capture = report.capture
        arrays: dict[str, np.ndarray] = {}
        for att in capture.attentions.values():
            arrays[f"attention_{att.kind}"] = att.view(FULL)
            if att.full_grads is not None:
                arrays[f"gradient_{att.kind}"] = att.full_grads
        for name, seq in capture.sequences.items():
            arrays[f"tokens_{name}"] = np.array(seq.tokens, dtype=str)
            arrays[f"special_{name}"] = seq.special_mask
        # An open file, not a path: numpy would add ".npz" to the temporary file's name.
        with replacing(out / "examples" / f"{report.page}.npz") as tmp, tmp.open("wb") as handle:
            np.savez_compressed(handle, **arrays)

    def write_run(self, summary: RunDocument, out: Path) -> None:
        """Tensors are per example only."""


register_renderer(JsonRenderer())
register_renderer(TensorRenderer())
