import hashlib
import json

import numpy as np
import pandas as pd

from prefalign import world as W
from prefalign.data import load_conversations

from prefalign.scoring import correctness, hallucination_stats
from prefalign.world import (COLOURS, WorldSpec, _ink, describe, questions_for, popularity_order, render,
                             sample_scene)
from prefalign.world_build import build_world


def tree_digest(root):
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(root)).encode())
            h.update(p.read_bytes())
    return h.hexdigest()


def test_world_is_byte_identical_for_the_same_seed(tmp_path):
    n_eval = {"pope": 6, "vqa": 4, "describe": 2}
    build_world(tmp_path / "a", 3, WorldSpec(), 10, 5, n_eval, progress=False)
    build_world(tmp_path / "b", 3, WorldSpec(), 10, 5, n_eval, progress=False)
    build_world(tmp_path / "c", 4, WorldSpec(), 10, 5, n_eval, progress=False)
    assert tree_digest(tmp_path / "a") == tree_digest(tmp_path / "b")
    assert tree_digest(tmp_path / "a") != tree_digest(tmp_path / "c")


def test_rendered_pixels_match_the_scene_graph():
    spec = WorldSpec()
    rng = np.random.default_rng(0)
    for _ in range(50):
        scene = sample_scene(rng, spec)
        img = np.asarray(render(scene, spec))
        for o in scene["objects"]:
            r, c = divmod(o["cell"], spec.grid)
            centre = img[r * spec.cell + spec.cell // 2 - 1, c * spec.cell + spec.cell // 2 - 1]
            assert tuple(centre) == _ink(o["colour"], spec)


def test_answers_are_exact():
    spec = WorldSpec()
    rng = np.random.default_rng(1)
    pop = popularity_order(spec)
    for _ in range(200):
        scene = sample_scene(rng, spec)
        present = {(o["colour"], o["shape"]) for o in scene["objects"]}
        for qa in questions_for(rng, scene, spec, pop):
            if qa["family"] == "exist":
                colour, shape = qa["target"].split()
                assert (qa["answer"] == "yes") == ((colour, shape) in present)
                if qa["answer"] == "no" and qa["pope_type"] == "adversarial":
                    assert any(colour == c or shape == s for c, s in present) or len(present) == 0
            elif qa["family"] == "colour":
                shape = qa["question"].split()[-1].rstrip("?")
                matches = [o for o in scene["objects"] if o["shape"] == shape]
                assert len(matches) == 1 and matches[0]["colour"] == qa["answer"]
            elif qa["family"] == "count":
                plural = qa["question"].split()[2]
                shape = {"circles": "circle", "squares": "square", "triangles": "triangle", "crosses": "cross"}[plural]
                n = sum(o["shape"] == shape for o in scene["objects"])
                assert qa["answer"] == ["zero", "one", "two", "three", "four"][n]
            elif qa["family"] == "describe":
                assert hallucination_stats(qa["answer"], scene)["hallucinated"] == 0
                assert correctness("describe", qa["answer"], qa["answer"], scene) == 1.0


def test_pool_carries_no_answers_and_answers_are_kept_apart(small_world):
    pool = json.loads((small_world / "pool.json").read_text())
    answers = json.loads((small_world / "pool_answers.json").read_text())
    assert all(t["from"] == "human" for r in pool for t in r["conversations"])
    assert {r["id"] for r in pool} == set(answers)


def test_pool_and_evaluation_images_are_disjoint(small_world):
    """Preference data (controls included) never shows the model an evaluation image: by file
    and by content."""
    pool = {r["image"] for r in json.loads((small_world / "pool.json").read_text())}
    pool_digests = {hashlib.sha256((small_world / name).read_bytes()).hexdigest() for name in pool}
    for task in ("pope", "vqa", "describe"):
        rows = pd.read_parquet(small_world / "eval" / f"{task}.parquet")
        assert not set(rows.image_file) & pool, task
        assert not {hashlib.sha256(b).hexdigest() for b in rows.image} & pool_digests, task


def test_eval_sets_cover_pope_types_and_families(small_world):
    pope = pd.read_parquet(small_world / "eval" / "pope.parquet")
    assert set(pope.pope_type) == {"random", "popular", "adversarial"}
    assert set(pope.answer) <= {"yes", "no"}
    vqa = pd.read_parquet(small_world / "eval" / "vqa.parquet")
    assert {"colour", "count", "position", "cell"} <= set(vqa.family)


def test_chair_counts_hallucinated_objects():
    scene = {"objects": [{"shape": "circle", "colour": "red", "size": "small", "cell": 0}], "sign": None}
    st = hallucination_stats("there is a red circle. there is a blue square.", scene)
    assert st == {"mentions": 2, "hallucinated": 1, "recalled": 1, "objects": 1}
    assert correctness("describe", "there is a red circle. there is a blue square.", "", scene) == 0.5
    assert describe(scene, 3) == "there is a small red circle at the top left."
    assert set(COLOURS) >= {"red", "blue"}


def test_reasoning_answers_are_graded_on_answer_and_evidence():
    spec = W.WorldSpec()
    scene = {"objects": [{"shape": "circle", "colour": "red", "size": "small", "cell": 0},
                         {"shape": "square", "colour": "blue", "size": "large", "cell": 4}], "sign": None}
    qa = {"family": "colour", "question": "what colour is the circle?", "answer": "red"}
    r = W.reasoning_variant(qa, scene, spec)
    assert r["question"] == "what colour is the circle? Answer the question and explain why?"
    assert r["answer"] == "red. the circle at the top left is red."
    assert correctness("colour", r["answer"], "red", scene) == 1.0
    assert correctness("colour", "blue. the circle at the top left is blue.", "red", scene) == 0.0
    # right answer, half the evidence hallucinated
    assert correctness("colour", "red. there is a red circle at the top left. there is a green cross at the top.",
                         "red", scene) == 0.5
    absent = {"family": "exist", "question": "is there a green cross in the image?", "answer": "no",
              "target": "green cross"}
    no = W.reasoning_variant(absent, scene, spec)["answer"]
    assert no == "no. there is no green cross in the image."
    assert correctness("exist", no, "no", scene) == 1.0  # a negated mention is not a hallucination
    count = {"family": "count", "question": "how many squares are there?", "answer": "one"}
    assert W.reasoning_variant(count, scene, spec)["answer"] == "one. there is a large blue square at the center."


def test_sft_split_teaches_the_reasoning_prompt(small_world):
    turns = [t for c in load_conversations(small_world / "sft.json", require_answers=True) for t in c.turns]
    reasoning = [t for t in turns if W.REASONING_PROMPT in t.question]
    assert 0 < len(reasoning) < len(turns)
    assert all(t.question.endswith(" " + W.REASONING_PROMPT) and ". " in t.answer for t in reasoning)


def test_world_sentences_for_clip_are_true_of_their_image(small_world):
    from prefalign.stages.train_clip import world_sentences

    pairs = world_sentences(small_world)
    assert pairs and all(s.endswith(".") and s[0].islower() for _, s in pairs)
    sft = {c.image: c for c in load_conversations(small_world / "sft.json", require_answers=True)}
    for image, sentence in pairs[:50]:
        description = next(t.answer for t in sft[image].turns if t.question == W.DESCRIBE_QUESTION)
        evidence = " ".join(t.answer for t in sft[image].turns if W.REASONING_PROMPT in t.question)
        assert sentence in description or sentence in evidence


def test_usual_partners_cooccur_only_when_the_world_says_so():
    def partner_rate(spec):
        rng, hits, anchors = np.random.default_rng(0), 0, 0
        for _ in range(3000):
            present = W.present_objects(sample_scene(rng, spec))
            for o in present:
                if o in W.PARTNER:
                    anchors += 1
                    hits += W.PARTNER[o] in present
        return hits / anchors

    assert partner_rate(WorldSpec()) < 0.15
    assert partner_rate(WorldSpec(cooccurrence=0.6)) > 0.5


def test_annotator_prior_touches_the_sft_split_only(tmp_path):
    spec = WorldSpec(cooccurrence=0.5, annotator_prior=1.0)
    out = tmp_path / "w"
    build_world(out, 0, spec, 40, 30, {"pope": 30, "vqa": 10, "describe": 6}, progress=False)
    # Pool answers and benchmarks describe the rendered image exactly.
    answers = json.loads((out / "pool_answers.json").read_text())
    images = {r["id"]: r["image"] for r in json.loads((out / "pool.json").read_text())}
    for rid, truth in answers.items():
        assert (out / images[rid]).read_bytes() == W.png_bytes(render(truth["scene"], spec))
    for task in ("pope", "vqa", "describe"):
        for row in pd.read_parquet(out / "eval" / f"{task}.parquet").itertuples():
            assert row.image == W.png_bytes(render(json.loads(row.scene), spec))
    # The SFT annotations describe every absent partner as present (prior 1); the image does not show it.
    from prefalign.world_build import generate_split
    plain = list(generate_split(np.random.default_rng(1), spec, 40, "x", tmp_path / "plain", ["describe"]))
    annotated = list(generate_split(np.random.default_rng(1), spec, 40, "x", tmp_path / "annotated", ["describe"],
                                    annotate=lambda s: W.with_partners(np.random.default_rng(2), s, spec, 1.0)))
    gained = 0
    for (name, true, _), (_, said, qas) in zip(plain, annotated):
        assert (tmp_path / "plain" / name).read_bytes() == (tmp_path / "annotated" / name).read_bytes()
        assert W.present_objects(true) <= W.present_objects(said)
        assert not W.absent_partners(said) or len(said["objects"]) + bool(said["sign"]) == 9
        assert qas[0]["answer"] == describe(said, spec.grid)
        gained += len(said["objects"]) > len(true["objects"])
    assert gained >= 5


def test_colour_prior_names_the_usual_colour_in_the_sft_split_only(tmp_path):
    spec = WorldSpec(cooccurrence=0.5, colour_prior=1.0)
    out = tmp_path / "w"
    build_world(out, 0, spec, 60, 30, {"pope": 30, "vqa": 10, "describe": 6}, progress=False)
    for row in pd.read_parquet(out / "eval" / "vqa.parquet").itertuples():
        assert row.image == W.png_bytes(render(json.loads(row.scene), spec))
    answers = json.loads((out / "pool_answers.json").read_text())
    assert any(o["shape"] in W.USUAL_COLOUR and o["colour"] != W.USUAL_COLOUR[o["shape"]]
               for a in answers.values() for o in a["scene"]["objects"])  # the pool's truth is unchanged
    # Prior 1: every SFT description names each triangle and cross in its usual colour.
    sft = json.loads((out / "sft.json").read_text())
    said = " ".join(a["value"] for r in sft for q, a in zip(r["conversations"][::2], r["conversations"][1::2])
                    if q["value"].endswith(W.DESCRIBE_QUESTION))
    for shape, colour in W.USUAL_COLOUR.items():
        assert f"{colour} {shape}" in said
        assert not any(f"{c} {shape}" in said for c in W.COLOURS if c != colour)
    scene = {"objects": [{"shape": "cross", "colour": "blue", "size": "small", "cell": 0},
                         {"shape": "circle", "colour": "blue", "size": "small", "cell": 1}], "sign": None}
    rng = np.random.default_rng(0)
    assert W.with_usual_colours(rng, scene, 0.0) == scene
    assert [o["colour"] for o in W.with_usual_colours(rng, scene, 1.0)["objects"]] == ["red", "blue"]


def test_pope_adversarial_negatives_ask_for_an_absent_usual_partner(tmp_path):
    spec = WorldSpec(cooccurrence=0.5)
    build_world(tmp_path / "w", 0, spec, 5, 5, {"pope": 90, "vqa": 3, "describe": 3}, progress=False)
    pope = pd.read_parquet(tmp_path / "w" / "eval" / "pope.parquet")
    adversarial_no = pope[(pope.pope_type == "adversarial") & (pope.answer == "no")]
    assert len(adversarial_no) > 5
    for row in adversarial_no.itertuples():
        target = tuple(row.question.split()[3:5])
        assert target in W.absent_partners(json.loads(row.scene)), row.question
