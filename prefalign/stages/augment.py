"""Rule augment: the per-item manifest of T(I) (seed and digest of the view) and a contact sheet."""
from __future__ import annotations

import torch
from tqdm import tqdm

from ..augment import AugmentSpec, View, split_images, tensor_digest
from ..data import open_record_image, read_prompts
from ..io import write_jsonl
from ..plots import contact_sheet, save_figure


def view_pixel_values(processor, view: View, prompts, images) -> list[torch.Tensor]:
    """The tensor the model gets for each image under the view (one piece per image)."""
    ids = [p["id"] for p in prompts]
    enc = processor.image_processor(view.images(images, ids), return_tensors="pt")
    grid = enc.get("image_grid_thw")
    t = view.pixel_transform(ids)
    return split_images(enc["pixel_values"] if t is None else t(enc["pixel_values"], grid), grid)


def augment(*, prompts_path, model_dir, manifest_path, sheet_path, augmentation: AugmentSpec, seed: int,
            n_sheet: int = 8) -> None:
    """Views are regenerated from (seed, item id, spec) downstream and checked against the
    digest, so the noisy tensors themselves never need storing (16k items at 336 px would
    be tens of GB)."""
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(model_dir)
    view, name = View(augmentation, seed), augmentation.name
    prompts = read_prompts(prompts_path)
    rows, sheet = [], None
    for s in tqdm(range(0, len(prompts), 256), desc=f"augment {name}"):
        part = prompts[s:s + 256]
        images = [open_record_image(p, prompts_path) for p in part]
        pv = view_pixel_values(processor, view, part, images)
        if sheet is None:
            clean = view_pixel_values(processor, View(None, seed), part[:n_sheet], images[:n_sheet])
            sheet = contact_sheet(processor, clean, pv[:n_sheet], name)
        for p, x, item_seed in zip(part, pv, view.seeds([p["id"] for p in part])):
            rows.append({"id": p["id"], "augmentation": name, "seed": item_seed, "digest": tensor_digest(x)})
    write_jsonl(manifest_path, rows)
    save_figure(sheet, sheet_path)
