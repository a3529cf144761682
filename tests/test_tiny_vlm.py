import pytest
from transformers import AutoModelForImageTextToText, AutoProcessor

from prefalign.settings import LoraSettings
from prefalign.model import chat_prompt, generate, load_model


def test_roundtrip_through_auto_classes(tmp_path, tiny_model, small_world):
    model, processor = tiny_model
    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    assert type(AutoModelForImageTextToText.from_pretrained(tmp_path)).__name__ == "LlavaForConditionalGeneration"
    assert type(AutoProcessor.from_pretrained(tmp_path)).__name__ == "LlavaProcessor"
    m2, p2 = load_model(str(tmp_path))
    from prefalign.data import open_image

    img = open_image(small_world / "images", "eval_describe_000000.png", "t", 0)
    a = generate(model, processor, [img], ["describe the image."], max_new_tokens=6)
    b = generate(m2, p2, [img], ["describe the image."], max_new_tokens=6)
    assert a == b and 1 <= a[0][0][1] <= 6


def test_chat_template_renders_lmms_eval_string_and_typed_parts_alike(tiny_model):
    _, processor = tiny_model
    typed = chat_prompt(processor, "what colour is the circle?")
    as_string = processor.tokenizer.apply_chat_template(
        [{"role": "user", "content": "<image>\nwhat colour is the circle?"}], tokenize=False,
        add_generation_prompt=True)
    assert typed == as_string
    ids = processor.tokenizer(typed)["input_ids"]
    assert processor.tokenizer.unk_token_id not in ids


def test_decoding_restores_spacing(tiny_model):
    tok = tiny_model[1].tokenizer
    text = "there is a small red circle at the top left. there is a sign reading 42 at the center."
    assert tok.decode(tok(text, add_special_tokens=False)["input_ids"]) == text


def test_a_truncated_model_or_adapter_file_is_named(tmp_path, tiny_model):
    from prefalign.model import ModelFileError
    from prefalign.training import add_lora

    model, processor = tiny_model
    model.save_pretrained(tmp_path / "model")
    processor.save_pretrained(tmp_path / "model")
    lora = LoraSettings.from_partial({"r": 2, "alpha": 4})
    add_lora(load_model(str(tmp_path / "model"))[0], lora).save_pretrained(tmp_path / "adapter")
    for folder, file in (("adapter", "adapter_model.safetensors"), ("model", "model.safetensors")):
        weights = tmp_path / folder / file
        weights.write_bytes(weights.read_bytes()[:100])
        with pytest.raises(ModelFileError, match=f"{tmp_path / folder}: cannot read the"):
            load_model(str(tmp_path / "model"), adapter=str(tmp_path / "adapter"))


def test_a_world_clip_starts_the_vision_tower_as_the_same_encoder(tmp_path, small_world):
    """vision_from: the tiny LLaVA's vision tower computes exactly what the open_clip image
    encoder computes (its tokens before ln_post, and its pooled, projected embedding)."""
    import json

    import torch

    from prefalign.clip_similarity import build_world_clip
    from prefalign.stages.train_base_model import world_corpus
    from prefalign.tiny_vlm import build_tiny_llava

    arch = {"embed_dim": 16, "vision": {"image_size": 30, "layers": 2, "width": 32, "patch_size": 10, "head_width": 16},
            "text": {"context_length": 32, "vocab_size": 49408, "width": 16, "heads": 2, "layers": 1}}
    torch.manual_seed(3)
    clip = build_world_clip(arch).eval()
    with torch.no_grad():  # open_clip starts some weights at constants; make every one count
        for p in clip.visual.parameters():
            p.add_(0.1 * torch.randn_like(p))
    torch.save(clip.state_dict(), tmp_path / "model.pt")
    (tmp_path / "architecture.json").write_text(json.dumps(arch))
    text = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                num_key_value_heads=2, max_position_embeddings=256)
    model, _ = build_tiny_llava(world_corpus(small_world), 30, 10, None, text, 0, vision_from=tmp_path)
    tower, vis = model.model.vision_tower.eval(), clip.visual
    x = torch.randn(3, 3, 30, 30)
    with torch.no_grad():
        tokens = vis.conv1(x).flatten(2).transpose(1, 2)
        tokens = torch.cat([vis.class_embedding.expand(3, 1, -1), tokens], 1) + vis.positional_embedding
        tokens = vis.transformer(vis.ln_pre(tokens))
        ours = tower(pixel_values=x, output_hidden_states=True)
        torch.testing.assert_close(ours.hidden_states[-1], tokens, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(ours.pooler_output @ vis.proj, clip.encode_image(x), atol=1e-5, rtol=1e-5)
    (tmp_path / "architecture.json").write_text(json.dumps({**arch, "vision": {**arch["vision"], "patch_size": 15}}))
    with pytest.raises(ValueError, match="15px patches"):
        build_tiny_llava(world_corpus(small_world), 30, 10, None, text, 0, vision_from=tmp_path)
