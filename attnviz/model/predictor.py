"""Re-running the model on edited inputs: the one way analyses after capture may call the model.

A :class:`Predictor` holds one example's scored token sequence and answers two questions with numpy
in and out: "what is the explained score when only these tokens are kept?" (erasure faithfulness)
and "what do gradient attributions say about each token?" (agreement). Task adapters build it.
"""

from __future__ import annotations

import math
import time
import weakref
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from attnviz.errors import ModelError
from attnviz.model.loaded import LoadedModel

Erasure = Literal["delete", "mask"]
#: Padded tokens per forward pass (rows × longest), for edited copies and for gradient steps alike, off a GPU: bounds
#: memory at any input length (a backward keeps each row's activations), and on a CPU, where the time is the tokens,
#: larger passes would not be faster.
CHUNK_TOKENS = 4096
#: On a GPU a pass costs about the same whatever its rows, so passes are as large as memory allows: a pass may take
#: this share of the device memory free when the model's first predictor is built (see :func:`pass_budget`).
GPU_MEMORY_SHARE = 0.5
#: What one more forward pass costs, in padded tokens, when splitting edited copies into passes. On a CPU the time
#: is about proportional to padded tokens, plus about 5 ms a pass, which is the time of some 30 tokens of MiniLM
#: (measured with the demo model: 55 copies of 3 to 21 tokens took 216 ms in one pass of 1,155 padded tokens, 163 ms
#: in two of 903). On a GPU padding is nearly free and a pass is not: there, copies go in as few passes as the
#: budget allows.
CPU_PASS_TOKENS = 32


@dataclass(frozen=True)
class Attributions:
    """Gradient attributions of one example.

    Attributes:
        input_x_gradient: (n,) Σ_d x_d · ∂F/∂x_d per token.
        integrated_gradients: (n,) Σ_d IG_d per token.
        delta: |Σ IG − (F(x) − F(baseline))|, IG's convergence delta.
        gap: |F(x) − F(baseline)|, what the IG attributions should sum to.
    """

    input_x_gradient: np.ndarray
    integrated_gradients: np.ndarray
    delta: float
    gap: float

    @property
    def relative_delta(self) -> float:
        """The delta as a share of the gap; with no gap, 0 when the attributions sum to nothing as they should, else
        infinite (however small, a sum that should be 0 is not)."""
        if self.gap > 0:
            return self.delta / self.gap
        return 0.0 if self.delta == 0 else math.inf


