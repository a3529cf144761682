"""The miniature world: synthetic scenes with exact ground truth.

A scene is a grid of cells; each cell holds at most one object (a coloured shape of some
size) or a sign with two printed digits. Images are rendered pixel-exactly from the scene
graph, and every question family has an exact answer computed from it.

The world is written in the formats the real sources use: LLaVA conversation JSON plus
PNG files, so the loader that reads LLaVA-665k reads the miniature too. The unlabelled
prompt pool keeps its answers in a separate file that only the tables stage reads.
"""
from __future__ import annotations

import io
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

COLOURS = {
    "red": (220, 40, 40), "orange": (240, 140, 30), "yellow": (230, 210, 40),
    "green": (40, 180, 60), "blue": (50, 80, 230), "purple": (150, 60, 200),
}
SHAPES = ("circle", "square", "triangle", "cross")
SIZES = ("small", "large")
POSITIONS_3x3 = (("top left", "top", "top right"), ("left", "center", "right"),
                 ("bottom left", "bottom", "bottom right"))
NUMBERS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
FAMILIES = ("exist", "colour", "count", "position", "cell", "text", "describe")
DESCRIBE_QUESTION = "describe the image."
# SMPRO's reasoning prompt (its Figure 2). The SFT split teaches the base model to answer
# it with the short answer followed by the visual evidence, as instruction-tuned VLMs do.
REASONING_PROMPT = "Answer the question and explain why?"
# ConSR's prompt enriched with the model's own description (its appendix B.1, verbatim).
CONTEXT_TEMPLATE = "For your reference, the input image can be described as follows: {description} {prompt}"
# ConSR's revision prompt, shortened for the miniature's 256-token context: the paper's
# layout (description, question, original response) under a one-line instruction.
REVISION_TEMPLATE = ("revise your original response only if necessary. description: {description} "
                     "question: {question} original response: {response}")

# 3x5 bitmap digits, row-major, '#' = ink.
_DIGITS = {
    "0": "###,#.#,#.#,#.#,###", "1": ".#.,##.,.#.,.#.,###", "2": "###,..#,###,#..,###",
    "3": "###,..#,###,..#,###", "4": "#.#,#.#,###,..#,..#", "5": "###,#..,###,..#,###",
    "6": "###,#..,###,#.#,###", "7": "###,..#,.#.,.#.,.#.", "8": "###,#.#,###,#.#,###",
    "9": "###,#.#,###,..#,###",
}


@dataclass(frozen=True)
class WorldSpec:
    image_size: int = 30
    grid: int = 3
    background: tuple = (90, 90, 90)
    # Objects are drawn at this share of their full colour over the grey background: low
    # contrast makes diffusion noise bite, as it does on fine detail in real photographs.
    contrast: float = 0.6
    min_objects: int = 1
    max_objects: int = 4
    sign_prob: float = 0.3
    # Zipf-like exponent for colour and shape frequencies, so that "popular" POPE
    # negatives (frequent objects absent from the image) mean something.
    zipf: float = 0.6

    @property
    def cell(self) -> int:
        return self.image_size // self.grid


def _zipf_probs(n: int, s: float) -> np.ndarray:
    p = 1.0 / np.arange(1, n + 1) ** s
    return p / p.sum()


def sample_scene(rng: np.random.Generator, spec: WorldSpec) -> dict:
    n_cells = spec.grid * spec.grid
    n_obj = int(rng.integers(spec.min_objects, spec.max_objects + 1))
    has_sign = bool(rng.random() < spec.sign_prob)
    cells = rng.permutation(n_cells)[: n_obj + has_sign].tolist()
    pc, ps = _zipf_probs(len(COLOURS), spec.zipf), _zipf_probs(len(SHAPES), spec.zipf)
    colours = list(COLOURS)
    objects = []
    for cell in cells[:n_obj]:
        objects.append({
            "shape": SHAPES[rng.choice(len(SHAPES), p=ps)],
            "colour": colours[rng.choice(len(colours), p=pc)],
            "size": SIZES[int(rng.integers(2))],
            "cell": int(cell),
        })
    sign = None
    if has_sign:
        sign = {"text": f"{int(rng.integers(10, 100))}", "cell": int(cells[n_obj])}
    return {"objects": sorted(objects, key=lambda o: o["cell"]), "sign": sign}


