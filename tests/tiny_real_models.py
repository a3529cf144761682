"""Tiny random-weight models of the papers' real architectures, built locally from configs.

No hub: each is the real model class (Qwen2.5-VL, LLaVA-OneVision; LLaVA-1.5 is the
miniature's own `tiny_vlm`) with a word-level tokenizer that carries the architecture's
special tokens and a chat template in its format, and the real processor classes
(Qwen's dynamic-resolution patches, OneVision's anyres crops).
"""
import torch
from transformers import (LlavaOnevisionConfig, LlavaOnevisionForConditionalGeneration, LlavaOnevisionImageProcessor,
                          LlavaOnevisionProcessor, LlavaOnevisionVideoProcessor, Qwen2_5_VLConfig,
                          Qwen2_5_VLForConditionalGeneration, Qwen2_5_VLProcessor, Qwen2VLImageProcessor,
                          Qwen2VLVideoProcessor)

from prefalign.tiny_vlm import train_tokenizer


def _chat_template(image_markup: str) -> str:
    return ("{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
            "{% if message['content'] is string %}{{ message['content'] | replace('<image>', '" + image_markup + "') }}"
            "{% else %}{% for part in message['content'] %}{% if part['type'] == 'image' %}" + image_markup +
            "{% else %}{{ part['text'] }}{% endif %}{% endfor %}{% endif %}<|im_end|>\n{% endfor %}"
            "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


def _tokenizer(corpus, specials, image_token, video_token):
    return train_tokenizer(list(corpus) + ["user assistant system"],
                           ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<unk>", *specials],
                           pad_token="<|endoftext|>", eos_token="<|im_end|>", bos_token=None,
                           extra_special_tokens={"image_token": image_token, "video_token": video_token})


def tiny_qwen2_5_vl(corpus, image_size=30):
    """Qwen2.5-VL: patch 5 x merge 2, so a 30 px image is 9 image tokens; mrope sections 2/3/3."""
    markup = "<|vision_start|><|image_pad|><|vision_end|>"
    tok = _tokenizer(corpus, ["<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>"],
                     "<|image_pad|>", "<|video_pad|>")
    tok.chat_template = _chat_template(markup)
    proc = Qwen2_5_VLProcessor(
        image_processor=Qwen2VLImageProcessor(patch_size=5, merge_size=2, temporal_patch_size=2, min_pixels=100,
                                              max_pixels=4 * image_size * image_size),
        video_processor=Qwen2VLVideoProcessor(patch_size=5, merge_size=2, temporal_patch_size=2),
        tokenizer=tok, chat_template=tok.chat_template)
    ids = tok.convert_tokens_to_ids
    cfg = Qwen2_5_VLConfig(
        vision_config=dict(depth=1, hidden_size=32, intermediate_size=64, num_heads=2, patch_size=5,
                           spatial_merge_size=2, temporal_patch_size=2, out_hidden_size=32, window_size=10,
                           fullatt_block_indexes=[0], in_channels=3),
        text_config=dict(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=256,
                         rope_scaling={"type": "mrope", "mrope_section": [2, 3, 3]},
                         pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id, bos_token_id=None),
        image_token_id=ids("<|image_pad|>"), video_token_id=ids("<|video_pad|>"),
        vision_start_token_id=ids("<|vision_start|>"), vision_end_token_id=ids("<|vision_end|>"))
    torch.manual_seed(0)
    return Qwen2_5_VLForConditionalGeneration(cfg).eval(), proc


def tiny_llava_onevision(corpus, image_size=30):
    """LLaVA-OneVision: SigLIP + Qwen2 with anyres crops (a base view plus grid tiles)."""
    tok = _tokenizer(corpus, ["<image>", "<video>"], "<image>", "<video>")
    tok.chat_template = _chat_template("<image>\n")
    pins = [[image_size, image_size], [image_size, 2 * image_size], [2 * image_size, image_size],
            [2 * image_size, 2 * image_size]]
    proc = LlavaOnevisionProcessor(
        image_processor=LlavaOnevisionImageProcessor(size={"height": image_size, "width": image_size},
                                                     image_grid_pinpoints=pins, do_pad=True),
        video_processor=LlavaOnevisionVideoProcessor(size={"height": image_size, "width": image_size}),
        tokenizer=tok, num_image_tokens=(image_size // 10) ** 2, vision_feature_select_strategy="full",
        chat_template=tok.chat_template)
    cfg = LlavaOnevisionConfig(
        vision_config=dict(model_type="siglip_vision_model", hidden_size=32, intermediate_size=64,
                           num_hidden_layers=1, num_attention_heads=2, image_size=image_size, patch_size=10),
        text_config=dict(model_type="qwen2", vocab_size=len(tok), hidden_size=32, intermediate_size=64,
                         num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=2,
                         max_position_embeddings=512, pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id),
        image_token_index=tok.convert_tokens_to_ids("<image>"), video_token_index=tok.convert_tokens_to_ids("<video>"),
        vision_feature_select_strategy="full", vision_feature_layer=-1, image_grid_pinpoints=pins,
        vision_aspect_ratio="anyres_max_9")
    torch.manual_seed(0)
    return LlavaOnevisionForConditionalGeneration(cfg).eval(), proc


# ---------------------------------------------------------------- shape-faithful models

LLAVA_TEMPLATE = ("{% for message in messages %}"
                  "{% if message['role'] == 'user' %}USER: {% else %}ASSISTANT: {% endif %}"
                  "{% if message['content'] is string %}{{ message['content'] }}{% else %}{% for part in "
                  "message['content'] %}{% if part['type'] == 'image' %}<image>\n{% else %}{{ part['text'] }}"
                  "{% endif %}{% endfor %}{% endif %}{% if message['role'] == 'user' %} {% else %}{{ eos_token }}"
                  "{% endif %}{% endfor %}{% if add_generation_prompt %}ASSISTANT:{% endif %}")


def shape_faithful(name, corpus):
    """(model, processor) of the real architecture `name` (prefalign.shapes) at its real image
    geometry and processor settings, reduced in depth, width and vocabulary; random weights."""
    from transformers import CLIPImageProcessor, LlavaProcessor

    from prefalign import shapes

    arch = shapes.ARCHITECTURES[name]
    if arch.family == "llava":
        tok = train_tokenizer(list(corpus) + ["user assistant"])
        tok.chat_template = LLAVA_TEMPLATE
        size = arch.vision.image_size
        proc = LlavaProcessor(
            image_processor=CLIPImageProcessor(size={"shortest_edge": size}, crop_size={"height": size, "width": size},
                                               image_mean=shapes.CLIP_MEAN, image_std=shapes.CLIP_STD),
            tokenizer=tok, patch_size=arch.vision.patch_size, vision_feature_select_strategy="default",
            num_additional_image_tokens=1, chat_template=LLAVA_TEMPLATE)
        ids = {"image": tok.convert_tokens_to_ids("<image>")}
    elif arch.family == "llava_onevision":
        tok = _tokenizer(corpus, ["<image>", "<video>"], "<image>", "<video>")
        tok.chat_template = _chat_template("<image>\n")
        size = {"height": arch.vision.image_size, "width": arch.vision.image_size}
        pins = [list(p) for p in arch.pinpoints]
        proc = LlavaOnevisionProcessor(
            image_processor=LlavaOnevisionImageProcessor(size=size, image_grid_pinpoints=pins, image_mean=(0.5,) * 3,
                                                         image_std=(0.5,) * 3, do_pad=True),
            video_processor=LlavaOnevisionVideoProcessor(size=size), tokenizer=tok,
            num_image_tokens=(arch.vision.image_size // arch.vision.patch_size) ** 2,
            vision_feature_select_strategy="full", vision_aspect_ratio=f"anyres_max_{arch.max_crops}",
            chat_template=tok.chat_template)
        ids = {"image": tok.convert_tokens_to_ids("<image>"), "video": tok.convert_tokens_to_ids("<video>")}
    else:
        tok = _tokenizer(corpus, ["<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>"],
                         "<|image_pad|>", "<|video_pad|>")
        tok.chat_template = _chat_template("<|vision_start|><|image_pad|><|vision_end|>")
        v = arch.vision
        kw = dict(patch_size=v.patch_size, merge_size=v.merge_size, temporal_patch_size=2,
                  image_mean=shapes.CLIP_MEAN, image_std=shapes.CLIP_STD)
        proc = Qwen2_5_VLProcessor(
            image_processor=Qwen2VLImageProcessor(min_pixels=arch.min_pixels, max_pixels=arch.max_pixels, **kw),
            video_processor=Qwen2VLVideoProcessor(**kw), tokenizer=tok, chat_template=tok.chat_template)
        ids = {k: tok.convert_tokens_to_ids(t) for k, t in
               (("image", "<|image_pad|>"), ("video", "<|video_pad|>"), ("vision_start", "<|vision_start|>"),
                ("vision_end", "<|vision_end|>"))}
    ids.update(pad=tok.pad_token_id, eos=tok.eos_token_id, bos=tok.bos_token_id)
    tok.model_max_length = 1 << 16  # real sequences run to thousands of tokens
    return shapes.build_model(shapes.reduced(arch, vocab=len(tok)), ids), proc
