"""The same config and seed give byte-identical data files (prompts, augment manifests, responses)."""
import dataclasses
import json
import shutil
from pathlib import Path

import pytest

from prefalign.augment import AugmentSpec
from prefalign.data import world_folder
from prefalign.io import RecordError
from prefalign.settings import ConsrPromptsSettings, GenerationSettings, PreferenceSetSettings, PromptSetSettings
from prefalign.stages.augment import augment
from prefalign.stages.build_preferences import build_preferences
from prefalign.stages.describe_images import describe_images
from prefalign.stages.revise_responses import revise_responses
from prefalign.stages.sample_prompts import sample_prompts
from prefalign.stages.sample_responses import (generation_order, generation_seed, join_shards, sample_responses,
                                                shard_range)


@pytest.fixture(scope="module")
def saved_model(tiny_model, tmp_path_factory):
    d = tmp_path_factory.mktemp("model")
    tiny_model[0].save_pretrained(d)
    tiny_model[1].save_pretrained(d)
    return d


def _prompts(small_world, path, seed):
    pcfg = {"source": {"format": "llava_json", "path": "{world}/pool.json", "image_root": "{world}"}, "n": 12}
    pcfg = PromptSetSettings.from_partial(pcfg)
    sample_prompts(out_path=path, prompt_set=pcfg, seed=seed, world_dir=small_world)
    return path.read_bytes()


def sample(prompts, model, out, generation, view="clean", augmentation=None, manifest=None, shard=(0, 1)):
    sample_responses(prompts_path=prompts, model_dir=model, manifest_path=manifest, out_path=out, view=view,
                     augmentation=augmentation and AugmentSpec.from_config(view, augmentation), generation_name="s",
                     generation=generation, seed=1, device="cpu",
                     dtype="float32", shard=shard)


def augment_views(prompts, model, manifest, sheet, augmentation):
    augment(prompts_path=prompts, model_dir=model, manifest_path=manifest, sheet_path=sheet,
            augmentation=AugmentSpec.from_config("noise500", augmentation), seed=1)


def test_records_name_world_images_by_the_world_folder_they_are_read_in(small_world, saved_model, tmp_path):
    """A results folder can be moved or copied: prompts name the world's images "{world}/...",
    read in the world folder of the process (`data.set_world_dir`, which a job sets from its
    config's results folder). An image swapped in the moved copy only (another valid image
    of the world, so only its digest tells) is found: the world's manifest (`manifest.py`)."""
    prompts = tmp_path / "p.jsonl"
    text = _prompts(small_world, prompts, 1)
    assert str(small_world).encode() not in text and b'"image": "{world}/images/' in text
    greedy = GenerationSettings.from_partial({"do_sample": False, "max_new_tokens": 4, "batch_size": 4})
    moved = tmp_path / "moved" / "world"
    shutil.copytree(small_world, moved)
    first, second = (json.loads(line)["image"].replace("{world}", str(moved)) for line in text.splitlines()[:2])
    assert Path(first).read_bytes() != Path(second).read_bytes()
    shutil.copyfile(second, first)
    with world_folder(moved), pytest.raises(RecordError, match=f"{first}: sha256 differs from {moved}/MANIFEST.sha256"):
        sample(prompts, saved_model, tmp_path / "moved.jsonl", greedy)
    sample(prompts, saved_model, tmp_path / "here.jsonl", greedy)


def test_prompt_sampling_is_seeded(small_world, tmp_path):
    a = _prompts(small_world, tmp_path / "a.jsonl", 1)
    assert a == _prompts(small_world, tmp_path / "b.jsonl", 1)
    assert a != _prompts(small_world, tmp_path / "c.jsonl", 2)
    assert b'"answer"' not in a


def test_augment_and_responses_are_byte_identical(small_world, saved_model, tmp_path):
    _prompts(small_world, tmp_path / "p.jsonl", 1)
    acfg = {"kind": "diffusion", "step": 500}
    gcfg = GenerationSettings.from_partial({"do_sample": False, "max_new_tokens": 6, "batch_size": 5})
    outs = []
    for k in range(2):
        m, s, r = tmp_path / f"m{k}.jsonl", tmp_path / f"s{k}.png", tmp_path / f"r{k}.jsonl"
        augment_views(tmp_path / "p.jsonl", saved_model, m, s, acfg)
        sample(tmp_path / "p.jsonl", saved_model, r, gcfg, "noise500", acfg, m)
        outs.append((m.read_bytes(), r.read_bytes()))
    assert outs[0] == outs[1]


