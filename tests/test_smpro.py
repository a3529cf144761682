"""SMPRO: the odd-even sorting network, the MGP loss and its DPO special case."""
import dataclasses
import itertools
import math

import pytest
import torch
from diffsort import DiffSortNet

from prefalign.io import RecordError
from prefalign.methods.dpo import dpo_loss
from prefalign.methods.smpro import (build_smpro_groups, cross_group_pairs, mgp_loss, needs,
                                     odd_even_permutation, smpro_objective)
from prefalign.settings import ObjectiveSettings, PreferenceSetSettings


def mgp(**kw) -> ObjectiveSettings:
    return ObjectiveSettings(**{"loss": "mgp", "alpha": 0.17, "swap": "cauchy", "positive_sign": 1, **kw})


@pytest.mark.parametrize("n", [2, 3, 4, 5, 9])
@pytest.mark.parametrize("steepness", [0.5, 10.0])
def test_permutation_matrices_match_diffsort(n, steepness):
    torch.manual_seed(n)
    x = torch.randn(16, n, dtype=torch.float64) * 3
    sorted_ref, perm_ref = DiffSortNet("odd_even", n, steepness=steepness, distribution="cauchy")(x)
    perm = odd_even_permutation(x, steepness, "cauchy")
    torch.testing.assert_close(perm, perm_ref, atol=1e-6, rtol=0)
    # axis convention: P[b, i, j] = P(input i -> ascending position j), so x @ P is sorted
    torch.testing.assert_close(torch.einsum("bi,bij->bj", x, perm), sorted_ref, atol=1e-6, rtol=0)


def test_hard_limit_is_the_true_permutation():
    torch.manual_seed(0)
    x = torch.randn(8, 6, dtype=torch.float64)
    truth = torch.zeros(8, 6, 6, dtype=torch.float64)
    truth.scatter_(2, x.argsort(-1).argsort(-1).unsqueeze(-1), 1.0)
    errors = [(odd_even_permutation(x, beta, "cauchy") - truth).abs().max().item() for beta in (1, 1e2, 1e4, 1e6, 1e8)]
    assert all(b < a for a, b in zip(errors, errors[1:]))
    assert errors[-1] < 1e-5  # Cauchy tails shrink as 1/(pi beta |d|)
    # each relaxed P is doubly stochastic
    perm = odd_even_permutation(x, 1.0)
    torch.testing.assert_close(perm.sum(-1), torch.ones(8, 6, dtype=torch.float64))
    torch.testing.assert_close(perm.sum(-2), torch.ones(8, 6, dtype=torch.float64))


def test_two_singleton_groups_with_logistic_swap_is_dpo():
    beta = 0.1
    torch.manual_seed(1)
    pc, pr, rc, rr = (torch.randn(32, dtype=torch.float64) * 5 for _ in range(4))
    dpo, _ = dpo_loss(pc, pr, rc, rr, beta)
    ratios = torch.stack([pc - rc, pr - rr], 1)  # chosen first
    torch.testing.assert_close(mgp_loss(ratios, [1, 1], beta, "logistic"), dpo)


def test_two_singleton_groups_with_cauchy_swap_is_monotone_in_the_dpo_margin():
    margins = torch.linspace(-30, 30, 121, dtype=torch.float64)
    ratios = torch.stack([margins, torch.zeros_like(margins)], 1)
    loss = mgp_loss(ratios, [1, 1], 0.1, "cauchy")
    assert (loss[1:] < loss[:-1]).all()  # strictly decreasing as the margin grows
    # it depends on the margin only, not on where the pair sits
    torch.testing.assert_close(mgp_loss(ratios + 7.5, [1, 1], 0.1, "cauchy"), loss)
    # closed form: p = f(m) = arctan(beta m)/pi + 1/2, L = -log p
    torch.testing.assert_close(loss, -torch.log(torch.atan(0.1 * margins) / math.pi + 0.5))


def test_mgp_hand_computed_three_responses():
    # groups (1, 2): response 0 best. N=3 odd-even: layer 0 compares (0,1), layer 1 (1,2), layer 2 (0,1).
    x = torch.tensor([[2.0, 0.0, 1.0]], dtype=torch.float64)
    f = lambda d: math.atan(d) / math.pi + 0.5  # noqa: E731, steepness 1
    P = torch.eye(3, dtype=torch.float64)
    v = x[0].tolist()
    for a in (0, 1, 0):
        al = f(v[a + 1] - v[a])
        lo, hi = al * v[a] + (1 - al) * v[a + 1], (1 - al) * v[a] + al * v[a + 1]
        v[a], v[a + 1] = lo, hi
        ca, cb = P[:, a].clone(), P[:, a + 1].clone()
        P[:, a], P[:, a + 1] = al * ca + (1 - al) * cb, (1 - al) * ca + al * cb
    # best group owns the top position 2; group 2 owns positions 0-1
    p = [P[0, 2].item(), P[1, :2].sum().item(), P[2, :2].sum().item()]
    expected = -sum(math.log(q) for q in p) / 3
    assert mgp_loss(x, [1, 2], 1.0).item() == pytest.approx(expected, rel=1e-12)


