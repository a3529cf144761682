"""ConSR (contrastive self-rewarding) and its length-normalised, token-weighted DPO loss.

Candidates per prompt (counts are config): `sampled` samples from the clean image (T 1.2),
`revised` revisions of those samples (the model's own description as context, stage
revise_responses), `noisy` samples from the noise-500 image. The base model (which is the
reference) scores each under three inputs, P(y | .) = exp(mean token log-prob) (Eq. 1-3):
    P      (x, I)
    P_sem  (d + x, I)    d = the model's own description, inserted with the context template
    P_cor  (x, I~)       I~ = the corrupt augmentation (noise 800)
    S_semantic = P_sem - P,  S_corrupt = P - P_cor,  r = lambda S_semantic + (1 - lambda) S_corrupt
Selection "reward": every candidate in its own group, ranked by r (Eq. 4-6), so a pair
objective trains on argmax r vs argmin r. Selection "noise_pair" (Table 3's "y_l from noise
image"): the first clean sample vs the first noisy sample, the ranking kept in extras.
Each candidate stores its token probability shifts dp_t = p(y_t | x, I) - p(y_t | x, I~)
under the reference model, computed once here, and each record its corrupt augmentation.
Eq. 12 defines dp_t with the policy p_theta: the loss's `token_shift: policy` recomputes it
every step (one extra pass without gradient on I~); `reference` uses the stored shifts.
"""
from __future__ import annotations

from ..lazy import torch

from ..io import RecordError
from ..settings import ObjectiveSettings, PreferenceSetSettings
from .records import Objective, make_record, pair_groups

NAME = "consr"
MODELS = ("base",)
SOURCES = ("sampled", "revised", "noisy")
SELECTIONS = ("reward", "noise_pair")
TOKEN_SHIFTS = ("policy", "reference")


def needs(pref_cfg: PreferenceSetSettings) -> list[tuple[str, str]]:
    """Clean samples, their revisions (view "revised") and noisy samples, as counts ask."""
    n, gen = pref_cfg.candidates, pref_cfg.generation
    out = [("clean", gen)]
    if n["revised"]:
        out.append(("revised", gen))
    if n["noisy"]:
        out.append((pref_cfg.noisy_augmentation, gen))
    return out


def gather_candidates(prompt: dict, responses: dict, pref_cfg: PreferenceSetSettings) -> list[dict]:
    """The prompt's candidates in source order, each tagged with its source and index."""
    n, gen = pref_cfg.candidates, pref_cfg.generation
    views = {"sampled": "clean", "revised": "revised", "noisy": pref_cfg.noisy_augmentation}
    out = []
    for source in SOURCES:
        if not n[source]:
            continue
        found = responses[(views[source], gen)][prompt["id"]]["responses"]
        if len(found) < n[source]:
            raise RecordError(f"responses {views[source]}/{gen}", prompt["id"], "responses",
                              f"{n[source]} {source} candidates asked for, found {len(found)}")
        out += [{"text": r["text"], "n_tokens": r["n_tokens"], "source": source, "sample": k}
                for k, r in enumerate(found[:n[source]])]
    return out