@dataclass
class PassBudget:
    """The most padded tokens one forward pass may hold. Mutable and shared by a model's predictors, so that a pass
    that ran out of device memory lowers it for the rest of the run."""

    tokens: int

    def shrink(self, failed: int) -> None:
        """A pass of ``failed`` padded tokens ran out of memory: the budget becomes half of it (or less)."""
        self.tokens = max(1, min(self.tokens, failed) // 2)


@dataclass
class Predictor:
    """Scores edited copies of one example and attributes its score to its input embeddings.

    Attributes:
        sequence: name of the scored token sequence in ``Capture.sequences``.
        ids: (n,) its token ids.
        removable: (n,) tokens erasure may remove: never special tokens (and for ``lm`` only the prompt).
        mask_id: the id ``--erasure mask`` puts in place of a removed token.
        run_model: ``(key, x, mask, types)`` → the model's outputs for a right-padded batch: ``x`` is (B, w) ids
            (``key`` ``input_ids``) or (B, w, D) embeddings (``inputs_embeds``), ``mask`` the (B, w) attention
            mask, ``types`` each row's token types (None entries, or empty, when the model takes none). Gradient
            mode is the caller's.
        read: ``(outputs, rows, mask, positions)`` → this example's (R,) scores of the rows ``rows`` (a (R,) index
            into the outputs), given for each row the original position of each of its tokens (-1 for a token
            ``--erasure mask`` replaced: it is no longer the original).
        embed: (B, n) ids → (B, n, D) input embeddings, exactly as the model computes them.
        baseline_ids: (n,) the integrated-gradients baseline: special tokens kept, the rest ``pad``.
        pad_id: the id padding positions get.
        device: where the model's inputs go.
        share: predictors with the same (not None) ``share`` run one model the same way, so the copies and gradient
            steps of several examples may go through it in one pass (:func:`score_copies`, :func:`attribute`);
            None: only this example's.
        segments: (n,) token type of each position, or None when the model takes no token types.
        pass_tokens: the cost of one more forward pass, in padded tokens (see :data:`CPU_PASS_TOKENS`).
        budget: the most padded tokens a pass may hold, shared by the predictors of one model (:func:`pass_budget`).
        calls: edited copies asked for so far; distinct: how many of them were different (each is scored once);
        seconds: time spent scoring and attributing.
    """

    sequence: str
    ids: list[int]
    removable: np.ndarray
    mask_id: int
    run_model: Callable[[str, Any, Any, Sequence[np.ndarray | None]], Any]
    read: Callable[[Any, Any, Any, list[np.ndarray]], Any]
    embed: Callable[[Any], Any]
    baseline_ids: list[int]
    pad_id: int
    device: Any
    share: Hashable | None = None
    segments: np.ndarray | None = None
    pass_tokens: int = CHUNK_TOKENS
    budget: PassBudget = field(default_factory=lambda: PassBudget(CHUNK_TOKENS))
    calls: int = 0
    seconds: float = 0.0
    _attributions: dict[int, Attributions] = field(default_factory=dict)
    _fixed: tuple[np.ndarray, float] | None = None  # Input×Gradient and F(x) − F(baseline): the same for any steps
    _scored: dict[tuple[Erasure, bytes], float] = field(default_factory=dict)

    @property
    def distinct(self) -> int:
        return len(self._scored)

    def score(self, keep: np.ndarray, erasure: Erasure = "delete") -> np.ndarray:
        """(V, n) kept-token masks → (V,) explained scores; deletion drops tokens, masking replaces them.

        Each distinct edited copy is scored once (bins that round to the same count and methods that agree on
        their top tokens ask for the same copy), through :func:`score_copies`; copies scored before (by an
        earlier call, or by :func:`score_copies` for a batch of examples) are not scored again.
        """
        rows = np.asarray(keep, dtype=bool)
        score_copies([(self, rows, erasure)])
        self.calls += len(rows)
        return np.array([self._scored[(erasure, row.tobytes())] for row in rows], dtype=np.float64)

    def new_copies(self, keep: np.ndarray, erasure: Erasure) -> list[_Copy]:
        """The distinct copies ``keep`` asks for that are not scored yet, in the order first asked for."""
        found: dict[tuple[Erasure, bytes], _Copy] = {}
        for row in np.asarray(keep, dtype=bool):
            key = (erasure, row.tobytes())
            if key in self._scored or key in found:
                continue
            if erasure == "delete":
                kept = places = np.flatnonzero(row)
                ids = [self.ids[i] for i in kept]
            else:
                places = np.arange(len(self.ids))
                kept = np.where(row, places, -1)  # a masked token keeps its place, not its identity
                ids = [token if row[i] else self.mask_id for i, token in enumerate(self.ids)]
            types = None if self.segments is None else self.segments[places]
            found[key] = _Copy(self, key, ids, kept, types)
        return list(found.values())

    def forward_copies(self, variants: list[list[int]], types: list[np.ndarray | None]) -> tuple[Any, Any]:
        """Edited id lists and each one's token types → the model's outputs and the (V, w) attention mask of the
        padded copies, under ``inference_mode``."""
        import torch

        ids, mask = pad_batch(variants, self.pad_id, self.device)
        with torch.inference_mode():
            return self.run_model("input_ids", ids, mask, types), mask

    def full_score(self) -> float:
        """The explained score of the unedited input."""
        return float(self.score(np.ones((1, len(self.ids)), dtype=bool))[0])

    def attributions(self, steps: int) -> Attributions:
        """Input×Gradient and Integrated Gradients per token (signed sums over embedding dimensions), IG's
        convergence delta and what it should sum to, through :func:`attribute` (once per step count)."""
        attribute([(self, steps)])
        return self._attributions[steps]

    def attributed(self, steps: int) -> Attributions | None:
        """The attributions with ``steps`` steps when they are computed already; None otherwise."""
        return self._attributions.get(steps)


@dataclass(frozen=True)
class _Copy:
    """One edited copy waiting for its score: whose it is, its key there, its ids, the original position of each
    token (-1: masked) and its token types."""

    owner: Predictor
    key: tuple[Erasure, bytes]
    ids: list[int]
    kept: np.ndarray
    types: np.ndarray | None


def _share_key(owner: Predictor) -> Hashable:
    """The model call ``owner``'s rows can share with other predictors' (``Predictor.share``; alone when None)."""
    return owner.share if owner.share is not None else ("alone", id(owner))


def _charge(owners: Sequence[Predictor], start: float) -> None:
    """Split the time since ``start`` evenly between the distinct ``owners`` (they shared the passes)."""
    distinct = {id(owner): owner for owner in owners}
    for owner in distinct.values():
        owner.seconds += (time.perf_counter() - start) / len(distinct)


def _in_passes(items: list[Any], length: Callable[[Any], int], run: Callable[[list[Any]], None]) -> None:
    """Run ``items`` sorted by length (stable: equal lengths keep their order) in the passes :func:`pass_sizes`
    chooses for their owner's budget and pass cost.

    A pass that runs out of device memory changed nothing (``run`` keeps its results only at its end): the budget
    shrinks to half of it and the items not done yet are split again. One item alone that does not fit is a
    :class:`ModelError` that says what to change.
    """
    import torch

    items.sort(key=length)
    lengths = [length(item) for item in items]
    owner = items[0].owner
    sizes = pass_sizes(lengths, owner.budget.tokens, owner.pass_tokens)
    done = 0
    while done < len(items):
        size = sizes.pop(0)
        try:
            run(items[done : done + size])
        except torch.OutOfMemoryError as err:
            if size == 1:
                raise ModelError(
                    f"one sequence of {lengths[done]} tokens does not fit in device memory for the trust checks' "
                    "passes: lower --max-length, use --device cpu, or leave out faithfulness and agreement"
                ) from err
        else:
            done += size
            continue
        # Out of the handler, the failed pass's tensors (its traceback held them) are free to give back.
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        owner.budget.shrink(size * lengths[done + size - 1])
        sizes = pass_sizes(lengths[done:], owner.budget.tokens, owner.pass_tokens)


def score_copies(requests: Sequence[tuple[Predictor, np.ndarray, Erasure]]) -> None:
    """Score the new distinct copies that each ``(predictor, (V, n) kept-token masks, erasure)`` asks for, so that
    the predictors' :meth:`Predictor.score` finds them scored.

    The copies of predictors that share a model call (same ``share``) go through it together, whatever example
    they come from: sorted by length, in passes of at most their budget's padded tokens split where the padding
    saved is worth a pass (:func:`pass_sizes`). A copy's score depends on the other copies of its pass only
    through padding, that is float rounding.
    """
    start = time.perf_counter()
    groups: dict[Hashable, list[_Copy]] = {}
    for predictor, keep, erasure in requests:
        groups.setdefault(_share_key(predictor), []).extend(predictor.new_copies(keep, erasure))
    for copies in filter(None, groups.values()):  # a group with nothing new costs nothing
        _in_passes(copies, lambda copy: len(copy.ids), _score_pass)
    _charge([predictor for predictor, _, _ in requests], start)


def _score_pass(copies: Sequence[_Copy]) -> None:
    """One forward pass over ``copies``; each owner reads its own rows."""
    import torch

    outputs, mask = copies[0].owner.forward_copies([c.ids for c in copies], [c.types for c in copies])
    for owner, rows in _rows_by_owner(copies):
        index = torch.tensor(rows, device=mask.device)
        with torch.inference_mode():
            values = owner.read(outputs, index, mask, [copies[r].kept for r in rows])
        owner._scored.update(zip((copies[r].key for r in rows), values.float().cpu().numpy().tolist(), strict=True))


def _rows_by_owner(items: Sequence[Any]) -> list[tuple[Predictor, list[int]]]:
    """Each owner of a pass's rows, with its rows (identity, not equality, tells owners apart)."""
    found: dict[int, tuple[Predictor, list[int]]] = {}
    for row, item in enumerate(items):
        found.setdefault(id(item.owner), (item.owner, []))[1].append(row)
    return list(found.values())


@dataclass
class _Job:
    """The gradient passes one predictor asks for: ``steps`` Integrated Gradients steps, or (``steps`` None) the
    step-free part: the input (Input×Gradient and F(x)) and the baseline (F(baseline)).

    ``inputs``, ``baseline``: (n, D) embeddings; ``alphas``, ``weights``: captum's Gauss-Legendre points on [0, 1],
    α = (1 + x) / 2 and w / 2 of numpy's ``leggauss``, the weights float32 as captum multiplies them; ``total``:
    (n, D) Σ_s w_s ∂F/∂x(α_s), summed as the steps come; ``scores``: F(x) and F(baseline) of the step-free part.
    """

    owner: Predictor
    steps: int | None
    inputs: Any
    baseline: Any
    alphas: list[float] = field(default_factory=list)
    weights: Any = None
    total: Any = None
    scores: dict[int, Any] = field(default_factory=dict)
    input_x_gradient: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.steps is not None:
            import torch

            nodes, weights = np.polynomial.legendre.leggauss(self.steps)
            self.alphas = (0.5 * (1 + nodes)).tolist()
            self.weights = torch.tensor((0.5 * weights).tolist()).float().to(self.inputs.device)

    @property
    def rows(self) -> int:
        """How many points (rows of gradient passes) the job has."""
        return 2 if self.steps is None else self.steps

    def point(self, index: int) -> Any:
        """(n, D) embeddings of point ``index``: a step b + α (x − b) as captum forms it, or the input, the
        baseline."""
        if self.steps is not None:
            return self.baseline + self.alphas[index] * (self.inputs - self.baseline)
        return self.inputs if index == 0 else self.baseline

    def take(self, index: int, score: Any, gradient: Any) -> None:
        """Keep what point ``index``'s pass gave: its (n, D) gradient and its score."""
        if self.steps is not None:
            weighted = gradient * self.weights[index]
            self.total = weighted if self.total is None else self.total + weighted
            return
        if index == 0:
            self.input_x_gradient = (self.inputs * gradient).sum(dim=-1).double().cpu().numpy()
        self.scores[index] = score


@dataclass(frozen=True)
class _Point:
    """One row of a gradient pass: point ``index`` of ``job``."""

    job: _Job
    index: int

    @property
    def owner(self) -> Predictor:
        return self.job.owner


def attribute(requests: Sequence[tuple[Predictor, int]]) -> None:
    """Compute Input×Gradient and ``steps``-step Integrated Gradients for each ``(predictor, steps)`` not computed
    yet, so that :meth:`Predictor.attributions` finds them.

    Integrated Gradients is captum's ``IntegratedGradients`` with ``method="gausslegendre"`` on the input
    embeddings (encoder-decoders: the source's): Σ_s w_s ∂F/∂x at b + α_s (x − b), times (x − b), summed over the
    embedding dimensions; its delta is |Σ IG − (F(x) − F(baseline))|. Input×Gradient is x · ∂F/∂x (captum's
    ``InputXGradient``), and F(x) comes from the same pass. The points of every request (the input, the baseline
    and each step) are rows of shared passes of at most their budget's tokens, examples of one length together
    and never padded: given embeddings instead of ids, a model cannot tell padding apart (GPT-2's classifier pools
    the last position that is not ``pad``, found from the ids). A row's gradient depends on the other rows of its
    pass only through float rounding.
    """
    start = time.perf_counter()
    jobs: list[_Job] = []
    asked: set[tuple[int, int | None]] = set()  # (predictor, steps), None for the step-free part
    for predictor, steps in requests:
        if steps in predictor._attributions or (id(predictor), steps) in asked:
            continue
        inputs, baseline = _embeddings(predictor)
        for wanted in (None, steps) if predictor._fixed is None else (steps,):
            if (id(predictor), wanted) not in asked:
                asked.add((id(predictor), wanted))
                jobs.append(_Job(predictor, wanted, inputs, baseline))
    groups: dict[Hashable, list[_Point]] = {}  # one model call and one length: no padding
    for job in jobs:
        key = (_share_key(job.owner), len(job.owner.ids))
        groups.setdefault(key, []).extend(_Point(job, index) for index in range(job.rows))
    for points in groups.values():
        _in_passes(points, lambda point: len(point.owner.ids), _gradient_pass)
    for job in jobs:  # step-free jobs come before their predictor's step jobs
        _finish(job)
    _charge([job.owner for job in jobs], start)


def _gradient_pass(points: Sequence[_Point]) -> None:
    """One forward and backward pass over ``points`` (all of one length): each owner reads its rows' scores, whose
    sum is differentiated with respect to every row's embeddings."""
    import torch

    first = points[0].owner
    embeds = torch.stack([point.job.point(point.index) for point in points])
    mask = torch.ones(embeds.shape[:2], dtype=torch.long, device=embeds.device)
    everything = np.arange(embeds.shape[1])
    with torch.enable_grad():
        embeds.requires_grad_()
        outputs = first.run_model("inputs_embeds", embeds, mask, [point.owner.segments for point in points])
        scores = torch.zeros(len(points), device=embeds.device)
        for owner, rows in _rows_by_owner(points):
            index = torch.tensor(rows, device=embeds.device)
            scores = scores.index_add(0, index, owner.read(outputs, index, mask, [everything] * len(rows)).float())
        (gradient,) = torch.autograd.grad(scores.sum(), embeds)
    for row, point in enumerate(points):
        point.job.take(point.index, scores[row].detach(), gradient[row])


def _finish(job: _Job) -> None:
    """Store what the job's passes gave in its predictor."""
    owner = job.owner
    if job.steps is None:
        owner._fixed = (job.input_x_gradient, float(job.scores[0] - job.scores[1]))
        return
    ixg, gap = owner._fixed
    ig = (job.total * (job.inputs - job.baseline)).sum(dim=-1).detach().double().cpu().numpy()
    owner._attributions[job.steps] = Attributions(ixg, ig, abs(float(ig.sum()) - gap), abs(gap))


def pass_sizes(lengths: Sequence[int], budget: int, pass_tokens: int) -> list[int]:
    """Split sequences sorted by increasing length into consecutive forward passes: each pass at most ``budget``
    padded tokens (rows × its longest, its last; one sequence alone may exceed it), and, within that, the split
    with the fewest padded tokens plus ``pass_tokens`` for each pass (dynamic programming over the cut points; of
    equal splits, the one with the shortest last pass)."""
    count = len(lengths)
    best = np.full(count + 1, np.inf)  # best[end]: cheapest split of lengths[:end]
    best[0] = 0.0
    start_of = np.zeros(count + 1, dtype=np.int64)
    for end in range(1, count + 1):
        width = lengths[end - 1]
        first = end - max(1, budget // width if width else end)  # the most rows within the budget
        starts = np.arange(max(0, first), end)
        costs = best[starts] + (end - starts) * width + pass_tokens
        last = len(costs) - 1 - int(np.argmin(costs[::-1]))  # of equal costs, the latest start
        best[end], start_of[end] = costs[last], starts[last]
    sizes, end = [], count
    while end:
        sizes.append(end - int(start_of[end]))
        end = int(start_of[end])
    return sizes[::-1]


def pad_batch(variants: Sequence[Sequence[int]], pad: int, device: Any) -> tuple[Any, Any]:
    """Right-pad id lists into (B, n) ids and attention mask tensors."""
    import torch

    width = max(len(v) for v in variants)
    ids = torch.full((len(variants), width), pad, dtype=torch.long)
    mask = torch.zeros((len(variants), width), dtype=torch.long)
    for b, v in enumerate(variants):
        ids[b, : len(v)] = torch.tensor(list(v), dtype=torch.long)
        mask[b, : len(v)] = 1
    return ids.to(device), mask.to(device)


def mask_token_id(tokenizer: Any) -> int:
    for candidate in (tokenizer.mask_token_id, tokenizer.unk_token_id, tokenizer.pad_token_id):
        if candidate is not None:
            return int(candidate)
    return 0


def _embeddings(predictor: Predictor) -> tuple[Any, Any]:
    """(n, D) embeddings of the input and of the IG baseline."""
    import torch

    with torch.no_grad():
        return tuple(
            predictor.embed(torch.tensor([ids], dtype=torch.long, device=predictor.device))[0]
            for ids in (predictor.ids, predictor.baseline_ids)
        )


Read = Callable[[Any, Any, Any, list[np.ndarray]], Any]
# Per model, weakly: a model freed and another loaded at its address must not find the first one's.
_EMBEDDERS: weakref.WeakKeyDictionary[Any, Callable[[Any], Any]] = weakref.WeakKeyDictionary()
_BUDGETS: weakref.WeakKeyDictionary[Any, PassBudget] = weakref.WeakKeyDictionary()


def pass_budget(model: Any, device: Any) -> PassBudget:
    """The pass budget of ``model``'s predictors, made once per model: :data:`CHUNK_TOKENS` off a GPU; on one, the
    tokens whose gradient pass fits in :data:`GPU_MEMORY_SHARE` of the free memory (at least :data:`CHUNK_TOKENS`;
    a pass that does not fit after all halves it, see :func:`_in_passes`)."""
    import torch

    if model not in _BUDGETS:
        tokens = CHUNK_TOKENS
        if torch.device(device).type == "cuda":
            free, _ = torch.cuda.mem_get_info(torch.device(device))
            tokens = max(CHUNK_TOKENS, int(free * GPU_MEMORY_SHARE) // gradient_bytes_per_token(model))
        _BUDGETS[model] = PassBudget(tokens)
    return _BUDGETS[model]


def gradient_bytes_per_token(model: Any) -> int:
    """An estimate of a gradient pass's memory per token: each matrix product's input and output row (what autograd
    keeps), twice over for the element-wise steps between them (norms, activations, attention), at the model's
    element size. Attention scores are not counted: SDPA on a GPU does not keep them."""
    import torch

    widths = sum(
        sum(module.weight.shape)
        for module in model.modules()
        if not isinstance(module, torch.nn.Embedding)
        and isinstance(getattr(module, "weight", None), torch.Tensor)
        and module.weight.dim() == 2
    )
    return 2 * widths * next(model.parameters()).element_size()


def build_predictor(
    loaded: LoadedModel,
    seq: Any,
    sequence: str,
    removable: np.ndarray,
    read: Read,
    model_kwargs: Callable[[int], dict[str, Any]] | None = None,
) -> Predictor:
    """A predictor for a task whose scored sequence is the model's (encoder) input.

    Args:
        loaded: the loaded model and tokenizer.
        seq: the scored ``TokenSeq`` (its ids, special flags and segments).
        sequence: its name in ``Capture.sequences``.
        removable: (n,) tokens erasure may remove.
        read: ``(outputs, rows, mask, positions)`` → (R,) scores: the model's outputs for a batch of inputs
            (``input_ids`` or ``inputs_embeds``, ``attention_mask`` and, when the tokenizer uses them,
            ``token_type_ids``), the (R,) rows of them that are this example's, the batch's attention mask, and the
            original positions each of those rows keeps.
        model_kwargs: rows → more arguments of this example's model call (an encoder-decoder's decoder input);
            given, its copies and steps never share a pass with other examples'.
    """
    import torch

    model, tok = loaded.model, loaded.tokenizer
    pad = tok.pad_token_id if tok.pad_token_id is not None else 0
    types_used = "token_type_ids" in getattr(tok, "model_input_names", ())
    segments = np.asarray(seq.segments) if types_used else None

    def call(key: str, x: Any, mask: Any, types: Sequence[np.ndarray | None]) -> Any:
        found = {key: x, "attention_mask": mask}
        if types_used:
            found["token_type_ids"] = torch.zeros_like(mask)
            for b, row in enumerate(types):
                found["token_type_ids"][b, : len(row)] = torch.as_tensor(row, device=mask.device)
        return model(**found, **(model_kwargs(mask.shape[0]) if model_kwargs is not None else {}))

    special = np.asarray(seq.special)
    budget = pass_budget(model, loaded.device)
    return Predictor(
        sequence=sequence,
        ids=list(seq.ids),
        removable=removable,
        mask_id=mask_token_id(tok),
        run_model=call,
        read=read,
        embed=input_embedder(model, pad),
        baseline_ids=[token if special[i] else pad for i, token in enumerate(seq.ids)],
        pad_id=pad,
        device=loaded.device,
        # One model, called the same way: copies and steps of any of its examples can share a pass.
        share=None if model_kwargs is not None else ("model", id(model)),
        segments=segments,
        pass_tokens=CPU_PASS_TOKENS if torch.device(loaded.device).type == "cpu" else budget.tokens,
        budget=budget,
    )


def input_embedder(model: Any, probe_id: int) -> Callable[[Any], Any]:
    """ids → the embeddings the model feeds its (encoder) layers when given ``inputs_embeds``.

    Some encoders scale token embeddings inside ``forward`` (Marian) and others inside the embedding
    module (BART), so the right function is found once per model by checking which one reproduces
    the model's own output.
    """
    import torch

    if model in _EMBEDDERS:
        return _EMBEDDERS[model]
    encoder = model.get_encoder() if getattr(model.config, "is_encoder_decoder", False) else None
    table = encoder.embed_tokens if encoder is not None else model.get_input_embeddings()
    scale = float(getattr(encoder, "embed_scale", 1.0) or 1.0) if encoder is not None else 1.0
    candidates = [table] if scale == 1.0 else [lambda ids: table(ids) * scale, table]
    probe = torch.tensor([[probe_id, probe_id + 1, probe_id + 2]], device=next(model.parameters()).device) % int(
        table.num_embeddings
    )
    chosen = candidates[0]
    if len(candidates) > 1 and encoder is not None:
        with torch.no_grad():
            reference = encoder(input_ids=probe).last_hidden_state
            for candidate in candidates:
                if torch.allclose(encoder(inputs_embeds=candidate(probe)).last_hidden_state, reference, atol=1e-5):
                    chosen = candidate
                    break
    _EMBEDDERS[model] = chosen
    return chosen
