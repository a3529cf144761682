"""Rule describe_images (ConSR): the model's own description d of each prompt's image."""
from __future__ import annotations

from ..data import open_record_image, read_prompts
from ..io import write_jsonl
from ..settings import GenerationSettings
from .sample_responses import generate_batches


def describe_images(*, prompts_path, model_dir, out_path, prompt: str,
                    generation: GenerationSettings, seed: int, device: str, dtype: str) -> None:
    """One description per distinct image, written for every prompt of that image."""
    from ..model import load_model

    model, processor = load_model(model_dir, dtype=dtype, device=device)
    prompts = read_prompts(prompts_path)
    first = list({p["image"]: p for p in prompts}.values())  # one prompt per image names it

    def images(part):
        return [open_record_image(p, prompts_path) for p in part]

    gens = generate_batches(model, processor, first, images, [prompt] * len(first), generation, seed,
                            "describe images")
    text = {p["image"]: gens[i][0][0] for i, p in enumerate(first)}
    write_jsonl(out_path, [{"id": p["id"], "image": p["image"], "description": text[p["image"]]} for p in prompts])
