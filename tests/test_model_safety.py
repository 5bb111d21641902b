"""Loading models safely: no remote code without --trust-remote-code (head folders included), pickle weights
warned about or refused with exit 4, a folder without a tokenizer refused, generation kept inside the positions."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from click.testing import Result
from safetensors.torch import load_file
from typer.testing import CliRunner

from attnviz.cli import app

MARKER_CODE = """
from pathlib import Path
Path({marker!r}).write_text("custom code ran")
from transformers import BertConfig, BertModel


class CustomConfig(BertConfig):
    model_type = "attnviz-custom"


class CustomModel(BertModel):
    config_class = CustomConfig
"""


def cli(*args: str, stdin: str = "") -> Result:
    """The command in-process; ``stdin`` is what a remote-code prompt would read as its answer."""
    return CliRunner().invoke(app, list(args), input=stdin)


def copy_model(source: Path, folder: Path) -> Path:
    shutil.copytree(source, folder)
    return folder


def pickle_only(source: Path, folder: Path) -> Path:
    """The same model with its weights as a pickle ``pytorch_model.bin`` instead of safetensors."""
    copy_model(source, folder)
    weights = load_file(str(folder / "model.safetensors"))
    (folder / "model.safetensors").unlink()
    torch.save(weights, folder / "pytorch_model.bin")
    return folder


class RunsCode:
    """A pickle payload: loading it would run a shell command that writes a marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, (f"echo ran > {self.marker}",))


@pytest.fixture(scope="module")
def bert(tiny_path: Callable[..., Path]) -> Path:
    return tiny_path("bert-classifier")


def test_head_folder_never_runs_its_base_models_custom_code(tmp_path: Path, tiny_path: Callable[..., Path]) -> None:
    """A base folder with ``auto_map`` code: refused without --trust-remote-code, even when stdin says yes."""
    base = copy_model(tiny_path("bert-base"), tmp_path / "base")
    marker = tmp_path / "ran.txt"
    (base / "custom.py").write_text(MARKER_CODE.format(marker=str(marker)), encoding="utf-8")
    config = json.loads((base / "config.json").read_text(encoding="utf-8"))
    # A model type transformers does not know: only the folder's own code could load it.
    config["model_type"] = "attnviz-custom"
    config["auto_map"] = {"AutoConfig": "custom.CustomConfig", "AutoModel": "custom.CustomModel"}
    (base / "config.json").write_text(json.dumps(config), encoding="utf-8")
    head = tmp_path / "head"
    head.mkdir()
    hidden = config["hidden_size"]
    spec = {
        "format": 1,
        "pooling": "mean",
        "base": str(base),
        "labels": ["neg", "pos"],
        "weight": [[0.0] * hidden, [0.01] * hidden],
        "bias": [0.0, 0.0],
    }
    (head / "attnviz_head.json").write_text(json.dumps(spec), encoding="utf-8")
    result = cli("render", "a fine day", "--model", str(head), "--out", str(tmp_path / "out"), stdin="y\ny\n")
    assert not marker.exists(), result.stderr
    assert result.exit_code == 4, result.stderr
    assert "custom code" in result.stderr and "pass --trust-remote-code to allow it" in result.stderr


def test_pickle_weights_load_with_a_warning(tmp_path: Path, bert: Path) -> None:
    model = pickle_only(bert, tmp_path / "pickle")
    result = cli("render", "a fine day", "--model", str(model), "--format", "json", "--out", str(tmp_path / "out"))
    assert result.exit_code == 0, result.stderr
    assert "attnviz: warning:" in result.stderr and "pickle weights" in result.stderr


def test_pickle_that_would_run_code_is_refused_with_exit_4(tmp_path: Path, bert: Path) -> None:
    model = pickle_only(bert, tmp_path / "evil")
    marker = tmp_path / "ran.txt"
    torch.save({"weight": RunsCode(marker)}, model / "pytorch_model.bin")
    result = cli("render", "a fine day", "--model", str(model), "--format", "json", "--out", str(tmp_path / "out"))
    assert result.exit_code == 4, result.stderr
    assert "would run code when loaded, so they were refused" in result.stderr
    assert "Traceback" not in result.stderr and "unexpected" not in result.stderr
    assert not marker.exists()


def test_folder_without_tokenizer_exits_4_naming_what_is_missing(tmp_path: Path, bert: Path) -> None:
    model = copy_model(bert, tmp_path / "notok")
    for file in model.iterdir():
        if file.name not in ("config.json", "model.safetensors"):
            file.unlink()
    result = cli("render", "a fine day", "--model", str(model), "--format", "json", "--out", str(tmp_path / "out"))
    assert result.exit_code == 4, result.stderr
    assert "has no tokenizer (none of tokenizer.json" in result.stderr


def test_generation_longer_than_the_positions_is_refused(tmp_path: Path, tiny_path: Callable[..., Path]) -> None:
    model = str(tiny_path("gpt2-lm"))
    out = tmp_path / "out"
    result = cli(
        "render", "the cat", "--model", model, "--format", "json", "--out", str(out), "--max-new-tokens", "500"
    )
    assert result.exit_code == 2, result.stderr
    assert "--max-new-tokens 500 leaves no room for the prompt in the 128 positions" in result.stderr
    assert "IndexError" not in result.stderr


def test_seq2seq_generation_stops_at_the_positions(tiny_loaded: Callable) -> None:
    from attnviz.config import GenerationOptions
    from attnviz.model.tasks.generate import generate_ids

    loaded = tiny_loaded("bart-seq2seq")
    ids = loaded.tokenizer("the cat sat")["input_ids"]
    new = generate_ids(loaded.model, loaded.tokenizer, ids, GenerationOptions(max_new_tokens=500), room=12)
    assert 1 <= len(new) <= 12


def test_a_model_whose_output_is_nan_is_a_model_error(tiny_path: Callable[..., Path], tmp_path: Path) -> None:
    from transformers import AutoModelForSequenceClassification

    broken = tmp_path / "nan-model"
    shutil.copytree(tiny_path("bert-classifier"), broken)
    model = AutoModelForSequenceClassification.from_pretrained(broken)
    with torch.no_grad():
        model.classifier.bias[0] = float("nan")
    model.save_pretrained(broken)
    out = tmp_path / "out"
    result = cli("render", "good film", "--model", str(broken), "--method", "attention", "--format", "json",
                 "--out", str(out))  # fmt: skip
    assert result.exit_code == 4, result.output
    assert "the model's output for example 'text-1' (<argument 1>) is not a finite number" in result.stderr
    assert json.loads((out / "summary.json").read_text(encoding="utf-8"))["status"] == "failed"
