"""Image corruptions T(I): SeVa's diffusion noise and its other augmentations.

Diffusion noise follows METHODS.md: x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps, with
SeVa's sigmoid beta schedule (1000 steps, betas = sigmoid(linspace(-6, 6)) * (5e-3 - 1e-5)
+ 1e-5). `space="tensor"` adds it to the processor's normalised pixel tensor (SeVa, the
default); `space="pixel"` adds it to the [0, 1] image before preprocessing (POVID).

Every corrupted view is a pure function of (seed, item id, spec), so a view can be
regenerated anywhere instead of stored.
"""
from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass, field

import numpy as np
import torch
from PIL import Image

NUM_TRAIN_TIMESTEPS = 1000
BETA_START, BETA_END = 1e-5, 5e-3


@functools.cache
def alphas_cumprod() -> torch.Tensor:
    """abar_t of SeVa's schedule, computed by diffusers' DDPMScheduler as SeVa's code does
    (float32; METHODS.md's formula in float64 agrees to 1e-6, tested)."""
    from diffusers.schedulers.scheduling_ddpm import DDPMScheduler

    return DDPMScheduler(num_train_timesteps=NUM_TRAIN_TIMESTEPS, beta_schedule="sigmoid", beta_start=BETA_START,
                         beta_end=BETA_END).alphas_cumprod


def noise_coefficients(step: int) -> tuple[float, float]:
    """(sqrt(abar_t), sqrt(1 - abar_t)) at diffusion step t (0-based, as diffusers indexes),
    in float32 as DDPMScheduler.add_noise takes them."""
    if not 0 <= step < NUM_TRAIN_TIMESTEPS:
        raise ValueError(f"noise step must be in [0, {NUM_TRAIN_TIMESTEPS}), got {step}")
    abar = alphas_cumprod()[step]
    return (abar ** 0.5).item(), ((1 - abar) ** 0.5).item()


def item_seed(seed: int, item_id: str, tag: str) -> int:
    """A 63-bit seed derived from (seed, item id, augmentation) by hashing, stable across runs."""
    h = hashlib.sha256(f"{seed}|{item_id}|{tag}".encode()).digest()
    return int.from_bytes(h[:8], "little") >> 1


def add_diffusion_noise(x: torch.Tensor, step: int, seed: int) -> torch.Tensor:
    """One-shot forward diffusion of x to step t with noise drawn from `seed` (on CPU)."""
    a, s = noise_coefficients(step)
    g = torch.Generator().manual_seed(seed)
    eps = torch.randn(x.shape, generator=g, dtype=torch.float32)
    return (a * x.float().cpu() + s * eps).to(x.dtype).to(x.device)


@dataclass(frozen=True)
class AugmentSpec:
    """One augmentation T, as configured under `augmentations.<name>`."""
    name: str
    kind: str  # diffusion | random_flip | random_resized_crop | autoaugment | moco | random_mask | saliency_mask | none
    step: int | None = None
    space: str = "tensor"  # tensor (SeVa) | pixel (POVID); diffusion only
    params: dict = field(default_factory=dict, hash=False)

    @classmethod
    def from_config(cls, name: str, cfg: dict) -> "AugmentSpec":
        cfg = dict(cfg)
        kind = cfg.pop("kind")
        return cls(name=name, kind=kind, step=cfg.pop("step", None),
                   space=cfg.pop("space", "tensor"), params=cfg)

    def to_config(self) -> dict:
        """The spec as a config entry with its name (stored in records; `from_config_with_name`)."""
        return {"name": self.name, "kind": self.kind, "step": self.step, "space": self.space, **self.params}

    @classmethod
    def from_config_with_name(cls, cfg: dict) -> "AugmentSpec":
        cfg = dict(cfg)
        return cls.from_config(cfg.pop("name"), cfg)

    @property
    def acts_on_tensor(self) -> bool:
        return self.kind == "diffusion" and self.space == "tensor"


def _torchvision_transform(spec: AugmentSpec, size: tuple[int, int]):
    from torchvision import transforms as T

    p = spec.params
    if spec.kind == "random_flip":
        return T.RandomHorizontalFlip(p=1.0)
    if spec.kind == "random_resized_crop":
        return T.RandomResizedCrop(size, scale=tuple(p["scale"]))
    if spec.kind == "autoaugment":
        return T.AutoAugment(T.AutoAugmentPolicy.IMAGENET)
    if spec.kind == "moco":  # MoCo v2's augmentation, as SeVa's Table 1 lists it
        return T.Compose([
            T.RandomResizedCrop(size, scale=(0.2, 1.0)),
            T.RandomApply([T.ColorJitter(0.4, 0.4, 0.4, 0.1)], p=0.8),
            T.RandomGrayscale(p=0.2),
            T.RandomHorizontalFlip()])
    raise ValueError(f"augmentation '{spec.name}': unknown kind '{spec.kind}'")


