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
