"""The papers' architectures through the workflow's code paths, on tiny random-weight models.

LLaVA-1.5 (`LlavaForConditionalGeneration`), LLaVA-OneVision (anyres crops) and
Qwen2.5-VL (dynamic-resolution patches, 3-D rotary positions): generation, shared-prefix
scoring against naive scoring, save/reload through the Auto classes, and one training step
of every objective with LoRA on the language model only. The same tests run (marker
`extended`) on the shape-faithful models of the four real base models (`prefalign.shapes`):
real image geometry and head layout, 640 x 480 images, so real image token counts.
"""
import copy

import pytest
import torch

from prefalign.settings import LoraSettings, ObjectiveSettings, PreferenceSetSettings, TrainingSettings
from prefalign.methods import OBJECTIVES
from prefalign.model import (build_scoring_batch, generate, group_scoring_batch, load_model,
                             shared_prefix_token_logps, token_logps)
from prefalign.stages.train_base_model import world_corpus
from prefalign.training import add_lora, train_preferences
from test_losses_and_logprobs import _images
from tiny_real_models import shape_faithful, tiny_llava_onevision, tiny_qwen2_5_vl

LORA = {"r": 4, "alpha": 8}
QUESTIONS = ["what colour is the circle?", "describe the image.", "is there a red square in the image?"]
RESPONSES = [["red", "blue. the circle at the top is blue."], ["there is a small red circle at the top."],
             ["no", "yes. there is a red square at the center.", "yes"]]


REAL = ["llava-1.5-7b", "llava-onevision-0.5b", "llava-onevision-7b", "qwen2.5-vl-7b"]


@pytest.fixture(scope="module", params=["llava", "llava_onevision", "qwen2_5_vl"]
                + [pytest.param(f"{name}@shape", marks=pytest.mark.extended) for name in REAL])
def arch(request, small_world, tiny_model):
    if request.param == "llava":
        return tiny_model
    if request.param.endswith("@shape"):
        return shape_faithful(request.param.removesuffix("@shape"), world_corpus(small_world))
    build = {"llava_onevision": tiny_llava_onevision, "qwen2_5_vl": tiny_qwen2_5_vl}[request.param]
    return build(world_corpus(small_world))


def arch_images(arch, world, n=3):
    """The world's images; at a real size (640 x 480, a COCO photo) for a shape-faithful model."""
    images = _images(world, n)
    vision = arch[0].config.vision_config
    return [im.resize((640, 480)) for im in images] if vision.patch_size == 14 else images


def naive_logps(model, processor, images):
    flat = [(im, q, r) for im, q, rs in zip(images, QUESTIONS, RESPONSES) for r in rs]
    logps, _ = token_logps(model, build_scoring_batch(processor, *map(list, zip(*flat))))
    return logps.sum(-1)


def shared_logps(model, processor, images):
    logps, _ = shared_prefix_token_logps(model, group_scoring_batch(processor, images, QUESTIONS, RESPONSES))
    return logps.sum(-1)


def test_generation_and_shared_prefix_scoring(arch, small_world):
    model, processor = arch
    images = arch_images(arch, small_world)
    out = generate(model, processor, images, QUESTIONS, max_new_tokens=4, do_sample=True, num_return_sequences=2,
                   seed=0)
    assert [len(o) for o in out] == [2, 2, 2] and all(isinstance(t, str) for o in out for t, _ in o)
    with torch.no_grad():
        torch.testing.assert_close(shared_logps(model, processor, images), naive_logps(model, processor, images),
                                   atol=1e-4, rtol=0)


def test_save_and_reload_through_the_auto_classes(arch, small_world, tmp_path):
    model, processor = arch
    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    reloaded, reprocessor = load_model(str(tmp_path))
    assert type(reloaded) is type(model) and type(reprocessor) is type(processor)
    images = arch_images(arch, small_world)
    with torch.no_grad():
        torch.testing.assert_close(shared_logps(reloaded, reprocessor, images), shared_logps(model, processor, images))


