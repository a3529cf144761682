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
from dataclasses import dataclass

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
# POPE's negative types (its three splits).
POPE_TYPES = ("random", "popular", "adversarial")
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

# Usual partners (a knife beside a fork): pairs of objects that co-occur when the world's
# `cooccurrence` is on. The two of a pair differ in colour and in shape, so that POPE's
# adversarial question about a partner is not also a near miss in appearance.
PARTNERS = ((("red", "circle"), ("blue", "square")), (("orange", "square"), ("green", "circle")),
            (("yellow", "triangle"), ("purple", "cross")), (("red", "triangle"), ("green", "square")),
            (("orange", "cross"), ("blue", "circle")), (("yellow", "circle"), ("purple", "square")))
PARTNER = {**dict(PARTNERS), **{b: a for a, b in PARTNERS}}
# Shapes with a usual colour (a red cross, a green tree): the colour that captions written
# from expectation give them when the world's `colour_prior` is on. Two of the four shapes,
# so that the prior reaches about a third of the objects and colour stays learnable.
USUAL_COLOUR = {"triangle": "green", "cross": "red"}


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
    # P(an object's usual partner (PARTNERS) is in the scene | the object is): the
    # co-occurrence that POPE's adversarial split probes. 0: objects are independent.
    cooccurrence: float = 0.0
    # The SFT annotations' language prior: each usual partner absent from an SFT image is
    # annotated as present with this probability, as captions written from expectation are.
    # It touches the SFT split only, never the pool's answers or the benchmarks.
    annotator_prior: float = 0.0
    # The same prior on attributes: each SFT object of a shape with a usual colour
    # (USUAL_COLOUR) but not in it is annotated in it with this probability. SFT split only.
    colour_prior: float = 0.0

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
    scene = {"objects": sorted(objects, key=lambda o: o["cell"]), "sign": sign}
    return with_partners(rng, scene, spec, spec.cooccurrence) if spec.cooccurrence else scene


def absent_partners(scene: dict) -> list[tuple[str, str]]:
    """The usual partners of objects in the scene that are not in it."""
    present = present_objects(scene)
    return sorted({PARTNER[o] for o in present if o in PARTNER and PARTNER[o] not in present})


def with_partners(rng, scene: dict, spec: WorldSpec, prob: float) -> dict:
    """The scene with each absent usual partner added, with probability `prob`, at a random
    free cell in a random size (none is added when no cell is free)."""
    objects = list(scene["objects"])
    for colour, shape in absent_partners(scene):
        if rng.random() >= prob:
            continue
        taken = {o["cell"] for o in objects} | ({scene["sign"]["cell"]} if scene["sign"] else set())
        free = [c for c in range(spec.grid * spec.grid) if c not in taken]
        if free:
            objects.append({"shape": shape, "colour": colour, "size": SIZES[int(rng.integers(2))],
                            "cell": free[int(rng.integers(len(free)))]})
    return {**scene, "objects": sorted(objects, key=lambda o: o["cell"])}


def with_usual_colours(rng, scene: dict, prob: float) -> dict:
    """The scene with each object not in its shape's usual colour recoloured to it, with
    probability `prob` (the annotations' attribute prior)."""
    objects = [{**o, "colour": USUAL_COLOUR[o["shape"]]}
               if o["colour"] != USUAL_COLOUR.get(o["shape"], o["colour"]) and rng.random() < prob else o
               for o in scene["objects"]]
    return {**scene, "objects": objects}


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


def present_objects(scene) -> set[tuple[str, str]]:
    return {(o["colour"], o["shape"]) for o in scene["objects"]}


def _absent_object(rng, scene, strategy: str, popularity: list[tuple[str, str]], partners: bool):
    """A (colour, shape) not in the scene, chosen as POPE does for each negative type."""
    present = present_objects(scene)
    mates = absent_partners(scene) if strategy == "adversarial" and partners else []
    if mates:  # a usual partner of something present
        return mates[int(rng.integers(len(mates)))]
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
            strategy = pope_strategy or POPE_TYPES[int(rng.integers(len(POPE_TYPES)))]
            if rng.random() < 0.5:
                o = objs[int(rng.integers(len(objs)))]
                target, answer = (o["colour"], o["shape"]), "yes"
            else:
                target, answer = _absent_object(rng, scene, strategy, popularity, spec.cooccurrence > 0), "no"
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
        absent = [c for c in COLOURS if (c, objs[k]["shape"]) not in present_objects(scene)]
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
