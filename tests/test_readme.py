"""The README states defaults that the code defines: a test keeps them in step."""

from __future__ import annotations

import re
from pathlib import Path

from typer.testing import CliRunner

from attnviz.cli import app
from attnviz.config import (
    DEFAULT_FORMATS,
    DEFAULT_IG_STEPS,
    DEFAULT_METHODS,
    DEFAULT_PNG_LAYERS,
    DEFAULT_PRESET,
    DEFAULT_TRUST_SAMPLE,
    IG_FIRST_STEPS,
    PRESETS,
)
from attnviz.model.predictor import CHUNK_TOKENS, GPU_MEMORY_SHARE

README = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")


def _flat(text: str) -> str:
    """Text with runs of whitespace (and the help's box borders) as one space."""
    return re.sub(r"\s+", " ", text.replace("│", " "))


def test_readme_defaults_match_the_code() -> None:
    text = _flat(README)
    assert f"The default is `{', '.join(DEFAULT_METHODS)}`" in text
    assert f"`--format {','.join(DEFAULT_FORMATS)}` (the default)" in text
    assert f"(default `{DEFAULT_PNG_LAYERS}`" in text
    assert f"up to `--ig-steps` (default {DEFAULT_IG_STEPS})" in text
    assert f"`--trust-sample` input records (default {DEFAULT_TRUST_SAMPLE};" in text
    assert f"IG starts with {IG_FIRST_STEPS} Gauss-Legendre steps" in text
    assert f"at most {CHUNK_TOKENS:,} padded tokens (`CHUNK_TOKENS`)" in text
    assert f"{GPU_MEMORY_SHARE:.0%}".replace("%", " %") + " (`GPU_MEMORY_SHARE`)" in text


def test_help_states_the_code_defaults() -> None:
    help_text = _flat(CliRunner().invoke(app, ["render", "--help"], terminal_width=400).output)
    assert f"Default: the preset's ({DEFAULT_PRESET}: {', '.join(DEFAULT_FORMATS)})." in help_text
    assert f"{', '.join(PRESETS)} (see 'attnviz list'). Default: {DEFAULT_PRESET};" in help_text
    assert PRESETS[DEFAULT_PRESET].formats == DEFAULT_FORMATS and PRESETS[DEFAULT_PRESET].methods == DEFAULT_METHODS
