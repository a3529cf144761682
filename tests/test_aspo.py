"""ASPO: sentence units on exact token spans, weights, and the M* margin."""
import math

import pytest
import torch
import torch.nn.functional as F

from prefalign.methods.aspo import (aspo_margin, aspo_objective, min_max, response_units, sentence_char_starts,
                                    unit_stats, unit_weights)
from prefalign.methods.dpo import dpo_loss
from prefalign.settings import ObjectiveSettings


def test_sentence_starts():
    assert sentence_char_starts(" red. the circle is red.") == [0, 5]
    assert sentence_char_starts("one sentence only.") == [0]
    assert sentence_char_starts("3.5 is a number. yes") == [0, 16]  # a dot inside a token is no boundary


def test_units_cover_whole_tokens_with_the_world_tokenizer(tiny_model):
    _, processor = tiny_model
    tok = processor.tokenizer
    text = "red. the circle at the top left is red."
    unit, texts = response_units(tok, text, "sentence")
    from prefalign.model import response_token_ids
    ids = response_token_ids(tok, text)
    assert len(unit) == len(ids)  # one unit per scored token, EOS included
    assert texts == ["red.", "the circle at the top left is red."]
    assert unit == [0, 0] + [1] * 9 + [1]  # "red", "." | 9 tokens | EOS joins the last sentence
    assert response_units(tok, text, "response")[0] == [0] * len(ids)
    tokens, token_texts = response_units(tok, text, "token")
    assert tokens[:-1] == list(range(len(ids) - 1)) and len(token_texts) == len(ids) - 1


class MergingTokenizer:
    """A tokenizer whose second token spans a sentence boundary ('d. t' in one piece)."""
    eos_token_id = 99
    pieces = [(" re", 1), ("d. t", 2), ("he end.", 3)]

    def __call__(self, text, add_special_tokens=False, return_offsets_mapping=False):
        assert text == "".join(p for p, _ in self.pieces)
        out = {"input_ids": [i for _, i in self.pieces]}
        if return_offsets_mapping:
            pos, offs = 0, []
            for p, _ in self.pieces:
                offs.append((pos, pos + len(p)))
                pos += len(p)
            out["offset_mapping"] = offs
        return out


def test_a_token_across_a_boundary_goes_whole_to_the_sentence_it_starts_in():
    unit, texts = response_units(MergingTokenizer(), "red. the end.", "sentence")
    assert unit == [0, 0, 1, 1]  # "d. t" starts in sentence 0; EOS joins sentence 1
    assert texts == ["red. t", "he end."]


def test_min_max_and_weights_in_range():
    assert min_max(torch.tensor([3.0])).tolist() == [0.0]
    assert min_max(torch.tensor([2.0, 2.0])).tolist() == [0.0, 0.0]
    assert min_max(torch.tensor([1.0, 3.0, 2.0])).tolist() == [0.0, 1.0, 0.5]
    stats = unit_stats([0, 0, 1, 1, 1], torch.log(torch.tensor([0.5, 0.5, 0.9, 0.9, 0.9])), torch.tensor([0.1, 0.3]))
    assert stats["perplexity"] == pytest.approx([2.0, 1 / 0.9])
    assert stats["perplexity_norm"] == [0.0, 1.0]  # the more confident sentence gets the larger weight
    assert stats["similarity_norm"] == [0.0, 1.0]
    for alpha in (0.0, 0.3, 1.0):
        w = unit_weights(stats, alpha)
        assert all(0 <= x <= 1 for x in w) and all(1 <= 1 + x <= 2 for x in w)


def test_one_sentence_is_plain_dpo():
    torch.manual_seed(0)
    r_c, r_r = torch.randn(8, 1), torch.randn(8)
    margin = aspo_margin(r_c, torch.zeros(8, 1), torch.ones(8, 1), r_r, beta=0.1)
    dpo, _ = dpo_loss(r_c[:, 0], r_r, torch.zeros(8), torch.zeros(8), 0.1)
    torch.testing.assert_close(-F.logsigmoid(margin), dpo)


