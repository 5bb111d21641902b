"""Causal language models (``*ForCausalLM``, ``*LMHeadModel``): prompt + continuation in one forward pass.

Without a ``target``, the continuation is generated first; then prompt and continuation run through
one teacher-forced forward pass. With causal masking a row never sees later tokens, so this equals the
attention ``generate`` returns step by step (tested), at a fraction of the cost.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from attnviz.config import GenerationOptions
from attnviz.errors import UsageError
from attnviz.model.loaded import LoadedModel
from attnviz.model.predictor import Predictor
from attnviz.model.tasks.base import AttentionLayout, Batch, Forward, TaskAdapter, ids_stream
from attnviz.model.tasks.generate import continuation_logprobs, generate_ids, generation_panel
from attnviz.model.tokens import seq_from_ids
from attnviz.types import INPUT, Capture, Example, ExplainedRows, Panel, Prediction, TokenSeq


class LanguageModelTask(TaskAdapter):
    name = "lm"
    description = "causal LM: prompt + given or generated continuation; explained rows = each continuation token"

    def matches(self, architecture: str, config: Any) -> bool:
        return architecture.endswith(("ForCausalLM", "LMHeadModel")) and not getattr(
            config, "is_encoder_decoder", False
        )

    def load(self, name: str, **kwargs: Any) -> Any:
        from transformers import AutoModelForCausalLM

        return AutoModelForCausalLM.from_pretrained(name, **kwargs)

    def layout(self, batch: Batch, b: int) -> Mapping[str, AttentionLayout]:
        return {"self": AttentionLayout(INPUT, INPUT, causal=True)}

    def encode(
        self, examples: Sequence[Example], loaded: LoadedModel, max_length: int, generation: GenerationOptions
    ) -> Batch:
        tok = loaded.tokenizer
        sequences, seqs, truncated, lengths, prompt_lens, generated = [], [], [], [], [], []
        for ex in examples:
            prompt = tok(ex.fields["text"])["input_ids"]
            target = ex.get("target")
            if target is None and generation.max_new_tokens >= max_length:
                raise UsageError(
                    f"--max-new-tokens {generation.max_new_tokens} leaves no room for the prompt in the "
                    f"{max_length} positions of model '{loaded.name}' (--max-length); use at most {max_length - 1}"
                )
            # Keep room for the continuation; a long prompt loses its start.
            budget = max(1, max_length - (generation.max_new_tokens if target is None else 0))
            lengths.append(len(prompt))
            truncated.append(len(prompt) > budget)
            prompt = prompt[-budget:]
            if target is None:
                continuation = generate_ids(loaded.model, tok, prompt, generation, max_length - len(prompt))
            else:
                continuation = tok(target, add_special_tokens=False)["input_ids"]
            continuation = continuation[: max(1, max_length - len(prompt))]
            sequences.append(prompt + continuation)
            seqs.append(seq_from_ids(tok, prompt + continuation, len(prompt), ("prompt", "continuation")))
            prompt_lens.append(len(prompt))
            generated.append(target is None)
        stream = ids_stream(tok, sequences, seqs, loaded.device, truncated, lengths)
        return Batch(
            examples=list(examples),
            streams={INPUT: stream},
            extras={"prompt_lengths": prompt_lens, "generated": generated},
        )

    def forward(self, model: Any, batch: Batch) -> Forward:
        stream = batch.streams[INPUT]
        outputs = model(input_ids=stream.input_ids, attention_mask=stream.mask, output_attentions=True)
        return Forward(attentions={"self": outputs.attentions}, outputs=outputs)

    def _logprobs(self, forward: Forward, batch: Batch) -> Any:
        """(B, n-1) log p(token t | tokens < t), read at row t-1."""
        ids = batch.streams[INPUT].input_ids
        return continuation_logprobs(forward.outputs.logits[:, :-1], ids[:, 1:])

    def _continuation_mask(self, batch: Batch) -> Any:
        import torch

        stream = batch.streams[INPUT]
        positions = torch.arange(stream.input_ids.shape[1], device=stream.mask.device)[1:]
        starts = torch.tensor(batch.extras["prompt_lengths"], device=stream.mask.device).unsqueeze(1)
        return (positions.unsqueeze(0) >= starts) & (stream.mask[:, 1:] == 1)

    def score(self, forward: Forward, batch: Batch) -> Any:
        """Log-probability of the whole continuation."""
        return (self._logprobs(forward, batch) * self._continuation_mask(batch)).sum(dim=-1)

    def panel(self, example: Example, prediction: Prediction) -> Panel | None:
        return generation_panel("Continuation", "Prompt", example.fields["text"], prediction)

    def predictor(self, loaded: LoadedModel, capture: Capture) -> Predictor | None:
        """Scores the mean log-probability of the continuation; only prompt tokens can be erased."""
        import torch

        from attnviz.model.predictor import build_predictor

        seq = capture.sequences[INPUT]
        prompt = capture.prediction.details["prompt_tokens"]
        removable = ~seq.special_mask & (np.arange(len(seq)) < prompt)
        if removable.sum() == 1 and removable[0]:
            # A one-token prompt with no start token before it: erasing it (every bin erases at least one token)
            # would leave nothing to predict the continuation's first token from, so nothing can be erased.
            removable[:] = False

        def read(outputs: Any, rows: Any, mask: Any, positions: list[np.ndarray]) -> Any:
            logprobs = torch.log_softmax(outputs.logits[rows].float(), dim=-1)
            scores = []
            for b, kept in enumerate(positions):
                # continuation token at new position j is predicted by row j - 1
                picks = [(j - 1, seq.ids[p]) for j, p in enumerate(kept) if p >= prompt and j >= 1]
                rows = torch.tensor([r for r, _ in picks], device=logprobs.device)
                tokens = torch.tensor([t for _, t in picks], device=logprobs.device)
                scores.append(logprobs[b, rows, tokens].mean())
            return torch.stack(scores)

        return build_predictor(loaded, seq, INPUT, removable, read)

    def interpret(
        self, forward: Forward, batch: Batch, b: int, sequences: Mapping[str, TokenSeq], loaded: LoadedModel
    ) -> tuple[Prediction, ExplainedRows]:
        seq = sequences[INPUT]
        n = len(seq)
        start = batch.extras["prompt_lengths"][b]
        logprobs = self._logprobs(forward, batch)[b].detach().float().cpu().numpy()[start - 1 : n - 1]
        positions = list(range(start, n))
        weights = np.zeros((len(positions), n))
        for r, t in enumerate(positions):
            weights[r, t - 1] = 1.0  # the row that predicted token t
        labels = tuple(f"→ {seq.tokens[t]!r} (token {t + 1})" for t in positions)
        ids = batch.streams[INPUT].input_ids[b, :n].tolist()
        # Decode with the prompt so tokenizers that drop a leading space (SentencePiece) keep it.
        full = loaded.tokenizer.decode(ids, skip_special_tokens=True)
        prefix = loaded.tokenizer.decode(ids[:start], skip_special_tokens=True)
        text = full[len(prefix) :] if full.startswith(prefix) else loaded.tokenizer.decode(ids[start:])
        details = {
            "generated": batch.extras["generated"][b],
            "prompt_tokens": start,
            "continuation_tokens": [seq.tokens[t] for t in positions],
            "token_logprobs": [float(v) for v in logprobs],
        }
        prediction = Prediction(text=text, score=float(np.mean(logprobs)), details=details)
        return prediction, ExplainedRows(labels=labels, weights=weights, attention="self")
