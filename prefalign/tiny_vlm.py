"""Build the miniature's base VLM: a real `LlavaForConditionalGeneration` from tiny configs.

The tokenizer is a word-level `tokenizers` model trained on the world's own text, wrapped in
`PreTrainedTokenizerFast`; the processor is a `LlavaProcessor` with a chat template in the
LLaVA-1.5 style. The saved folder loads with `AutoModelForImageTextToText` /
`AutoProcessor`, exactly like `llava-hf/llava-1.5-7b-hf`.
"""
from __future__ import annotations

import json
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
from transformers import (CLIPImageProcessor, CLIPVisionConfig, LlamaConfig, LlavaConfig,
                          LlavaForConditionalGeneration, LlavaProcessor, PreTrainedTokenizerFast)

from .config import CLIP_VISION_KEYS

IMAGE_TOKEN = "<image>"
SPECIAL_TOKENS = ["<pad>", "<unk>", "<s>", "</s>", IMAGE_TOKEN]
CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]

# LLaVA-1.5's conversation format, with one change for the miniature: the image tokens come
# after the question, so that in a causal LM each patch can attend to what is asked (a
# design choice; on its own it did not lift the model off the language prior, the
# initialiser range did). Content may be a string holding "<image>" (as lmms-eval sends
# it) or a list of typed parts (as transformers' chat API sends it); both render alike.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'user' %}{{ 'USER: ' }}{% else %}{{ 'ASSISTANT: ' }}{% endif %}"
    "{% if message['content'] is string %}"
    "{% set text = message['content'] | replace('<image>', '') | trim %}"
    "{% set n_images = message['content'].count('<image>') %}"
    "{% else %}{% set text = message['content'] | selectattr('type', 'equalto', 'text')"
    " | map(attribute='text') | join(' ') %}"
    "{% set n_images = message['content'] | selectattr('type', 'equalto', 'image') | list | length %}"
    "{% endif %}"
    "{{ text }}{% for _ in range(n_images) %}{{ '<image>' }}{% endfor %}"
    "{% if message['role'] == 'user' %}{{ ' ' }}{% else %}{{ eos_token }}{% endif %}"
    "{% endfor %}{% if add_generation_prompt %}{{ 'ASSISTANT:' }}{% endif %}"
)


def train_tokenizer(corpus: list[str], special_tokens=SPECIAL_TOKENS, **named) -> PreTrainedTokenizerFast:
    """A word-level tokenizer of the corpus; `named` overrides the special-token names
    (the tests build Qwen- and OneVision-style tokenizers with it)."""
    tok = Tokenizer(models.WordLevel(unk_token="<unk>"))
    tok.normalizer = normalizers.Sequence([normalizers.Replace("\n", " "), normalizers.Lowercase()])
    # Metaspace keeps word boundaries in the tokens, so decoding restores spacing exactly.
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always"),
        pre_tokenizers.Punctuation()])
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    tok.train_from_iterator(corpus, trainers.WordLevelTrainer(special_tokens=list(special_tokens)))
    named = {"unk_token": "<unk>", "pad_token": "<pad>", "bos_token": "<s>", "eos_token": "</s>",
             "extra_special_tokens": {"image_token": IMAGE_TOKEN}, **named}
    return PreTrainedTokenizerFast(tokenizer_object=tok, model_max_length=512, padding_side="right", **named)