def _shape_mask(shape: str, size: str, cell: int) -> np.ndarray:
    r = (cell * 0.42) if size == "large" else (cell * 0.22)
    c = (cell - 1) / 2.0
    yy, xx = np.mgrid[0:cell, 0:cell].astype(float)
    dy, dx = yy - c, xx - c
    if shape == "circle":
        return dy**2 + dx**2 <= r**2 + 0.5
    if shape == "square":
        return (np.abs(dy) <= r * 0.85) & (np.abs(dx) <= r * 0.85)
    if shape == "triangle":  # apex up
        top, bottom = c - r, c + r
        half = (yy - top) / max(bottom - top, 1e-6) * r
        return (yy >= top) & (yy <= bottom) & (np.abs(dx) <= half + 0.25)
    if shape == "cross":
        w = max(r * 0.35, 0.6)
        return ((np.abs(dy) <= w) & (np.abs(dx) <= r)) | ((np.abs(dx) <= w) & (np.abs(dy) <= r))
    raise ValueError(f"unknown shape {shape!r}")


def _ink(colour: str, spec: WorldSpec) -> tuple:
    bg = np.array(spec.background, dtype=float)
    return tuple(np.round(bg + spec.contrast * (np.array(COLOURS[colour]) - bg)).astype(np.uint8))


def render(scene: dict, spec: WorldSpec) -> Image.Image:
    s, cell = spec.image_size, spec.cell
    img = np.empty((s, s, 3), dtype=np.uint8)
    img[:] = spec.background
    for obj in scene["objects"]:
        r0, c0 = divmod(obj["cell"], spec.grid)
        patch = img[r0 * cell:(r0 + 1) * cell, c0 * cell:(c0 + 1) * cell]
        patch[_shape_mask(obj["shape"], obj["size"], cell)] = _ink(obj["colour"], spec)
    if scene["sign"] is not None:
        r0, c0 = divmod(scene["sign"]["cell"], spec.grid)
        patch = img[r0 * cell:(r0 + 1) * cell, c0 * cell:(c0 + 1) * cell]
        patch[:] = (235, 235, 235)
        y0, x0 = (cell - 5) // 2, (cell - 7) // 2
        for k, ch in enumerate(scene["sign"]["text"]):
            rows = _DIGITS[ch].split(",")
            for dy, row in enumerate(rows):
                for dx, px in enumerate(row):
                    if px == "#":
                        patch[y0 + dy, x0 + 4 * k + dx] = (0, 0, 0)
    return Image.fromarray(img)


def position_name(cell: int, grid: int) -> str:
    if grid != 3:
        r, c = divmod(cell, grid)
        return f"row {r + 1} column {c + 1}"
    r, c = divmod(cell, 3)
    return POSITIONS_3x3[r][c]


def describe(scene: dict, grid: int) -> str:
    """The reference description: one sentence per object, in reading order."""
    items = [(o["cell"], f"there is a {o['size']} {o['colour']} {o['shape']} at the "
              f"{position_name(o['cell'], grid)}.") for o in scene["objects"]]
    if scene["sign"] is not None:
        items.append((scene["sign"]["cell"], f"there is a sign reading {scene['sign']['text']} "
                      f"at the {position_name(scene['sign']['cell'], grid)}."))
    return " ".join(text for _, text in sorted(items))


def _plural(shape: str) -> str:
    return shape + ("es" if shape.endswith("s") else "s")


def _present(scene) -> set[tuple[str, str]]:
    return {(o["colour"], o["shape"]) for o in scene["objects"]}


def _absent_object(rng, scene, strategy: str, popularity: list[tuple[str, str]]):
    """A (colour, shape) not in the scene, chosen as POPE does for each negative type."""
    present = _present(scene)
    absent = [(c, s) for c in COLOURS for s in SHAPES if (c, s) not in present]
    if strategy == "popular":  # the most frequent objects of the training distribution
        ranked = [o for o in popularity if o not in present]
        return ranked[int(rng.integers(min(3, len(ranked))))]
    if strategy == "adversarial":  # shares a colour or a shape with something present
        near = [(c, s) for (c, s) in absent if any(c == pc or s == ps for pc, ps in present)]
        absent = near or absent
    return absent[int(rng.integers(len(absent)))]


