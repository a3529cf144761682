"""Plain DPO (Rafailov et al. 2023), the baseline objective and SeVa's loss.

    L = -log sigmoid(beta * (r(y_w) - r(y_l))),  r(y) = logp_theta(y) - logp_ref(y)
"""
from __future__ import annotations

from ..lazy import F, torch
from ..settings import ObjectiveSettings

from .records import Objective, pair_groups


def dpo_loss(policy_chosen, policy_rejected, ref_chosen, ref_rejected, beta: float):
    """Per-pair DPO loss from summed response log-probs; also returns the reward margin."""
    margin = (policy_chosen - ref_chosen) - (policy_rejected - ref_rejected)
    return -F.logsigmoid(beta * margin), margin


def dpo_objective(scored: dict, cfg: ObjectiveSettings) -> tuple[torch.Tensor, dict]:
    """Objective interface: response 0 of each item is the chosen one, response 1 the rejected."""
    policy, ref = scored["policy"], scored["ref"]
    losses, margin = dpo_loss(policy[:, 0], policy[:, 1], ref[:, 0], ref[:, 1], cfg.beta)
    return losses.mean(), {"reward_margin": margin.mean().item(),
                           "pair_accuracy": (margin > 0).float().mean().item()}


OBJECTIVE = Objective(select=pair_groups, loss=dpo_objective)