def test_two_sentence_example_by_hand():
    # r(s1) = 2, r(s2) = -1, w = (1, 0), r(y_r) = 0.5, beta = 0.1
    # R_c = 1, R_c* = 2*2 + 1*(-1) = 3, M* = (1/3) * 0.1 * 3 - 0.05 = 0.05
    r = torch.tensor([[2.0, -1.0]], requires_grad=True)
    m = aspo_margin(r, torch.tensor([[1.0, 0.0]]), torch.ones(1, 2), torch.tensor([0.5]), beta=0.1)
    assert m.item() == pytest.approx(0.05)
    (-F.logsigmoid(m)).sum().backward()
    # d loss / d r_i = -sigmoid(-M*) * (R_c/R_c*) * beta * (1 + w_i), the ratio held constant
    s = 1 / (1 + math.exp(0.05))
    assert r.grad.tolist()[0] == pytest.approx([-s * (1 / 3) * 0.1 * 2, -s * (1 / 3) * 0.1 * 1])


def test_equal_weights_keep_the_chosen_reward_and_give_dpo_gradients():
    torch.manual_seed(1)
    r = torch.randn(4, 3, requires_grad=True)
    rej = torch.randn(4)
    m = aspo_margin(r, torch.full((4, 3), 0.7), torch.ones(4, 3), rej, beta=0.1)
    torch.testing.assert_close(m, 0.1 * r.sum(-1) - 0.1 * rej)  # total chosen reward unchanged
    (-F.logsigmoid(m)).sum().backward()
    g_aspo = r.grad.clone()
    r.grad = None
    (-F.logsigmoid(0.1 * r.sum(-1) - 0.1 * rej)).sum().backward()
    torch.testing.assert_close(g_aspo, r.grad)


def test_guard_when_the_reweighted_reward_is_zero():
    r = torch.zeros(1, 2, requires_grad=True)  # the first step: policy == reference
    m = aspo_margin(r, torch.tensor([[0.5, 0.0]]), torch.ones(1, 2), torch.zeros(1), beta=0.1)
    assert m.item() == 0.0
    (-F.logsigmoid(m)).sum().backward()
    assert torch.isfinite(r.grad).all()
    # ratio 1 / (1 + mean w) = 1 / 1.25, times beta (1 + w_i) times -sigmoid(0)
    assert r.grad.tolist()[0] == pytest.approx([-0.5 * 0.1 * 1.5 / 1.25, -0.5 * 0.1 * 1.0 / 1.25])


def test_guard_keeps_the_value_where_mixed_sign_unit_rewards_cancel():
    # r(s) = (1, -2), w = (1, 0): R_c* = 2*1 + 1*(-2) = 0 while R_c = -1; the guarded factor
    # 1 / (1 + 0.5) only scales the gradient, the value stays beta R_c - beta r(y_r)
    r = torch.tensor([[1.0, -2.0]], requires_grad=True)
    m = aspo_margin(r, torch.tensor([[1.0, 0.0]]), torch.ones(1, 2), torch.tensor([0.5]), beta=0.1)
    assert m.item() == pytest.approx(0.1 * -1 - 0.1 * 0.5)
    (-F.logsigmoid(m)).sum().backward()
    s = 1 / (1 + math.exp(m.item()))
    assert r.grad.tolist()[0] == pytest.approx([-s * 0.1 * 2 / 1.5, -s * 0.1 * 1 / 1.5])


def test_objective_sums_token_ratios_per_unit():
    units = {"texts": ["a.", "b c."], "token_unit": [0, 0, 1, 1, 1, 1],
             "similarity_norm": [1.0, 0.0], "perplexity_norm": [0.0, 1.0]}
    rec = {"id": "x", "groups": [[{"text": "a. b c.", "units": units}], [{"text": "z"}]]}
    pol = torch.zeros(1, 2, 6)
    pol[0, 0] = torch.tensor([1.0, 1.0, -0.5, 0.0, 0.0, 0.0])
    scored = {"records": [rec], "policy_tokens": pol, "ref_tokens": torch.zeros(1, 2, 6),
              "token_mask": torch.tensor([[[1.0] * 6, [1.0, 1.0, 0, 0, 0, 0]]]),
              "policy": pol.sum(-1), "ref": torch.zeros(1, 2)}
    loss, _ = aspo_objective(scored, ObjectiveSettings(loss="aspo", alpha=0.5, beta=0.1))
    expected = aspo_margin(torch.tensor([[2.0, -0.5]]), torch.tensor([[0.5, 0.5]]), torch.ones(1, 2),
                           torch.zeros(1), 0.1)
    assert loss.item() == pytest.approx(-F.logsigmoid(expected).item())