def questions_for(rng, scene: dict, spec: WorldSpec, popularity, families=FAMILIES,
                  pope_strategy: str | None = None) -> list[dict]:
    """Question/answer pairs of the requested families, with exact answers."""
    qa = []
    objs = scene["objects"]
    for fam in families:
        if fam == "exist":
            strategy = pope_strategy or ("random", "popular", "adversarial")[int(rng.integers(3))]
            if rng.random() < 0.5:
                o = objs[int(rng.integers(len(objs)))]
                target, answer = (o["colour"], o["shape"]), "yes"
            else:
                target, answer = _absent_object(rng, scene, strategy, popularity), "no"
            qa.append({"family": "exist", "question": f"is there a {target[0]} {target[1]} in the image?",
                       "answer": answer, "pope_type": strategy,
                       "target": f"{target[0]} {target[1]}"})
        elif fam == "colour":
            counts = {s: sum(o["shape"] == s for o in objs) for s in SHAPES}
            unique = [o for o in objs if counts[o["shape"]] == 1]
            if unique:
                o = unique[int(rng.integers(len(unique)))]
                qa.append({"family": "colour", "question": f"what colour is the {o['shape']}?",
                           "answer": o["colour"]})
        elif fam == "count":
            shape = SHAPES[int(rng.integers(len(SHAPES)))]
            n = sum(o["shape"] == shape for o in objs)
            qa.append({"family": "count", "question": f"how many {_plural(shape)} are there?",
                       "answer": NUMBERS[n]})
        elif fam == "position":
            o = objs[int(rng.integers(len(objs)))]
            if sum((p["colour"], p["shape"]) == (o["colour"], o["shape"]) for p in objs) == 1:
                qa.append({"family": "position", "question": f"where is the {o['colour']} {o['shape']}?",
                           "answer": position_name(o["cell"], spec.grid)})
        elif fam == "cell":  # what occupies one grid cell: dense, per-patch supervision
            occupied = [o["cell"] for o in objs]
            cell = (occupied[int(rng.integers(len(occupied)))] if rng.random() < 0.75
                    else int(rng.integers(spec.grid * spec.grid)))
            there = [o for o in objs if o["cell"] == cell]
            if there:
                answer = f"a {there[0]['size']} {there[0]['colour']} {there[0]['shape']}"
            elif scene["sign"] is not None and scene["sign"]["cell"] == cell:
                answer = "a sign"
            else:
                answer = "nothing"
            qa.append({"family": "cell", "question": f"what is at the {position_name(cell, spec.grid)}?",
                       "answer": answer})
        elif fam == "text":
            if scene["sign"] is not None:
                qa.append({"family": "text", "question": "what does the sign say?",
                           "answer": scene["sign"]["text"]})
        elif fam == "describe":
            qa.append({"family": "describe", "question": DESCRIBE_QUESTION,
                       "answer": describe(scene, spec.grid)})
        else:
            raise ValueError(f"unknown question family {fam!r}")
    return qa


def _object_phrase(o: dict, grid: int) -> str:
    return f"there is a {o['size']} {o['colour']} {o['shape']} at the {position_name(o['cell'], grid)}."


def explanation(qa: dict, scene: dict, spec: WorldSpec) -> str:
    """The visual evidence for an answer, in the world's sentence forms."""
    objs, fam, grid = scene["objects"], qa["family"], spec.grid
    if fam == "exist":
        colour, shape = qa["target"].split()
        hits = [o for o in objs if (o["colour"], o["shape"]) == (colour, shape)]
        return _object_phrase(hits[0], grid) if hits else f"there is no {colour} {shape} in the image."
    if fam == "colour":
        shape = qa["question"].split()[-1].rstrip("?")
        o = next(o for o in objs if o["shape"] == shape)
        return f"the {shape} at the {position_name(o['cell'], grid)} is {o['colour']}."
    if fam == "count":
        shape = next(s for s in SHAPES if _plural(s) in qa["question"])
        hits = [o for o in objs if o["shape"] == shape]
        return " ".join(_object_phrase(o, grid) for o in hits) or f"there are no {_plural(shape)} in the image."
    if fam == "position":
        return f"the {qa['question'][len('where is the '):-1]} is at the {qa['answer']}."
    if fam == "cell":
        where = qa["question"][len("what is at the "):-1]
        hits = [o for o in objs if position_name(o["cell"], grid) == where]
        if hits:
            return _object_phrase(hits[0], grid)
        return f"there is a sign at the {where}." if qa["answer"] == "a sign" else f"the {where} is empty."
    if fam == "text":
        return f"the sign at the {position_name(scene['sign']['cell'], grid)} reads {qa['answer']}."
    raise ValueError(f"no explanation form for family {fam!r}")


