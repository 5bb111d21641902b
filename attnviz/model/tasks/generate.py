"""Generation for examples that have no target: greedy by default, seeded sampling on request."""

from __future__ import annotations

from typing import Any

from attnviz.config import GenerationOptions
from attnviz.types import Panel, Prediction


def generate_ids(
    model: Any, tokenizer: Any, input_ids: list[int], generation: GenerationOptions, room: int
) -> list[int]:
    """Generate a continuation (decoder-only) or target (encoder-decoder) for one example: the new token ids.

    One example at a time: no padding, so nothing depends on what else is in the batch. Padding
    after an end-of-sequence token is dropped. At most ``room`` tokens are generated (the positions the model
    has left), so generation never runs past the position embeddings.
    """
    import torch

    ids = torch.tensor([input_ids], dtype=torch.long, device=model.device)
    kwargs: dict[str, Any] = {
        "max_new_tokens": max(1, min(generation.max_new_tokens, room)),
        "do_sample": generation.do_sample,
        "num_beams": 1,
        "pad_token_id": tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id,
    }
    if generation.do_sample:
        kwargs.update(temperature=generation.temperature, top_p=generation.top_p)
        torch.manual_seed(generation.seed)
    else:
        kwargs.update(temperature=None, top_p=None, top_k=None)
    with torch.inference_mode():
        out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), **kwargs)
    new = out[0].tolist()
    # Decoder-only output repeats the prompt; encoder-decoder output starts with the decoder start
    # token (which is </s> for BART, so it must go before looking for the end).
    new = new[1:] if model.config.is_encoder_decoder else new[len(input_ids) :]
    eos = tokenizer.eos_token_id
    if eos is not None and eos in new:
        new = new[: new.index(eos) + 1]
    return new


def continuation_logprobs(logits: Any, targets: Any) -> Any:
    """(B, T, V) logits and (B, T) target ids → (B, T) log-probabilities of the targets."""
    import torch

    return torch.log_softmax(logits.float(), dim=-1).gather(-1, targets.unsqueeze(-1)).squeeze(-1)


def generation_panel(title: str, input_label: str, text: str, prediction: Prediction) -> Panel:
    """The page's card for generative tasks: the input as given and the output, generated or given."""
    generated = bool(prediction.details.get("generated", False))
    return Panel(
        template="_panel_generation.html.j2",
        title=title,
        fields={
            "input_label": input_label,
            "input": text,
            "output_label": "Generated" if generated else "Given",
            "output": prediction.text,
            "generated": generated,
        },
    )
