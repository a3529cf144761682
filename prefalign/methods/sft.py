"""Continual supervised fine-tuning, the baseline of SeVa's Table 3 (labelled answers, no
preference): the chosen response's negative log-likelihood, per token, averaged over items.

    L = -(1 / |y_w|) sum_t log pi_theta(y_w,t | x, y_w,<t)

The same term is the anchor `chosen_nll_weight` adds to every objective (RPO's), so an `sft`
run trains with that weight at 0. The pair is scored as for DPO (the rejected response only
enters the logged rewards).
"""
from __future__ import annotations

from ..lazy import torch
from ..settings import ObjectiveSettings

from .records import Objective, pair_groups


def chosen_nll(scored: dict) -> torch.Tensor:
    """Mean over items of the chosen response's (the top group's first) mean token NLL."""
    return -(scored["policy"][:, 0] / scored["token_mask"][:, 0].sum(-1).clamp(min=1)).mean()


def sft_objective(scored: dict, cfg: ObjectiveSettings) -> tuple[torch.Tensor, dict]:
    nll = chosen_nll(scored)
    return nll, {"nll": nll.item()}


OBJECTIVE = Objective(select=pair_groups, loss=sft_objective)
