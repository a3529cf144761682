"""ConSR: contrastive scores, candidate ranking, shared-prefix scoring, and the loss (Eq. 10-14)."""
import dataclasses
import math

import pytest
import torch
from test_losses_and_logprobs import _images

from prefalign import world as W
from prefalign.settings import LoraSettings, ObjectiveSettings, PreferenceSetSettings
from prefalign.scoring import correctness
from prefalign.augment import AugmentSpec, View
from prefalign.methods.consr import (
    build_consr_records,
    consr_loss,
    consr_objective,
    contrastive_reward,
    contrastive_scores,
    length_normalised_margin,
    score_candidates,
    select_groups,
    token_visual_weights,
)
from prefalign.methods.dpo import dpo_loss
from prefalign.model import build_scoring_batch, token_logps


def test_contrastive_scores_by_hand():
    # two candidates: token log-probs under (x, I), (d + x, I), (x, I~); the second has 1 token
    mask = torch.tensor([[1.0, 1.0], [1.0, 0.0]])
    clean = torch.tensor([[-1.0, -3.0], [-0.5, 0.0]])
    semantic = torch.tensor([[-1.0, -1.0], [-0.7, 0.0]])
    corrupt = torch.tensor([[-2.0, -4.0], [-0.5, 0.0]])
    s = contrastive_scores(clean, semantic, corrupt, mask)
    p = [math.exp(-2.0), math.exp(-0.5)]
    assert s["p"].tolist() == pytest.approx(p)
    assert s["s_semantic"].tolist() == pytest.approx([math.exp(-1.0) - p[0], math.exp(-0.7) - p[1]])
    assert s["s_corrupt"].tolist() == pytest.approx([p[0] - math.exp(-3.0), 0.0])
    r = contrastive_reward(s["s_semantic"], s["s_corrupt"], 0.8)
    assert r[0].item() == pytest.approx(0.8 * (math.exp(-1) - p[0]) + 0.2 * (p[0] - math.exp(-3)))


def _cand(source, sample, reward, text=None):
    return {"text": text or f"{source}{sample}", "source": source, "sample": sample, "reward": reward}


def test_selection_ranks_all_candidates_or_pairs_clean_with_noisy():
    ranked = [_cand("revised", 0, 0.3), _cand("sampled", 1, 0.2), _cand("sampled", 0, 0.1), _cand("noisy", 0, -0.4)]
    groups, why = select_groups({"id": "p"}, ranked, "reward")
    assert why is None and [g[0]["text"] for g in groups] == ["revised0", "sampled1", "sampled0", "noisy0"]
    groups, _ = select_groups({"id": "p"}, ranked, "noise_pair")
    assert [g[0]["text"] for g in groups] == ["sampled0", "noisy0"]
    flat = [_cand("sampled", k, 0.5, "same") for k in range(3)]
    assert select_groups({"id": "p"}, flat, "reward") == (None, "no_reward_spread")


def test_length_normalised_margin_by_hand():
    # |y_w| = 2, |y_l| = 4, summed log ratios 1.0 and -2.0, beta 0.1:
    # Delta' = (2 + 4) / 2 * (0.1 * 1.0 / 2 - 0.1 * -2.0 / 4) = 3 * (0.05 + 0.05) = 0.3
    d = length_normalised_margin(torch.tensor(1.0), torch.tensor(-2.0), torch.tensor(2.0), torch.tensor(4.0), 0.1)
    assert d.item() == pytest.approx(0.3)
    # equal lengths: Delta' is DPO's Delta
    d = length_normalised_margin(torch.tensor(1.0), torch.tensor(-2.0), torch.tensor(3.0), torch.tensor(3.0), 0.1)
    assert d.item() == pytest.approx(0.1 * 3.0)


def test_token_weights_are_clipped_and_detached():
    shift = torch.tensor([-0.5, 0.1, 0.3, 2.0], requires_grad=True)
    w_chosen = token_visual_weights(shift, 0.5, (0.0, 0.2), +1)
    w_rejected = token_visual_weights(shift, 0.5, (0.0, 0.2), -1)
    assert w_chosen.tolist() == pytest.approx([1.0, 1.05, 1.15, 1.2])
    assert w_rejected.tolist() == pytest.approx([1.0, 0.95, 0.85, 0.8])
    assert not w_chosen.requires_grad and not w_rejected.requires_grad
    sym = token_visual_weights(shift, 0.5, (-0.2, 0.2), +1)  # a symmetric range lets weights fall below 1
    assert sym.tolist() == pytest.approx([0.8, 1.05, 1.15, 1.2])


