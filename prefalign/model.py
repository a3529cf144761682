"""Model-agnostic VLM plumbing: loading, prompts, batched generation, response log-probs.

Everything here goes through `AutoModelForImageTextToText` / `AutoProcessor` and the
processor's chat template, so the same code serves the miniature's tiny LLaVA and the
papers' 7B models.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Sequence

import torch

if TYPE_CHECKING:  # PIL is not needed to score or train (benchmarks/gpu_check.py runs without it)
    from PIL import Image


def torch_dtype(name: str) -> torch.dtype:
    return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[name]


class ModelFileError(OSError):
    """A model or adapter folder that cannot be read, named."""


def load_model(path: str, adapter: str | None = None, dtype: str = "float32", device: str = "cpu"):
    """Load (model, processor); with `adapter`, the LoRA adapter is attached (not merged)."""
    from transformers import AutoModelForImageTextToText, AutoProcessor

    try:
        model = AutoModelForImageTextToText.from_pretrained(path, dtype=torch_dtype(dtype)).to(device)
        processor = AutoProcessor.from_pretrained(path)
    except Exception as e:  # safetensors, JSON and config errors name no file
        raise ModelFileError(f"{path}: cannot read the model ({type(e).__name__}: {e})") from e
    if adapter:
        model = attach_adapter(model, adapter)
    model.eval()
    return model, processor


def attach_adapter(model, adapter):
    """`model` with the LoRA adapter in folder `adapter` attached; an unreadable one is named."""
    from peft import PeftModel

    try:
        return PeftModel.from_pretrained(model, adapter)
    except Exception as e:
        raise ModelFileError(f"{adapter}: cannot read the LoRA adapter ({type(e).__name__}: {e})") from e


def chat_prompt(processor, question: str) -> str:
    """The user turn with one image, rendered by the model's own chat template."""
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": question}]}]
    return processor.apply_chat_template(messages, add_generation_prompt=True)


def encode_prompts(processor, images: Sequence[Image.Image], questions: Sequence[str],
                   padding_side: str = "left") -> dict:
    """Tokenise chat prompts with their images (image tokens expanded by the processor)."""
    tok = processor.tokenizer
    old = tok.padding_side
    tok.padding_side = padding_side
    try:
        return dict(processor(images=list(images), text=[chat_prompt(processor, q) for q in questions],
                              padding=True, return_tensors="pt"))
    finally:
        tok.padding_side = old


def response_token_ids(tokenizer, text: str) -> list[int]:
    """Token ids of a response as the model emits it after the prompt, ending with EOS.

    Tokenised on its own (as TRL does) so prompt and response never merge into one token."""
    ids = tokenizer(" " + text.strip(), add_special_tokens=False)["input_ids"]
    return ids + [tokenizer.eos_token_id]


def right_pad(rows: list[list[int]], pad: int, dtype=torch.long, width: int | None = None):
    """(rows right-padded with `pad` into one tensor, mask of the real entries)."""
    width = width or max(len(r) for r in rows)
    out = torch.full((len(rows), width), pad, dtype=dtype)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for b, r in enumerate(rows):
        out[b, :len(r)] = torch.tensor(r, dtype=dtype)
        mask[b, :len(r)] = 1
    return out, mask


# (pixel_values, image_grid_thw or None) -> pixel_values; see augment.View.pixel_transform
PixelTransform = Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor]


