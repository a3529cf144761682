import pytest
import torch
from PIL import Image

from prefalign.augment import (AugmentSpec, View, add_diffusion_noise, alphas_cumprod, augment_image,
                               item_seed, noise_coefficients, tensor_digest)
from prefalign.config import with_defaults


@pytest.mark.parametrize("step,signal,noise", [(500, 0.863, 0.505), (800, 0.467, 0.884)])
def test_schedule_matches_methods_md(step, signal, noise):
    a, s = noise_coefficients(step)
    assert a == pytest.approx(signal, abs=5e-4)
    assert s == pytest.approx(noise, abs=5e-4)


def test_schedule_is_the_formula_of_methods_md():
    """betas = sigmoid(linspace(-6, 6, 1000)) * (5e-3 - 1e-5) + 1e-5, abar_t = prod(1 - beta),
    in float64 here: diffusers' float32 schedule agrees to 1e-6."""
    betas = torch.sigmoid(torch.linspace(-6, 6, 1000, dtype=torch.float64)) * (5e-3 - 1e-5) + 1e-5
    torch.testing.assert_close(alphas_cumprod().double(), torch.cumprod(1 - betas, 0), rtol=0, atol=1e-6)


def test_noise_is_diffusers_add_noise_bit_for_bit():
    from diffusers import DDPMScheduler

    sched = DDPMScheduler(num_train_timesteps=1000, beta_schedule="sigmoid", beta_start=1e-5, beta_end=5e-3)
    x = torch.randn(2, 3, 8, 8)
    eps = torch.randn(x.shape, generator=torch.Generator().manual_seed(7))
    for t in (0, 500, 800, 999):
        assert torch.equal(add_diffusion_noise(x, t, 7), sched.add_noise(x, eps, torch.tensor([t, t])))


def test_not_the_linear_default():
    from diffusers import DDPMScheduler

    linear = DDPMScheduler(num_train_timesteps=1000)  # beta_schedule="linear"
    assert abs(linear.alphas_cumprod[500].sqrt().item() - noise_coefficients(500)[0]) > 0.5


def test_noise_reproducible_per_seed_item_step():
    x = torch.zeros(3, 4, 4)
    s = item_seed(1, "item-a", "noise500")
    assert torch.equal(add_diffusion_noise(x, 500, s), add_diffusion_noise(x, 500, s))
    assert item_seed(1, "item-a", "noise500") != item_seed(1, "item-b", "noise500")
    assert item_seed(1, "item-a", "noise500") != item_seed(2, "item-a", "noise500")
    assert not torch.equal(add_diffusion_noise(x, 500, s), add_diffusion_noise(x, 500, s + 1))


def test_view_tensor_space_is_deterministic_and_differs_by_item():
    spec = AugmentSpec("noise500", "diffusion", 500)
    pv = torch.zeros(2, 3, 4, 4)
    t1 = View(spec, 3).pixel_transform(["a", "b"])(pv)
    t2 = View(spec, 3).pixel_transform(["a", "b"])(pv)
    assert tensor_digest(t1) == tensor_digest(t2)
    assert not torch.equal(t1[0], t1[1])
    assert View(None, 3).pixel_transform(["a"]) is None


def test_pixel_space_noise_option_changes_the_image_not_the_tensor():
    img = Image.new("RGB", (8, 8), (128, 64, 32))
    spec = AugmentSpec("povid", "diffusion", 500, space="pixel")
    assert not spec.acts_on_tensor
    out = augment_image(img, spec, 5)
    assert out.size == img.size and out.tobytes() != img.tobytes()
    assert augment_image(img, spec, 5).tobytes() == out.tobytes()


@pytest.mark.parametrize("kind", ["random_flip", "random_resized_crop", "autoaugment", "moco"])
def test_torchvision_augmentations_are_seeded(kind):
    import numpy as np

    rng = np.random.default_rng(0)
    img = Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8))
    spec = AugmentSpec.from_config(kind, with_defaults("augmentations", {"kind": kind}))
    a, b = augment_image(img, spec, 11), augment_image(img, spec, 11)
    assert a.tobytes() == b.tobytes() and a.size == img.size
    if kind == "random_flip":
        assert a.tobytes() == img.transpose(Image.FLIP_LEFT_RIGHT).tobytes()


def test_random_mask_blacks_out_whole_patches_by_seed():
    import numpy as np

    img = Image.new("RGB", (40, 30), (200, 100, 50))
    spec = AugmentSpec.from_config("mask", with_defaults("augmentations", {"kind": "random_mask", "patch": 10}))
    assert spec.params == {"ratio": 0.5, "patch": 10}
    a = np.asarray(augment_image(img, spec, 3))
    assert (a == np.asarray(augment_image(img, spec, 3))).all()
    assert not (a == np.asarray(augment_image(img, spec, 4))).all()
    dark = (a == 0).all(-1)
    blocks = dark.reshape(3, 10, 4, 10).transpose(0, 2, 1, 3).reshape(12, 100)
    assert set(blocks.mean(1)) <= {0.0, 1.0} and 0 < dark.mean() < 1  # whole 10 x 10 patches, some of them


def test_saliency_mask_keeps_the_objects_and_blacks_out_the_background():
    """Frequency-tuned saliency (distance from the mean colour after a blur): on a grey field
    with one red square, keep 0.1 keeps the square whole (49 of 900 pixels) and nothing far
    from it; a uniform image ties and goes black."""
    import numpy as np

    from prefalign.augment import frequency_tuned_saliency

    x = np.full((30, 30, 3), 90, np.uint8)
    x[5:12, 18:25] = (220, 40, 40)
    spec = AugmentSpec.from_config("sal", with_defaults("augmentations", {"kind": "saliency_mask", "keep": 0.1}))
    kept = (np.asarray(augment_image(Image.fromarray(x), spec, 0)) > 0).any(-1)
    assert kept[5:12, 18:25].all() and kept.mean() <= 0.1 and not kept[20:, :10].any()
    saliency = frequency_tuned_saliency(Image.fromarray(x))
    assert saliency[8, 21] > 10 * saliency[8, 2]  # the square against the grey field
    uniform = augment_image(Image.new("RGB", (8, 8), (90, 90, 90)), spec, 0)
    assert not np.asarray(uniform).any()


def test_bad_step_rejected():
    with pytest.raises(ValueError, match="noise step"):
        noise_coefficients(1000)
