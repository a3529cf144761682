"""One function per workflow stage; `scripts/*.py` call these with Snakemake's paths."""
from __future__ import annotations

import csv
import json
import logging
import os
import sys
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from . import world as W
from .scoring import correctness, mentioned_objects, yes_no
from .augment import AugmentSpec, View, split_images, tensor_digest
from .data import extract_rlaif_v_images, load_conversations, load_povid, load_rlaif_v, open_image
from .io import RecordError, atomic_path, read_jsonl, require, write_json, write_jsonl

log = logging.getLogger("prefalign")


def write_csv(path, rows: list[dict]) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


def save_figure(fig, path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight", metadata={"Software": None})


# ---------------------------------------------------------------- make_world

def make_world(out_dir, wcfg: dict) -> None:
    from .world_build import build_world

    spec = W.WorldSpec(image_size=wcfg["image_size"], grid=wcfg["grid"],
                       cooccurrence=wcfg.get("cooccurrence", 0.0), annotator_prior=wcfg.get("annotator_prior", 0.0))
    counts = build_world(out_dir, wcfg["seed"], spec, wcfg["n_sft_images"], wcfg["n_pool_images"], wcfg["n_eval"],
                         reasoning_share=wcfg["reasoning_share"], consr_share=wcfg.get("consr_share", 0.0),
                         pool_family_weights=wcfg.get("pool_family_weights"))
    log.info("world written to %s: %s", out_dir, counts)


# ---------------------------------------------------------------- train_base_model

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
    import io

    import pandas as pd
    from PIL import Image

    from .model import generate

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


def train_base_model(world_dir, model_dir, log_csv, competence_csv, bcfg: dict, image_size: int) -> None:
    from . import checkpoint
    from .sft import encode_sft, train_sft
    from .tiny_vlm import build_tiny_llava

    tiny, scfg = bcfg["tiny"], bcfg["sft"]
    model, processor = build_tiny_llava(world_corpus(world_dir), image_size, tiny["patch_size"],
                                        tiny["vision"], tiny["text"], scfg["seed"])
    sft_path = Path(world_dir) / "sft.json"
    convs = load_conversations(sft_path, require_answers=True)
    examples, pixel_values = encode_sft(processor, convs, lambda c: open_image(world_dir, c.image, sft_path, c.id))
    checkpoints = Path(model_dir).parent / "checkpoint"  # not an output: kept after a failure
    rows = train_sft(model, processor, examples, pixel_values, steps=scfg["steps"],
                     batch_size=scfg["batch_size"], lr=scfg["lr"], weight_decay=scfg["weight_decay"],
                     warmup_frac=scfg["warmup_frac"], clip=scfg["clip"], seed=scfg["seed"],
                     checkpoint_dir=checkpoints, checkpoint_every=scfg.get("checkpoint_every", 0),
                     checkpoint_key=checkpoint.fingerprint({"base_model": bcfg, "image_size": image_size}, [world_dir]))
    write_csv(log_csv, rows)
    with atomic_path(model_dir) as tmp:
        model.save_pretrained(tmp)
        processor.save_pretrained(tmp)
    write_csv(competence_csv, competence(model, processor, world_dir, bcfg["competence_noise_steps"], scfg["seed"]))
    checkpoint.discard(checkpoints)


# ---------------------------------------------------------------- sample_prompts

def resolve(template: str, world_dir) -> str:
    return template.replace("{world}", str(world_dir))


def with_unique_ids(convs):
    """Records that share an id (a file may hold several records of one image under the
    image's id) become `<id>@<n>`, n counting that id's records in file order from 1, so every
    prompt keeps its own id downstream."""
    from collections import Counter

    counts, seen = Counter(c.id for c in convs), Counter()
    out = []
    for c in convs:
        if counts[c.id] > 1:
            seen[c.id] += 1
            c = type(c)(f"{c.id}@{seen[c.id]}", c.image, c.turns)
        out.append(c)
    return out


def select_conversations(convs, source: dict):
    """The source's subset: records whose image starts with one of `image_prefixes`, each cut
    to its first `questions_per_image` questions (SeVa: text+ocr images, 2 questions each)."""
    prefixes = tuple(source.get("image_prefixes") or ())
    k = source.get("questions_per_image")
    out = []
    for c in convs:
        if prefixes and not c.image.startswith(prefixes):
            continue
        out.append(c if k is None else type(c)(c.id, c.image, c.turns[:k]))
    return out


def strip_suffixes(question: str, suffixes) -> str:
    for s in suffixes:
        if question.endswith(s):
            return question[: -len(s)].rstrip()
    return question


def sample_prompts(out_path, pcfg: dict, seed: int, world_dir) -> None:
    """Draw `n` prompts (image + question, never an answer) from the configured source."""
    src = resolve(pcfg["source"]["path"], world_dir)
    root = resolve(pcfg["source"]["image_root"], world_dir)
    fmt = pcfg["source"]["format"]
    loaders = {"llava_json": lambda f: load_conversations(f, require_answers=False), "povid": load_povid,
               "rlaif_v": load_rlaif_v}
    convs = loaders[fmt](src)
    suffix = f" {pcfg['reasoning_prompt']}" if pcfg.get("reasoning_prompt") else ""
    prompts = [{"id": c.id if len(c.turns) == 1 else f"{c.id}#{k}", "image": str(Path(root) / c.image),
                "question": strip_suffixes(t.question, pcfg["source"].get("strip_suffixes", ())) + suffix}
               for c in select_conversations(with_unique_ids(convs), pcfg["source"]) for k, t in enumerate(c.turns)]
    if pcfg["n"] > len(prompts):
        raise ValueError(f"{src}: asked for {pcfg['n']} prompts, the source has {len(prompts)}")
    pick = sorted(np.random.default_rng(seed).choice(len(prompts), pcfg["n"], replace=False).tolist())
    chosen = [prompts[i] for i in pick]
    if fmt == "rlaif_v":  # the released images live inside the parquet files
        extract_rlaif_v_images(src, {p["id"] for p in chosen}, root)
    for p in chosen:  # a missing or unreadable image stops here, naming the record
        open_image("", p["image"], src, p["id"])
    write_jsonl(out_path, chosen)


def read_prompts(path) -> list[dict]:
    recs = read_jsonl(path)
    for i, r in enumerate(recs, 1):
        for f in ("id", "image", "question"):
            require(r, f, str, path, f"line {i}")
    return recs


# ---------------------------------------------------------------- augment

def view_pixel_values(processor, view: View, prompts, images) -> list[torch.Tensor]:
    """The tensor the model gets for each image under the view (one piece per image)."""
    ids = [p["id"] for p in prompts]
    enc = processor.image_processor(view.images(images, ids), return_tensors="pt")
    grid = enc.get("image_grid_thw")
    t = view.pixel_transform(ids)
    return split_images(enc["pixel_values"] if t is None else t(enc["pixel_values"], grid), grid)


def contact_sheet(processor, clean: torch.Tensor, augmented: torch.Tensor, title: str):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ip = processor.image_processor
    mean, std = torch.tensor(ip.image_mean)[:, None, None], torch.tensor(ip.image_std)[:, None, None]
    n = len(clean)
    fig, axes = plt.subplots(2, n, figsize=(1.4 * n, 3.0), squeeze=False)
    for row, (tensors, label) in enumerate(((clean, "clean"), (augmented, title))):
        for k in range(n):
            x = tensors[k] if tensors[k].dim() == 3 else tensors[k][0]  # anyres: the base view
            if x.dim() == 3:
                axes[row][k].imshow((x * std + mean).clamp(0, 1).permute(1, 2, 0).numpy(), interpolation="nearest")
            else:  # Qwen2-VL's flattened patches have no image layout to show
                axes[row][k].text(0.5, 0.5, f"{tuple(tensors[k].shape)}\npatches", ha="center", fontsize=6)
            axes[row][k].set_xticks([]), axes[row][k].set_yticks([])
        axes[row][0].set_ylabel(label)
    return fig


def augment(prompts_path, model_dir, manifest_path, sheet_path, aug_name: str, acfg: dict, seed: int,
            n_sheet: int = 8) -> None:
    """Write the per-item manifest of T(I) (seed and digest of the view) and a contact sheet.

    Views are regenerated from (seed, item id, spec) downstream and checked against the
    digest, so the noisy tensors themselves never need storing (16k items at 336 px would
    be tens of GB)."""
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(model_dir)
    spec = AugmentSpec.from_config(aug_name, acfg)
    view = View(spec, seed)
    prompts = read_prompts(prompts_path)
    rows, sheet = [], None
    for s in tqdm(range(0, len(prompts), 256), desc=f"augment {aug_name}"):
        part = prompts[s:s + 256]
        images = [open_image("", p["image"], prompts_path, p["id"]) for p in part]
        pv = view_pixel_values(processor, view, part, images)
        if sheet is None:
            clean = view_pixel_values(processor, View(None, seed), part[:n_sheet], images[:n_sheet])
            sheet = contact_sheet(processor, clean, pv[:n_sheet], aug_name)
        for p, x, item_seed in zip(part, pv, view.seeds([p["id"] for p in part])):
            rows.append({"id": p["id"], "augmentation": aug_name, "seed": item_seed,
                         "digest": tensor_digest(x)})
    write_jsonl(manifest_path, rows)
    save_figure(sheet, sheet_path)


# ---------------------------------------------------------------- sample_responses

def checked_view(view: View, part, expected: dict, manifest_path):
    """The view's tensor transform, checking each regenerated view against the digest the
    augment stage recorded (on the very tensor the model is given; no second pass)."""
    transform = view.pixel_transform([p["id"] for p in part])
    if not expected:
        return transform

    def apply(pixel_values, grid=None):
        pv = pixel_values if transform is None else transform(pixel_values, grid)
        for p, x in zip(part, split_images(pv, grid)):
            if expected.get(p["id"]) != tensor_digest(x):
                raise RecordError(manifest_path, p["id"], "digest",
                                  "regenerated view differs from the recorded one")
        return pv
    return apply


def shard_range(n_items: int, batch_size: int, shard: tuple[int, int]) -> range:
    """Items of shard k of n: a contiguous run of whole batches (so every batch, and its
    seed, is the one an unsharded job would use)."""
    k, n = shard
    n_batches = -(-n_items // batch_size)
    first, last = k * n_batches // n, (k + 1) * n_batches // n
    return range(first * batch_size, min(last * batch_size, n_items))


def generation_seed(seed: int, view: str, batch_start: int) -> int:
    """The sampling seed of one batch: from the run's seed, the view and the batch's start.

    Views get their own streams: with a shared stream, samples from a slightly noised image
    repeat the clean image's samples token for token wherever the noise leaves the
    distribution nearly unchanged, which is not independent sampling."""
    import zlib

    offset = 0 if view == "clean" else zlib.crc32(view.encode()) * 7_919
    return seed * 1_000_003 + batch_start + offset


def generate_batches(model, processor, items, images, questions, gcfg: dict, seed: int, desc: str,
                     pixel_transform_for=None, shard: tuple[int, int] = (0, 1),
                     view: str = "clean") -> list[list[tuple[str, int]]]:
    """Generate for the shard's items in batches of the generation config; per item (text,
    n_tokens)s. Sampling is seeded per batch from (seed, view, batch start in the whole
    list), so a rerun, or the same batch in another shard split, gives the same texts."""
    from .model import generate

    out, bs = [], gcfg["batch_size"]
    span = shard_range(len(items), bs, shard)
    for s in tqdm(range(span.start, span.stop, bs), desc=desc, mininterval=5):
        part = items[s:s + bs]
        out += generate(model, processor, images(part), questions[s:s + bs],
                        max_new_tokens=gcfg["max_new_tokens"], do_sample=gcfg["do_sample"],
                        temperature=gcfg.get("temperature", 1.0), top_p=gcfg.get("top_p", 1.0),
                        num_return_sequences=gcfg.get("num_return_sequences", 1),
                        pixel_transform=pixel_transform_for(part) if pixel_transform_for else None,
                        seed=generation_seed(seed, view, s))
    return out


def sample_responses(prompts_path, model_dir, manifest_path, out_path, view_name: str, aug_cfg,
                     gen_name: str, gcfg: dict, seed: int, device: str, dtype: str,
                     shard: tuple[int, int] = (0, 1)) -> None:
    """Responses to every prompt under the view, or to shard k of n of them (`join_shards`
    concatenates the n shard files into exactly the unsharded file)."""
    from .model import load_model

    model, processor = load_model(model_dir, dtype=dtype, device=device)
    view = View(None if view_name == "clean" else AugmentSpec.from_config(view_name, aug_cfg), seed)
    prompts = read_prompts(prompts_path)
    expected = {}
    if manifest_path:
        expected = {r["id"]: r["digest"] for r in read_jsonl(manifest_path)}

    def images(part):
        return view.images([open_image("", p["image"], prompts_path, p["id"]) for p in part], [p["id"] for p in part])

    gens = generate_batches(model, processor, prompts, images, [p["question"] for p in prompts], gcfg, seed,
                            f"sample {view_name}/{gen_name}",
                            lambda part: checked_view(view, part, expected, manifest_path), shard, view_name)
    mine = [prompts[i] for i in shard_range(len(prompts), gcfg["batch_size"], shard)]
    write_jsonl(out_path, [{**p, "view": view_name, "generation": gen_name,
                            "responses": [{"text": t, "n_tokens": n} for t, n in g]} for p, g in zip(mine, gens)])


def join_shards(shard_paths, out_path) -> None:
    """Concatenate shard files, in shard order, into one file (written atomically)."""
    with atomic_path(out_path) as tmp, open(tmp, "wb") as out:
        for p in shard_paths:
            out.write(Path(p).read_bytes())


# ---------------------------------------------------------------- describe_images, revise_responses (ConSR)

def describe_images(prompts_path, model_dir, out_path, prompt: str, gcfg: dict, seed: int, device: str,
                    dtype: str) -> None:
    """The model's own description of each prompt's image (ConSR's d), one per distinct image."""
    from .model import load_model

    model, processor = load_model(model_dir, dtype=dtype, device=device)
    prompts = read_prompts(prompts_path)
    first = list({p["image"]: p for p in prompts}.values())  # one prompt per image names it

    def images(part):
        return [open_image("", p["image"], prompts_path, p["id"]) for p in part]

    gens = generate_batches(model, processor, first, images, [prompt] * len(first), gcfg, seed, "describe images")
    text = {p["image"]: g[0][0] for p, g in zip(first, gens)}
    write_jsonl(out_path, [{"id": p["id"], "image": p["image"], "description": text[p["image"]]} for p in prompts])


def read_descriptions(path) -> dict[str, str]:
    out = {}
    for i, r in enumerate(read_jsonl(path), 1):
        out[require(r, "id", str, path, f"line {i}")] = require(r, "description", str, path, f"line {i}")
    return out


def revise_responses(prompts_path, model_dir, descriptions_path, responses_path, out_path, template: str,
                     gen_name: str, gcfg: dict, seed: int, device: str, dtype: str) -> None:
    """ConSR's revisions: each clean sample rewritten by the model given its own description,
    the question and that sample (the revision template), on the clean image."""
    from .model import load_model

    model, processor = load_model(model_dir, dtype=dtype, device=device)
    prompts = read_prompts(prompts_path)
    descriptions = read_descriptions(descriptions_path)
    sampled = {r["id"]: r for r in read_jsonl(responses_path)}
    jobs = []  # (prompt, sample index, revision prompt)
    for p in prompts:
        if p["id"] not in sampled:
            raise RecordError(responses_path, p["id"], "id", "no sampled responses for this prompt")
        if p["id"] not in descriptions:
            raise RecordError(descriptions_path, p["id"], "id", "no description for this prompt")
        for k, r in enumerate(sampled[p["id"]]["responses"]):
            jobs.append((p, k, template.format(description=descriptions[p["id"]], question=p["question"],
                                               response=r["text"])))

    def images(part):
        return [open_image("", p["image"], prompts_path, p["id"]) for p, _, _ in part]

    gens = generate_batches(model, processor, jobs, images, [q for _, _, q in jobs], gcfg, seed, "revise responses")
    revised = {}
    for (p, k, _), g in zip(jobs, gens):
        revised.setdefault(p["id"], []).append({"text": g[0][0], "n_tokens": g[0][1], "revises": k})
    write_jsonl(out_path, [{**p, "view": "revised", "generation": gen_name, "responses": revised[p["id"]]}
                           for p in prompts])


# ---------------------------------------------------------------- build_preferences

def build_preferences(prompts_path, response_paths: dict, out_path, stats_path, pref_cfg: dict, model_dir=None,
                      clip_dir=None, clip_cfg=None, device: str = "cpu", dtype: str = "float32", seed: int = 0,
                      descriptions_path=None, consr_prompts=None, augmentations=None, world_dir=None) -> None:
    from .methods import method
    from .methods.records import validate_record

    prompts = read_prompts(prompts_path)
    responses = {}
    for key, path in response_paths.items():
        recs = read_jsonl(path)
        for i, r in enumerate(recs, 1):
            require(r, "id", str, path, f"line {i}")
            resp = require(r, "responses", list, path, f"line {i}")
            if not resp:
                raise RecordError(path, f"line {i}", "responses", "empty")
        responses[key] = {r["id"]: r for r in recs}
        missing = [p["id"] for p in prompts if p["id"] not in responses[key]]
        if missing:
            raise RecordError(path, missing[0], "id", f"no responses for {len(missing)} prompt(s)")

    def load_base():
        from .model import load_model
        return load_model(model_dir, dtype=dtype, device=device)

    def load_scorer():
        from .clip_similarity import load_clip
        return load_clip(clip_cfg, clip_dir)

    resources = {"model": load_base, "clip": load_scorer, "seed": seed, "augmentations": augmentations or {},
                 "descriptions": lambda: read_descriptions(descriptions_path), "prompting": consr_prompts,
                 "answers": Path(world_dir) / "pool_answers.json" if world_dir else None,
                 "load_image": lambda r: open_image("", r["image"], prompts_path, r["id"])}
    records, stats = method(pref_cfg["method"]).build(prompts, responses, pref_cfg, resources)
    for i, r in enumerate(records):
        validate_record(r, out_path, i)
    write_jsonl(out_path, records)
    write_json(stats_path, stats)
    log.info("preferences %s: %s", out_path, stats)


# ---------------------------------------------------------------- train_clip

def world_sentences(world_dir) -> list[tuple[str, str]]:
    """(image, sentence true of it): description sentences and reasoning evidence of the SFT split."""
    from .methods.aspo import sentence_char_starts

    pairs = []
    for c in load_conversations(Path(world_dir) / "sft.json", require_answers=True):
        for t in c.turns:
            if t.question == W.DESCRIBE_QUESTION:
                text = t.answer
            elif W.REASONING_PROMPT in t.question:
                text = t.answer.partition(". ")[2]  # the evidence, not the short answer
            else:
                continue
            starts = sentence_char_starts(text) + [len(text)]
            pairs += [(c.image, text[a:b].strip()) for a, b in zip(starts, starts[1:]) if text[a:b].strip()]
    return pairs


def train_clip(world_dir, out_dir, log_csv, ccfg: dict) -> None:
    """The miniature's open_clip model, trained on 90% of the SFT images' sentences; the
    log's last row holds retrieval accuracy on the other 10%."""
    from .clip_similarity import load_clip, retrieval_accuracy, train_world_clip

    pairs = world_sentences(world_dir)
    images = sorted({i for i, _ in pairs})
    held = set(images[int(0.9 * len(images)):])

    def load(name):
        return open_image(world_dir, name, Path(world_dir) / "sft.json", name)

    with atomic_path(out_dir) as tmp:
        rows = train_world_clip([p for p in pairs if p[0] not in held], load, tmp, ccfg, ccfg["seed"])
        acc = retrieval_accuracy(load_clip(ccfg, tmp), [p for p in pairs if p[0] in held][:400], load)
    log.info("world CLIP: held-out retrieval accuracy %.3f", acc)
    write_csv(log_csv, rows + [{"step": "held_out_retrieval_accuracy", "loss": acc}])


# ---------------------------------------------------------------- train

def train(pref_path, model_dir, adapter_dir, log_csv, curves_png, title: str, obj_cfg: dict,
          tcfg: dict, seed: int, device: str, dtype: str, reference_path=None) -> None:
    """Train one run's LoRA adapter; with `processes: N` > 1, on N processes (torchrun). With
    `reference_path` the reference log-probs are read (rule reference_logps), not recomputed."""
    from . import checkpoint, distributed
    from .methods import objective
    from .methods.records import validate_record
    from .model import load_model
    from .training import add_lora, train_preferences

    if tcfg.get("processes", 1) > 1 and not distributed.launched_by_torchrun():
        kwargs = dict(pref_path=str(pref_path), model_dir=str(model_dir), adapter_dir=str(adapter_dir),
                      log_csv=str(log_csv), curves_png=str(curves_png), title=title, obj_cfg=obj_cfg,
                      tcfg=tcfg, seed=seed, device=device, dtype=dtype,
                      reference_path=str(reference_path) if reference_path else None)
        return distributed.launch(tcfg["processes"], kwargs)
    device = distributed.init(device)
    records = [validate_record(r, pref_path, f"line {i}") for i, r in enumerate(read_jsonl(pref_path), 1)]
    if reference_path:
        from .reference import attach

        attach(records, reference_path)
    model, processor = load_model(model_dir, dtype=dtype, device=device)
    torch.manual_seed(seed)  # LoRA's A matrices are drawn at random: the same in every process and rerun
    model = add_lora(model, tcfg["lora"])
    sharded = distributed.world()[1] > 1 and tcfg.get("fsdp", False)
    if sharded:
        model = distributed.shard_model(model, device)
    # beside the adapter, not an output: Snakemake removes a failed job's outputs
    checkpoints = Path(adapter_dir).parent / "checkpoint"
    key = checkpoint.fingerprint({"objective": obj_cfg, "training": tcfg, "seed": seed,
                                  "device": device, "dtype": dtype},
                                 [pref_path, reference_path, model_dir])
    rows = train_preferences(model, processor, records,
                             lambda r: open_image("", r["image"], pref_path, r["id"]),
                             objective(obj_cfg["loss"]), obj_cfg, tcfg, seed, device,
                             checkpoint_dir=checkpoints, checkpoint_key=key)
    state = distributed.full_trainable_state(model) if sharded else None
    if distributed.world()[0] == 0:  # every process holds the same weights; one writes
        with atomic_path(adapter_dir) as tmp:
            model.save_pretrained(tmp, state_dict=state)
        write_csv(log_csv, rows)
        save_figure(training_curves(rows, title), curves_png)
    checkpoint.discard(checkpoints)
    distributed.finish()


def training_curves(rows, title: str):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = [k for k in ("loss", "reward_margin", "pair_accuracy") if k in rows[0]]
    fig, axes = plt.subplots(1, len(keys), figsize=(4 * len(keys), 3))
    for ax, k in zip(np.atleast_1d(axes), keys):
        ax.plot([r["step"] for r in rows], [r[k] for r in rows])
        ax.set_xlabel("step"), ax.set_title(k)
    fig.suptitle(title)
    return fig


# ---------------------------------------------------------------- evaluate

def evaluate(model_dir, adapter_dir, world_dir, out_dir, ecfg: dict, device: str, dtype: str) -> None:
    from .evaluation import evaluate_to

    evaluate_to(out_dir, model_path=str(model_dir), adapter=str(adapter_dir) if adapter_dir else None,
                tasks=ecfg["tasks"], data_dir=Path(world_dir) / "eval" if world_dir else None, limit=ecfg.get("limit"),
                model_name=ecfg["model"], dtype=dtype, device=device, judge_tasks=ecfg.get("judge_tasks"),
                model_args=ecfg.get("model_args"), batch_size=ecfg.get("batch_size", 1))


def optional_input(smk, name: str):
    """The path of an input that a rule lists only when needed (e.g. the world), or None."""
    value = smk.input.get(name)
    if value is None or isinstance(value, str):
        return value or None
    return value[0] if len(value) else None


def setup(smk) -> None:
    """Common start of every rule script: everything the job writes to stderr (logging records,
    warnings, tqdm, a traceback, torchrun workers' output) goes to the rule's log file, as the
    catalogue's workflows do; the console keeps Snakemake's own progress. Pins torch threads."""
    if smk.log:
        Path(smk.log[0]).parent.mkdir(parents=True, exist_ok=True)
        sys.stderr.flush()
        with open(smk.log[0], "w") as f:  # fd 2 itself, so child processes inherit it
            os.dup2(f.fileno(), 2)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    torch.set_num_threads(max(1, smk.threads))
