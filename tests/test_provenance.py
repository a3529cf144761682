"""Rule params: one form whatever the YAML's key order, and exactly what reaches a job."""
from pathlib import Path

import yaml

from prefalign.provenance import canonical, closure, upstream

ROOT = Path(__file__).resolve().parents[1]


def micro() -> dict:
    return yaml.safe_load((ROOT / "tests/configs/micro.yaml").read_text())


def reordered(value):
    """The same settings with every mapping's keys in reverse order."""
    if isinstance(value, dict):
        return {k: reordered(value[k]) for k in reversed(list(value))}
    if isinstance(value, list):
        return [reordered(v) for v in value]
    return value


def test_canonical_form_ignores_key_order_but_not_list_order():
    cfg = micro()
    assert repr(canonical(cfg)) == repr(canonical(reordered(cfg)))
    assert list(reordered(cfg)) != list(cfg)
    assert canonical({"a": [2, 1]}) != canonical({"a": [1, 2]})
    assert upstream(cfg, ("runs", "consr")) == upstream(reordered(cfg), ("runs", "consr"))


def test_closure_follows_names_and_leaves_out_labels():
    cfg = micro()
    found = closure(cfg, ("runs", "consr"))
    assert set(found) == {"runs.consr", "preference_sets.consr", "objectives.consr", "training.miniature",
                          "prompt_sets.consr", "generation.sample2", "generation.greedy", "consr_prompts.world",
                          "augmentations.noise500", "augmentations.noise800"}
    assert "label" not in found["runs.consr"]
    seva = closure(cfg, ("runs", "seva"))
    assert "augmentations.noise800" in seva and "augmentations.noise500" not in seva


def test_upstream_changes_with_what_a_run_reads_and_only_that():
    cfg = micro()
    before = {run: upstream(cfg, ("runs", run)) for run in cfg["runs"]}

    def changed(edit) -> set:
        c = micro()
        edit(c)
        return {run for run in cfg["runs"] if upstream(c, ("runs", run)) != before[run]}

    assert changed(lambda c: c["runs"]["seva"].update(label="renamed")) == set()
    assert changed(lambda c: c["objectives"]["dpo"].update(beta=0.2)) == {"oracle", "oracle_reversed", "seva"}
    assert changed(lambda c: c["augmentations"]["noise500"].update(step=400)) == {"smpro", "consr"}
    assert changed(lambda c: c["base_model"]["sft"].update(steps=1)) == set(cfg["runs"])
    # how often a training checkpoints changes no output (tests/test_checkpoint.py)
    assert changed(lambda c: c["base_model"]["sft"].update(checkpoint_every=7)) == set()
    assert changed(lambda c: c["training"]["miniature"].update(checkpoint_every=7)) == set()
    assert canonical({"sft": {"checkpoint_every": 7, "steps": 1}}) == {"sft": {"steps": 1}}


def test_closure_holds_every_view_and_generation_a_method_reads():
    """A field that names another section but is missing from REFERENCES would leave a setting
    out of `upstream`: check against what each method says it needs, in every shipped config."""
    from prefalign.config import with_extends
    from prefalign.methods import responses_needed

    for path in [ROOT / "config.yaml", ROOT / "tests/configs/micro.yaml", *sorted((ROOT / "configs").glob("*.yaml"))]:
        cfg = yaml.safe_load(path.read_text())
        if "extends" in cfg:
            cfg = with_extends(cfg, ROOT)
        for name, pset in cfg["preference_sets"].items():
            found = closure(cfg, ("preference_sets", name))
            for view, gen in responses_needed(pset):
                assert view in ("clean", "revised") or f"augmentations.{view}" in found, (path, name, view)
                assert f"generation.{gen}" in found, (path, name, gen)
            assert f"prompt_sets.{pset['prompts']}" in found