def random_patch_mask(img: Image.Image, ratio: float, patch: int, seed: int) -> Image.Image:
    """ConSR's "random masking" (Table 7): each square patch of the grid is blacked out with
    probability `ratio`, drawn from the item's seed."""
    x = np.asarray(img.convert("RGB")).copy()
    h, w = x.shape[:2]
    drop = torch.rand(-(-h // patch), -(-w // patch), generator=torch.Generator().manual_seed(seed)) < ratio
    x[drop.repeat_interleave(patch, 0).repeat_interleave(patch, 1)[:h, :w].numpy()] = 0
    return Image.fromarray(x)


def frequency_tuned_saliency(img: Image.Image) -> np.ndarray:
    """Saliency by frequency tuning (Achanta et al., CVPR 2009), in RGB rather than Lab: each
    pixel's distance, after a 5-tap binomial blur, from the image's mean colour. [H, W], no
    model: the image's dominant colour (the background) scores low."""
    x = np.asarray(img.convert("RGB"), dtype=np.float64)
    kernel = np.array([1.0, 4.0, 6.0, 4.0, 1.0]) / 16
    blurred = x
    for axis in (0, 1):
        blurred = np.apply_along_axis(lambda v: np.convolve(np.pad(v, 2, mode="edge"), kernel, "valid"), axis,
                                      blurred)
    return np.linalg.norm(blurred - x.reshape(-1, 3).mean(0), axis=-1)


def saliency_background_mask(img: Image.Image, keep: float) -> Image.Image:
    """ConSR's "salient masking background" (Table 7): every pixel whose saliency
    (`frequency_tuned_saliency`) is not above its (1 - keep) quantile is blacked out, so at
    most a `keep` share stays (a uniform background ties, and goes whole)."""
    x = np.asarray(img.convert("RGB")).copy()
    saliency = frequency_tuned_saliency(img)
    x[saliency <= np.quantile(saliency, 1 - keep)] = 0
    return Image.fromarray(x)


def augment_image(img: Image.Image, spec: AugmentSpec, seed: int) -> Image.Image:
    """Apply a pixel-space augmentation; identity for tensor-space noise and 'none'."""
    if spec.kind == "none" or spec.acts_on_tensor:
        return img
    if spec.kind == "diffusion":  # POVID: noise in [0, 1] pixel space before preprocessing
        x = torch.from_numpy(np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0)
        x = add_diffusion_noise(x, spec.step, seed).clamp(0, 1)
        return Image.fromarray((x.numpy() * 255.0).round().astype(np.uint8))
    if spec.kind == "random_mask":
        return random_patch_mask(img, spec.params["ratio"], spec.params["patch"], seed)
    if spec.kind == "saliency_mask":
        return saliency_background_mask(img, spec.params["keep"])
    torch_state = torch.random.get_rng_state()
    try:
        torch.manual_seed(seed)
        return _torchvision_transform(spec, img.size[::-1])(img.convert("RGB"))
    finally:
        torch.random.set_rng_state(torch_state)


def split_images(pixel_values: torch.Tensor, image_grid_thw: torch.Tensor | None = None) -> list[torch.Tensor]:
    """The processor's tensor, one piece per image.

    LLaVA-1.5 gives one row per image, OneVision one row of anyres crops per image; Qwen2-VL
    flattens the patches of all images into one tensor, t*h*w rows per image (image_grid_thw)."""
    if image_grid_thw is None:
        return list(pixel_values)
    return list(torch.split(pixel_values, image_grid_thw.prod(-1).tolist()))


def join_images(parts: list[torch.Tensor], image_grid_thw: torch.Tensor | None = None) -> torch.Tensor:
    return torch.stack(parts) if image_grid_thw is None else torch.cat(parts)


def augment_pixel_values(pixel_values: torch.Tensor, spec: AugmentSpec, seeds: list[int],
                         image_grid_thw: torch.Tensor | None = None) -> torch.Tensor:
    """Apply tensor-space noise image by image, each image with its own seed."""
    if not spec.acts_on_tensor:
        return pixel_values
    parts = split_images(pixel_values, image_grid_thw)
    return join_images([add_diffusion_noise(pv, spec.step, s) for pv, s in zip(parts, seeds)], image_grid_thw)


class View:
    """A way of showing an item's image to the model: clean, or corrupted by one spec.

    `images(...)` gives the PIL images to feed the processor and `pixel_transform(...)`
    the function to apply to the processor's tensor, so generation and scoring share it."""

    def __init__(self, spec: AugmentSpec | None, seed: int):
        self.spec, self.seed = spec, seed
        self.name = "clean" if spec is None else spec.name

    def seeds(self, item_ids):
        return [item_seed(self.seed, i, self.name) for i in item_ids]

    def images(self, images, item_ids):
        if self.spec is None:
            return list(images)
        return [augment_image(im, self.spec, s) for im, s in zip(images, self.seeds(item_ids))]

    def pixel_transform(self, item_ids):
        if self.spec is None or not self.spec.acts_on_tensor:
            return None
        seeds = self.seeds(item_ids)
        return lambda pv, grid=None: augment_pixel_values(pv, self.spec, seeds, grid)


def tensor_digest(x: torch.Tensor) -> str:
    return hashlib.sha256(x.detach().cpu().float().contiguous().numpy().tobytes()).hexdigest()[:16]
