"""The papers' base models as shapes: widths, depths, heads, vocabulary and image geometry.

Transcribed from each model's `config.json` and `preprocessor_config.json` on the Hugging
Face hub (the ids below; no hub here). `hf_config(arch)` is the real model's config;
`hf_config(arch, reduced=True)` keeps everything that sets sequence length (image size,
patch size, anyres pinpoints, Qwen's pixel bounds, merge size, which layer's features) and
the head layout (attention and key-value head counts, Qwen's window and full-attention
pattern), and cuts depth to 2, head width to 8 (16 for Qwen's 3-D rotary sections) and the
vocabulary, so a model of it runs on a CPU at the real sequence lengths.

`image_tokens(arch, height, width)` is the number of image tokens one image of that size
becomes, by the papers' rules (LLaVA-1.5: 24 x 24 patches; OneVision: anyres_max_9, a base
view plus up to 9 crops' worth of tiles with a newline per row; Qwen2.5-VL: the image
resized to multiples of 28 within its pixel bounds, one token per 28 x 28).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
# LLaVA-OneVision's 36 anyres resolutions: every (h, w) in multiples of 384 up to 6 x 6.
OV_PINPOINTS = tuple((384 * i, 384 * j) for i in range(1, 7) for j in range(1, 7))
# LoRA goes on the language model's linear layers (peft matches the whole module name).
LLM_LINEAR_TARGETS = r".*language_model.*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)"


@dataclass(frozen=True)
class Text:
    hidden: int
    layers: int
    heads: int
    kv_heads: int
    intermediate: int
    vocab: int
    tied: bool = False
    mrope_section: tuple[int, ...] | None = None  # Qwen2.5-VL's 3-D rotary split of head_dim / 2


@dataclass(frozen=True)
class Vision:
    hidden: int
    layers: int
    heads: int
    intermediate: int
    image_size: int
    patch_size: int
    merge_size: int = 1  # Qwen: 2 x 2 patches become one token
    out_hidden: int | None = None
    window_size: int | None = None
    fullatt_blocks: tuple[int, ...] = ()


@dataclass(frozen=True)
class Architecture:
    name: str
    hf_id: str
    family: str  # "llava" | "llava_onevision" | "qwen2_5_vl"
    text: Text
    vision: Vision
    pinpoints: tuple[tuple[int, int], ...] = ()
    max_crops: int = 0  # OneVision's anyres_max_N
    min_pixels: int = 0
    max_pixels: int = 0

    @property
    def folder(self) -> str:
        return self.hf_id.split("/")[-1]


ARCHITECTURES = {a.name: a for a in (
    Architecture("llava-1.5-7b", "llava-hf/llava-1.5-7b-hf", "llava",
                 Text(hidden=4096, layers=32, heads=32, kv_heads=32, intermediate=11008, vocab=32064),
                 Vision(hidden=1024, layers=24, heads=16, intermediate=4096, image_size=336, patch_size=14)),
    Architecture("llava-onevision-0.5b", "llava-hf/llava-onevision-qwen2-0.5b-ov-hf", "llava_onevision",
                 Text(hidden=896, layers=24, heads=14, kv_heads=2, intermediate=4864, vocab=151647, tied=True),
                 Vision(hidden=1152, layers=26, heads=16, intermediate=4304, image_size=384, patch_size=14),
                 pinpoints=OV_PINPOINTS, max_crops=9),
    Architecture("llava-onevision-7b", "llava-hf/llava-onevision-qwen2-7b-ov-hf", "llava_onevision",
                 Text(hidden=3584, layers=28, heads=28, kv_heads=4, intermediate=18944, vocab=152128),
                 Vision(hidden=1152, layers=26, heads=16, intermediate=4304, image_size=384, patch_size=14),
                 pinpoints=OV_PINPOINTS, max_crops=9),
    Architecture("qwen2.5-vl-7b", "Qwen/Qwen2.5-VL-7B-Instruct", "qwen2_5_vl",
                 Text(hidden=3584, layers=28, heads=28, kv_heads=4, intermediate=18944, vocab=152064,
                      mrope_section=(16, 24, 24)),
                 Vision(hidden=1280, layers=32, heads=16, intermediate=3420, image_size=0, patch_size=14,
                        merge_size=2, out_hidden=3584, window_size=112, fullatt_blocks=(7, 15, 23, 31)),
                 min_pixels=56 * 56, max_pixels=28 * 28 * 16384),
)}


class UnknownArchitecture(ValueError):
    pass


def architecture_of(model_path: str) -> Architecture:
    """The architecture whose hub folder name ends `model_path` (as the real configs name them)."""
    folder = str(model_path).rstrip("/").split("/")[-1]
    for arch in ARCHITECTURES.values():
        if arch.folder == folder:
            return arch
    raise UnknownArchitecture(f"{model_path}: not one of the known base models "
                              f"({', '.join(a.folder for a in ARCHITECTURES.values())})")


# ---------------------------------------------------------------- image tokens

def llava_tokens(arch: Architecture) -> int:
    """Resized and centre-cropped to image_size; the CLS feature is dropped ("default")."""
    return (arch.vision.image_size // arch.vision.patch_size) ** 2


def best_resolution(height: int, width: int, pinpoints) -> tuple[int, int]:
    """LLaVA-NeXT's choice: the pinpoint that keeps the most of the image's pixels, then the
    one that wastes the least area."""
    best, best_fit = None, (-1, 0)
    for h, w in pinpoints:
        scale = min(w / width, h / height)
        kept = min(int(width * scale) * int(height * scale), width * height)
        fit = (kept, -(w * h - kept))
        if fit > best_fit:
            best, best_fit = (h, w), fit
    return best


def onevision_tokens(arch: Architecture, height: int, width: int) -> int:
    """Base view + tiles of the best pinpoint with the padding removed, a newline per row;
    over max_crops tiles' worth, the tile features are downscaled to fit."""
    side = arch.vision.image_size // arch.vision.patch_size
    best_h, best_w = best_resolution(height, width, arch.pinpoints)
    rows, cols = side * (best_h // arch.vision.image_size), side * (best_w // arch.vision.image_size)
    if width / height > cols / rows:
        rows -= 2 * ((rows - int(round(height * cols / width, 7))) // 2)
    else:
        cols -= 2 * ((cols - int(round(width * rows / height, 7))) // 2)
    ratio = math.sqrt(rows * cols / (arch.max_crops * side ** 2))
    if ratio > 1.1:
        rows, cols = int(rows // ratio), int(cols // ratio)
    return side ** 2 + rows * cols + rows


def qwen_grid(arch: Architecture, height: int, width: int) -> tuple[int, int]:
    """Qwen2-VL's smart resize: sides rounded to multiples of patch x merge (28), the pixel
    count kept within [min_pixels, max_pixels]; returns the resized (height, width)."""
    f = arch.vision.patch_size * arch.vision.merge_size
    h, w = round(height / f) * f, round(width / f) * f
    if h * w > arch.max_pixels:
        beta = math.sqrt(height * width / arch.max_pixels)
        h, w = math.floor(height / beta / f) * f, math.floor(width / beta / f) * f
    elif h * w < arch.min_pixels:
        beta = math.sqrt(arch.min_pixels / (height * width))
        h, w = math.ceil(height * beta / f) * f, math.ceil(width * beta / f) * f
    return max(h, f), max(w, f)


def image_tokens(arch: Architecture, height: int, width: int) -> int:
    if arch.family == "llava":
        return llava_tokens(arch)
    if arch.family == "llava_onevision":
        return onevision_tokens(arch, height, width)
    h, w = qwen_grid(arch, height, width)
    f = arch.vision.patch_size * arch.vision.merge_size
    return (h // f) * (w // f)


def vision_positions(arch: Architecture, height: int, width: int) -> int:
    """Patches the vision tower encodes for one image (before OneVision's unpadding or Qwen's merge)."""
    if arch.family == "llava":
        return llava_tokens(arch) + 1
    side = arch.vision.image_size // arch.vision.patch_size if arch.vision.image_size else 0
    if arch.family == "llava_onevision":
        best_h, best_w = best_resolution(height, width, arch.pinpoints)
        return side ** 2 * (1 + (best_h // arch.vision.image_size) * (best_w // arch.vision.image_size))
    h, w = qwen_grid(arch, height, width)
    return (h // arch.vision.patch_size) * (w // arch.vision.patch_size)


# ---------------------------------------------------------------- transformers configs

REDUCED_LAYERS = 2
REDUCED_HEAD_DIM = 8


def reduced(arch: Architecture, vocab: int = 512) -> Architecture:
    """Depth 2, head width 8 (16 with 3-D rotary, whose sections scale by 1/8), the same
    head counts, image geometry and processor bounds; vocabulary `vocab`."""
    t, v = arch.text, arch.vision
    head_dim = 2 * REDUCED_HEAD_DIM if t.mrope_section else REDUCED_HEAD_DIM
    text = Text(hidden=t.heads * head_dim, layers=REDUCED_LAYERS, heads=t.heads, kv_heads=t.kv_heads,
                intermediate=2 * t.heads * head_dim, vocab=vocab, tied=t.tied,
                mrope_section=tuple(s * head_dim // (t.hidden // t.heads) for s in t.mrope_section)
                if t.mrope_section else None)
    vision = Vision(hidden=v.heads * REDUCED_HEAD_DIM, layers=REDUCED_LAYERS, heads=v.heads,
                    intermediate=2 * v.heads * REDUCED_HEAD_DIM, image_size=v.image_size, patch_size=v.patch_size,
                    merge_size=v.merge_size, out_hidden=text.hidden if v.out_hidden else None,
                    window_size=v.window_size, fullatt_blocks=(1,) if v.fullatt_blocks else ())
    return Architecture(f"{arch.name}-reduced", arch.hf_id, arch.family, text, vision, arch.pinpoints, arch.max_crops,
                        arch.min_pixels, arch.max_pixels)


def special_token_ids(vocab: int) -> dict:
    """Where the image and control tokens sit in a vocabulary without a tokenizer: its top ids."""
    return {"image": vocab - 1, "video": vocab - 2, "vision_start": vocab - 3, "vision_end": vocab - 4,
            "pad": 0, "eos": 1, "bos": 2}


def hf_config(arch: Architecture, ids: dict | None = None):
    """The transformers config of `arch`; `ids` places the special tokens (a tokenizer's ids),
    by default at the top of the vocabulary."""
    from transformers import LlavaConfig, LlavaOnevisionConfig, Qwen2_5_VLConfig

    ids = ids or special_token_ids(arch.text.vocab)
    t, v = arch.text, arch.vision
    text = dict(vocab_size=t.vocab, hidden_size=t.hidden, num_hidden_layers=t.layers, num_attention_heads=t.heads,
                num_key_value_heads=t.kv_heads, intermediate_size=t.intermediate, tie_word_embeddings=t.tied,
                pad_token_id=ids["pad"], eos_token_id=ids["eos"], bos_token_id=ids.get("bos"))
    if arch.family == "llava":
        vision = dict(model_type="clip_vision_model", hidden_size=v.hidden, num_hidden_layers=v.layers,
                      num_attention_heads=v.heads, intermediate_size=v.intermediate, image_size=v.image_size,
                      patch_size=v.patch_size, projection_dim=768)
        return LlavaConfig(vision_config=vision, text_config=dict(model_type="llama", **text),
                           image_token_id=ids["image"], vision_feature_layer=-2,
                           vision_feature_select_strategy="default", image_seq_length=llava_tokens(arch),
                           projector_hidden_act="gelu")
    if arch.family == "llava_onevision":
        vision = dict(model_type="siglip_vision_model", hidden_size=v.hidden, num_hidden_layers=v.layers,
                      num_attention_heads=v.heads, intermediate_size=v.intermediate, image_size=v.image_size,
                      patch_size=v.patch_size, vision_use_head=False)
        return LlavaOnevisionConfig(
            vision_config=vision, text_config=dict(model_type="qwen2", max_position_embeddings=32768, **text),
            image_token_index=ids["image"], video_token_index=ids["video"], vision_feature_select_strategy="full",
            vision_feature_layer=-1, image_grid_pinpoints=[list(p) for p in arch.pinpoints],
            vision_aspect_ratio=f"anyres_max_{arch.max_crops}", tie_word_embeddings=t.tied)
    vision = dict(depth=v.layers, hidden_size=v.hidden, intermediate_size=v.intermediate, num_heads=v.heads,
                  patch_size=v.patch_size, spatial_merge_size=v.merge_size, temporal_patch_size=2,
                  out_hidden_size=v.out_hidden, window_size=v.window_size,
                  fullatt_block_indexes=list(v.fullatt_blocks), in_channels=3)
    text.update(max_position_embeddings=128000, rope_scaling={"type": "mrope", "mrope_section": list(t.mrope_section)})
    return Qwen2_5_VLConfig(vision_config=vision, text_config=text, image_token_id=ids["image"],
                            video_token_id=ids["video"], vision_start_token_id=ids["vision_start"],
                            vision_end_token_id=ids["vision_end"], tie_word_embeddings=t.tied)


def model_class(arch: Architecture):
    import transformers

    return getattr(transformers, {"llava": "LlavaForConditionalGeneration",
                                  "llava_onevision": "LlavaOnevisionForConditionalGeneration",
                                  "qwen2_5_vl": "Qwen2_5_VLForConditionalGeneration"}[arch.family])


def build_model(arch: Architecture, ids: dict | None = None, seed: int = 0, dtype=None, device=None):
    """A random-weight model of `arch` (seeded), built directly in `dtype` on `device`."""
    import torch

    torch.manual_seed(seed)
    old = torch.get_default_dtype()
    if dtype is not None:
        torch.set_default_dtype(dtype)
    try:
        with torch.device(device or "cpu"):
            return model_class(arch)(hf_config(arch, ids)).eval()
    finally:
        torch.set_default_dtype(old)


def parameter_counts(arch: Architecture, lora_r: int = 0, lora_targets: str | None = None) -> dict:
    """Parameters of the real class at this shape, counted on the meta device (nothing is
    allocated): vision tower, projector, language model, and LoRA weights of rank `lora_r`
    (and per unit of rank) on the language model's linear layers (the training stage's targets)."""
    import re

    import torch

    with torch.device("meta"):
        model = model_class(arch)(hf_config(arch))
    counts = {"vision": 0, "projector": 0, "language": 0}
    for name, p in model.named_parameters():
        part = ("vision" if "visual" in name and "merger" not in name or "vision_tower" in name else
                "projector" if "projector" in name or "merger" in name or "image_newline" in name else "language")
        counts[part] += p.numel()
    pattern = re.compile(lora_targets or LLM_LINEAR_TARGETS)
    # a rank-r adapter on a d_in x d_out layer: r x (d_in + d_out) weights
    counts["lora_per_rank"] = sum(m.in_features + m.out_features for name, m in model.named_modules()
                                  if isinstance(m, torch.nn.Linear) and pattern.fullmatch(name))
    counts["lora"] = lora_r * counts["lora_per_rank"]
    counts["total"] = counts["vision"] + counts["projector"] + counts["language"]
    return counts