@pytest.mark.parametrize("loss", ["dpo", "mgp", "aspo", "consr"])
def test_one_training_step_of_each_objective_moves_only_lora_weights(arch, small_world, loss):
    from prefalign.clip_similarity import ClipScorer, build_world_clip, world_clip_tokenizer, world_clip_transform
    from prefalign.methods.aspo import annotate_chosen

    base, processor = arch
    model = add_lora(copy.deepcopy(base), LoraSettings.from_partial({"r": 4, "alpha": 8}))
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all("language_model" in n and "lora_" in n for n in trainable)
    images = arch_images(arch, small_world)
    records = [{"id": str(k), "image": str(k), "question": q, "extras": {},
                "groups": [[{"text": r}] for r in rs] if len(rs) > 1 else [[{"text": rs[0]}], [{"text": "nothing"}]]}
               for k, (q, rs) in enumerate(zip(QUESTIONS, RESPONSES))]
    if loss == "aspo":
        height, width = images[0].height, images[0].width  # the scorer sees the images as they are
        arch_cfg = {"embed_dim": 16, "vision": {"image_size": [height, width], "layers": 1, "width": 16,
                                                "patch_size": 10, "head_width": 8},
                    "text": {"context_length": 32, "vocab_size": 49408, "width": 16, "heads": 2, "layers": 1}}
        scorer = ClipScorer(build_world_clip(arch_cfg).eval(), world_clip_transform(), world_clip_tokenizer(32))
        annotate_chosen(records, model, processor, scorer, lambda r: images[int(r["id"])], "sentence")
    if loss == "consr":  # ConSR's three-condition scoring on this architecture builds the records
        from prefalign.augment import AugmentSpec, View
        from prefalign.methods.consr import build_consr_records
        from prefalign.world import CONTEXT_TEMPLATE

        sampled = {r["id"]: {"responses": [{"text": t, "n_tokens": 1} for g in r["groups"] for t in [g[0]["text"]]]}
                   for r in records}
        records, _ = build_consr_records(
            records, {("clean", "s"): sampled},
            PreferenceSetSettings(method="consr", prompts="p", generation="s", lambda_=0.8, selection="reward",
                                  candidates={"sampled": 2, "revised": 0, "noisy": 0}),
            model, processor, lambda r: images[int(r["id"])], {r["id"]: "there is a red circle." for r in records},
            View(AugmentSpec("noise800", "diffusion", 800), 1), context_template=CONTEXT_TEMPLATE)
        assert len(records) == 3 and all("token_prob_shift" in r["groups"][0][0] for r in records)
    frozen = {n: p.detach().clone() for n, p in model.named_parameters() if not p.requires_grad}
    cfgs = {"dpo": {"beta": 0.1}, "mgp": {"steepness": 0.1, "swap": "cauchy", "alpha": 0.17},
            "aspo": {"beta": 0.1, "alpha": 0.5}, "consr": {"beta": 0.1, "alpha": 0.5, "clip": [0.0, 0.2]}}
    lora_b = {n: p.detach().clone() for n, p in model.named_parameters() if "lora_B" in n}
    rows = train_preferences(model, processor, records, lambda r: images[int(r["id"])], OBJECTIVES[loss],
                             ObjectiveSettings.from_partial({"loss": loss, **cfgs[loss]}),
                             TrainingSettings.from_partial({"lora": LORA, "lr": 1e-2, "epochs": 1, "batch_size": 3}),
                             seed=0)
    assert len(rows) == 1 and torch.isfinite(torch.tensor(rows[0]["loss"]))
    assert any(not torch.equal(p, lora_b[n]) for n, p in model.named_parameters() if n in lora_b)
    assert all(torch.equal(p, frozen[n]) for n, p in model.named_parameters() if n in frozen)


def test_tensor_noise_is_per_image_whatever_the_pixel_layout(arch, small_world):
    """Each image's noisy tensor depends on its own (seed, id) only, not on its batch:
    one row per image (LLaVA), anyres crops (OneVision) or flattened patches (Qwen2.5-VL)."""
    from prefalign.augment import AugmentSpec, View, split_images
    from prefalign.stages.augment import view_pixel_values

    _, processor = arch
    images = arch_images(arch, small_world)
    prompts = [{"id": f"item{k}"} for k in range(3)]
    view = View(AugmentSpec("noise500", "diffusion", 500), seed=1)
    together = view_pixel_values(processor, view, prompts, images)
    alone = view_pixel_values(processor, view, prompts[2:], images[2:])
    clean = split_images(*(lambda e: (e["pixel_values"], e.get("image_grid_thw")))(
        processor.image_processor(images, return_tensors="pt")))
    assert len(together) == 3
    torch.testing.assert_close(together[2], alone[0])
    assert all(not torch.equal(n, c) for n, c in zip(together, clean))
    # the same noise reaches the model inside generation and scoring
    enc_noise = view.pixel_transform([p["id"] for p in prompts])
    enc = processor.image_processor(images, return_tensors="pt")
    torch.testing.assert_close(split_images(enc_noise(enc["pixel_values"], enc.get("image_grid_thw")),
                                            enc.get("image_grid_thw")), together)


def test_gradient_accumulation_equals_one_big_batch(arch, small_world):
    from prefalign.training import accumulate

    base, processor = arch
    images = arch_images(arch, small_world)
    records = [{"id": str(k), "image": str(k), "question": q, "extras": {},
                "groups": [[{"text": rs[0]}], [{"text": "nothing"}]]}
               for k, (q, rs) in enumerate(zip(QUESTIONS, RESPONSES))]
    grads = []
    for micro in (3, 1):
        torch.manual_seed(0)  # LoRA's A matrices are drawn from the global generator
        model = add_lora(copy.deepcopy(base), LoraSettings.from_partial({"r": 4, "alpha": 8}))
        for n, p in model.named_parameters():  # move off the zero-init so gradients are informative
            if "lora_B" in n:
                torch.nn.init.normal_(p, std=0.1, generator=torch.Generator().manual_seed(0))
        loss, _ = accumulate(model, processor, records, lambda r: images[int(r["id"])], OBJECTIVES["dpo"],
                             ObjectiveSettings(loss="dpo", beta=0.1), micro, "cpu")
        grads.append((loss, {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}))
    assert grads[0][0] == pytest.approx(grads[1][0], rel=1e-5)
    for n, g in grads[0][1].items():
        torch.testing.assert_close(grads[1][1][n], g, atol=1e-6, rtol=1e-4)


