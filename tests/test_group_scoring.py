"""The shared-prefix scorer against naive full-sequence scoring."""
import torch

from prefalign.model import (build_scoring_batch, group_scoring_batch, shared_prefix_token_logps,
                             token_logps)
from test_losses_and_logprobs import _images

QUESTIONS = ["what colour is the circle?", "describe the image. Answer the question and explain why?",
             "is there a red square in the image?"]
RESPONSES = [["red", "blue. the circle at the top is blue.", "red red red"],
             ["there is a small red circle at the top.", "nothing"],
             ["no", "yes. there is a red square at the center.", "yes", "no. the image has nothing."]]


def _naive(model, processor, imgs):
    flat_imgs = [im for im, rs in zip(imgs, RESPONSES) for _ in rs]
    flat_qs = [q for q, rs in zip(QUESTIONS, RESPONSES) for _ in rs]
    batch = build_scoring_batch(processor, flat_imgs, flat_qs, [r for rs in RESPONSES for r in rs])
    logps, mask = token_logps(model, batch)
    return logps.sum(-1), mask.sum(-1)


def test_shared_prefix_logps_equal_naive(small_world, tiny_model):
    model, processor = tiny_model
    imgs = _images(small_world, 3)
    with torch.no_grad():
        naive, n_naive = _naive(model, processor, imgs)
        logps, mask = shared_prefix_token_logps(model, group_scoring_batch(processor, imgs, QUESTIONS, RESPONSES))
    torch.testing.assert_close(mask.sum(-1), n_naive)
    torch.testing.assert_close(logps.sum(-1), naive, atol=1e-4, rtol=0)


def test_shared_prefix_gradients_equal_naive(small_world, tiny_model):
    """Gradients reach the prompt's layers through the shared cache exactly as in naive scoring."""
    model, processor = tiny_model
    imgs = _images(small_world, 3)
    weight = model.model.language_model.layers[0].self_attn.k_proj.weight
    grads = []
    for score in (lambda: _naive(model, processor, imgs)[0],
                  lambda: shared_prefix_token_logps(
                      model, group_scoring_batch(processor, imgs, QUESTIONS, RESPONSES))[0].sum(-1)):
        model.zero_grad()
        (score() * torch.linspace(-1, 1, 9)).sum().backward()
        grads.append(weight.grad.clone())
    model.zero_grad()
    assert grads[0].abs().sum() > 0
    torch.testing.assert_close(grads[1], grads[0], atol=1e-4, rtol=1e-3)
