"""``attnviz compare``: two models or checkpoints on the same inputs, side by side, for a model review.

Each side is rendered as a full report (``out/a`` and ``out/b``); the compare document matches their
examples by id and states what changed: predictions that flipped, how the primary method's word
ranking moved (Spearman ρ over words aligned across the two tokenizations), and how attention entropy
shifted per layer × head, or per layer at matched relative depth when the two stacks differ in size.

The document is deterministic for fixed inputs: no timestamps, lists in input order or sorted, and
only ``timing`` varies between identical runs.
"""

from __future__ import annotations

import difflib
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from attnviz.analysis.agreement import spearman
from attnviz.errors import OutputError
from attnviz.output.colors import hex_colour, text_colour

SCHEMA_VERSION = "1.0"
DIGITS = 6
CHANGED_MOST = 5
MOVED_WORDS = 3
# Entropy differences are coloured relative to the largest one in the map, but never on a scale finer
# than this, so that noise-level differences stay pale.
MIN_COLOUR_SCALE = 0.05
# The diverging scale: B − A > 0 (B more diffuse) in the report's blues, < 0 (B more focused) in orange.
_ORANGE = np.array([0xB3, 0x58, 0x06], dtype=np.float64)


def _r(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else round(float(value), DIGITS)


def _mean(values: Sequence[float]) -> float | None:
    return _r(sum(values) / len(values)) if values else None


def _std(values: Sequence[float]) -> float | None:
    """Sample standard deviation (n − 1), as in the render summary's ``spread``; None below two values."""
    return _r(float(np.std(values, ddof=1))) if len(values) > 1 else None


def _link(prefix: str, page: str) -> str:
    return f"{prefix.rstrip('/')}/{page}" if prefix else page


# --------------------------------------------------------------------------- per example


def _methods(summary: Mapping[str, Any]) -> list[str]:
    """The side's methods in run order, then any others its examples scored (first seen first)."""
    found: list[str] = []
    for name in summary.get("run", {}).get("options", {}).get("methods", []):
        if name not in found:
            found.append(name)
    for entry in summary["examples"]:
        for name in entry.get("scores", {}):
            if name not in found:
                found.append(name)
    return found


def _scored(summary: Mapping[str, Any]) -> set[str]:
    return {name for entry in summary["examples"] for name in entry.get("scores", {})}


def primary_method(a: Mapping[str, Any], b: Mapping[str, Any]) -> str | None:
    """The word-importance method both sides are compared on.

    Each side's ``dataset.primary_method`` when they agree; otherwise the first of A's methods (run order)
    that both sides scored; None when they share none.
    """
    pa = (a.get("dataset") or {}).get("primary_method")
    pb = (b.get("dataset") or {}).get("primary_method")
    if pa is not None and pa == pb:
        return str(pa)
    both = _scored(a) & _scored(b)
    return next((name for name in _methods(a) if name in both), None)


def _word_row(entry: Mapping[str, Any], method: str | None) -> tuple[list[str], list[float]] | None:
    """The method's words and their scores in one example, or None when the example has no such scores."""
    if method is None or method not in entry.get("scores", {}):
        return None
    scores = entry["scores"][method]
    words = list(entry["sequences"][scores["sequence"]]["words"])
    values = [float(v) for v in scores["words"]]
    if len(words) != len(values):
        return None
    return words, values


def align_words(words_a: Sequence[str], words_b: Sequence[str]) -> list[tuple[int | None, int | None]]:
    """Align two word lists (different tokenizers split differently) with :class:`difflib.SequenceMatcher`.

    Words are matched on their case-folded text; only equal runs are paired. Every word of both lists
    appears once, in order: ``(i, j)`` for a pair, ``(i, None)`` / ``(None, j)`` for a word only one side
    has.
    """
    fa = [w.casefold() for w in words_a]
    fb = [w.casefold() for w in words_b]
    pairs: list[tuple[int | None, int | None]] = []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, fa, fb, autojunk=False).get_opcodes():
        if tag == "equal":
            pairs.extend(zip(range(i1, i2), range(j1, j2), strict=True))
        else:
            pairs.extend((i, None) for i in range(i1, i2))
            pairs.extend((None, j) for j in range(j1, j2))
    return pairs


