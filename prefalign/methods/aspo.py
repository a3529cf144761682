"""ASPO (adaptive sentence-level preference optimisation).

Data: SeVa-style pairs (clean greedy answer chosen, noise-500 answer rejected). The chosen
response is split into units (sentences by default), each mapped to whole tokens of the
tokenised response. Per unit, computed once here and stored in the record:
  S_i   = cosine(CLIP(unit text), CLIP(image)), min-max normalised over the response -> S'_i
  PPL_i = exp(-mean log p_ref of the unit's tokens given image and preceding text),
          negated, min-max normalised -> PPL'_i  (the last unit's tokens include EOS,
          which the paper does not mention)
The loss combines them as w_i = alpha S'_i + (1 - alpha) PPL'_i (alpha is an objective
setting, so S-only / P-only / alpha sweeps reuse one preference file).

Loss (Eq. 12): M* = (R_c / R_c*) sum_i beta (1 + w_i) r(s_i) - beta r(y_r),
R_c = sum_i r(s_i), R_c* = sum_i (1 + w_i) r(s_i); L = -log sigmoid(M*).
"""
from __future__ import annotations

import re

from ..lazy import F, torch

from ..io import RecordError
from ..settings import ObjectiveSettings, PreferenceSetSettings
from .records import Objective, pair_groups
from .seva import build_seva_pairs

NAME = "aspo"
MODELS = ("base", "clip")  # build_preferences loads these for this method
LEVELS = ("response", "sentence", "token")

# A sentence ends at . ! or ? followed by whitespace or the end of the text.
_SENTENCE_END = re.compile(r"[.!?](?=\s|$)")


def sentence_char_starts(text: str) -> list[int]:
    """Character offsets where sentences start (the first is 0)."""
    starts = [0] + [m.end() for m in _SENTENCE_END.finditer(text) if m.end() < len(text.rstrip())]
    return sorted(set(starts))


def response_units(tokenizer, text: str, level: str) -> tuple[list[int], list[str]]:
    """(unit index of every response token, unit texts) for the tokens the model scores.

    The tokens are exactly `model.response_token_ids` (a leading space, the text, EOS).
    A token belongs to the sentence in which its first character lies, so a token is never
    split: where a tokenizer merges across a boundary (". The" as one piece), the whole token
    goes to the sentence it starts in. EOS joins the last unit."""
    from ..model import response_token_ids

    body = " " + text.strip()
    enc = tokenizer(body, add_special_tokens=False, return_offsets_mapping=True)
    ids, offsets = enc["input_ids"], enc["offset_mapping"]
    if ids + [tokenizer.eos_token_id] != response_token_ids(tokenizer, text):
        raise ValueError(f"tokenisation with offsets differs from the scored tokens for {text!r}")
    if level == "response":
        unit = [0] * len(ids)
    elif level == "token":
        unit = list(range(len(ids)))
    elif level == "sentence":
        starts = sentence_char_starts(body)
        unit = [sum(s <= start for s in starts[1:]) for start, _ in offsets]
        unit = _renumber(unit)
    else:
        raise ValueError(f"unknown reward level {level!r} (known: {LEVELS})")
    n_units = max(unit) + 1 if unit else 1
    texts = [""] * n_units
    for u, (a, b) in zip(unit, offsets):
        texts[u] = (texts[u] + body[a:b]) if texts[u] else body[a:b]
    texts = [t.strip() for t in texts]
    return unit + [unit[-1] if unit else 0], texts


def _renumber(unit: list[int]) -> list[int]:
    """Units with no token (empty sentences) are dropped; numbering stays consecutive."""
    order = {u: k for k, u in enumerate(dict.fromkeys(unit))}
    return [order[u] for u in unit]


def min_max(values: torch.Tensor) -> torch.Tensor:
    """Min-max normalisation over one response; a single unit (or all equal) gives 0."""
    span = values.max() - values.min()
    if len(values) < 2 or span <= 0:
        return torch.zeros_like(values)
    return (values - values.min()) / span


def unit_stats(token_unit: list[int], token_logps: torch.Tensor, similarity: torch.Tensor) -> dict:
    """Per-unit S, PPL and their normalised forms, from the reference's token log-probs."""
    unit = torch.tensor(token_unit)
    n = int(unit.max()) + 1
    total = torch.zeros(n, dtype=token_logps.dtype).index_add_(0, unit, token_logps)
    count = torch.zeros(n, dtype=token_logps.dtype).index_add_(0, unit, torch.ones_like(token_logps))
    ppl = torch.exp(-total / count)
    return {"similarity": similarity.tolist(), "perplexity": ppl.tolist(),
            "similarity_norm": min_max(similarity).tolist(), "perplexity_norm": min_max(-ppl).tolist()}


def annotate_chosen(records: list[dict], model, processor, scorer, load_image, level: str,
                    batch_size: int = 32) -> None:
    """Add `units` (token map, texts, S, PPL) to each record's chosen response, in place."""
    from tqdm import tqdm

    from ..model import group_scoring_batch, shared_prefix_token_logps

    for s in tqdm(range(0, len(records), batch_size), desc="aspo: sentence weights", mininterval=5):
        part = records[s:s + batch_size]
        images = [load_image(r) for r in part]
        chosen = [r["groups"][0][0] for r in part]
        batch = group_scoring_batch(processor, images, [r["question"] for r in part], [[c["text"]] for c in chosen])
        with torch.no_grad():
            logps, mask = shared_prefix_token_logps(model, batch)
        for b, (rec, c) in enumerate(zip(part, chosen)):
            token_unit, texts = response_units(processor.tokenizer, c["text"], level)
            n = int(mask[b].sum())
            if n != len(token_unit):
                raise RecordError("preferences", rec["id"], "groups[0][0].text",
                                  f"{len(token_unit)} unit tokens but {n} scored tokens")
            sim = scorer.similarity(images[b], texts).to(logps.dtype)
            c["units"] = {"level": level, "token_unit": token_unit, "texts": texts,
                          **unit_stats(token_unit, logps[b, :n].cpu(), sim.cpu())}


