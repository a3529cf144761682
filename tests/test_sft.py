"""The miniature base model's SFT step: a batch run as passes of similar lengths is the same
step as one padded pass."""
import itertools
import random

import pytest
import torch

from prefalign.data import load_conversations, open_image
from prefalign.model import build_scoring_batch
from prefalign.sft import accumulate_gradients, encode_sft, split_by_length


def padded_cost(lengths, runs, pass_cost):
    return sum(max(lengths[i] for i in r) * len(r) + pass_cost for r in runs)


@pytest.mark.parametrize("seed", range(20))
def test_split_by_length_is_the_cheapest_partition_into_sorted_runs(seed):
    rng = random.Random(seed)
    lengths = [rng.choice([22, 23, 25, 29, 60, 71, 150, 316]) for _ in range(rng.randint(1, 9))]
    pass_cost = rng.choice([0, 40, 400])
    runs = split_by_length(lengths, pass_cost)
    assert sorted(i for r in runs for i in r) == list(range(len(lengths)))  # every position once
    order = [i for r in runs for i in r]
    assert [lengths[i] for i in order] == sorted(lengths)
    # brute force over every set of cut points of the sorted order
    n = len(lengths)
    best = min(padded_cost(lengths, [order[a:b] for a, b in zip((0, *cuts), (*cuts, n))], pass_cost)
               for k in range(n) for cuts in itertools.combinations(range(1, n), k))
    assert padded_cost(lengths, runs, pass_cost) == best


def test_one_long_answer_among_short_ones_gets_its_own_pass():
    assert split_by_length([22] * 63 + [316], 800) == [list(range(63)), [63]]
    assert split_by_length([22] * 64, 800) == [list(range(64))]


def test_passes_of_similar_lengths_give_the_one_padded_passs_loss_and_gradient(small_world, tiny_model):
    model, processor = tiny_model
    path = small_world / "sft.json"
    convs = load_conversations(path, require_answers=True)[:6]
    examples, pixel_values = encode_sft(processor, convs, lambda c: open_image(small_world, c.image, path, c.id))
    idx = list(range(len(examples)))
    assert len({len(examples[i][0]) for i in idx}) > 3  # lengths that spread
    results = []
    for pass_cost in (10**9, 0):  # one pass; as many as lowers padding
        model.zero_grad(set_to_none=True)
        loss = accumulate_gradients(model, examples, idx, pixel_values, processor.tokenizer.pad_token_id, pass_cost)
        results.append((loss.item(), [p.grad.clone() for p in model.parameters() if p.grad is not None]))
    model.zero_grad(set_to_none=True)
    assert len(split_by_length([len(e[0]) for e in examples], 0)) > 1
    (one, grads_one), (split, grads_split) = results
    assert split == pytest.approx(one, rel=1e-6)
    assert len(grads_one) == len(grads_split) > 0
    for a, b in zip(grads_one, grads_split):
        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-7)


def test_each_turn_is_the_scoring_batch_of_its_question_image_and_answer(small_world, tiny_model):
    """encode_sft tokenises each distinct question and answer once; every turn still gets the
    tokens and answer mask that build_scoring_batch gives it with its own image."""
    processor = tiny_model[1]
    path = small_world / "sft.json"
    convs = load_conversations(path, require_answers=True)[:8]
    load = {c.image: open_image(small_world, c.image, path, c.id) for c in convs}
    examples, pixel_values = encode_sft(processor, convs, lambda c: load[c.image], chunk=5)
    turns = [(c, t) for c in convs for t in c.turns]
    assert len(examples) == len(turns) and len({t.question for _, t in turns}) < len(turns)
    for (c, t), (ids, mask, image) in zip(turns, examples):
        batch = build_scoring_batch(processor, [load[c.image]], [t.question], [t.answer])
        assert ids.tolist() == batch["input_ids"][0].tolist()
        assert mask.tolist() == batch["response_mask"][0].tolist()
        assert torch.equal(pixel_values[image], batch["pixel_values"][0])