def build_scoring_batch(processor, images, questions, responses, pixel_transform=None) -> dict:
    """Prompt + response sequences, right-padded, with a mask over response tokens only.

    `response_mask[b, t]` is 1 where token t belongs to the response (EOS included): the
    image, system and question tokens never contribute to a log-prob."""
    enc = encode_prompts(processor, images, questions, padding_side="left")
    prompt_ids, prompt_mask = enc.pop("input_ids"), enc.pop("attention_mask")
    # Other per-token inputs (Qwen2.5-VL's mm_token_type_ids) follow the tokens; 0 = text.
    per_token = {k: enc.pop(k) for k in list(enc) if enc[k].shape == prompt_ids.shape}
    rows, masks = [], []
    pad = processor.tokenizer.pad_token_id
    for b, text in enumerate(responses):
        p = prompt_ids[b][prompt_mask[b].bool()].tolist()
        r = response_token_ids(processor.tokenizer, text)
        rows.append(p + r)
        masks.append([0] * len(p) + [1] * len(r))
    input_ids, attention = right_pad(rows, pad)
    response_mask, _ = right_pad(masks, 0)
    extra = {k: right_pad([v[b][prompt_mask[b].bool()].tolist() for b in range(len(rows))], 0, v.dtype,
                          width=input_ids.shape[1])[0] for k, v in per_token.items()}
    if pixel_transform is not None:
        enc["pixel_values"] = pixel_transform(enc["pixel_values"], enc.get("image_grid_thw"))
    return {"input_ids": input_ids, "attention_mask": attention, "response_mask": response_mask, **extra, **enc}


