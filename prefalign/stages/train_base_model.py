"""Rules train_base_model and base_competence: the miniature's tiny LLaVA, built and trained
(SFT) on the world, and its competence per question family, clean and under noise."""
from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np

from .. import checkpoint
from .. import world as W
from ..augment import AugmentSpec, View
from ..data import load_conversations, open_image
from ..io import atomic_path, write_csv
from ..scoring import correctness, mentioned_objects, yes_no
from ..settings import BaseModelSettings


def world_corpus(world_dir) -> list[str]:
    """All text the tiny tokenizer must know: SFT, prompt pool, templates, every sign text."""
    texts = ["USER: ASSISTANT:", W.REASONING_PROMPT] + [str(n) for n in range(10, 100)]
    for c in load_conversations(Path(world_dir) / "sft.json", require_answers=True):
        for t in c.turns:
            texts += [t.question, t.answer]
    for c in load_conversations(Path(world_dir) / "pool.json", require_answers=False):
        texts += [t.question for t in c.turns]
    return texts


def competence(model, processor, world_dir, noise_steps, seed: int, batch_size: int = 64) -> list[dict]:
    """Accuracy per question family of the evaluation sets, clean and at each noise step."""
    import pandas as pd
    from PIL import Image

    from ..model import generate

    rows = []
    for task in ("pope", "vqa", "describe"):
        df = pd.read_parquet(Path(world_dir) / "eval" / f"{task}.parquet")
        images = [Image.open(io.BytesIO(b)).convert("RGB") for b in df.image]
        scenes = [json.loads(s) for s in df.scene]
        for step in [None, *noise_steps]:
            view = View(None if step is None else AugmentSpec(f"noise{step}", "diffusion", step), seed)
            preds = []
            for s in range(0, len(df), batch_size):
                ids = list(df.id[s:s + batch_size])
                out = generate(model, processor, view.images(images[s:s + batch_size], ids),
                               list(df.question[s:s + batch_size]),
                               max_new_tokens=80 if task == "describe" else 8,
                               pixel_transform=view.pixel_transform(ids))
                preds += [o[0][0] for o in out]
            scores = [correctness(f, p, a, sc) for f, p, a, sc in zip(df.family, preds, df.answer, scenes)]
            for fam in sorted(set(df.family)):
                sel = [sc for sc, f in zip(scores, df.family) if f == fam]
                rows.append({"family": fam, "view": view.name, "n": len(sel),
                             "accuracy": round(float(np.mean(sel)), 4),
                             **(false_yes_on_partners(df, preds, scenes) if fam == "exist" else {})})
    return rows


def false_yes_on_partners(df, preds, scenes) -> dict:
    """The co-occurrence premise: how many false "yes" answers name a usual partner of an
    object in the image (all POPE splits together)."""
    false_yes = [(q, sc) for q, a, p, sc in zip(df.question, df.answer, preds, scenes)
                 if a == "no" and yes_no(p) == "yes"]
    on_partner = sum(mentioned_objects(q)[0] in W.absent_partners(sc) for q, sc in false_yes)
    return {"false_yes": len(false_yes), "false_yes_on_partner": on_partner}


def train_base_model(*, world_dir, model_dir, log_csv, base: BaseModelSettings, image_size: int,
                     vision_from=None) -> None:
    """`vision_from`: the world CLIP whose image encoder starts the vision tower
    (`base_model.tiny.vision_from`); without it the tower starts from random weights."""
    from ..sft import encode_sft, train_sft
    from ..tiny_vlm import build_tiny_llava

    tiny, scfg = base.tiny, base.sft
    model, processor = build_tiny_llava(world_corpus(world_dir), image_size, tiny["patch_size"],
                                        tiny.get("vision"), tiny["text"], scfg.seed, vision_from)
    sft_path = Path(world_dir) / "sft.json"
    convs = load_conversations(sft_path, require_answers=True)
    examples, pixel_values = encode_sft(processor, convs, lambda c: open_image(world_dir, c.image, sft_path, c.id))
    checkpoints = Path(model_dir).parent / "checkpoint"  # not an output: kept after a failure
    rows = train_sft(model, processor, examples, pixel_values, steps=scfg.steps,
                     batch_size=scfg.batch_size, lr=scfg.lr, weight_decay=scfg.weight_decay,
                     warmup_frac=scfg.warmup_frac, clip=scfg.clip, seed=scfg.seed,
                     checkpoint_dir=checkpoints, checkpoint_every=scfg.checkpoint_every,
                     checkpoint_key=checkpoint.fingerprint({"base_model": base.as_dict(), "image_size": image_size},
                                                           [world_dir, vision_from]))
    write_csv(log_csv, rows)
    with atomic_path(model_dir) as tmp:
        model.save_pretrained(tmp)
        processor.save_pretrained(tmp)
    checkpoint.discard(checkpoints)


def base_competence(*, model_dir, world_dir, competence_csv, noise_steps, seed: int, device: str, dtype: str) -> None:
    """Rule base_competence: its own job, so that the runs' first stages need not wait for it."""
    from ..model import load_model

    model, processor = load_model(model_dir, dtype=dtype, device=device)
    write_csv(competence_csv, competence(model, processor, world_dir, noise_steps, seed))