def mean_token_probability(logps: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """P(y | .) = exp(mean over the response's tokens of log pi(y_t | y_<t, .)) (Eq. 1)."""
    return torch.exp(logps.sum(-1) / mask.sum(-1))


def contrastive_scores(clean, semantic, corrupt, mask) -> dict:
    """Eq. 1-5 from the per-token log-probs [M, T] under the three inputs."""
    p, p_sem, p_cor = (mean_token_probability(x, mask) for x in (clean, semantic, corrupt))
    return {"p": p, "p_semantic": p_sem, "p_corrupt": p_cor, "s_semantic": p_sem - p, "s_corrupt": p - p_cor}


def contrastive_reward(s_semantic, s_corrupt, lam: float):
    """r(y) = lambda S_semantic + (1 - lambda) S_corrupt (Eq. 6)."""
    return lam * s_semantic + (1 - lam) * s_corrupt


def score_candidates(model, processor, prompts, images, candidates, descriptions, corrupt_view,
                     context_template: str) -> list[tuple[dict, list[list[float]]]]:
    """Per prompt: scores of every candidate under the three inputs, and each candidate's
    token probability shifts. Each condition's image + prompt prefix is encoded once per
    prompt and shared by all its candidates (`shared_prefix_token_logps`)."""
    from ..model import group_scoring_batch, shared_prefix_token_logps

    ids = [p["id"] for p in prompts]
    texts = [[c["text"] for c in cs] for cs in candidates]
    questions = [p["question"] for p in prompts]
    enriched = [context_template.format(description=descriptions[i], prompt=q) for i, q in zip(ids, questions)]
    with torch.no_grad():
        clean, mask = shared_prefix_token_logps(model, group_scoring_batch(processor, images, questions, texts))
        semantic, _ = shared_prefix_token_logps(model, group_scoring_batch(processor, images, enriched, texts))
        corrupt, _ = shared_prefix_token_logps(model, group_scoring_batch(
            processor, corrupt_view.images(images, ids), questions, texts, corrupt_view.pixel_transform(ids)))
    clean, semantic, corrupt, mask = (x.float().cpu() for x in (clean, semantic, corrupt, mask))
    scores = {k: v.tolist() for k, v in contrastive_scores(clean, semantic, corrupt, mask).items()}
    shift = ((clean.exp() - corrupt.exp()) * mask).tolist()
    lengths = mask.sum(-1).long().tolist()
    out, row = [], 0
    for cs in candidates:
        rows = range(row, row + len(cs))
        out.append(([{k: scores[k][m] for k in scores} for m in rows],
                    [shift[m][:lengths[m]] for m in rows]))
        row += len(cs)
    return out


def rank_by_reward(candidates: list[dict]) -> list[dict]:
    """Best first; ties keep source order."""
    return sorted(candidates, key=lambda c: -c["reward"])


def select_groups(prompt, ranked: list[dict], selection: str) -> tuple[list[list[dict]] | None, str | None]:
    """The record's ranked groups, or (None, reason) when the prompt gives no preference."""
    if selection == "reward":
        # Identical texts score the same up to float noise: the best and the worst being one
        # text means every candidate scored alike.
        if ranked[0]["reward"] == ranked[-1]["reward"] or ranked[0]["text"].strip() == ranked[-1]["text"].strip():
            return None, "no_reward_spread"
        return [[c] for c in ranked], None
    if selection == "noise_pair":
        first = {s: next((c for c in ranked if c["source"] == s and c["sample"] == 0), None) for s in SOURCES}
        chosen, rejected = first["sampled"], first["noisy"]
        if chosen is None or rejected is None:
            raise RecordError("preferences", prompt["id"], "selection",
                              "noise_pair needs at least one sampled and one noisy candidate")
        if chosen["text"].strip() == rejected["text"].strip():
            return None, "identical_pair"
        return [[chosen], [rejected]], None
    raise ValueError(f"unknown ConSR selection {selection!r} (known: {SELECTIONS})")


def build_consr_records(prompts, responses, pref_cfg: PreferenceSetSettings, model, processor, load_image, descriptions,
                        corrupt_view, *, context_template: str, batch_size: int = 16):
    from tqdm import tqdm

    lam, selection = pref_cfg.lambda_, pref_cfg.selection
    records, dropped = [], {}
    for s in tqdm(range(0, len(prompts), batch_size), desc="consr: contrastive scores", mininterval=5):
        part = prompts[s:s + batch_size]
        cands = [gather_candidates(p, responses, pref_cfg) for p in part]
        scored = score_candidates(model, processor, part, [load_image(p) for p in part], cands, descriptions,
                                  corrupt_view, context_template)
        for p, cs, (scores, shifts) in zip(part, cands, scored):
            for c, sc, dp in zip(cs, scores, shifts):
                c.update(sc, reward=contrastive_reward(sc["s_semantic"], sc["s_corrupt"], lam), token_prob_shift=dp)
            ranked = rank_by_reward(cs)
            groups, reason = select_groups(p, ranked, selection)
            if groups is None:
                dropped[reason] = dropped.get(reason, 0) + 1
                continue
            extras = {"method": NAME, "lambda": lam, "selection": selection, "description": descriptions[p["id"]],
                      "corrupt": {**corrupt_view.spec.to_config(), "seed": corrupt_view.seed}}
            if selection != "reward":
                extras["candidates"] = ranked
            records.append(make_record(p, groups, **extras))
    return records, dropped


def build(prompts, responses, pref_cfg: PreferenceSetSettings, resources):
    from ..augment import View

    model, processor = resources["model"]()
    corrupt = View(resources["augmentations"][pref_cfg.corrupt_augmentation], resources["seed"])
    records, dropped = build_consr_records(prompts, responses, pref_cfg, model, processor, resources["load_image"],
                                           resources["descriptions"](), corrupt,
                                           context_template=resources["prompting"].context_template)
    chosen = [r["groups"][0][0] for r in records]
    rejected = [r["groups"][-1][0] for r in records]
    stats = {"prompts": len(prompts), "kept": len(records), "rejected": dict(sorted(dropped.items())),
             "candidates_per_prompt": sum(pref_cfg.candidates.values()),
             "chosen_source": {s: sum(c["source"] == s for c in chosen) for s in SOURCES},
             "rejected_source": {s: sum(c["source"] == s for c in rejected) for s in SOURCES},
             "mean_chosen_tokens": sum(c["n_tokens"] for c in chosen) / max(len(chosen), 1),
             "mean_rejected_tokens": sum(c["n_tokens"] for c in rejected) / max(len(rejected), 1)}
    return records, stats


# ---------------------------------------------------------------- loss

def length_normalised_margin(ratio_w, ratio_l, len_w, len_l, beta: float) -> torch.Tensor:
    """Delta' (Eq. 11): summed log ratios, each divided by its length, rescaled by the mean length."""
    return (len_w + len_l) / 2 * (beta * ratio_w / len_w - beta * ratio_l / len_l)


def token_visual_weights(shift: torch.Tensor, alpha: float, clip: tuple[float, float], sign: int) -> torch.Tensor:
    """w_t = 1 + sign * clip(alpha * dp_t, lo, hi) (Eq. 13): sign +1 on y_w, -1 on y_l; detached."""
    return (1 + sign * (alpha * shift).clamp(clip[0], clip[1])).detach()


def consr_loss(policy_w, policy_l, ref_w, ref_l, mask_w, mask_l, weight_w, weight_l, *, beta: float):
    """L' (Eq. 14) per pair from per-token log-probs [B, T] and masks; also returns Delta'.

    Eq. 14 as printed drops the beta that Eq. 10 carries outside the bracket; it is kept,
    so that with unit weights and equal lengths the gradient is exactly DPO's (Eq. 8)."""
    delta = length_normalised_margin(((policy_w - ref_w) * mask_w).sum(-1), ((policy_l - ref_l) * mask_l).sum(-1),
                                     mask_w.sum(-1), mask_l.sum(-1), beta)
    weighted = (weight_w.detach() * policy_w * mask_w).sum(-1) - (weight_l.detach() * policy_l * mask_l).sum(-1)
    return -beta * torch.sigmoid(-delta).detach() * weighted, delta


def corrupt_view(record: dict):
    """The View that shows a ConSR record's corrupt image I~ (its `extras.corrupt`: the
    augmentation and seed it was built with), so training sees the very I~ of scoring."""
    from ..augment import AugmentSpec, View

    spec = record.get("extras", {}).get("corrupt")
    if not isinstance(spec, dict) or "name" not in spec or "seed" not in spec:
        raise RecordError("preferences", record["id"], "extras.corrupt",
                          "missing: token_shift 'policy' needs the corrupt augmentation the set was built with "
                          "(rebuild the preference set)")
    spec = dict(spec)
    seed = spec.pop("seed")
    return View(AugmentSpec.from_config_with_name(spec), seed)


def token_shift_policy(policy: torch.Tensor, policy_corrupt: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """dp_t = p_theta(y_t | x, I) - p_theta(y_t | x, I~) of Eq. 12 from the policy's current token
    log-probs [B, T] (detached: the weights are constants in the loss)."""
    return (policy.detach().exp() - policy_corrupt.detach().exp()) * mask


def stored_weights(records, index: int, width: int, mask: torch.Tensor, cfg: ObjectiveSettings,
                   sign: int) -> torch.Tensor:
    """Token weights [B, width] of response `index` of each record's selected pair, from the
    shifts stored at build time (the reference model's, `token_shift: reference`)."""
    rows = []
    for b, rec in enumerate(records):
        resp = pair_groups(rec)[index][0]
        shift = resp.get("token_prob_shift")
        if shift is None or len(shift) != int(mask[b].sum()):
            raise RecordError("preferences", rec["id"], f"{'chosen' if index == 0 else 'rejected'}.token_prob_shift",
                              "missing or not matching the scored tokens (ConSR's loss needs a ConSR set)")
        rows.append(shift + [0.0] * (width - len(shift)))
    shift = torch.tensor(rows, dtype=mask.dtype, device=mask.device)
    return token_visual_weights(shift, cfg.alpha, cfg.clip, sign) * mask


def consr_objective(scored: dict, cfg: ObjectiveSettings) -> tuple[torch.Tensor, dict]:
    """L' of Eq. 14. Token shifts dp_t (Eq. 12): `token_shift: policy` (the paper's p_theta,
    recomputed each step with the policy) or `reference` (computed once by the base model)."""
    pol, ref, mask = scored["policy_tokens"], scored["ref_tokens"], scored["token_mask"]
    width = mask.shape[-1]
    if token_shift(cfg) == "policy":
        clip = cfg.clip
        shift = token_shift_policy(pol, scored["policy_corrupt_tokens"], mask)
        w_w = token_visual_weights(shift[:, 0], cfg.alpha, clip, +1) * mask[:, 0]
        w_l = token_visual_weights(shift[:, 1], cfg.alpha, clip, -1) * mask[:, 1]
    else:
        w_w = stored_weights(scored["records"], 0, width, mask[:, 0], cfg, +1)
        w_l = stored_weights(scored["records"], 1, width, mask[:, 1], cfg, -1)
    losses, delta = consr_loss(pol[:, 0], pol[:, 1], ref[:, 0], ref[:, 1], mask[:, 0], mask[:, 1], w_w, w_l,
                               beta=cfg.beta)
    margin = (scored["policy"][:, 0] - scored["ref"][:, 0]) - (scored["policy"][:, 1] - scored["ref"][:, 1])
    return losses.mean(), {"reward_margin": margin.mean().item(), "length_normalised_margin": delta.mean().item(),
                           "pair_accuracy": (margin > 0).float().mean().item()}


def token_shift(cfg: ObjectiveSettings) -> str:
    shift = cfg.token_shift
    if shift not in TOKEN_SHIFTS:
        raise ValueError(f"unknown ConSR token_shift {shift!r} (known: {TOKEN_SHIFTS})")
    return shift


OBJECTIVE = Objective(select=pair_groups, loss=consr_objective,
                      scores_corrupt=lambda cfg: token_shift(cfg) == "policy")