def test_tampered_view_is_caught(small_world, saved_model, tmp_path):
    from prefalign.io import RecordError, read_jsonl, write_jsonl

    _prompts(small_world, tmp_path / "p.jsonl", 1)
    acfg = {"kind": "diffusion", "step": 500}
    augment_views(tmp_path / "p.jsonl", saved_model, tmp_path / "m.jsonl", tmp_path / "s.png", acfg)
    rows = read_jsonl(tmp_path / "m.jsonl")
    rows[3]["digest"] = "0" * 16
    write_jsonl(tmp_path / "m.jsonl", rows)
    greedy = GenerationSettings.from_partial({"do_sample": False, "max_new_tokens": 4, "batch_size": 4})
    with pytest.raises(RecordError, match="field 'digest'"):
        sample(tmp_path / "p.jsonl", saved_model, tmp_path / "r.jsonl", greedy, "noise500", acfg, tmp_path / "m.jsonl")
    assert not (tmp_path / "r.jsonl").exists()


def test_descriptions_revisions_and_consr_preferences_are_byte_identical(small_world, saved_model, tmp_path):
    """ConSR's extra stages: one description per image, one revision per clean sample, each
    seeded; the scored preference file too."""
    from prefalign import world as W
    from prefalign.io import read_jsonl

    p = tmp_path / "p.jsonl"
    _prompts(small_world, p, 1)
    sampling = GenerationSettings.from_partial({"do_sample": True, "temperature": 1.2, "max_new_tokens": 5,
                                            "num_return_sequences": 2, "batch_size": 5})
    greedy = GenerationSettings.from_partial({"do_sample": False, "max_new_tokens": 6, "batch_size": 5})
    aug = {"noise500": {"kind": "diffusion", "step": 500}, "noise800": {"kind": "diffusion", "step": 800}}
    pref = PreferenceSetSettings.from_partial({
        "method": "consr", "prompts": "p", "generation": "s", "consr_prompts": "world",
        "candidates": {"sampled": 2, "revised": 2, "noisy": 0}, "corrupt_augmentation": "noise800", "lambda": 0.8})
    outs = []
    for k in range(2):
        c, d, v = tmp_path / f"c{k}.jsonl", tmp_path / f"d{k}.jsonl", tmp_path / f"v{k}.jsonl"
        sample(p, saved_model, c, sampling)
        describe_images(prompts_path=p, model_dir=saved_model, out_path=d, prompt=W.DESCRIBE_QUESTION,
                        generation=greedy, seed=1, device="cpu", dtype="float32")
        revise_responses(prompts_path=p, model_dir=saved_model, descriptions_path=d, responses_path=c, out_path=v,
                         template=W.REVISION_TEMPLATE, generation_name="s", generation=greedy, seed=1, device="cpu",
                         dtype="float32")
        out, stats = tmp_path / f"pref{k}.jsonl", tmp_path / f"stats{k}.json"
        build_preferences(prompts_path=p, response_paths={("clean", "s"): c, ("revised", "s"): v}, out_path=out,
                          stats_path=stats, preference_set=pref, model_dir=saved_model, seed=1, descriptions_path=d,
                          augmentations={n: AugmentSpec.from_config(n, a) for n, a in aug.items()},
                          consr_prompts=ConsrPromptsSettings(
                              description_prompt=W.DESCRIBE_QUESTION, revision_template=W.REVISION_TEMPLATE,
                              context_template=W.CONTEXT_TEMPLATE, description_generation="s", revision_generation="s"))
        outs.append([f.read_bytes() for f in (c, d, v, out)])
    assert outs[0] == outs[1]
    prompts, descriptions = read_jsonl(p), read_jsonl(tmp_path / "d0.jsonl")
    revisions = read_jsonl(tmp_path / "v0.jsonl")
    assert [r["id"] for r in descriptions] == [r["id"] for r in revisions] == [r["id"] for r in prompts]
    by_image = {}
    for r in descriptions:  # prompts on the same image share one description
        assert by_image.setdefault(r["image"], r["description"]) == r["description"]
    assert all([x["revises"] for x in r["responses"]] == [0, 1] for r in revisions)


