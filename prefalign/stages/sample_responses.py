"""Rule sample_responses: the base model's responses to every prompt under one view, in
batches; a generation with `shards: n` splits the prompts into n jobs and a join."""
from __future__ import annotations

import json
import zlib
from collections.abc import Sequence
from pathlib import Path

from tqdm import tqdm

from ..augment import AugmentSpec, View, split_images, tensor_digest
from ..data import open_record_image, read_prompts
from ..io import RecordError, atomic_path, read_jsonl, write_jsonl
from ..settings import GenerationSettings


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
    """Positions in generation order (`generation_order`) of shard k of n: a contiguous run of
    whole batches (so every batch, and its seed, is the one an unsharded job would use)."""
    k, n = shard
    n_batches = -(-n_items // batch_size)
    first, last = k * n_batches // n, (k + 1) * n_batches // n
    return range(first * batch_size, min(last * batch_size, n_items))


def generation_order(keys: Sequence[str]) -> list[int]:
    """Item positions in the order they are generated: items of the same key together, in
    their own order. A batch decodes until its longest answer ends, and what an answer's
    length follows is its question: in prompt order nearly every batch of the miniature's
    pool held a description, and SeVa's 2500 greedy answers took 2750 decoding steps where
    grouped by question they take 493 (about 4x faster; docs/notes.md, issue 15)."""
    return sorted(range(len(keys)), key=lambda i: (keys[i], i))


def generation_seed(seed: int, view: str, batch_start: int) -> int:
    """The sampling seed of one batch: from the run's seed, the view and the batch's start.

    Views get their own streams: with a shared stream, samples from a slightly noised image
    repeat the clean image's samples token for token wherever the noise leaves the
    distribution nearly unchanged, which is not independent sampling."""
    offset = 0 if view == "clean" else zlib.crc32(view.encode()) * 7_919
    return seed * 1_000_003 + batch_start + offset


def generate_batches(model, processor, items, images, questions, gcfg: GenerationSettings, seed: int, desc: str, *,
                     pixel_transform_for=None, shard: tuple[int, int] = (0, 1), view: str = "clean",
                     group_by: Sequence[str] | None = None) -> dict[int, list[tuple[str, int]]]:
    """Generate for the shard's items in batches of the generation config, the items grouped
    by `group_by` (default: their questions; `generation_order`); returns item position ->
    its (text, n_tokens)s. Sampling is seeded per batch from (seed, view, batch start in the
    whole order), so a rerun, or the same batch in another shard split, gives the same texts."""
    from ..model import generate

    out, bs = {}, gcfg.batch_size
    order = generation_order(questions if group_by is None else group_by)
    span = shard_range(len(items), bs, shard)
    for s in tqdm(range(span.start, span.stop, bs), desc=desc, mininterval=5):
        batch = order[s:s + bs]  # shards hold whole batches
        part = [items[i] for i in batch]
        out.update(zip(batch, generate(model, processor, images(part), [questions[i] for i in batch],
                                       max_new_tokens=gcfg.max_new_tokens, do_sample=gcfg.do_sample,
                                       temperature=gcfg.temperature, top_p=gcfg.top_p,
                                       num_return_sequences=gcfg.num_return_sequences,
                                       pixel_transform=pixel_transform_for(part) if pixel_transform_for else None,
                                       seed=generation_seed(seed, view, s))))
    return out


def sample_responses(*, prompts_path, model_dir, manifest_path, out_path, view: str,
                     augmentation: AugmentSpec | None,
                     generation_name: str, generation: GenerationSettings, seed: int, device: str, dtype: str,
                     shard: tuple[int, int] = (0, 1)) -> None:
    """Responses to every prompt under the view (`clean`, augmentation None, or an augmentation's name), or to
    shard k of n of them, in prompt order (`join_shards` makes of the n shard files exactly the
    unsharded file). `manifest_path`: the augment stage's digests, checked on every view."""
    from ..model import load_model

    model, processor = load_model(model_dir, dtype=dtype, device=device)
    the_view = View(augmentation, seed)
    prompts = read_prompts(prompts_path)
    expected = {r["id"]: r["digest"] for r in read_jsonl(manifest_path)} if manifest_path else {}

    def images(part):
        return the_view.images([open_record_image(p, prompts_path) for p in part],
                               [p["id"] for p in part])

    gens = generate_batches(model, processor, prompts, images, [p["question"] for p in prompts], generation, seed,
                            f"sample {view}/{generation_name}",
                            pixel_transform_for=lambda part: checked_view(the_view, part, expected, manifest_path),
                            shard=shard, view=view)
    write_jsonl(out_path, [{**prompts[i], "view": view, "generation": generation_name,
                            "responses": [{"text": t, "n_tokens": n} for t, n in gens[i]]} for i in sorted(gens)])


def join_shards(*, shard_paths, prompts_path, out_path) -> None:
    """The shard files' records in prompt order, as the unsharded job writes them (written
    atomically; a prompt missing from the shards, in two of them, or a record of no prompt is
    an error naming it, and nothing is written)."""
    lines, shard_of = {}, {}
    for path in shard_paths:
        for i, line in enumerate(Path(path).read_text().splitlines(keepends=True), 1):
            try:
                key = json.loads(line)["id"]
            except (ValueError, KeyError, TypeError) as e:
                raise RecordError(path, f"line {i}", "id", f"not a response record ({type(e).__name__})") from None
            if key in lines:
                raise RecordError(path, key, "id", f"line {i}: in two shard files")
            lines[key], shard_of[key] = line, path
    ids = [p["id"] for p in read_prompts(prompts_path)]
    missing = [k for k in ids if k not in lines]
    if missing:
        raise RecordError(prompts_path, missing[0], "id", f"no shard file holds its responses ({len(missing)} such)")
    extra = set(lines) - set(ids)
    if extra:
        stray = min(extra)
        raise RecordError(shard_of[stray], stray, "id", f"{len(extra)} record(s) of no prompt in {prompts_path}")
    with atomic_path(out_path) as tmp, open(tmp, "w") as out:
        out.writelines(lines[k] for k in ids)
