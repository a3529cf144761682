import math

import pytest
import torch

from prefalign.methods.dpo import dpo_loss, dpo_objective
from prefalign.model import build_scoring_batch, response_token_ids, sequence_logps, token_logps
from prefalign.settings import LoraSettings, ObjectiveSettings

DPO = ObjectiveSettings(loss="dpo", beta=0.1)


def test_dpo_loss_against_hand_computation():
    # r_w = -1 - (-2) = 1, r_l = -3 - (-2.5) = -0.5, margin 1.5, beta 0.1
    loss, margin = dpo_loss(torch.tensor([-1.0]), torch.tensor([-3.0]), torch.tensor([-2.0]),
                            torch.tensor([-2.5]), beta=0.1)
    assert margin.item() == pytest.approx(1.5)
    assert loss.item() == pytest.approx(-math.log(1 / (1 + math.exp(-0.15))), rel=1e-6)
    # rows are items, column 0 the chosen response, column 1 the rejected one
    total, metrics = dpo_objective({"policy": torch.tensor([[-1.0, -3.0], [0.0, 0.0]]),
                                    "ref": torch.tensor([[-2.0, -2.5], [0.0, 1.0]])}, DPO)
    expected = (-math.log(1 / (1 + math.exp(-0.15))) - math.log(1 / (1 + math.exp(-0.1)))) / 2
    assert total.item() == pytest.approx(expected, rel=1e-6)
    assert metrics["pair_accuracy"] == 1.0


def test_pair_metrics_are_trls_against_hand_computation():
    from prefalign.training import pair_metrics

    # the example above: r_w = (1, 0), r_l = (-0.5, -1); token counts 2, 4 / 1, 2
    mask = torch.tensor([[[1, 1, 0, 0], [1, 1, 1, 1]], [[1, 0, 0, 0], [1, 1, 0, 0]]], dtype=torch.float)
    scored = {"policy": torch.tensor([[-1.0, -3.0], [0.0, 0.0]]), "ref": torch.tensor([[-2.0, -2.5], [0.0, 1.0]]),
              "token_mask": mask, "group_sizes": [(1, 1), (1, 1)]}
    m = pair_metrics(scored, beta=0.1)
    assert m["rewards/chosen"] == pytest.approx(0.1 * (1 + 0) / 2)
    assert m["rewards/rejected"] == pytest.approx(0.1 * (-0.5 - 1) / 2)
    assert m["rewards/margins"] == pytest.approx(0.1 * (1.5 + 1) / 2)
    assert m["rewards/accuracies"] == 1.0
    assert m["logps/chosen"] == pytest.approx(-0.5) and m["logps/rejected"] == pytest.approx(-1.5)
    assert m["log_ratio_per_token/chosen"] == pytest.approx((1 / 2 + 0 / 1) / 2)
    assert m["log_ratio_per_token/rejected"] == pytest.approx((-0.5 / 4 - 1 / 2) / 2)
    # ranked groups (MGP, no beta): the rejected response is the last group's first
    groups = {"policy": torch.tensor([[-1.0, -9.0, -9.0, -4.0, -9.0]]), "ref": torch.zeros(1, 5),
              "token_mask": torch.ones(1, 5, 3), "group_sizes": [(2, 1, 2)]}
    m = pair_metrics(groups, beta=None)
    assert (m["rewards/chosen"], m["rewards/rejected"], m["rewards/margins"]) == (-1.0, -4.0, 3.0)


def test_dpo_loss_at_reference_is_log2():
    z = torch.zeros(3)
    loss, _ = dpo_loss(z, z, z, z, beta=0.1)
    torch.testing.assert_close(loss, torch.full((3,), math.log(2.0)))


def _images(world, n):
    from prefalign.data import open_image

    return [open_image(world / "images", f"eval_describe_{i:06d}.png", "test", i) for i in range(n)]


