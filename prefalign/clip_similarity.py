"""Image-text similarity with open_clip, for ASPO's sentence weights.

Real runs load a released model (`ViT-L-14` / `openai`, from a local path or cache). The
miniature has no such model, so the workflow trains a small open_clip `CLIP` contrastively
on the world's sentences (each SFT image with one true sentence about it per step), so that
a sentence naming an object in the image scores higher than one naming an absent object.
"""
from __future__ import annotations

import json
import math
import random
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from .settings import ClipSettings


@dataclass
class ClipScorer:
    model: torch.nn.Module
    preprocess: object
    tokenizer: object

    @torch.no_grad()
    def similarity(self, image, texts: list[str]) -> torch.Tensor:
        """cosine(CLIP(text_i), CLIP(image)) for each text."""
        img = self.model.encode_image(self.preprocess(image).unsqueeze(0), normalize=True)
        txt = self.model.encode_text(self.tokenizer(texts), normalize=True)
        return (txt @ img.T).squeeze(-1)


def world_clip_transform():
    from open_clip.constants import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD
    from torchvision import transforms

    return transforms.Compose([transforms.ToTensor(), transforms.Normalize(OPENAI_DATASET_MEAN, OPENAI_DATASET_STD)])


def world_clip_tokenizer(context_length: int):
    from open_clip.tokenizer import SimpleTokenizer

    return SimpleTokenizer(context_length=context_length)


def build_world_clip(arch: dict):
    from open_clip import CLIP

    return CLIP(embed_dim=arch["embed_dim"], vision_cfg=arch["vision"], text_cfg=arch["text"])


def train_world_clip(pairs, load_image, out_dir, ccfg: ClipSettings, seed: int) -> list[dict]:
    """Contrastive training on (image, true sentence) pairs; saves weights + architecture."""
    from open_clip.loss import ClipLoss

    torch.manual_seed(seed)
    rng = random.Random(seed)
    arch = ccfg.architecture
    model = build_world_clip(arch)
    tokenizer = world_clip_tokenizer(arch["text"]["context_length"])
    transform = world_clip_transform()
    images = {}
    by_image: dict[str, list[str]] = {}
    for image, sentence in pairs:
        by_image.setdefault(image, []).append(sentence)
    names = sorted(by_image)
    for n in names:
        images[n] = transform(load_image(n))
    # each distinct sentence tokenised once (the default's 16,825 pairs hold 1311): open_clip's
    # Python BPE took about 12 of a step's 73 ms; a text's tokens do not depend on its batch
    sentences = sorted({s for _, s in pairs})
    tokens = dict(zip(sentences, tokenizer(sentences)))
    # fused: the for-loop version spent 20-25 ms a step on the 3.2M-entry token embedding
    # alone, 3.3 ms fused (2-core Xeon; docs/notes.md "Fewer padded tokens")
    opt = torch.optim.AdamW(model.parameters(), lr=ccfg.lr, weight_decay=0.1, fused=True)
    steps, bs = ccfg.steps, ccfg.batch_size
    warmup = max(1, steps // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * s / steps)))
    loss_fn = ClipLoss()
    log = []
    model.train()
    for step in tqdm(range(steps), desc="train_clip", mininterval=5):
        batch = rng.sample(names, min(bs, len(names)))
        x = torch.stack([images[n] for n in batch])
        t = torch.stack([tokens[rng.choice(by_image[n])] for n in batch])
        img, txt, scale = model(x, t)
        loss = loss_fn(img, txt, scale)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        log.append({"step": step, "loss": loss.item()})
    model.eval()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), out_dir / "model.pt")
    (out_dir / "architecture.json").write_text(json.dumps(arch, indent=1, sort_keys=True))
    return log


def load_clip(ccfg: ClipSettings, trained_dir=None) -> ClipScorer:
    """The configured scorer: the world's trained CLIP or a released open_clip model."""
    import open_clip

    if ccfg.kind == "train_world":
        arch = json.loads((Path(trained_dir) / "architecture.json").read_text())
        model = build_world_clip(arch)
        model.load_state_dict(torch.load(Path(trained_dir) / "model.pt", map_location="cpu"))
        return ClipScorer(model.eval(), world_clip_transform(), world_clip_tokenizer(arch["text"]["context_length"]))
    model, _, preprocess = open_clip.create_model_and_transforms(ccfg.model, pretrained=ccfg.pretrained)
    return ClipScorer(model.eval(), preprocess, open_clip.get_tokenizer(ccfg.model))


def retrieval_accuracy(scorer: ClipScorer, pairs, load_image, seed: int = 0) -> float:
    """Share of (image, true sentence) pairs whose sentence beats a sentence that is not true
    of that image (drawn from the other pairs)."""
    rng = random.Random(seed)
    truths: dict[str, set] = {}
    for image, sentence in pairs:
        truths.setdefault(image, set()).add(sentence)
    wins = 0
    for image, sentence in pairs:
        other = rng.choice([s for _, s in pairs if s not in truths[image]])
        sims = scorer.similarity(load_image(image), [sentence, other])
        wins += float(sims[0] > sims[1])
    return wins / len(pairs)