def token_logps(model, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token log pi(y_t | y_<t, x) of the response tokens, and their mask.

    Returns (logps [B, T-1], mask [B, T-1]); positions outside the response are 0."""
    inputs = {k: v for k, v in batch.items() if k != "response_mask"}
    logits = model(**inputs).logits[:, :-1].float()
    targets = batch["input_ids"][:, 1:]
    mask = batch["response_mask"][:, 1:].to(logits.dtype)
    logps = torch.gather(logits.log_softmax(-1), 2, targets.unsqueeze(-1)).squeeze(-1)
    return logps * mask, mask


def sequence_logps(model, batch: dict) -> torch.Tensor:
    """logp(y) = sum over response tokens of log pi(y_t | y_<t, x)."""
    logps, _ = token_logps(model, batch)
    return logps.sum(-1)


@torch.no_grad()
def generate(model, processor, images, questions, *, max_new_tokens: int, do_sample: bool = False,
             temperature: float = 1.0, top_p: float = 1.0, num_return_sequences: int = 1,
             pixel_transform: PixelTransform | None = None, seed: int | None = None):
    """Batched generation; returns per prompt a list of (text, n_tokens)."""
    enc = encode_prompts(processor, images, questions, padding_side="left")
    if pixel_transform is not None:
        enc["pixel_values"] = pixel_transform(enc["pixel_values"], enc.get("image_grid_thw"))
    device = next(model.parameters()).device
    enc = {k: v.to(device) for k, v in enc.items()}
    if seed is not None:
        torch.manual_seed(seed)
    kwargs = dict(max_new_tokens=max_new_tokens, do_sample=do_sample,
                  num_return_sequences=num_return_sequences,
                  pad_token_id=processor.tokenizer.pad_token_id,
                  eos_token_id=processor.tokenizer.eos_token_id)
    if do_sample:
        kwargs.update(temperature=temperature, top_p=top_p)
    else:
        kwargs.update(temperature=None, top_p=None, top_k=None)
    out = model.generate(**enc, **kwargs)[:, enc["input_ids"].shape[1]:]
    eos = processor.tokenizer.eos_token_id
    results = []
    for row in out.tolist():
        n = row.index(eos) + 1 if eos in row else len([t for t in row if t != processor.tokenizer.pad_token_id])
        results.append((processor.tokenizer.decode(row[:n], skip_special_tokens=True).strip(), n))
    k = num_return_sequences
    return [results[i * k:(i + 1) * k] for i in range(len(questions))]


def group_scoring_batch(processor, images, questions, responses: Sequence[Sequence[str]],
                        pixel_transform: PixelTransform | None = None) -> dict:
    """One left-padded prompt per item and all of its responses, right-padded, stacked.

    `counts[b]` responses belong to item b; they share its image and prompt, which
    `shared_prefix_token_logps` encodes once."""
    enc = encode_prompts(processor, images, questions, padding_side="left")
    if pixel_transform is not None:
        enc["pixel_values"] = pixel_transform(enc["pixel_values"], enc.get("image_grid_thw"))
    response_ids, response_mask = right_pad(
        [response_token_ids(processor.tokenizer, t) for rs in responses for t in rs], processor.tokenizer.pad_token_id)
    return {"prompt": enc, "response_ids": response_ids, "response_mask": response_mask,
            "counts": torch.tensor([len(rs) for rs in responses])}


def multimodal_rope(model):
    """The inner model of the Qwen2-VL family (3-D rotary positions, `rope_deltas`), else None."""
    core = model.get_base_model() if hasattr(model, "get_base_model") else model
    inner = getattr(core, "model", None)
    return inner if hasattr(inner, "get_rope_index") else None


def length_chunks(lengths: torch.Tensor, n_chunks: int) -> list[torch.Tensor]:
    """Row indices sorted by length and cut into up to n_chunks slices of equal count, so each
    slice pads only to its own longest response."""
    order = torch.argsort(lengths, stable=True)
    return [c for c in torch.tensor_split(order, min(n_chunks, len(order))) if len(c)]


def select_cache(cache, rows: torch.Tensor):
    """A new cache holding the given batch rows of `cache` (a row may repeat)."""
    from transformers import DynamicCache

    out = DynamicCache()
    for layer_idx, layer in enumerate(cache.layers):
        out.update(layer.keys[rows], layer.values[rows], layer_idx)
    return out


def shared_prefix_token_logps(model, batch: dict, n_chunks: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token response log-probs [M, T] and mask, with each item's image and prompt
    encoded once and its KV cache shared by all of its responses.

    Equal to `token_logps` on the concatenated sequences (the tests check 1e-4): prompts are
    left-padded and every position id is counted from the first real token, so each
    response sees exactly the positions and keys it would see alone. Responses are scored
    in `n_chunks` length-sorted slices to cut padding. Gradients flow through the shared
    prefix too, so LoRA weights inside the prompt's layers train."""
    device = next(model.parameters()).device
    prompt = {k: v.to(device) for k, v in batch["prompt"].items()}
    pmask = prompt["attention_mask"]
    mrope = multimodal_rope(model)
    # Only the last prompt position's logits are needed: they predict the first response token.
    if mrope:  # Qwen2-VL family: the model derives its 3-D positions from the mask itself
        out = model(**prompt, use_cache=True, logits_to_keep=1)
        next_pos = pmask.sum(-1) + mrope.rope_deltas.view(-1).to(device)
    else:
        out = model(**prompt, position_ids=(pmask.cumsum(-1) - 1).clamp(min=0), use_cache=True, logits_to_keep=1)
        next_pos = pmask.sum(-1)
    owner = torch.repeat_interleave(torch.arange(len(pmask), device=device), batch["counts"].to(device))
    rids, rmask = batch["response_ids"].to(device), batch["response_mask"].to(device)
    logps = torch.zeros(rids.shape, device=device)
    for rows in length_chunks(rmask.sum(-1), n_chunks):
        width = int(rmask[rows].sum(-1).max())
        ids, mask, own = rids[rows, :width], rmask[rows, :width], owner[rows]
        pos = next_pos[own, None] + torch.arange(width, device=device)
        if mrope:  # response tokens are text: one position, repeated on the 3 rope axes
            pos = pos.unsqueeze(0).expand(3, -1, -1)
        cont = model(input_ids=ids, attention_mask=torch.cat([pmask[own], mask], 1), position_ids=pos,
                     past_key_values=select_cache(out.past_key_values, own), use_cache=False)
        logits = torch.cat([out.logits[own, -1:], cont.logits[:, :-1]], 1).float()
        chunk = torch.gather(logits.log_softmax(-1), 2, ids.unsqueeze(-1)).squeeze(-1)
        logps = logps.index_put((rows,), torch.nn.functional.pad(chunk, (0, rids.shape[1] - width)))
    mask = rmask.to(logps.dtype)
    return logps * mask, mask