def _ranks(values: Sequence[float]) -> list[int]:
    """Rank 1 = the highest score; tied scores share the best (lowest) rank."""
    from scipy.stats import rankdata

    return [int(r) for r in rankdata([-v for v in values], method="min")]


def _word_comparison(entry_a: Mapping[str, Any], entry_b: Mapping[str, Any], method: str | None) -> dict[str, Any]:
    row_a, row_b = _word_row(entry_a, method), _word_row(entry_b, method)
    if row_a is None or row_b is None:
        return {
            "words_a": len(row_a[0]) if row_a else 0,
            "words_b": len(row_b[0]) if row_b else 0,
            "aligned_words": 0,
            "rank_correlation": None,
            "moved": [],
            "words": [],
        }
    (words_a, values_a), (words_b, values_b) = row_a, row_b
    pairs = align_words(words_a, words_b)
    matched = [(i, j) for i, j in pairs if i is not None and j is not None]
    xs = np.array([values_a[i] for i, _ in matched], dtype=np.float64)
    ys = np.array([values_b[j] for _, j in matched], dtype=np.float64)
    rho = spearman(xs, ys) if len(matched) else float("nan")
    moved = []
    if matched:
        ranks_a, ranks_b = _ranks(xs.tolist()), _ranks(ys.tolist())
        order = sorted(range(len(matched)), key=lambda k: (-abs(ranks_b[k] - ranks_a[k]), k))
        for k in order[:MOVED_WORDS]:
            if ranks_a[k] == ranks_b[k]:
                break
            i, j = matched[k]
            moved.append(
                {
                    "word": words_a[i],
                    "word_index_a": i,
                    "word_index_b": j,
                    "rank_a": ranks_a[k],
                    "rank_b": ranks_b[k],
                    "change": ranks_b[k] - ranks_a[k],
                    "score_a": _r(values_a[i]),
                    "score_b": _r(values_b[j]),
                }
            )
    return {
        "words_a": len(words_a),
        "words_b": len(words_b),
        "aligned_words": len(matched),
        "rank_correlation": _r(rho),
        "moved": moved,
        "words": [
            {
                "a": None if i is None else words_a[i],
                "score_a": None if i is None else _r(values_a[i]),
                "b": None if j is None else words_b[j],
                "score_b": None if j is None else _r(values_b[j]),
            }
            for i, j in pairs
        ],
    }


def _prediction(entry: Mapping[str, Any]) -> dict[str, Any]:
    prediction = entry.get("prediction") or {}
    return {"text": prediction.get("text"), "score": prediction.get("score"), "correct": prediction.get("correct")}


def _example(
    entry_a: Mapping[str, Any], entry_b: Mapping[str, Any], method: str | None, pages: tuple[str, str]
) -> dict[str, Any]:
    pred_a, pred_b = _prediction(entry_a), _prediction(entry_b)
    ent_a, ent_b = entry_a.get("mean_entropy"), entry_b.get("mean_entropy")
    return {
        "id": entry_a["id"],
        "index": entry_a.get("index"),
        "label": entry_a.get("label"),
        "page_a": _link(pages[0], entry_a["page"]),
        "page_b": _link(pages[1], entry_b["page"]),
        "prediction_a": pred_a,
        "prediction_b": pred_b,
        "flip": pred_a["text"] != pred_b["text"],
        "method": method,
        **_word_comparison(entry_a, entry_b, method),
        "mean_entropy_a": ent_a,
        "mean_entropy_b": ent_b,
        "entropy_change": None if ent_a is None or ent_b is None else _r(ent_b - ent_a),
    }


# --------------------------------------------------------------------------- heads