def test_sharded_sampling_joins_to_the_unsharded_file(small_world, saved_model, tmp_path):
    _prompts(small_world, tmp_path / "p.jsonl", 1)
    gcfg = GenerationSettings.from_partial({"do_sample": True, "temperature": 1.2, "max_new_tokens": 5,
                                        "num_return_sequences": 2, "batch_size": 5})
    whole = tmp_path / "whole.jsonl"
    sample(tmp_path / "p.jsonl", saved_model, whole, gcfg)
    for n in (2, 3, 4):  # 12 prompts in batches of 5: 3 batches, so 4 shards leave one empty
        parts = [tmp_path / f"{k}-of-{n}.jsonl" for k in range(n)]
        for k, part in enumerate(parts):
            sample(tmp_path / "p.jsonl", saved_model, part, gcfg, shard=(k, n))
        join_shards(shard_paths=parts, prompts_path=tmp_path / "p.jsonl", out_path=tmp_path / "joined.jsonl")
        assert (tmp_path / "joined.jsonl").read_bytes() == whole.read_bytes()
    assert [len(shard_range(12, 5, (k, 4))) for k in range(4)] == [0, 5, 5, 2]
    prompt_ids = [json.loads(line)["id"] for line in (tmp_path / "p.jsonl").read_text().splitlines()]
    assert [json.loads(line)["id"] for line in whole.read_text().splitlines()] == prompt_ids
    with pytest.raises(RecordError, match="no shard file holds"):
        join_shards(shard_paths=parts[:-1], prompts_path=tmp_path / "p.jsonl", out_path=tmp_path / "short.jsonl")
    stray = tmp_path / "stray.jsonl"
    stray.write_text(parts[-1].read_text().replace('"id": "', '"id": "stray_'))
    with pytest.raises(RecordError, match="stray.jsonl.*of no prompt"):
        join_shards(shard_paths=parts + [stray], prompts_path=tmp_path / "p.jsonl", out_path=tmp_path / "3.jsonl")
    assert not (tmp_path / "3.jsonl").exists()
    with pytest.raises(RecordError, match="in two shard files"):
        join_shards(shard_paths=parts + parts[-1:], prompts_path=tmp_path / "p.jsonl", out_path=tmp_path / "2.jsonl")


def test_generation_batches_group_items_by_question():
    """A batch decodes until its longest answer ends: items of one question are generated
    together (their answers are alike in length), each group in prompt order."""
    questions = ["describe", "is there", "describe", "count", "is there", "describe"]
    assert generation_order(questions) == [3, 0, 2, 5, 1, 4]
    assert generation_order(["b", "a"]) == [1, 0] and generation_order([]) == []


def test_each_view_samples_from_its_own_stream():
    seeds = {v: generation_seed(1, v, 64) for v in ("clean", "noise500", "noise800")}
    assert seeds["clean"] == 1 * 1_000_003 + 64  # clean samples are what they always were
    assert len(set(seeds.values())) == 3
    assert generation_seed(1, "noise500", 64) == seeds["noise500"]  # stable across processes


def test_a_reasoning_prompt_is_appended_to_the_same_prompts(small_world, tmp_path):
    """SMPRO's reasoning prompt: the same records as without it, the prompt after the question."""
    from prefalign.io import read_jsonl

    source = {"format": "llava_json", "path": "{world}/pool.json", "image_root": "{world}"}
    plain = PromptSetSettings.from_partial({"source": source, "n": 12})
    sample_prompts(out_path=tmp_path / "plain.jsonl", prompt_set=plain, seed=1, world_dir=small_world)
    sample_prompts(out_path=tmp_path / "why.jsonl", seed=1, world_dir=small_world,
                   prompt_set=dataclasses.replace(plain, reasoning_prompt="Answer the question and explain why?"))
    plain, why = read_jsonl(tmp_path / "plain.jsonl"), read_jsonl(tmp_path / "why.jsonl")
    assert [(p["id"], p["image"]) for p in plain] == [(p["id"], p["image"]) for p in why]
    assert all(w["question"] == p["question"] + " Answer the question and explain why?" for p, w in zip(plain, why))
