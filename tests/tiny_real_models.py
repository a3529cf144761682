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
