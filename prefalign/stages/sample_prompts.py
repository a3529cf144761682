"""Rule sample_prompts: `n` prompts (image + question, never an answer) from a prompt source."""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from ..data import WORLD, extract_rlaif_v_images, load_conversations, load_povid, load_rlaif_v, open_image
from ..io import write_jsonl
from ..manifest import sha256
from ..released import prompt_id, with_unique_ids
from ..settings import PromptSetSettings

log = logging.getLogger(__name__)


def resolve(template: str, world_dir) -> str:
    """A source path: "{world}" is the world, "{released}" the results' released datasets beside it."""
    if "{released}" in template:
        if world_dir is None:
            raise ValueError(f"{template}: '{{released}}' is the miniature's, and this config has no world")
        return template.replace("{released}", str(Path(world_dir).parent / "released"))
    return template.replace("{world}", str(world_dir))


def select_conversations(convs, source: dict):
    """The source's subset: records whose image starts with one of `image_prefixes`, each cut
    to its first `questions_per_image` questions (SeVa: text+ocr images, 2 questions each)."""
    prefixes = tuple(source["image_prefixes"])
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


LOADERS = {"llava_json": lambda f: load_conversations(f, require_answers=False, text_only="skip"), "povid": load_povid,
           "rlaif_v": load_rlaif_v}


def sample_prompts(*, out_path, prompt_set: PromptSetSettings, seed: int, world_dir) -> None:
    """Draw `n` prompts from the configured source (`{world}` in its paths is `world_dir`; the
    records keep `{world}` in their image paths, `data.WORLD`)."""
    source = prompt_set.source
    src, root = resolve(source["path"], world_dir), source["image_root"]
    convs = LOADERS[source["format"]](src)
    suffix = f" {prompt_set.reasoning_prompt}" if prompt_set.reasoning_prompt else ""
    selected = select_conversations(with_unique_ids(convs), source)
    questions = tuple(source.get("question_prefixes", ()))  # no default in the schema: absent reruns nothing
    prompts = [{"id": prompt_id(c, k), "image": str(Path(root) / c.image),
                "question": strip_suffixes(t.question, source["strip_suffixes"]) + suffix}
               for c in selected for k, t in enumerate(c.turns) if not questions or t.question.startswith(questions)]
    log.info("%s: %d records = %d kept + %d rejected by image_prefixes; %d questions (after question_prefixes), "
             "%d drawn", src, len(convs), len(selected), len(convs) - len(selected), len(prompts), prompt_set.n)
    if prompt_set.n > len(prompts):
        raise ValueError(f"{src}: asked for {prompt_set.n} prompts, the source has {len(prompts)}")
    pick = sorted(np.random.default_rng(seed).choice(len(prompts), prompt_set.n, replace=False).tolist())
    chosen = [prompts[i] for i in pick]
    if source["format"] == "rlaif_v":  # the released images live inside the parquet files
        extract_rlaif_v_images(src, {p["id"] for p in chosen}, resolve(root, world_dir))
    for p in chosen:  # a missing or unreadable image stops here, naming the record
        path = resolve(p["image"], world_dir)
        open_image("", path, src, p["id"])
        if WORLD not in p["image"]:  # the world has its manifest; a dataset's image its digest here
            p["image_sha256"] = sha256(Path(path).read_bytes())
    write_jsonl(out_path, chosen)