def build_tiny_llava(corpus: list[str], image_size: int, patch_size: int, vision: dict,
                     text: dict, seed: int, vision_from=None):
    """Return (model, processor) with random weights, seeded; with `vision_from` (a world CLIP's
    folder, `clip_similarity.train_world_clip`), the vision tower is that CLIP's image encoder,
    as LLaVA's is a released CLIP's, and `vision` is read from its architecture."""
    import torch

    if vision_from is not None:
        arch = json.loads((Path(vision_from) / "architecture.json").read_text())["vision"]
        if (arch["image_size"], arch["patch_size"]) != (image_size, patch_size):
            raise ValueError(f"{vision_from}: the CLIP sees {arch['image_size']}px images in "
                             f"{arch['patch_size']}px patches, the tiny LLaVA {image_size} in {patch_size}")
        vision = clip_vision_config(arch)

    tokenizer = train_tokenizer(corpus)
    tokenizer.chat_template = CHAT_TEMPLATE  # lmms-eval's llava_hf reads the tokenizer's
    image_token_id = tokenizer.convert_tokens_to_ids(IMAGE_TOKEN)
    vision_config = CLIPVisionConfig(image_size=image_size, patch_size=patch_size, num_channels=3,
                                     **vision)
    text_config = LlamaConfig(vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id,
                              bos_token_id=tokenizer.bos_token_id,
                              eos_token_id=tokenizer.eos_token_id, **text)
    n_image_tokens = (image_size // patch_size) ** 2 + 1  # + CLS: strategy "full"
    config = LlavaConfig(vision_config=vision_config, text_config=text_config,
                         image_token_id=image_token_id, vision_feature_select_strategy="full",
                         vision_feature_layer=-1, image_seq_length=n_image_tokens,
                         projector_hidden_act="gelu")
    torch.manual_seed(seed)
    model = LlavaForConditionalGeneration(config)
    if vision_from is not None:
        state = torch.load(Path(vision_from) / "model.pt", weights_only=True)
        model.model.vision_tower.load_state_dict(clip_vision_state(state, arch["layers"]), strict=True)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    image_processor = CLIPImageProcessor(
        do_resize=False, do_center_crop=False, do_rescale=True, do_normalize=True,
        image_mean=CLIP_MEAN, image_std=CLIP_STD, do_convert_rgb=True,
        size={"shortest_edge": image_size}, crop_size={"height": image_size, "width": image_size})
    processor = LlavaProcessor(image_processor=image_processor, tokenizer=tokenizer,
                               patch_size=patch_size, vision_feature_select_strategy="full",
                               num_additional_image_tokens=1, chat_template=CHAT_TEMPLATE)
    return model, processor


def clip_vision_config(arch: dict) -> dict:
    """transformers' CLIPVisionConfig fields of an open_clip vision tower (its `vision_cfg`)."""
    unknown = set(arch) - CLIP_VISION_KEYS
    if unknown:
        raise ValueError(f"CLIP vision setting(s) {sorted(unknown)}: the conversion to a LLaVA vision "
                         f"tower maps only {sorted(CLIP_VISION_KEYS)}")
    width = arch["width"]
    return {"hidden_size": width, "intermediate_size": int(width * arch.get("mlp_ratio", 4.0)),
            "num_hidden_layers": arch["layers"], "num_attention_heads": width // arch.get("head_width", 64),
            "hidden_act": "gelu"}  # open_clip's nn.GELU unless quick_gelu is asked for


def clip_vision_state(state: dict, layers: int) -> dict:
    """An open_clip CLIP's `visual.*` weights renamed to transformers' CLIPVisionModel; the
    image-text projection (`visual.proj`) has no place there and is left out."""
    v = {k.removeprefix("visual."): t for k, t in state.items() if k.startswith("visual.")}
    out = {"embeddings.class_embedding": v["class_embedding"],
           "embeddings.patch_embedding.weight": v["conv1.weight"],
           "embeddings.position_embedding.weight": v["positional_embedding"],
           "pre_layrnorm.weight": v["ln_pre.weight"], "pre_layrnorm.bias": v["ln_pre.bias"],
           "post_layernorm.weight": v["ln_post.weight"], "post_layernorm.bias": v["ln_post.bias"]}
    for i in range(layers):
        src, dst = f"transformer.resblocks.{i}.", f"encoder.layers.{i}."
        weights, biases = v[src + "attn.in_proj_weight"].chunk(3), v[src + "attn.in_proj_bias"].chunk(3)
        for name, w, b in zip("qkv", weights, biases):
            out[f"{dst}self_attn.{name}_proj.weight"], out[f"{dst}self_attn.{name}_proj.bias"] = w, b
        for a, b in [("attn.out_proj", "self_attn.out_proj"), ("ln_1", "layer_norm1"),
                     ("ln_2", "layer_norm2"), ("mlp.c_fc", "mlp.fc1"), ("mlp.c_proj", "mlp.fc2")]:
            out[f"{dst}{b}.weight"], out[f"{dst}{b}.bias"] = v[f"{src}{a}.weight"], v[f"{src}{a}.bias"]
    return out
