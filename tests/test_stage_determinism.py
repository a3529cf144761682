"""The same config and seed give byte-identical data files (prompts, augment manifests, responses)."""
import pytest

from prefalign import stages


@pytest.fixture(scope="module")
def saved_model(tiny_model, tmp_path_factory):
    d = tmp_path_factory.mktemp("model")
    tiny_model[0].save_pretrained(d)
    tiny_model[1].save_pretrained(d)
    return d


def _prompts(small_world, path, seed):
    pcfg = {"source": {"format": "llava_json", "path": "{world}/pool.json", "image_root": "{world}"}, "n": 12}
    stages.sample_prompts(path, pcfg, seed, small_world)
    return path.read_bytes()


def test_prompt_sampling_is_seeded(small_world, tmp_path):
    a = _prompts(small_world, tmp_path / "a.jsonl", 1)
    assert a == _prompts(small_world, tmp_path / "b.jsonl", 1)
    assert a != _prompts(small_world, tmp_path / "c.jsonl", 2)
    assert b'"answer"' not in a


def test_augment_and_responses_are_byte_identical(small_world, saved_model, tmp_path):
    _prompts(small_world, tmp_path / "p.jsonl", 1)
    acfg = {"kind": "diffusion", "step": 500}
    gcfg = {"do_sample": False, "max_new_tokens": 6, "batch_size": 5}
    outs = []
    for k in range(2):
        m, s, r = tmp_path / f"m{k}.jsonl", tmp_path / f"s{k}.png", tmp_path / f"r{k}.jsonl"
        stages.augment(tmp_path / "p.jsonl", saved_model, m, s, "noise500", acfg, 1)
        stages.sample_responses(tmp_path / "p.jsonl", saved_model, m, r, "noise500", acfg, "greedy", gcfg,
                                1, "cpu", "float32")
        outs.append((m.read_bytes(), r.read_bytes()))
    assert outs[0] == outs[1]


def test_tampered_view_is_caught(small_world, saved_model, tmp_path):
    from prefalign.io import RecordError, read_jsonl, write_jsonl

    _prompts(small_world, tmp_path / "p.jsonl", 1)
    acfg = {"kind": "diffusion", "step": 500}
    stages.augment(tmp_path / "p.jsonl", saved_model, tmp_path / "m.jsonl", tmp_path / "s.png", "noise500", acfg, 1)
    rows = read_jsonl(tmp_path / "m.jsonl")
    rows[3]["digest"] = "0" * 16
    write_jsonl(tmp_path / "m.jsonl", rows)
    with pytest.raises(RecordError, match="field 'digest'"):
        stages.sample_responses(tmp_path / "p.jsonl", saved_model, tmp_path / "m.jsonl", tmp_path / "r.jsonl",
                                "noise500", acfg, "greedy", {"do_sample": False, "max_new_tokens": 4,
                                                             "batch_size": 4}, 1, "cpu", "float32")
    assert not (tmp_path / "r.jsonl").exists()


def test_descriptions_revisions_and_consr_preferences_are_byte_identical(small_world, saved_model, tmp_path):
    """ConSR's extra stages: one description per image, one revision per clean sample, each
    seeded; the scored preference file too."""
    from prefalign import world as W
    from prefalign.io import read_jsonl

    p = tmp_path / "p.jsonl"
    _prompts(small_world, p, 1)
    sample = {"do_sample": True, "temperature": 1.2, "max_new_tokens": 5, "num_return_sequences": 2, "batch_size": 5}
    greedy = {"do_sample": False, "max_new_tokens": 6, "batch_size": 5}
    aug = {"noise500": {"kind": "diffusion", "step": 500}, "noise800": {"kind": "diffusion", "step": 800}}
    pref = {"method": "consr", "generation": "s", "candidates": {"sampled": 2, "revised": 2, "noisy": 0},
            "corrupt_augmentation": "noise800", "lambda": 0.8}
    outs = []
    for k in range(2):
        c, d, v = tmp_path / f"c{k}.jsonl", tmp_path / f"d{k}.jsonl", tmp_path / f"v{k}.jsonl"
        stages.sample_responses(p, saved_model, None, c, "clean", None, "s", sample, 1, "cpu", "float32")
        stages.describe_images(p, saved_model, d, W.DESCRIBE_QUESTION, greedy, 1, "cpu", "float32")
        stages.revise_responses(p, saved_model, d, c, v, W.REVISION_TEMPLATE, "s", greedy, 1, "cpu", "float32")
        out, stats = tmp_path / f"pref{k}.jsonl", tmp_path / f"stats{k}.json"
        stages.build_preferences(p, {("clean", "s"): c, ("revised", "s"): v}, out, stats, pref, model_dir=saved_model,
                                 seed=1, descriptions_path=d, augmentations=aug,
                                 consr_prompts={"context_template": W.CONTEXT_TEMPLATE})
        outs.append([f.read_bytes() for f in (c, d, v, out)])
    assert outs[0] == outs[1]
    prompts, descriptions, revisions = read_jsonl(p), read_jsonl(tmp_path / "d0.jsonl"), read_jsonl(tmp_path / "v0.jsonl")
    assert [r["id"] for r in descriptions] == [r["id"] for r in revisions] == [r["id"] for r in prompts]
    by_image = {}
    for r in descriptions:  # prompts on the same image share one description
        assert by_image.setdefault(r["image"], r["description"]) == r["description"]
    assert all([x["revises"] for x in r["responses"]] == [0, 1] for r in revisions)


def test_sharded_sampling_joins_to_the_unsharded_file(small_world, saved_model, tmp_path):
    _prompts(small_world, tmp_path / "p.jsonl", 1)
    gcfg = {"do_sample": True, "temperature": 1.2, "max_new_tokens": 5, "num_return_sequences": 2, "batch_size": 5}
    whole = tmp_path / "whole.jsonl"
    stages.sample_responses(tmp_path / "p.jsonl", saved_model, None, whole, "clean", None, "s", gcfg, 1, "cpu", "float32")
    for n in (2, 3, 4):  # 12 prompts in batches of 5: 3 batches, so 4 shards leave one empty
        parts = [tmp_path / f"{k}-of-{n}.jsonl" for k in range(n)]
        for k, part in enumerate(parts):
            stages.sample_responses(tmp_path / "p.jsonl", saved_model, None, part, "clean", None, "s", gcfg, 1,
                                    "cpu", "float32", shard=(k, n))
        stages.join_shards(parts, tmp_path / "joined.jsonl")
        assert (tmp_path / "joined.jsonl").read_bytes() == whole.read_bytes()
    assert [len(stages.shard_range(12, 5, (k, 4))) for k in range(4)] == [0, 5, 5, 2]


def test_each_view_samples_from_its_own_stream():
    seeds = {v: stages.generation_seed(1, v, 64) for v in ("clean", "noise500", "noise800")}
    assert seeds["clean"] == 1 * 1_000_003 + 64  # clean samples are what they always were
    assert len(set(seeds.values())) == 3
    assert stages.generation_seed(1, "noise500", 64) == seeds["noise500"]  # stable across processes