def test_gradients_reach_every_log_ratio_and_unequal_sizes_batch():
    policy = torch.randn(3, 9, dtype=torch.float64, requires_grad=True)
    ref = torch.randn(3, 9, dtype=torch.float64)
    scored = {"policy": policy, "ref": ref,
              "group_sizes": [(3, 3, 3), (1, 2, 2), (3, 6)]}
    loss, metrics = smpro_objective(scored, mgp(steepness=0.5))
    loss.backward()
    used = [9, 5, 9]
    for b, n in enumerate(used):
        assert (policy.grad[b, :n] != 0).all()
        assert (policy.grad[b, n:] == 0).all()  # padding never enters a sort
    # the total is the mean of per-item MGP losses plus alpha times the positive-group mean
    r = (policy - ref).detach()
    expected = torch.stack([mgp_loss(r[0:1], [3, 3, 3], 0.5)[0], mgp_loss(r[1:2, :5], [1, 2, 2], 0.5)[0],
                            mgp_loss(r[2:3], [3, 6], 0.5)[0]]).mean()
    expected += 0.17 * torch.stack([r[0, :3].mean(), r[1, :1].mean(), r[2, :3].mean()]).mean()
    assert loss.item() == pytest.approx(expected.item(), rel=1e-10)
    assert 0 <= metrics["pair_accuracy"] <= 1


def test_positive_term_sign_follows_eq4():
    """alpha * mean r(G_pos) is added: raising a positive's log ratio alone raises that term."""
    ratios = torch.zeros(1, 3, dtype=torch.float64, requires_grad=True)
    loss, _ = smpro_objective({"policy": ratios, "ref": torch.zeros(1, 3, dtype=torch.float64),
                               "group_sizes": [(1, 1, 1)]}, mgp(steepness=1.0))
    loss.backward()
    mgp_only = torch.zeros(1, 3, dtype=torch.float64, requires_grad=True)
    mgp_loss(mgp_only, [1, 1, 1], 1.0).sum().backward()
    assert ratios.grad[0, 0].item() == pytest.approx(mgp_only.grad[0, 0].item() + 0.17)


def test_an_item_with_a_single_group_is_named():
    scored = {"policy": torch.zeros(2, 3), "ref": torch.zeros(2, 3), "group_sizes": [(1, 2), (3,)],
              "records": [{"id": "p1"}, {"id": "p2"}]}
    with pytest.raises(RecordError, match="record p2: field 'groups': 1 group; the MGP loss ranks at least 2"):
        smpro_objective(scored, mgp(steepness=1.0))


def test_cross_group_pairs():
    assert cross_group_pairs((1, 2)).tolist() == [[0, 1], [0, 2]]
    assert len(cross_group_pairs((3, 3, 3))) == 27


def test_build_groups_in_rank_order_with_provenance():
    groups_cfg = [{"views": ["clean"], "per_view": 1}, {"views": ["noise500", "noise800"], "per_view": 2}]
    cfg = PreferenceSetSettings(method="smpro", prompts="p", groups=groups_cfg, generation="sample3")
    assert needs(cfg) == [("clean", "sample3"), ("noise500", "sample3"), ("noise800", "sample3")]
    prompts = [{"id": "a", "image": "i.png", "question": "q"}]
    resp = {(v, "sample3"): {"a": {"responses": [{"text": f"{v}{k}", "n_tokens": 2} for k in range(3)]}}
            for v in ("clean", "noise500", "noise800")}
    records, stats = build_smpro_groups(prompts, resp, groups_cfg, "sample3")
    g = records[0]["groups"]
    assert [[r["text"] for r in grp] for grp in g] == [["clean0"], ["noise5000", "noise5001", "noise8000", "noise8001"]]
    assert [(r["source"], r["sample"]) for r in g[1]][:2] == [("noise500", 0), ("noise500", 1)]
    assert stats["group_sizes"] == [1, 4]
    too_many = [{"views": ["clean"], "per_view": 4}, {"views": ["noise800"], "per_view": 1}]
    with pytest.raises(Exception, match="needs 4 samples"):
        build_smpro_groups(prompts, resp, too_many, "sample3")


def test_all_permutations_of_tied_groups_give_equal_loss():
    """No order inside a group: permuting responses within a group leaves the loss unchanged
    when the network is in its hard limit (relaxed networks are order-sensitive, as in diffsort)."""
    x = torch.tensor([[3.0, 2.5, 1.0, 0.5, -1.0]], dtype=torch.float64)
    base = mgp_loss(x, [2, 3], 1e6).item()
    for perm in itertools.permutations(range(2, 5)):
        y = torch.cat([x[:, :2], x[:, list(perm)]], 1)
        assert mgp_loss(y, [2, 3], 1e6).item() == pytest.approx(base, abs=1e-5)


def test_printed_positive_term_is_unbounded_below_and_the_flipped_sign_is_not():
    """MGP sees differences only: shifting every log ratio down leaves it unchanged, so with
    Eq. 4's printed sign the total keeps falling; with positive_sign -1 it rises."""
    r = torch.tensor([[1.0, 0.5, 0.0, -0.5]], dtype=torch.float64)
    cfg = mgp(steepness=0.1)
    scored = lambda shift: {"policy": r + shift, "ref": torch.zeros_like(r), "group_sizes": [(2, 2)]}  # noqa: E731
    printed = [smpro_objective(scored(s), cfg)[0].item() for s in (0.0, -10.0, -100.0)]
    flipped_cfg = dataclasses.replace(cfg, positive_sign=-1)
    flipped = [smpro_objective(scored(s), flipped_cfg)[0].item() for s in (0.0, -10.0, -100.0)]
    assert printed[0] > printed[1] > printed[2]
    assert flipped[0] < flipped[1] < flipped[2]
    assert printed[1] - printed[0] == pytest.approx(-0.17 * 10)