def test_unit_weights_and_equal_lengths_give_dpo_gradients():
    torch.manual_seed(0)
    pw, pl = torch.randn(3, 5, requires_grad=True), torch.randn(3, 5, requires_grad=True)
    rw, rl = torch.randn(3, 5), torch.randn(3, 5)
    mask = torch.ones(3, 5)
    mask[1, 3:] = 0  # item 1: both responses 3 tokens long
    ones = torch.ones(3, 5)
    loss, delta = consr_loss(pw, pl, rw, rl, mask, mask, ones, ones, beta=0.1)
    loss.sum().backward()
    g_consr = pw.grad.clone(), pl.grad.clone()
    pw.grad = pl.grad = None
    dpo, margin = dpo_loss((pw * mask).sum(-1), (pl * mask).sum(-1), (rw * mask).sum(-1), (rl * mask).sum(-1), 0.1)
    dpo.sum().backward()
    torch.testing.assert_close(delta, 0.1 * margin.detach())
    torch.testing.assert_close(g_consr[0], pw.grad)
    torch.testing.assert_close(g_consr[1], pl.grad)


def test_weights_scale_each_tokens_gradient_and_lengths_reweight_the_factor():
    pw = torch.zeros(1, 2, requires_grad=True)
    pl = torch.zeros(1, 4, requires_grad=True)
    mw, ml = torch.ones(1, 2), torch.ones(1, 4)
    ww, wl = torch.tensor([[1.2, 1.0]]), torch.tensor([[0.8, 1.0, 1.0, 1.0]])
    ref_w, ref_l = torch.tensor([[-0.5, -0.5]]), torch.tensor([[0.5, 0.5, 0.5, 0.5]])
    loss, delta = consr_loss(pw, pl, ref_w, ref_l, mw, ml, ww, wl, beta=0.1)
    assert delta.item() == pytest.approx(0.3)  # the hand example above
    loss.sum().backward()
    factor = 0.1 * (1 / (1 + math.exp(0.3)))  # beta * sigmoid(-Delta')
    assert pw.grad.tolist()[0] == pytest.approx([-factor * 1.2, -factor * 1.0])
    assert pl.grad.tolist()[0] == pytest.approx([factor * 0.8, factor, factor, factor])


def test_objective_reads_stored_token_shifts():
    rec = {"id": "x", "groups": [[{"text": "a b", "token_prob_shift": [0.4, -0.1]}],
                                 [{"text": "c", "token_prob_shift": [1.0]}]]}
    pol = torch.zeros(1, 2, 2)
    pol[0, 0] = torch.tensor([-1.0, -2.0])
    pol[0, 1, 0] = -3.0
    mask = torch.tensor([[[1.0, 1.0], [1.0, 0.0]]])
    scored = {"records": [rec], "policy_tokens": pol, "ref_tokens": torch.zeros(1, 2, 2), "token_mask": mask,
              "policy": pol.sum(-1), "ref": torch.zeros(1, 2)}
    cfg = ObjectiveSettings(loss="consr", beta=0.1, alpha=0.5, clip=(0.0, 0.2), token_shift="reference")
    loss, m = consr_objective(scored, cfg)
    delta = 1.5 * (0.1 * -3.0 / 2 - 0.1 * -3.0 / 1)
    weighted = (1.2 * -1.0 + 1.0 * -2.0) - (0.8 * -3.0)
    assert m["length_normalised_margin"] == pytest.approx(delta)
    assert loss.item() == pytest.approx(-0.1 / (1 + math.exp(delta)) * weighted)
    rec["groups"][1][0]["token_prob_shift"] = [1.0, 2.0]  # does not match the one scored token
    with pytest.raises(Exception, match="token_prob_shift"):
        consr_objective(scored, cfg)


