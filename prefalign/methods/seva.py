"""SeVa (Zhu et al. 2024): self-supervised pairs from clean vs corrupted images.

Chosen = the model's greedy answer on the clean image, rejected = its greedy answer on T(I)
for the same question; pairs whose two answers are the identical string are dropped.
"""
from __future__ import annotations

from ..settings import PreferenceSetSettings
from .records import make_record

NAME = "seva"


def needs(pref_cfg: PreferenceSetSettings) -> list[tuple[str, str]]:
    """(view, generation) response files this method reads: clean and augmented, greedy."""
    return [("clean", pref_cfg.generation), (pref_cfg.augmentation, pref_cfg.generation)]


def build_seva_pairs(prompts: list[dict], clean: dict, augmented: dict, aug_name: str):
    """Pair each prompt's clean answer (chosen) with its augmented answer (rejected)."""
    records, identical = [], 0
    for p in prompts:
        c, a = clean[p["id"]]["responses"][0], augmented[p["id"]]["responses"][0]
        if c["text"].strip() == a["text"].strip():
            identical += 1
            continue
        records.append(make_record(
            p, [[{**c, "source": "clean"}], [{**a, "source": aug_name}]], method=NAME))
    return records, {"prompts": len(prompts), "kept": len(records), "rejected": {"identical_pair": identical}}


def build(prompts, responses, pref_cfg: PreferenceSetSettings, resources=None):
    view, gen = pref_cfg.augmentation, pref_cfg.generation
    return build_seva_pairs(prompts, responses[("clean", gen)], responses[(view, gen)], view)
