"""SMPRO (differentiable multi-preference multi-group ranking).

Data: for each prompt (question + reasoning prompt), groups of responses sampled at high
temperature from progressively corrupted views: G1 from the clean image, G2 from noise
step 500, G3 from noise step 800; ranked G1 > G2 > G3, no order inside a group.

Loss: the N log ratios r(y_i) of one item go through an odd-even differentiable sorting
network with the Cauchy swap f(x) = arctan(beta_s x)/pi + 0.5. P[i, j] is the probability
that response i lands at ascending position j. Groups own consecutive blocks of positions
and the best group owns the TOP (largest) block; p_i = sum of P[i, k] over its group's
block, L_MGP = (1/N) sum_i BCE(p_i, 1), plus alpha * mean over G1 of r(y_i) (Eq. 4; its
sign is configurable, see `smpro_objective`).
"""
from __future__ import annotations

import math

from ..lazy import F, torch

from ..io import RecordError
from ..settings import ObjectiveSettings, PreferenceSetSettings
from .records import Objective, all_groups, make_record

NAME = "smpro"

SWAPS = {
    "cauchy": lambda x, beta: torch.atan(beta * x) / math.pi + 0.5,
    "logistic": lambda x, beta: torch.sigmoid(beta * x),
}


def odd_even_permutation(x: torch.Tensor, steepness: float, swap: str = "cauchy") -> torch.Tensor:
    """Relaxed permutation matrices P [B, N, N] of an odd-even sorting network on x [B, N].

    N layers; layer l compares neighbours (i, i+1) for i = l mod 2, l mod 2 + 2, ...; the
    smaller goes to position i (ascending). P[b, i, j] = probability that input i lands at
    position j: diffsort's convention (checked against it in the tests)."""
    f = SWAPS[swap]
    n = x.shape[1]
    perm = torch.eye(n, dtype=x.dtype, device=x.device).expand(x.shape[0], n, n)
    for layer in range(n):
        a_idx = torch.arange(layer % 2, n - 1, 2, device=x.device)
        if len(a_idx) == 0:
            continue
        b_idx = a_idx + 1
        a, b = x[:, a_idx], x[:, b_idx]
        alpha = f(b - a, steepness)  # probability that the pair is already in order
        x = x.clone()
        x[:, a_idx] = alpha * a + (1 - alpha) * b  # softmin
        x[:, b_idx] = (1 - alpha) * a + alpha * b  # softmax
        pa, pb = perm[:, :, a_idx], perm[:, :, b_idx]
        al = alpha.unsqueeze(1)
        perm = perm.clone()
        perm[:, :, a_idx] = al * pa + (1 - al) * pb
        perm[:, :, b_idx] = (1 - al) * pa + al * pb
    return perm


def group_block_probability(perm: torch.Tensor, group_sizes: list[int]) -> torch.Tensor:
    """p_i = probability mass that response i lands inside its own group's block [B, N].

    Responses are ordered by group, best group first; the best group owns the top block of
    ascending positions, the next group the block below it, and so on."""
    ps, start, top = [], 0, perm.shape[-1]
    for size in group_sizes:
        ps.append(perm[:, start:start + size, top - size:top].sum(-1))
        start += size
        top -= size
    return torch.cat(ps, 1)


def mgp_loss(log_ratios: torch.Tensor, group_sizes: list[int], steepness: float,
             swap: str = "cauchy") -> torch.Tensor:
    """L_MGP per item [B] (Eq. 3) for log ratios [B, N] ordered best group first."""
    if sum(group_sizes) != log_ratios.shape[1]:
        raise ValueError(f"group sizes {group_sizes} do not add up to {log_ratios.shape[1]} responses")
    p = group_block_probability(odd_even_permutation(log_ratios, steepness, swap), group_sizes)
    # Products of relaxed matrices drift slightly outside [0, 1] by rounding.
    p = p.clamp(0.0, 1.0)
    return F.binary_cross_entropy(p, torch.ones_like(p), reduction="none").mean(-1)


