"""One colour scale shared by the HTML shading and the PNG heatmaps, so both agree."""

from __future__ import annotations

import numpy as np

# Sequential palette (white → deep blue), sampled from ColorBrewer "Blues"; index 0 is zero importance.
PALETTE: tuple[str, ...] = (
    "#ffffff",
    "#f0f6fc",
    "#deebf7",
    "#c6dbef",
    "#9ecae1",
    "#6baed6",
    "#4292c6",
    "#2171b5",
    "#08519c",
    "#08306b",
)


def normalize(values: np.ndarray, vmax: float | None = None) -> np.ndarray:
    """Scale non-negative scores to [0, 1] by ``vmax`` (default: their maximum); negatives clip to 0."""
    values = np.asarray(values, dtype=np.float64)
    top = float(np.nanmax(values)) if vmax is None and values.size else float(vmax or 0.0)
    if not np.isfinite(top) or top <= 0:
        return np.zeros_like(values)
    return np.clip(np.nan_to_num(values / top), 0.0, 1.0)


def _rgb(hex_colour: str) -> np.ndarray:
    return np.array([int(hex_colour[i : i + 2], 16) for i in (1, 3, 5)], dtype=np.float64)


_STOPS = np.stack([_rgb(c) for c in PALETTE])


def rgb(levels: np.ndarray | float) -> np.ndarray:
    """Colours for normalised levels in [0, 1]: (...) → (..., 3) uint8, linearly interpolated between palette stops.

    The one colour formula: HTML shading, canvas heatmaps and PNGs all come from it.
    """
    x = np.clip(np.nan_to_num(np.asarray(levels, dtype=np.float64)), 0.0, 1.0) * (len(PALETTE) - 1)
    low = np.floor(x).astype(int)
    high = np.minimum(low + 1, len(PALETTE) - 1)
    return np.round(_STOPS[low] + (_STOPS[high] - _STOPS[low]) * (x - low)[..., None]).astype(np.uint8)


def hex_colour(level: float) -> str:
    """Colour for a normalised level in [0, 1] as ``#rrggbb``."""
    return "#" + "".join(f"{int(c):02x}" for c in rgb(level))


def level_classes(levels: np.ndarray) -> list[str]:
    """CSS classes of the palette stops nearest to levels in [0, 1] (``c0`` … ``c9``): colours without inline styles."""
    stops = np.rint(np.clip(np.nan_to_num(np.asarray(levels, dtype=np.float64)), 0.0, 1.0) * (len(PALETTE) - 1))
    return [f"c{int(i)}" for i in np.ravel(stops)]


def text_colour(level: float) -> str:
    """Dark text on light cells, white on dark ones."""
    return "#ffffff" if level > 0.55 else "#111111"
