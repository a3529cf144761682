"""Rule build_preferences: one method's preference records from the sampled responses
(`prefalign.methods`), validated against the one record format, with the set's counts."""
from __future__ import annotations

import logging
from pathlib import Path

from ..augment import AugmentSpec
from ..data import open_record_image, read_descriptions, read_prompts
from ..io import RecordError, read_jsonl, require, write_json, write_jsonl
from ..settings import ClipSettings, ConsrPromptsSettings, PreferenceSetSettings

log = logging.getLogger(__name__)


def read_responses(prompts: list[dict], response_paths: dict) -> dict:
    """(view, generation) -> prompt id -> its response record; every prompt must have one."""
    responses = {}
    for key, path in response_paths.items():
        recs = read_jsonl(path)
        for i, r in enumerate(recs, 1):
            require(r, "id", str, path, f"line {i}")
            if not require(r, "responses", list, path, f"line {i}"):
                raise RecordError(path, f"line {i}", "responses", "empty")
        responses[key] = {r["id"]: r for r in recs}
        missing = [p["id"] for p in prompts if p["id"] not in responses[key]]
        if missing:
            raise RecordError(path, missing[0], "id", f"no responses for {len(missing)} prompt(s)")
    return responses


def build_preferences(*, prompts_path, response_paths: dict, out_path, stats_path,
                      preference_set: PreferenceSetSettings,
                      seed: int, model_dir=None, clip_dir=None,
                      clip: ClipSettings | None = None, device: str = "cpu",
                      dtype: str = "float32", descriptions_path=None,
                      consr_prompts: ConsrPromptsSettings | None = None,
                      augmentations: dict[str, AugmentSpec] | None = None,
                      world_dir=None, source_path=None, source_format: str | None = None) -> None:
    """`response_paths`: (view, generation) -> response file. The rest is what some method
    needs: the base model (scoring), a CLIP model, ConSR's descriptions and prompts, the
    augmentations' settings, the world's answers (the oracle controls only), the prompt
    source's file and format (a released or labelled set reads its answers there)."""
    from ..methods import method
    from ..methods.records import validate_record

    prompts = read_prompts(prompts_path)

    def load_base():
        from ..model import load_model
        return load_model(model_dir, dtype=dtype, device=device)

    def load_scorer():
        from ..clip_similarity import load_clip
        return load_clip(clip, clip_dir)

    resources = {"model": load_base, "clip": load_scorer, "seed": seed, "augmentations": augmentations or {},
                 "descriptions": lambda: read_descriptions(descriptions_path), "prompting": consr_prompts,
                 "answers": Path(world_dir) / "pool_answers.json" if world_dir else None,
                 "load_image": lambda r: open_record_image(r, prompts_path),
                 "source": (source_format, source_path)}
    records, stats = method(preference_set.method).build(prompts, read_responses(prompts, response_paths),
                                                            preference_set, resources)
    for i, r in enumerate(records):
        validate_record(r, out_path, i)
    check_counts(stats, records, preference_set.method)
    write_jsonl(out_path, records)
    write_json(stats_path, stats)
    log.info("preferences %s: %d prompts -> %d records; rejected %s", out_path, stats["prompts"], stats["kept"],
             stats["rejected"] or "none")


def check_counts(stats: dict, records: list, method: str) -> None:
    """Every prompt is accounted for: prompts = kept + the rejects counted by reason."""
    rejected = sum(stats["rejected"].values())
    if stats["kept"] != len(records) or stats["prompts"] != stats["kept"] + rejected:
        raise RuntimeError(f"method {method}: {stats['prompts']} prompts, {len(records)} records, counted kept "
                           f"{stats['kept']} + rejected {rejected} {stats['rejected']}: the counts do not add up")