def test_policy_token_shift_is_recomputed_from_the_policy():
    """Eq. 12 with p_theta: dp_t = exp(policy log-prob on I) - exp(policy log-prob on I~)."""
    rec = {"id": "x", "groups": [[{"text": "a b"}], [{"text": "c"}]]}  # no stored shifts needed
    pol = torch.log(torch.tensor([[[0.5, 0.9], [0.4, 1.0]]]))  # second rejected token is padding
    corrupt = torch.log(torch.tensor([[[0.1, 0.9], [0.8, 0.3]]]))
    mask = torch.tensor([[[1.0, 1.0], [1.0, 0.0]]])
    scored = {"records": [rec], "policy_tokens": pol, "ref_tokens": torch.zeros(1, 2, 2), "token_mask": mask,
              "policy": (pol * mask).sum(-1), "ref": torch.zeros(1, 2), "policy_corrupt_tokens": corrupt}
    cfg = ObjectiveSettings.from_partial({"loss": "consr", "beta": 0.1, "alpha": 0.5, "clip": [0.0, 0.2]})
    loss, m = consr_objective(scored, cfg)
    # dp = (0.4, 0.0) on y_w -> w = (1.2, 1.0); dp = -0.4 on y_l -> clip(-0.2, 0, .2) = 0 -> w = 1
    delta = m["length_normalised_margin"]
    weighted = (1.2 * math.log(0.5) + 1.0 * math.log(0.9)) - math.log(0.4)
    assert loss.item() == pytest.approx(-0.1 / (1 + math.exp(delta)) * weighted, rel=1e-5)  # float32
    with pytest.raises(ValueError, match="unknown ConSR token_shift 'both'"):
        consr_objective(scored, ObjectiveSettings(loss="consr", beta=0.1, alpha=0.5, clip=(0.0, 0.2),
                                                    token_shift="both"))


def _naive_token_logps(model, processor, images, questions, candidates, pixel_transform=None):
    flat = [(im, q, c["text"]) for im, q, cs in zip(images, questions, candidates) for c in cs]
    batch = build_scoring_batch(processor, *map(list, zip(*flat)), pixel_transform=pixel_transform)
    return token_logps(model, batch)


def test_shared_scoring_of_three_conditions_equals_naive(small_world, tiny_model):
    model, processor = tiny_model
    images = _images(small_world, 2)
    prompts = [{"id": "a", "question": "what colour is the circle?"}, {"id": "b", "question": "describe the image."}]
    candidates = [[{"text": t} for t in ("red", "blue. the circle is blue.", "red")],
                  [{"text": t} for t in ("there is a small red circle at the top.", "nothing")]]
    descriptions = {"a": "there is a large red circle at the top.", "b": "there is a sign reading 42 at the left."}
    view = View(AugmentSpec("noise800", "diffusion", 800), seed=3)
    out = score_candidates(model, processor, prompts, images, candidates, descriptions, view, W.CONTEXT_TEMPLATE)
    qs = [p["question"] for p in prompts]
    enriched = [W.CONTEXT_TEMPLATE.format(description=descriptions[p["id"]], prompt=p["question"]) for p in prompts]
    with torch.no_grad():
        clean, mask = _naive_token_logps(model, processor, images, qs, candidates)
        sem, _ = _naive_token_logps(model, processor, images, enriched, candidates)
        flat_ids = [p["id"] for p, cs in zip(prompts, candidates) for _ in cs]
        cor, _ = _naive_token_logps(model, processor, images, qs, candidates, view.pixel_transform(flat_ids))
    naive = contrastive_scores(clean, sem, cor, mask)
    shared = [s for scores, _ in out for s in scores]
    for k in ("p", "p_semantic", "p_corrupt"):
        torch.testing.assert_close(torch.tensor([s[k] for s in shared]), naive[k], atol=1e-4, rtol=0)
    shifts = [dp for _, dps in out for dp in dps]
    for m, dp in enumerate(shifts):
        n = int(mask[m].sum())
        expected = (clean[m].exp() - cor[m].exp())[mask[m].bool()]
        assert len(dp) == n
        torch.testing.assert_close(torch.tensor(dp), expected, atol=1e-4, rtol=0)