def test_logprob_masks_image_and_prompt_tokens(small_world, tiny_model):
    model, processor = tiny_model
    imgs = _images(small_world, 2)
    qs = ["what colour is the circle?", "describe the image."]
    rs = ["red", "there is a small red circle at the top."]
    batch = build_scoring_batch(processor, imgs, qs, rs)
    image_id = model.config.image_token_id
    assert not (batch["response_mask"].bool() & (batch["input_ids"] == image_id)).any()
    for b, r in enumerate(rs):
        n = len(response_token_ids(processor.tokenizer, r))
        assert batch["response_mask"][b].sum().item() == n  # response tokens + EOS only
    with torch.no_grad():
        logps, mask = token_logps(model, batch)
        total = sequence_logps(model, batch)
        # independent computation, one sequence at a time, without padding
        for b in range(2):
            length = int(batch["attention_mask"][b].sum())
            ids = batch["input_ids"][b:b + 1, :length]
            logits = model(input_ids=ids, attention_mask=torch.ones_like(ids),
                           pixel_values=batch["pixel_values"][b:b + 1]).logits[0].log_softmax(-1)
            start = length - int(batch["response_mask"][b].sum())
            manual = sum(logits[t - 1, ids[0, t]].item() for t in range(start, length))
            assert total[b].item() == pytest.approx(manual, abs=1e-4)


def test_prompt_change_does_not_enter_the_sum_but_conditions_it(small_world, tiny_model):
    model, processor = tiny_model
    imgs = _images(small_world, 1)
    with torch.no_grad():
        a = build_scoring_batch(processor, imgs, ["what colour is the circle?"], ["red"])
        b = build_scoring_batch(processor, imgs, ["describe the image."], ["red"])
        assert a["response_mask"].sum() == b["response_mask"].sum()
        assert sequence_logps(model, a).item() != pytest.approx(sequence_logps(model, b).item(), abs=1e-6)


def test_chosen_nll_anchor_adds_the_chosen_mean_token_nll_to_any_objective():
    import torch

    from prefalign.methods import objective
    from prefalign.settings import ObjectiveSettings
    from prefalign.training import chosen_nll

    policy = torch.tensor([[-2.0, -5.0], [-6.0, -1.0]])
    mask = torch.zeros(2, 2, 3)
    mask[0, 0, :2] = 1  # chosen of item 0 has 2 tokens, of item 1 has 3
    mask[1, 0, :3] = 1
    scored = {"policy": policy, "token_mask": mask}
    assert chosen_nll(scored).item() == pytest.approx((2.0 / 2 + 6.0 / 3) / 2)
    # the sft objective (SeVa's Table 3 baseline) is that term alone: the rejected response's
    # log-probs do not enter it
    sft_loss, metrics = objective("sft").loss(scored, ObjectiveSettings(loss="sft"))
    assert sft_loss.item() == pytest.approx(1.5) and metrics["nll"] == pytest.approx(1.5)
    assert objective("sft").loss({**scored, "policy": policy * torch.tensor([1.0, 9.0])},
                                 ObjectiveSettings(loss="sft"))[0].item() == pytest.approx(1.5)
    assert objective("dpo").select({"groups": [[{"text": "a"}], [{"text": "b"}]]})[0][0]["text"] == "a"


def test_training_adds_the_weighted_anchor_to_the_loss(small_world, tiny_model):
    import copy

    from prefalign.methods import objective
    from prefalign.training import accumulate, add_lora, chosen_nll, score_groups

    base, processor = tiny_model
    images = _images(small_world, 2)
    records = [{"id": str(k), "image": str(k), "question": "what colour is the circle?", "extras": {},
                "groups": [[{"text": "red"}], [{"text": "blue circle"}]]} for k in range(2)]
    model = add_lora(copy.deepcopy(base), LoraSettings.from_partial({"r": 4, "alpha": 8}))
    load = lambda r: images[int(r["id"])]  # noqa: E731
    plain, _ = accumulate(model, processor, records, load, objective("dpo"), DPO, 2, "cpu")
    anchored, metrics = accumulate(model, processor, records, load, objective("dpo"), DPO, 2, "cpu",
                                   chosen_nll_weight=0.5)
    with torch.no_grad():
        nll = chosen_nll(score_groups(model, processor, records, [objective("dpo").select(r) for r in records],
                                      [load(r) for r in records], "cpu")).item()
    assert metrics["chosen_nll"] == pytest.approx(nll, rel=1e-5)
    assert anchored == pytest.approx(plain + 0.5 * nll, rel=1e-5)
