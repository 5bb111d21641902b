"""Reading what an example page carries: its heatmaps' labels and the packed matrices its script draws."""

from __future__ import annotations

import base64
import json
import zlib
from typing import Any

import numpy as np
from bs4 import BeautifulSoup


def dequantise(packed: dict[str, Any], shape: tuple[int, ...]) -> np.ndarray:
    """(L, H, q, k) matrices from a page's packed data: value = level / levels · scale."""
    levels = np.frombuffer(zlib.decompress(base64.b64decode(packed["data"])), dtype=np.uint8).reshape(shape)
    return levels / packed["levels"] * np.asarray(packed["scale"])[:, :, None, None]


def heatmaps(page: BeautifulSoup) -> dict[str, dict[str, Any]]:
    """Per attention kind, in page order: row and column labels (full text) and every layer's head mean (L, q, k)."""
    data = json.loads(page.find("script", id="attnviz-data").string)
    payloads = {p["kind"]: p for p in data["attentions"]}
    found = {}
    for box in page.select(".hm[data-kind]"):
        payload = payloads[box["data-kind"]]
        shape = (payload["num_layers"], 1, payload["q"], payload["k"])
        found[box["data-kind"]] = {
            "rows": [span["title"] for span in box.select(".hm-rows span")],
            "cols": [span["title"] for span in box.select(".hm-cols span")],
            "mean": dequantise(payload["mean"], shape)[:, 0],
            "payload": payload,
        }
    return found