def test_records_keep_every_candidate_ranked_with_scores(small_world, tiny_model):
    model, processor = tiny_model
    images = _images(small_world, 2)
    prompts = [{"id": f"p{i}", "image": f"img{i}", "question": q}
               for i, q in enumerate(["what colour is the circle?", "how many squares are there?"])]

    def resp(texts):
        return {p["id"]: {"responses": [{"text": t, "n_tokens": 2} for t in texts]} for p in prompts}
    responses = {("clean", "s"): resp(["red", "blue", "one"]), ("revised", "s"): resp(["red", "two"]),
                 ("noise500", "s"): resp(["green", "zero", "blue"])}
    cfg = PreferenceSetSettings(method="consr", prompts="p", generation="s", noisy_augmentation="noise500",
                                candidates={"sampled": 3, "revised": 1, "noisy": 2}, lambda_=0.8, selection="reward")
    records, dropped = build_consr_records(
        prompts, responses, cfg, model, processor, lambda p: images[int(p["id"][1])],
        {"p0": "there is a red circle.", "p1": "there is a square."}, View(AugmentSpec("n", "diffusion", 800), 1),
        context_template=W.CONTEXT_TEMPLATE)
    assert dropped == {} and len(records) == 2
    for rec in records:
        ranked = [g[0] for g in rec["groups"]]
        assert [len(g) for g in rec["groups"]] == [1] * 6
        assert sorted((c["source"], c["sample"]) for c in ranked) == sorted(
            [("sampled", k) for k in range(3)] + [("revised", 0)] + [("noisy", k) for k in range(2)])
        rewards = [c["reward"] for c in ranked]
        assert rewards == sorted(rewards, reverse=True)
        for c in ranked:
            assert c["reward"] == pytest.approx(0.8 * c["s_semantic"] + 0.2 * c["s_corrupt"])
            assert c["s_corrupt"] == pytest.approx(c["p"] - c["p_corrupt"])
    with pytest.raises(Exception, match="revised candidates asked for"):
        build_consr_records(prompts, responses,
                            dataclasses.replace(cfg, candidates={"sampled": 3, "revised": 3, "noisy": 0}),
                            model, processor, lambda p: images[0], {"p0": "", "p1": ""},
                            View(AugmentSpec("n", "diffusion", 800), 1), context_template=W.CONTEXT_TEMPLATE)


def test_policy_shift_equals_the_stored_reference_shift_before_training(small_world, tiny_model):
    """At step 0 the policy is the reference, so the loss with Eq. 12's p_theta (recomputed on
    the record's own I~, read back from `extras.corrupt`) equals the loss with the stored shifts."""
    import copy

    from prefalign.methods import objective
    from prefalign.training import accumulate, add_lora

    base, processor = tiny_model
    images = _images(small_world, 2)
    prompts = [{"id": f"p{i}", "image": f"img{i}", "question": "what colour is the circle?"} for i in range(2)]
    sampled = {p["id"]: {"responses": [{"text": t, "n_tokens": 2} for t in ("red", "blue circle", "one")]}
               for p in prompts}
    records, _ = build_consr_records(
        prompts, {("clean", "s"): sampled},
        PreferenceSetSettings(method="consr", prompts="p", generation="s", lambda_=0.8, selection="reward",
                              candidates={"sampled": 3, "revised": 0, "noisy": 0}),
        base, processor, lambda p: images[int(p["id"][1])], {"p0": "a red circle.", "p1": "a square."},
        View(AugmentSpec("n", "diffusion", 800), 7), context_template=W.CONTEXT_TEMPLATE)
    assert records[0]["extras"]["corrupt"] == {"name": "n", "kind": "diffusion", "step": 800, "space": "tensor",
                                               "seed": 7}
    lora = LoraSettings.from_partial({"r": 4, "alpha": 8})
    model = add_lora(copy.deepcopy(base), lora)  # B = 0: policy == reference
    cfg = {"loss": "consr", "beta": 0.1, "alpha": 5.0, "clip": [0.0, 0.2]}  # alpha: weights differ from 1
    losses = {shift: accumulate(model, processor, records, lambda r: images[int(r["id"][1])], objective("consr"),
                                ObjectiveSettings.of({**cfg, "token_shift": shift}), 2, "cpu")[0]
              for shift in ("policy", "reference")}
    assert losses["policy"] == pytest.approx(losses["reference"], rel=1e-5)
    del records[0]["extras"]["corrupt"]
    with pytest.raises(Exception, match="extras.corrupt.*missing"):
        accumulate(model, processor, records, lambda r: images[0], objective("consr"),
                   ObjectiveSettings.of({**cfg, "token_shift": "policy"}), 2, "cpu")


def test_wrong_answers_are_wrong_and_revision_turns_teach_the_right_one():
    import numpy as np

    spec = W.WorldSpec()
    rng = np.random.default_rng(0)
    checked = set()
    for _ in range(40):
        scene = W.sample_scene(rng, spec)
        for qa in W.questions_for(rng, scene, spec, W.popularity_order(spec)):
            wrong = W.wrong_answer(rng, qa, scene, spec)
            assert correctness(qa["family"], wrong, qa["answer"], scene) < 1.0, (qa, wrong)
            turn = W.revision_turn(rng, qa, scene, spec)
            assert turn["answer"] == qa["answer"] and W.describe(scene, spec.grid) in turn["question"]
            checked.add(qa["family"])
    assert checked == set(W.FAMILIES)