def test_lmms_eval_runs_each_architecture_and_attaches_an_adapter_as_if_merged(arch, small_world, tmp_path):
    """The papers' lmms-eval model classes (`llava_hf` for LLaVA and OneVision, `qwen2_5_vl`)
    load the saved model, answer every document, and with a LoRA adapter (no merge step: merged
    in memory in float32, attached to 16-bit weights) answer as the saved merged model does
    (exactly in float32). For LLaVA and OneVision, this package's `llava_hf_batched` answers
    as `llava_hf` does."""
    from prefalign.evaluation import run_lmms_eval, write_task_dir

    base, processor = arch
    if getattr(base.config, "tie_word_embeddings", False):
        pytest.skip("random tied embeddings echo a prompt's special token: every answer is empty, which "
                    "this test reads as a failed class (OneVision-0.5B; its 7B sibling runs here)")
    qwen = base.config.model_type == "qwen2_5_vl"
    # lmms-eval's qwen2_5_vl resizes to its own pixel budget (200k px minimum by default)
    kwargs = dict(tasks=["prefalign_pope", "prefalign_vqa"], task_dir=write_task_dir(tmp_path / "tasks",
                  small_world / "eval"), limit=4, model_name="qwen2_5_vl" if qwen else "llava_hf",
                  model_args={"min_pixels": 100, "max_pixels": 3600} if qwen else None)
    model = add_lora(copy.deepcopy(base), LoraSettings.from_partial({"r": 4, "alpha": 8}))
    for n, p in model.named_parameters():  # a trained-looking adapter: B away from its zero init
        if "lora_B" in n:
            torch.nn.init.normal_(p, std=0.5, generator=torch.Generator().manual_seed(0))
    model.save_pretrained(tmp_path / "adapter")
    answers = {}
    for name, weights in (("base", base), ("merged", copy.deepcopy(model).merge_and_unload())):
        weights.save_pretrained(tmp_path / name)
        processor.save_pretrained(tmp_path / name)
    for name, path, adapter in (("base", "base", None), ("adapter", "base", "adapter"), ("merged", "merged", None)):
        _, samples = run_lmms_eval(str(tmp_path / path), adapter and str(tmp_path / adapter), **kwargs)
        answers[name] = {(t, r["id"]): r["response"] for t, rows in samples.items() for r in rows}
    assert len(answers["base"]) == 8 and all(a[0].strip() for a in answers["base"].values())
    assert answers["adapter"] != answers["base"]
    if not qwen:
        assert answers["adapter"] == answers["merged"]
        _, samples = run_lmms_eval(str(tmp_path / "base"), None, **{**kwargs, "model_name": "llava_hf_batched",
                                                                    "batch_size": 3})
        assert {(t, r["id"]): r["response"] for t, rows in samples.items() for r in rows} == answers["base"]
    else:  # the class loads bf16 whatever is asked, so merged weights round differently: greedy
        # answers agree until a near-tie flips; every answer starts with the same word
        def first_words(run):
            return {k: a[0].split()[:1] for k, a in answers[run].items()}

        assert first_words("adapter") == first_words("merged")


def test_an_adapter_merged_for_evaluation_scores_as_attached(tiny_model, small_world, tmp_path):
    """`evaluation.adapted` merges a LoRA adapter into float32 weights (faster generation):
    the same logits as the attached adapter to float32 rounding and the same greedy answers;
    bfloat16 weights keep it attached (a merge would round its updates away)."""
    from peft import PeftModel

    from prefalign.evaluation import adapted
    from prefalign.model import attach_adapter, encode_prompts

    base, processor = tiny_model
    model = add_lora(copy.deepcopy(base), LoraSettings.from_partial({"r": 4, "alpha": 8}))
    for n, p in model.named_parameters():
        if "lora_B" in n:
            torch.nn.init.normal_(p, std=0.5, generator=torch.Generator().manual_seed(0))
    model.save_pretrained(tmp_path / "adapter")
    images, questions = _images(small_world, 3), ["describe the image.", "is there a red cross?", "how many?"]
    batch = encode_prompts(processor, images, questions)
    attached = attach_adapter(copy.deepcopy(base), str(tmp_path / "adapter")).eval()
    merged = adapted(copy.deepcopy(base), str(tmp_path / "adapter"))
    assert not isinstance(merged, PeftModel)
    with torch.no_grad():
        a, m = attached(**batch).logits, merged(**batch).logits
    assert (a - m).abs().max() < 1e-5 and (a - base(**batch).logits).abs().max() > 1e-2
    answers = [generate(x, processor, images, questions, max_new_tokens=6) for x in (attached, merged)]
    assert answers[0] == answers[1]
    assert isinstance(adapted(copy.deepcopy(base).to(torch.bfloat16), str(tmp_path / "adapter")), PeftModel)
