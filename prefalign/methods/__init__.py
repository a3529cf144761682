"""Preference-construction methods and training objectives, one module per paper.

A method module exposes `NAME`, `needs(pref_cfg)` (the response views it samples),
`build(prompts, responses, pref_cfg, resources)` and optionally `MODELS` (what `resources`
must offer: "base" the base model, "clip" the image-text scorer); `oracle` builds the controls
from ground truth, `released` takes a released dataset's pairs as they are and `labelled` a
source's own answers (continual SFT's data); an objective (`records.Objective`) pairs a short
pure loss function with the ranked groups of a record it scores. Adding a paper touches one
new module plus config.
"""
from ..settings import PreferenceSetSettings
from . import aspo, consr, dpo, labelled, oracle, released, seva, sft, smpro

METHODS = {m.NAME: m for m in (seva, smpro, aspo, consr, oracle, released, labelled)}
OBJECTIVES = {"dpo": dpo.OBJECTIVE, "mgp": smpro.OBJECTIVE, "aspo": aspo.OBJECTIVE, "consr": consr.OBJECTIVE,
              "sft": sft.OBJECTIVE}


def method(name: str):
    try:
        return METHODS[name]
    except KeyError:
        raise ValueError(f"unknown preference method '{name}' (known: {sorted(METHODS)})") from None


def responses_needed(entry: dict) -> list[tuple[str, str]]:
    """The (view, generation) responses a preference set's method reads, from its config entry."""
    return method(entry["method"]).needs(PreferenceSetSettings.of(entry))


def objective(name: str):
    try:
        return OBJECTIVES[name]
    except KeyError:
        raise ValueError(f"unknown objective '{name}' (known: {sorted(OBJECTIVES)})") from None