def reasoning_variant(qa: dict, scene: dict, spec: WorldSpec) -> dict:
    """The same question with the reasoning prompt, answered 'answer. evidence'."""
    return {**qa, "question": f"{qa['question']} {REASONING_PROMPT}",
            "answer": f"{qa['answer']}. {explanation(qa, scene, spec)}"}


def wrong_answer(rng, qa: dict, scene: dict, spec: WorldSpec) -> str:
    """A plausible answer of the same form that is false for the scene (for revision turns)."""
    fam, answer = qa["family"], qa["answer"]
    if fam == "exist":
        return "no" if answer == "yes" else "yes"
    if fam == "describe":  # one object recoloured into a colour-shape absent from the scene
        k = int(rng.integers(len(scene["objects"])))
        objs = [dict(o) for o in scene["objects"]]
        absent = [c for c in COLOURS if (c, objs[k]["shape"]) not in _present(scene)]
        objs[k]["colour"] = absent[int(rng.integers(len(absent)))]
        return describe({**scene, "objects": objs}, spec.grid)
    options = {
        "colour": list(COLOURS),
        "count": list(NUMBERS[:5]),
        "position": [position_name(c, spec.grid) for c in range(spec.grid * spec.grid)],
        "cell": ["nothing", "a sign"] + [f"a {z} {c} {s}" for z in SIZES for c in COLOURS for s in SHAPES],
        "text": [str(n) for n in range(10, 100)],
    }[fam]
    return _other(rng, options, answer)


def _other(rng, options: list[str], current: str) -> str:
    rest = [o for o in options if o != current]
    return rest[int(rng.integers(len(rest)))]


def revision_turn(rng, qa: dict, scene: dict, spec: WorldSpec) -> dict:
    """ConSR's revision: given the description, the question and an original response (half
    the time wrong), answer with the corrected response in the original's form."""
    original = qa["answer"] if rng.random() < 0.5 else wrong_answer(rng, qa, scene, spec)
    question = REVISION_TEMPLATE.format(description=describe(scene, spec.grid), question=qa["question"],
                                        response=original)
    return {**qa, "family": f"revise_{qa['family']}", "question": question}


def context_turn(qa: dict, scene: dict, spec: WorldSpec) -> dict:
    """ConSR's enriched prompt: the question after a description of the image."""
    return {**qa, "question": CONTEXT_TEMPLATE.format(description=describe(scene, spec.grid), prompt=qa["question"])}


def popularity_order(spec: WorldSpec) -> list[tuple[str, str]]:
    pc, ps = _zipf_probs(len(COLOURS), spec.zipf), _zipf_probs(len(SHAPES), spec.zipf)
    pairs = [((c, s), pc[i] * ps[j]) for i, c in enumerate(COLOURS) for j, s in enumerate(SHAPES)]
    return [o for o, _ in sorted(pairs, key=lambda t: -t[1])]


def png_bytes(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=False, compress_level=6)
    return buf.getvalue()


# ---------------------------------------------------------------- answers and scoring

# A colour-shape mention; "no red circle" is a negation, not a claim that one is present.
_MENTION = re.compile(r"(?<!\bno )\b(" + "|".join(COLOURS) + r") (" + "|".join(SHAPES) + r")s?\b")


def normalise_answer(text: str) -> str:
    text = text.lower().strip()
    text = re.sub(r"[^\w\s]", " ", text)
    return " ".join(text.split())


def short_answer_correct(prediction: str, answer: str) -> bool:
    """Exact match after normalisation, as VQA-style benchmarks score short answers."""
    return normalise_answer(prediction) == normalise_answer(answer)


def yes_no(prediction: str) -> str | None:
    words = normalise_answer(prediction).split()
    return words[0] if words and words[0] in ("yes", "no") else None


def mentioned_objects(text: str) -> list[tuple[str, str]]:
    return [(m.group(1), m.group(2)) for m in _MENTION.finditer(text.lower())]


def hallucination_stats(text: str, scene: dict) -> dict:
    """CHAIR-style counts: mentioned objects absent from the scene, and recall of the scene."""
    mentions = mentioned_objects(text)
    present = _present(scene)
    hallucinated = [m for m in mentions if m not in present]
    return {"mentions": len(mentions), "hallucinated": len(hallucinated),
            "recalled": len(set(mentions) & present), "objects": len(present)}