def smpro_objective(scored: dict, cfg: ObjectiveSettings) -> tuple[torch.Tensor, dict]:
    """Eq. 4: L = L_MGP + alpha * mean over the positive group of r(y_i), averaged over items.

    Items with different group sizes in one batch are bucketed by their sizes (each bucket
    is one batched network, no padding enters a sort)."""
    ids = [r["id"] for r in scored["records"]] if "records" in scored else range(len(scored["group_sizes"]))
    for record_id, sizes in zip(ids, scored["group_sizes"]):
        if len(sizes) < 2:
            raise RecordError("preferences", record_id, "groups",
                              f"{len(sizes)} group; the MGP loss ranks at least 2 groups")
    ratios = scored["policy"] - scored["ref"]
    mgp = ratios.new_zeros(len(ratios))
    positive = ratios.new_zeros(len(ratios))
    margin = ratios.new_zeros(len(ratios))
    ordered, pairs = 0.0, 0
    for sizes in sorted(set(scored["group_sizes"])):
        rows = torch.tensor([b for b, gs in enumerate(scored["group_sizes"]) if gs == sizes])
        r = ratios[rows, :sum(sizes)]
        mgp[rows] = mgp_loss(r, list(sizes), cfg.steepness, cfg.swap)
        positive[rows] = r[:, :sizes[0]].mean(-1)
        margin[rows] = (r[:, :sizes[0]].mean(-1) - r[:, sum(sizes) - sizes[-1]:].mean(-1)).detach()
        better_worse = cross_group_pairs(sizes)
        ordered += (r[:, better_worse[:, 0]] > r[:, better_worse[:, 1]]).float().sum().item()
        pairs += len(rows) * len(better_worse)
    # Eq. 4 as printed adds +alpha * r(G_pos). MGP depends on differences of log ratios only,
    # so that sign makes the loss unbounded below (lower every likelihood together); the
    # paper's stated aim ("strengthen the positive preferences", keep positives near the
    # reference) reads as -alpha * r(G_pos). positive_sign selects; +1 is the default.
    loss = mgp.mean() + cfg.positive_sign * cfg.alpha * positive.mean()
    return loss, {"mgp": mgp.mean().item(), "positive_log_ratio": positive.mean().item(),
                  "reward_margin": margin.mean().item(), "pair_accuracy": ordered / max(pairs, 1)}


def cross_group_pairs(sizes) -> torch.Tensor:
    """(better, worse) response indices for every pair of responses in different groups."""
    starts = [sum(sizes[:g]) for g in range(len(sizes))]
    return torch.tensor([(i, j) for g, (s, n) in enumerate(zip(starts, sizes))
                         for i in range(s, s + n) for j in range(s + n, sum(sizes))], dtype=torch.long)


OBJECTIVE = Objective(select=all_groups, loss=smpro_objective)


# ---------------------------------------------------------------- preference construction

def needs(pref_cfg: PreferenceSetSettings) -> list[tuple[str, str]]:
    """Sampled responses from every view any group draws on (clean, noise500, noise800)."""
    views = dict.fromkeys(v for g in pref_cfg.groups for v in g["views"])
    return [(v, pref_cfg.generation) for v in views]


def build_smpro_groups(prompts: list[dict], responses: dict, groups_cfg: list[dict], gen: str):
    """Ranked groups per prompt: group g takes the first `per_view` samples of each of its views."""
    records, all_identical = [], 0
    for p in prompts:
        groups = []
        for g, gcfg in enumerate(groups_cfg):
            group = []
            for view in gcfg["views"]:
                sampled = responses[(view, gen)][p["id"]]["responses"]
                if len(sampled) < gcfg["per_view"]:
                    raise RecordError(f"responses {view}/{gen}", p["id"], "responses",
                                      f"group {g + 1} needs {gcfg['per_view']} samples, found {len(sampled)}")
                group += [{**r, "source": view, "sample": k} for k, r in enumerate(sampled[:gcfg["per_view"]])]
            groups.append(group)
        all_identical += len({r["text"].strip() for g in groups for r in g}) == 1
        records.append(make_record(p, groups, method=NAME))
    sizes = [len(g) for g in records[0]["groups"]] if records else []
    return records, {"prompts": len(prompts), "kept": len(records), "rejected": {}, "group_sizes": sizes,
                     "all_responses_identical": all_identical}


def build(prompts, responses, pref_cfg: PreferenceSetSettings, resources=None):
    return build_smpro_groups(prompts, responses, pref_cfg.groups, pref_cfg.generation)