def matched_layers(layers_a: int, layers_b: int) -> list[tuple[int, int]]:
    """Pairs ``(layer of A, layer of B)`` (0-based) at matched relative depth.

    Every layer i of the shorter stack is paired with layer ``round(i·(L_long − 1)/(L_short − 1))`` of the
    longer one, so first meets first and last meets last. A one-layer stack is paired with the other's
    last layer (the one the prediction is read from).
    """
    short, long_ = min(layers_a, layers_b), max(layers_a, layers_b)
    if short < 1:
        return []
    if short == 1:
        targets = [long_ - 1]
    else:
        # round half up (Python's round() is half-to-even), computed exactly in integers
        targets = [(2 * i * (long_ - 1) + (short - 1)) // (2 * (short - 1)) for i in range(short)]
    if layers_a <= layers_b:
        return list(enumerate(targets))
    return [(t, i) for i, t in enumerate(targets)]


def _shape(grid: np.ndarray) -> str:
    return f"{grid.shape[0]}×{grid.shape[1]}"


def compare_heads(entropy_a: Any, entropy_b: Any) -> dict[str, Any]:
    """Entropy of B − A per layer × head when the maps have one shape, else per-layer means at matched depth.

    Returns:
        ``mode`` (``"heads"`` or ``"layers"``), ``shape_a``/``shape_b`` ``[layers, heads]``, ``compared``
        (a sentence saying what was compared), ``mean_abs_diff``, and either ``diff`` (``[layer][head]``)
        or ``layers`` (rows of 1-based ``layer_a``, ``layer_b``, the two per-layer means and ``diff``).
    """
    ga = np.asarray(entropy_a, dtype=np.float64)
    gb = np.asarray(entropy_b, dtype=np.float64)
    result: dict[str, Any] = {"shape_a": list(ga.shape), "shape_b": list(gb.shape)}
    if ga.shape == gb.shape:
        diff = gb - ga
        result.update(
            mode="heads",
            compared=f"same shape {_shape(ga)}: per layer and head",
            mean_abs_diff=_r(float(np.abs(diff).mean())) if diff.size else None,
            diff=[[_r(v) for v in row] for row in diff],
        )
        return result
    means_a, means_b = ga.mean(axis=1), gb.mean(axis=1)
    pairs = matched_layers(len(means_a), len(means_b))
    diffs = [float(means_b[j] - means_a[i]) for i, j in pairs]
    rows = [
        {"layer_a": i + 1, "layer_b": j + 1, "a": _r(means_a[i]), "b": _r(means_b[j]), "diff": _r(d)}
        for (i, j), d in zip(pairs, diffs, strict=True)
    ]
    how = (
        "per-layer means layer by layer" if ga.shape[0] == gb.shape[0] else "per-layer means at matched relative depth"
    )
    result.update(
        mode="layers",
        compared=(
            f"A has {ga.shape[0]} layers × {ga.shape[1]} heads, B has {gb.shape[0]} × {gb.shape[1]}: "
            f"{how}; heads not compared"
        ),
        mean_abs_diff=_mean([abs(d) for d in diffs]),
        layers=rows,
    )
    return result


def _entropy_maps(summary: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """The side's dataset-mean entropy map per attention kind (only well-formed layer × head maps)."""
    heads = (summary.get("dataset") or {}).get("heads") or {}
    maps = {}
    for kind, block in heads.items():
        grid = np.asarray(block.get("entropy") or [], dtype=np.float64)
        if grid.ndim == 2 and grid.size:
            maps[kind] = grid
    return maps


def _main_kind(summary: Mapping[str, Any]) -> str | None:
    return next((e.get("explained_attention") for e in summary["examples"] if e.get("explained_attention")), None)


# --------------------------------------------------------------------------- the document


def compare_summaries(
    a: Mapping[str, Any], b: Mapping[str, Any], *, pages_a: str = "a", pages_b: str = "b"
) -> dict[str, Any]:
    """Compare two render summaries (summary.json documents with their example entries).

    Args:
        a: the baseline's summary.
        b: the other side's summary.
        pages_a: folder of A's report relative to where the compare page is written (prefixed to links).
        pages_b: the same for B.

    Returns:
        The compare document (``kind: "compare"``): ``run``, ``dataset`` (``metrics``, ``spread``,
        ``changed_most``, ``flips``, ``heads``, ``entropy``), ``examples`` (matched by id, in A's order),
        ``missing`` (ids only one side has) and ``timing``.

    Raises:
        ValueError: a side has no example entries (e.g. ``render_reports(keep_examples=False)``).
    """
    for name, side in (("A", a), ("B", b)):
        if not isinstance(side.get("examples"), list):
            raise ValueError(f"summary {name} has no example entries to compare")
    method = primary_method(a, b)
    by_id_b = {entry["id"]: entry for entry in b["examples"]}
    ids_a = {entry["id"] for entry in a["examples"]}
    examples = [
        _example(entry, by_id_b[entry["id"]], method, (pages_a, pages_b))
        for entry in a["examples"]
        if entry["id"] in by_id_b
    ]
    missing = {
        "only_a": [entry["id"] for entry in a["examples"] if entry["id"] not in by_id_b],
        "only_b": [entry["id"] for entry in b["examples"] if entry["id"] not in ids_a],
    }
    maps_a, maps_b = _entropy_maps(a), _entropy_maps(b)
    heads = {kind: compare_heads(maps_a[kind], maps_b[kind]) for kind in sorted(maps_a) if kind in maps_b}
    dataset = _dataset(a, b, examples, heads, method, missing, (pages_a, pages_b))
    statuses = [side.get("status", "complete") for side in (a, b)]
    errors = [f"{name}: {side['error']}" for name, side in (("A", a), ("B", b)) if side.get("error")]
    timing = {
        f"{name}_seconds": side["timing"]["total_seconds"]
        for name, side in (("a", a), ("b", b))
        if isinstance(side.get("timing"), Mapping) and side["timing"].get("total_seconds") is not None
    }
    return {
        "schema_version": SCHEMA_VERSION,
        "kind": "compare",
        "status": "complete" if all(s == "complete" for s in statuses) else "failed",
        "error": "; ".join(errors) or None,
        "run": {"a": dict(a["run"]), "b": dict(b["run"])},
        "dataset": dataset,
        "examples": examples,
        "missing": missing,
        "timing": timing,
    }


def _dataset(
    a: Mapping[str, Any],
    b: Mapping[str, Any],
    examples: Sequence[Mapping[str, Any]],
    heads: Mapping[str, Any],
    method: str | None,
    missing: Mapping[str, list[Any]],
    pages: tuple[str, str],
) -> dict[str, Any]:
    n = len(examples)
    flips = [e for e in examples if e["flip"]]
    rhos = [e["rank_correlation"] for e in examples if e["rank_correlation"] is not None]
    shares = [e["aligned_words"] / max(e["words_a"], e["words_b"]) for e in examples if max(e["words_a"], e["words_b"])]
    correct_a = [float(e["prediction_a"]["correct"]) for e in examples if e["prediction_a"]["correct"] is not None]
    correct_b = [float(e["prediction_b"]["correct"]) for e in examples if e["prediction_b"]["correct"] is not None]
    raw_a = sum(correct_a) / len(correct_a) if correct_a else None
    raw_b = sum(correct_b) / len(correct_b) if correct_b else None

    # Entropy drift: on the explained attention, per layer × head when the maps match, else overall means.
    kind_a, kind_b = _main_kind(a), _main_kind(b)
    main = heads.get(kind_a) if kind_a is not None and kind_a == kind_b else None
    mean_a = (a.get("dataset") or {}).get("metrics", {}).get("mean_entropy")
    mean_b = (b.get("dataset") or {}).get("metrics", {}).get("mean_entropy")
    if main is not None and main["mode"] == "heads":
        drift, basis = main["mean_abs_diff"], f"mean |B − A| of the {kind_a}-attention entropy per layer and head"
    elif mean_a is not None and mean_b is not None:
        drift, basis = _r(abs(mean_b - mean_a)), "|B − A| of the overall mean entropy of the explained attention"
    else:
        drift, basis = None, "no entropy on one side (run the heads method on both)"

    metrics: dict[str, float | int | None] = {
        "examples": n,
        "examples_only_a": len(missing["only_a"]),
        "examples_only_b": len(missing["only_b"]),
        "prediction_flips": len(flips),
        "flip_rate": _r(len(flips) / n) if n else None,
        "mean_rank_correlation": _mean(rhos),
        "min_rank_correlation": min(rhos) if rhos else None,
        "mean_aligned_share": _mean(shares),
        "entropy_drift": drift,
        "mean_entropy_a": mean_a,
        "mean_entropy_b": mean_b,
        "accuracy_a": _r(raw_a),
        "accuracy_b": _r(raw_b),
        "accuracy_change": None if raw_a is None or raw_b is None else _r(raw_b - raw_a),
    }
    spread = {
        "mean_rank_correlation": _std(rhos),
        "mean_aligned_share": _std(shares),
    }
    # An unchanged ranking (ρ = 1) is never listed as changed.
    ranked = sorted(
        (k for k, e in enumerate(examples) if e["rank_correlation"] is not None and e["rank_correlation"] < 1.0),
        key=lambda k: (examples[k]["rank_correlation"], k),
    )
    changed_most = [
        {
            "id": examples[k]["id"],
            "rank_correlation": examples[k]["rank_correlation"],
            "page_a": examples[k]["page_a"],
            "page_b": examples[k]["page_b"],
        }
        for k in ranked[:CHANGED_MOST]
    ]
    return {
        "method": method,
        "methods": {
            "a": (a.get("dataset") or {}).get("primary_method"),
            "b": (b.get("dataset") or {}).get("primary_method"),
        },
        "metrics": metrics,
        "spread": spread,
        "entropy": {"kind": kind_a if kind_a == kind_b else None, "drift_basis": basis},
        "changed_most": changed_most,
        "flips": [
            {
                "id": e["id"],
                "label": e["label"],
                "prediction_a": e["prediction_a"],
                "prediction_b": e["prediction_b"],
                "page_a": e["page_a"],
                "page_b": e["page_b"],
            }
            for e in flips
        ],
        "heads": dict(heads),
    }


# --------------------------------------------------------------------------- running and writing


def _diverging(value: float | None, scale: float) -> dict[str, Any]:
    """Cell colours for a signed difference: blues above 0, orange below, white at 0."""
    if value is None:
        return {"value": None, "bg": "#eeeeee", "fg": "#555555"}
    level = min(abs(value) / scale, 1.0) if scale > 0 else 0.0
    if value >= 0:
        bg = hex_colour(level)
    else:
        rgb = 255.0 + (_ORANGE - 255.0) * level
        bg = "#" + "".join(f"{int(round(c)):02x}" for c in rgb)
    return {"value": value, "bg": bg, "fg": text_colour(level)}


def _head_views(heads: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    views = []
    for kind, block in heads.items():
        if block["mode"] == "heads":
            values = [v for row in block["diff"] for v in row if v is not None]
            scale = max([MIN_COLOUR_SCALE, *(abs(v) for v in values)])
            cells = [[_diverging(v, scale) for v in row] for row in block["diff"]]
            views.append({"kind": kind, "block": block, "scale": scale, "cells": cells, "layers": []})
        else:
            values = [row["diff"] for row in block["layers"] if row["diff"] is not None]
            scale = max([MIN_COLOUR_SCALE, *(abs(v) for v in values)])
            layers = [{**row, "cell": _diverging(row["diff"], scale)} for row in block["layers"]]
            views.append({"kind": kind, "block": block, "scale": scale, "cells": [], "layers": layers})
    return views


def _legend() -> list[str]:
    return [_diverging(v / 4, 1.0)["bg"] for v in range(-4, 5)]


def compare_page(document: Mapping[str, Any]) -> str:
    """Render ``compare.html`` (self-contained, autoescaped, no network) from a compare document."""
    from attnviz.output.html import render_template

    run_a, run_b = document["run"]["a"], document["run"]["b"]
    run = {**run_a, "model": f"{run_a.get('model')} vs {run_b.get('model')}"}
    return render_template(
        "compare.html.j2",
        run=run,
        doc=document,
        run_a=run_a,
        run_b=run_b,
        ds=document["dataset"],
        heads=_head_views(document["dataset"]["heads"]),
        legend=_legend(),
    )


def write_compare(document: Mapping[str, Any], out_dir: Path) -> None:
    """Write ``summary.json`` and ``compare.html`` into ``out_dir`` (atomically, each via a temp file).

    Raises:
        OutputError: the folder or a file cannot be written (exit 5).
    """
    from attnviz.output.base import write_text

    out_dir = Path(out_dir)
    text = json.dumps(document, indent=1, ensure_ascii=False, allow_nan=False) + "\n"
    page = compare_page(document)
    try:
        write_text(out_dir / "summary.json", text)
        write_text(out_dir / "compare.html", page)
    except OSError as err:
        raise OutputError(f"cannot write the comparison in '{out_dir}': {err.strerror or err}") from None