def correctness(family: str, prediction: str, answer: str, scene: dict | None = None) -> float:
    """A score in [0, 1] saying how correct a response is; used for label accuracy.

    Descriptions score recall * (1 - hallucination rate) against the scene graph. Short
    answers score exact match of the first sentence; an explanation after it (the
    reasoning prompt's answers) multiplies that by (1 - its hallucination rate)."""
    if family == "describe":
        if scene is None:
            raise ValueError("describe answers need the scene graph")
        st = hallucination_stats(prediction, scene)
        if st["mentions"] == 0:
            return 0.0
        return (st["recalled"] / max(st["objects"], 1)) * (1 - st["hallucinated"] / st["mentions"])
    head, _, evidence = prediction.partition(".")
    score = float(yes_no(head) == answer) if family == "exist" else float(short_answer_correct(head, answer))
    if evidence.strip() and scene is not None:
        st = hallucination_stats(evidence, scene)
        if st["mentions"]:
            score *= 1 - st["hallucinated"] / st["mentions"]
    return score


# ---------------------------------------------------------------- building splits

def conversation_record(rid: str, image: str, qas: list[dict], with_answers: bool) -> dict:
    """A LLaVA-format record; the first human turn carries the <image> placeholder."""
    conv = []
    for k, qa in enumerate(qas):
        conv.append({"from": "human", "value": ("<image>\n" if k == 0 else "") + qa["question"]})
        if with_answers:
            conv.append({"from": "gpt", "value": qa["answer"]})
    return {"id": rid, "image": image, "conversations": conv}


def generate_split(rng, spec: WorldSpec, n_images: int, prefix: str, image_dir: Path,
                   families, per_image: int | None = None, pope_strategy=None):
    """Yield (image name, scene, qas) for n_images fresh scenes, writing their PNGs."""
    popularity = popularity_order(spec)
    image_dir.mkdir(parents=True, exist_ok=True)
    for i in range(n_images):
        scene = sample_scene(rng, spec)
        fams = list(families)
        if per_image is not None:
            fams = [fams[j] for j in rng.permutation(len(fams))[:per_image]]
        qas = questions_for(rng, scene, spec, popularity, fams, pope_strategy)
        name = f"{prefix}_{i:06d}.png"
        (image_dir / name).write_bytes(png_bytes(render(scene, spec)))
        yield name, scene, qas


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
                n_eval: dict, pool_families=FAMILIES, reasoning_share: float = 0.25,
                consr_share: float = 0.0, progress: bool = True) -> dict:
    """Write the whole world (images, SFT, prompt pool, evaluation sets) into out_dir.

    Each split draws from its own seeded stream, so changing one split's size leaves the
    others byte-identical."""
    import json

    import pandas as pd
    from tqdm import tqdm

    from .io import atomic_path

    counts = {}
    with atomic_path(out_dir) as tmp:
        images = tmp / "images"

        def stream(k):
            return np.random.default_rng([seed, k])

        # Their own streams: the SFT scenes and questions stay as they were.
        reasoning_rng, consr_rng = stream(2), stream(3)
        sft = [conversation_record(f"sft_{i:06d}", f"images/{name}", with_consr_turns(
                   consr_rng, scene, with_reasoning_turns(reasoning_rng, scene, qas, spec, reasoning_share),
                   spec, consr_share), True)
               for i, (name, scene, qas) in enumerate(tqdm(
                   generate_split(stream(0), spec, n_sft, "sft", images, FAMILIES),
                   total=n_sft, desc="world: sft", disable=not progress))]
        (tmp / "sft.json").write_text(json.dumps(sft))
        counts["sft_images"], counts["sft_qas"] = n_sft, sum(len(r["conversations"]) // 2 for r in sft)

        pool, answers = [], {}
        for name, scene, qas in tqdm(generate_split(stream(1), spec, n_pool, "pool", images,
                                                    pool_families, per_image=2),
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
            strategies = ("random", "popular", "adversarial") if task == "pope" else (None,)
            for si, strategy in enumerate(strategies):
                per = n // len(strategies)
                for name, scene, qas in generate_split(stream(10 + 3 * k + si), spec, per,
                                                       f"eval_{task}{'_' + strategy if strategy else ''}",
                                                       images, fams, pope_strategy=strategy):
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
    return counts
