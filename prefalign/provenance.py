"""What a job's output depends on, in one form, for the params of Snakemake's rules.

Snakemake reruns a job when the repr of one of its params changes. So a rule's params hold
the settings that change its output, with every mapping's keys sorted (a YAML formatter that
reorders keys changes nothing) and without presentation keys (a run's label changes the
tables, never a model).

Each rule also carries `upstream`: a digest of every setting its inputs were made with. A
changed setting reruns the job it belongs to and plans everything downstream; if that job
then fails (out of memory, a time limit), Snakemake deletes its outputs, and on the next
invocation it would not rebuild a missing intermediate whose consumers' outputs exist: the
downstream results of the old setting would stand as if current. The digest has changed in
every downstream job's params too, so they stay planned until a run completes them.
"""
from __future__ import annotations

import hashlib
import json

# Keys that only name or place a thing in the tables, or list the seeds a run is made for.
PRESENTATION = frozenset({"label", "title", "seeds", "main_table"})
# Keys that change how a job runs or where else it reports, never what it writes (a resumed
# training ends byte-identical; metrics sent to a tracker are the ones log.csv holds).
NO_OUTPUT_EFFECT = frozenset({"checkpoint_every", "report_to"})
# Settings every job after the world depends on.
GLOBAL = ("world", "base_model", "device", "dtype")
# Keys of a GLOBAL section that change one rule's output only (that rule holds them in its own
# params): every other job's digest leaves them out.
OWN_RULE_ONLY = {"base_model": frozenset({"competence_noise_steps"})}
# The fields (at any depth of an entry) that name an entry of another section.
REFERENCES = {
    "runs": {"preferences": "preference_sets", "objective": "objectives", "training": "training"},
    "preference_sets": {"prompts": "prompt_sets", "generation": "generation", "augmentation": "augmentations",
                        "noisy_augmentation": "augmentations", "corrupt_augmentation": "augmentations",
                        "views": "augmentations", "clip": "clip_models", "consr_prompts": "consr_prompts"},
    "consr_prompts": {"description_generation": "generation", "revision_generation": "generation"},
}


def canonical(value, drop=frozenset()):
    """`value` with every mapping's keys sorted, the keys in `drop` left out at its top, and
    NO_OUTPUT_EFFECT's at any depth."""
    if isinstance(value, dict):
        return {k: canonical(value[k]) for k in sorted(value) if k not in drop and k not in NO_OUTPUT_EFFECT}
    if isinstance(value, (list, tuple)):
        return [canonical(v) for v in value]
    return value


def _named(value, fields: dict):
    """(section, name) for every value of a field in `fields`, at any depth of `value`."""
    if isinstance(value, dict):
        for k, v in value.items():
            if k in fields:
                yield from ((fields[k], name) for name in (v if isinstance(v, list) else [v]) if isinstance(name, str))
            else:
                yield from _named(v, fields)
    elif isinstance(value, list):
        for v in value:
            yield from _named(v, fields)


def closure(config: dict, *entries: tuple[str, str]) -> dict:
    """The config entries `entries` ((section, name) pairs) and every entry they name, in
    canonical form without presentation keys, keyed "section.name". A name that is no entry
    (the view "clean", a generation of no section) names nothing."""
    found, todo = {}, list(entries)
    while todo:
        section, name = todo.pop()
        key = f"{section}.{name}"
        if key in found or name not in (config.get(section) or {}):
            continue
        found[key] = canonical(config[section][name], PRESENTATION)
        todo += _named(found[key], REFERENCES.get(section, {}))
    return found


def upstream(config: dict, *entries: tuple[str, str], globals: tuple[str, ...] = GLOBAL) -> str:
    """A digest of the top-level settings `globals` and the closure of `entries`."""
    settings = {"global": {k: canonical(config.get(k), OWN_RULE_ONLY.get(k, frozenset())) for k in sorted(globals)},
                **closure(config, *entries)}
    text = json.dumps(settings, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def run_order(config: dict) -> list[str]:
    """The tables' row order, whatever the order of `runs` in the YAML: the controls (ground
    truth as it is, reversed, random), then each preference set's runs by the set's name, DPO
    on the set before the set's own objective."""
    labels = ("correct", "reversed", "random")

    def key(run):
        r = config["runs"][run]
        p = config["preference_sets"][r["preferences"]]
        if p["method"] == "oracle" and p["labels"] in labels:  # `truth` is labelled data, not a control
            return 0, labels.index(p["labels"]), r["preferences"], run
        return 1, r["preferences"], r["objective"] != "dpo", run
    return sorted(config["runs"], key=key)
