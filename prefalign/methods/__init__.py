"""Preference-construction methods and training objectives, one module per paper.

A method module exposes `NAME`, `needs(pref_cfg)` (the response views it samples) and
`build(prompts, responses, pref_cfg)`; an objective is a short pure loss function
registered in `OBJECTIVES`. Adding a paper touches one new module plus config.
"""
from . import dpo, seva

METHODS = {seva.NAME: seva}
OBJECTIVES = {"dpo": dpo.dpo_objective}


def method(name: str):
    try:
        return METHODS[name]
    except KeyError:
        raise ValueError(f"unknown preference method '{name}' (known: {sorted(METHODS)})") from None


def objective(name: str):
    try:
        return OBJECTIVES[name]
    except KeyError:
        raise ValueError(f"unknown objective '{name}' (known: {sorted(OBJECTIVES)})") from None
