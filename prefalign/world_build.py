"""Writing the miniature world: images, the SFT split, the unlabelled prompt pool and the
evaluation sets, in the formats the real sources use (LLaVA conversation JSON, PNG files,
parquet benchmarks)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .world import (FAMILIES, POPE_TYPES, REASONING_PROMPT, WorldSpec, absent_partners, context_turn,
                    png_bytes, popularity_order, questions_for, reasoning_variant, render, revision_turn,
                    sample_scene, with_partners, with_usual_colours)


def conversation_record(rid: str, image: str, qas: list[dict], with_answers: bool) -> dict:
    """A LLaVA-format record; the first human turn carries the <image> placeholder."""
    conv = []
    for k, qa in enumerate(qas):
        conv.append({"from": "human", "value": ("<image>\n" if k == 0 else "") + qa["question"]})
        if with_answers:
            conv.append({"from": "gpt", "value": qa["answer"]})
    return {"id": rid, "image": image, "conversations": conv}


def generate_split(rng, spec: WorldSpec, n_images: int, prefix: str, image_dir: Path, families, *,
                   per_image: int | None = None, pope_strategy=None, family_weights=None,
                   scene_filter=None, annotate=None):
    """Yield (image name, scene, qas) for n_images fresh scenes, writing their PNGs.

    `family_weights` (by family) weights the `per_image` families drawn per image;
    `scene_filter` redraws scenes until one passes; `annotate` maps the rendered scene to
    the scene its annotations describe (the SFT split's language prior), which is yielded."""
    popularity = popularity_order(spec)
    image_dir.mkdir(parents=True, exist_ok=True)
    for i in range(n_images):
        scene = sample_scene(rng, spec)
        while scene_filter is not None and not scene_filter(scene):
            scene = sample_scene(rng, spec)
        annotated = annotate(scene) if annotate is not None else scene
        fams = list(families)
        if per_image is not None and family_weights:
            w = np.array([float(family_weights.get(f, 1.0)) for f in fams])
            fams = [fams[j] for j in rng.choice(len(fams), size=per_image, replace=False, p=w / w.sum())]
        elif per_image is not None:
            fams = [fams[j] for j in rng.permutation(len(fams))[:per_image]]
        qas = questions_for(rng, annotated, spec, popularity, fams, pope_strategy)
        name = f"{prefix}_{i:06d}.png"
        (image_dir / name).write_bytes(png_bytes(render(scene, spec)))
        yield name, annotated, qas


def with_reasoning_turns(rng, scene: dict, qas: list[dict], spec: WorldSpec, share: float) -> list[dict]:
    """With probability `share`, add one short-answer question again with the reasoning prompt."""
    short = [qa for qa in qas if qa["family"] != "describe"]
    if short and rng.random() < share:
        return qas + [reasoning_variant(short[int(rng.integers(len(short)))], scene, spec)]
    return qas


def with_consr_turns(rng, scene: dict, qas: list[dict], spec: WorldSpec, share: float) -> list[dict]:
    """With probability `share` each, one revision turn and one description-context turn
    (on questions of the image), so that the base model knows ConSR's two prompts."""
    base = [qa for qa in qas if REASONING_PROMPT not in qa["question"]]
    extra = []
    if rng.random() < share:
        extra.append(revision_turn(rng, base[int(rng.integers(len(base)))], scene, spec))
    if rng.random() < share:
        extra.append(context_turn(qas[int(rng.integers(len(qas)))], scene, spec))
    return qas + extra


def build_world(out_dir, seed: int, spec: WorldSpec, n_sft: int, n_pool: int,
                n_eval: dict, *, pool_families=FAMILIES, reasoning_share: float = 0.25,
                consr_share: float = 0.0, pool_family_weights: dict | None = None,
                progress: bool = True) -> dict:
    """Write the whole world (images, SFT, prompt pool, evaluation sets) into out_dir.

    Each split draws from its own seeded stream, so changing one split's size leaves the
    others byte-identical. With co-occurrence on, POPE's adversarial split shows scenes
    where a usual partner is absent and asks for it (as real POPE asks for co-occurring
    objects)."""
    import pandas as pd
    from tqdm import tqdm

    from .io import atomic_path
    from .manifest import write_manifest

    counts = {}
    with atomic_path(out_dir) as tmp:
        images = tmp / "images"

        def stream(k):
            return np.random.default_rng([seed, k])

        # Their own streams: the SFT scenes and questions stay as they were.
        reasoning_rng, consr_rng, annotation_rng, colour_rng = stream(2), stream(3), stream(4), stream(5)

        def annotate(scene):  # what the annotator names: expected colours, then partners (no prior: the scene)
            if spec.colour_prior:
                scene = with_usual_colours(colour_rng, scene, spec.colour_prior)
            if spec.annotator_prior:
                scene = with_partners(annotation_rng, scene, spec, spec.annotator_prior)
            return scene

        sft = [conversation_record(f"sft_{i:06d}", f"images/{name}", with_consr_turns(
                   consr_rng, scene, with_reasoning_turns(reasoning_rng, scene, qas, spec, reasoning_share),
                   spec, consr_share), True)
               for i, (name, scene, qas) in enumerate(tqdm(
                   generate_split(stream(0), spec, n_sft, "sft", images, FAMILIES, annotate=annotate),
                   total=n_sft, desc="world: sft", disable=not progress))]
        (tmp / "sft.json").write_text(json.dumps(sft))
        counts["sft_images"], counts["sft_qas"] = n_sft, sum(len(r["conversations"]) // 2 for r in sft)

        pool, answers = [], {}
        for name, scene, qas in tqdm(generate_split(stream(1), spec, n_pool, "pool", images,
                                                    pool_families, per_image=2,
                                                    family_weights=pool_family_weights),
                                     total=n_pool, desc="world: pool", disable=not progress):
            for qa in qas:
                rid = f"pool_{len(pool):06d}"
                pool.append(conversation_record(rid, f"images/{name}", [qa], with_answers=False))
                answers[rid] = {"family": qa["family"], "answer": qa["answer"], "scene": scene}
        (tmp / "pool.json").write_text(json.dumps(pool))
        # Kept apart so that preference construction can never read an answer.
        (tmp / "pool_answers.json").write_text(json.dumps(answers, sort_keys=True))
        counts["pool_prompts"] = len(pool)

        eval_sets = {"pope": ["exist"], "vqa": ["colour", "count", "position", "cell", "text"],
                     "describe": ["describe"]}
        (tmp / "eval").mkdir()
        for k, (task, fams) in enumerate(eval_sets.items()):
            rows = []
            n = n_eval[task]
            strategies = POPE_TYPES if task == "pope" else (None,)
            for si, strategy in enumerate(strategies):
                per = n // len(strategies)
                probe_partners = strategy == "adversarial" and spec.cooccurrence > 0
                for name, scene, qas in generate_split(stream(10 + 3 * k + si), spec, per,
                                                       f"eval_{task}{'_' + strategy if strategy else ''}",
                                                       images, fams, pope_strategy=strategy,
                                                       scene_filter=absent_partners if probe_partners else None):
                    img_bytes = (images / name).read_bytes()
                    for qa in qas:
                        rows.append({"id": f"{task}_{len(rows):05d}", "question": qa["question"],
                                     "answer": qa["answer"], "family": qa["family"],
                                     "pope_type": qa.get("pope_type", ""), "image": img_bytes,
                                     "image_file": f"images/{name}",
                                     "scene": json.dumps(scene, sort_keys=True)})
            pd.DataFrame(rows).to_parquet(tmp / "eval" / f"{task}.parquet", index=False)
            counts[f"eval_{task}"] = len(rows)
        (tmp / "world.json").write_text(json.dumps(
            {"seed": seed, "spec": spec.__dict__, "counts": counts}, indent=1, sort_keys=True))
        write_manifest(tmp)  # the stages check every world file they read against it
    return counts