def needs(pref_cfg: PreferenceSetSettings) -> list[tuple[str, str]]:
    return [("clean", pref_cfg.generation), (pref_cfg.augmentation, pref_cfg.generation)]


def build(prompts, responses, pref_cfg: PreferenceSetSettings, resources):
    view, gen = pref_cfg.augmentation, pref_cfg.generation
    records, stats = build_seva_pairs(prompts, responses[("clean", gen)], responses[(view, gen)], view)
    model, processor = resources["model"]()
    annotate_chosen(records, model, processor, resources["clip"](), resources["load_image"], pref_cfg.level)
    for r in records:
        r["extras"]["method"] = NAME
    units = [len(r["groups"][0][0]["units"]["texts"]) for r in records]
    stats.update(level=pref_cfg.level, mean_units_per_chosen=sum(units) / max(len(units), 1),
                 chosen_with_one_unit=sum(u == 1 for u in units))
    return records, stats


# ---------------------------------------------------------------- loss

def unit_weights(units: dict, alpha: float) -> list[float]:
    """w_i = alpha S'_i + (1 - alpha) PPL'_i, in [0, 1] (so 1 + w_i is in [1, 2])."""
    return [alpha * s + (1 - alpha) * p for s, p in zip(units["similarity_norm"], units["perplexity_norm"])]


def aspo_margin(unit_ratios: torch.Tensor, weights: torch.Tensor, unit_mask: torch.Tensor,
                rejected_ratio: torch.Tensor, beta: float, eps: float = 1e-6) -> torch.Tensor:
    """M* of Eq. 12 for a batch: unit_ratios, weights, unit_mask [B, U] (zero-padded), rejected [B].

    R_c / R_c* is a normalising constant, detached: with gradients through it M* would be
    identically the DPO margin (the ratio cancels R_c*) and the weights would do nothing.
    So M*'s value is always beta R_c - beta r(y_r); the weights act on its gradient.
    Guard: where |R_c*| < eps (at the first step every log ratio is 0; mixed-sign unit
    rewards can also cancel) the constant factor takes the value it has when all unit rewards
    are equal, 1 / (1 + mean w) over the real units; M*'s value stays beta R_c - beta r(y_r)."""
    scaled = ((1 + weights) * unit_ratios).sum(-1)
    r_c = unit_ratios.sum(-1)
    mean_w = (weights * unit_mask).sum(-1) / unit_mask.sum(-1).clamp(min=1)
    safe = scaled.abs() >= eps
    ratio = torch.where(safe, r_c / torch.where(safe, scaled, torch.ones_like(scaled)), 1 / (1 + mean_w)).detach()
    # safe: ratio * R_c* (= R_c); guarded: R_c in value, ratio * dR_c* in gradient
    chosen = torch.where(safe, ratio * scaled, r_c.detach() + ratio * (scaled - scaled.detach()))
    return beta * chosen - beta * rejected_ratio


def aspo_objective(scored: dict, cfg: ObjectiveSettings) -> tuple[torch.Tensor, dict]:
    """L = -log sigmoid(M*); the chosen response's token log ratios summed per unit."""
    records = scored["records"]
    token_ratio = scored["policy_tokens"][:, 0] - scored["ref_tokens"][:, 0]  # [B, T] chosen
    width = max(len(r["groups"][0][0]["units"]["texts"]) for r in records)
    unit_ratios = token_ratio.new_zeros(len(records), width)
    weights = token_ratio.new_zeros(len(records), width)
    unit_mask = token_ratio.new_zeros(len(records), width)
    for b, rec in enumerate(records):
        units = rec["groups"][0][0]["units"]
        tu = torch.tensor(units["token_unit"], device=token_ratio.device)
        if len(tu) != int(scored["token_mask"][b, 0].sum()):
            raise RecordError("preferences", rec["id"], "groups[0][0].units.token_unit",
                              "does not match the scored tokens (was the tokenizer changed?)")
        unit_ratios[b] = torch.zeros(width, dtype=token_ratio.dtype, device=token_ratio.device).index_add(
            0, tu, token_ratio[b, :len(tu)])
        w = unit_weights(units, cfg.alpha)
        weights[b, :len(w)] = torch.tensor(w, dtype=weights.dtype)
        unit_mask[b, :len(w)] = 1
    rejected = scored["policy"][:, 1] - scored["ref"][:, 1]
    margin = aspo_margin(unit_ratios, weights, unit_mask, rejected, cfg.beta)
    dpo_margin = (unit_ratios.sum(-1) - rejected).detach()
    return -F.logsigmoid(margin).mean(), {"reward_margin": dpo_margin.mean().item(),
                                          "pair_accuracy": (dpo_margin > 0).float().mean().item()}


OBJECTIVE = Objective(select=pair_groups, loss=aspo_objective)
