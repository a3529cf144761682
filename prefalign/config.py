"""Config validation: the JSON schema, plus the cross-references a schema cannot express."""
from __future__ import annotations

import copy
import functools
import os
from pathlib import Path

import yaml

from .evaluation import is_miniature
from .io import non_finite_field

SCHEMA = Path(__file__).parent / "schemas" / "config.schema.yaml"
ROOT = Path(__file__).resolve().parents[1]


class ConfigError(ValueError):
    pass


def validate_config(cfg: dict) -> dict:
    """Raise ConfigError naming the offending key's path; fill in every default, the schema's
    and the two that depend on the config (a run's label and seeds), so that no code holds one."""
    bad = non_finite_field(cfg)
    if bad is not None:  # YAML's .nan passes a schema's `type: number`
        raise ConfigError(f"config key '{bad}': not a finite number (NaN or an infinity)")
    errors = sorted(_validator(_schema()).iter_errors(cfg), key=lambda e: list(e.path))
    if errors:
        raise ConfigError(_message(errors[0]))
    for name, run in cfg["runs"].items():
        run.setdefault("label", name)
        run.setdefault("seeds", list(cfg["seeds"]))
    expand_paths(cfg)

    def ref(kind, name, where, pool):
        if name not in cfg[pool]:
            raise ConfigError(f"config key '{where}': unknown {kind} '{name}' (defined: {sorted(cfg[pool])})")

    for reserved in ("clean", "revised"):
        if reserved in cfg["augmentations"]:
            raise ConfigError(f"config key 'augmentations.{reserved}': the view name '{reserved}' is reserved")
    for name, p in cfg["preference_sets"].items():
        ref("prompt set", p["prompts"], f"preference_sets.{name}.prompts", "prompt_sets")
        if p["method"] in ("released", "labelled"):
            source_reference(cfg, name, p)
            if "generation" not in p:
                continue
        ref("generation", p["generation"], f"preference_sets.{name}.generation", "generation")
        if "augmentation" in p:
            ref("augmentation", p["augmentation"], f"preference_sets.{name}.augmentation", "augmentations")
        elif p["method"] == "seva":
            raise ConfigError(f"config key 'preference_sets.{name}.augmentation': seva needs an augmentation")
        if "clip" in p:
            if p["clip"] not in cfg["clip_models"]:
                raise ConfigError(f"config key 'preference_sets.{name}.clip': unknown clip model '{p['clip']}' "
                                  f"(defined: {sorted(cfg['clip_models'])})")
        samples = cfg["generation"][p["generation"]]["num_return_sequences"]
        for g, group in enumerate(p.get("groups", [])):
            for view in group["views"]:
                if view != "clean":
                    ref("augmentation", view, f"preference_sets.{name}.groups.{g}.views", "augmentations")
            if group["per_view"] > samples:
                raise ConfigError(f"config key 'preference_sets.{name}.groups.{g}.per_view': "
                                  f"{group['per_view']} > num_return_sequences {samples} of "
                                  f"generation '{p['generation']}'")
        if p["method"] == "consr":
            consr_references(cfg, name, p, samples)
        if p["method"] == "oracle" and "{world}" not in cfg["prompt_sets"][p["prompts"]]["source"]["path"]:
            raise ConfigError(f"config key 'preference_sets.{name}.prompts': an oracle control reads ground truth, "
                              "which only the miniature world's pool has")
    for name, c in cfg["consr_prompts"].items():
        for field, fields in (("revision_template", ("{description}", "{question}", "{response}")),
                              ("context_template", ("{prompt}",))):  # a fixed text may stand for the description
            missing = [f for f in fields if f not in c[field]]
            if missing:
                raise ConfigError(f"config key 'consr_prompts.{name}.{field}': lacks {', '.join(missing)}")
        for field in ("description_generation", "revision_generation"):
            ref("generation", c[field], f"consr_prompts.{name}.{field}", "generation")
    for name, r in cfg["runs"].items():
        ref("preference set", r["preferences"], f"runs.{name}.preferences", "preference_sets")
        ref("objective", r["objective"], f"runs.{name}.objective", "objectives")
        ref("training setting", r["training"], f"runs.{name}.training", "training")
        loss = cfg["objectives"][r["objective"]]["loss"]
        if loss in ("aspo", "consr") and cfg["preference_sets"][r["preferences"]]["method"] != loss:
            stored = "sentence units" if loss == "aspo" else "token probability shifts"
            raise ConfigError(f"config key 'runs.{name}.preferences': the {loss} loss needs a preference set "
                              f"built by method {loss} (it reads the stored {stored})")
        p = cfg["preference_sets"][r["preferences"]]
        if p["method"] == "labelled" and "generation" not in p and loss != "sft":
            raise ConfigError(f"config key 'runs.{name}.objective': preference set '{r['preferences']}' pairs each "
                              f"answer with itself (no generation); only the sft loss trains on it, not {loss}")
        extra = sorted(set(r["seeds"]) - set(cfg["seeds"]))
        if extra:
            raise ConfigError(f"config key 'runs.{name}.seeds': {extra} not among the top-level seeds")
    for name, t in cfg["paper_tables"].items():
        for run in t["runs"]:
            ref("run", run, f"paper_tables.{name}.runs", "runs")
    for k, d in enumerate(cfg["tables"]["diversity"]):
        ref("prompt set", d["prompts"], f"tables.diversity.{k}.prompts", "prompt_sets")
        ref("generation", d["generation"], f"tables.diversity.{k}.generation", "generation")
        if d["view"] != "clean":
            ref("augmentation", d["view"], f"tables.diversity.{k}.view", "augmentations")
    check_reported(cfg["tables"].get("reported"), "tables.reported", cfg["runs"])
    for name, t in cfg["paper_tables"].items():
        check_reported(t.get("reported"), f"paper_tables.{name}.reported", t["runs"])
    if "base" in cfg["runs"]:
        raise ConfigError("config key 'runs.base': the name 'base' is reserved for the base model")
    bm = cfg["base_model"]
    needs_world = (bm["kind"] == "tiny_llava"
                   or any("{world}" in p["source"]["path"] for p in cfg["prompt_sets"].values())
                   or any(map(is_miniature, cfg["evaluation"]["tasks"])))
    if needs_world and "world" not in cfg:
        raise ConfigError("config key 'world': required by the tiny base model, a '{world}' prompt "
                          "source or a prefalign_* benchmark")
    if bm["kind"] == "pretrained" and not bm.get("path"):
        raise ConfigError("config key 'base_model.path': required when base_model.kind is 'pretrained'")
    if bm["kind"] == "tiny_llava" and not ("tiny" in bm and "sft" in bm):
        raise ConfigError("config key 'base_model.tiny': tiny_llava needs 'tiny' and 'sft' sections")
    if bm["kind"] == "tiny_llava":
        check_vision_from(bm["tiny"], cfg)
    return cfg


# The open_clip vision settings that tiny_vlm.clip_vision_config maps; any other would change the encoder.
CLIP_VISION_KEYS = {"image_size", "layers", "width", "patch_size", "head_width", "mlp_ratio"}


def check_vision_from(tiny: dict, cfg: dict) -> None:
    """The tiny LLaVA's vision tower: its own config, or a world CLIP's encoder of its geometry."""
    if ("vision" in tiny) == ("vision_from" in tiny):
        raise ConfigError("config key 'base_model.tiny': give one of 'vision' (a vision tower with random "
                          "weights) and 'vision_from' (a world CLIP's image encoder)")
    name = tiny.get("vision_from")
    if name is None:
        return
    clip = cfg.get("clip_models", {}).get(name)
    if clip is None or clip["kind"] != "train_world":
        raise ConfigError(f"config key 'base_model.tiny.vision_from': '{name}' is no clip_models entry of "
                          f"kind 'train_world'")
    vision = clip["architecture"]["vision"]
    geometry = (cfg["world"]["image_size"], tiny["patch_size"])
    if (vision["image_size"], vision["patch_size"]) != geometry:
        raise ConfigError(f"config key 'clip_models.{name}.architecture.vision': image_size and patch_size "
                          f"must be the world's image_size and base_model.tiny.patch_size {geometry}")
    unknown = set(vision) - CLIP_VISION_KEYS
    if unknown:
        raise ConfigError(f"config key 'clip_models.{name}.architecture.vision': {sorted(unknown)} cannot "
                          f"be carried into the base model's vision tower (it maps {sorted(CLIP_VISION_KEYS)})")


@functools.cache
def reported_sections() -> dict:
    """prefalign/reported.yaml: the papers' printed numbers, a section per table (read once)."""
    return yaml.safe_load((Path(__file__).parent / "reported.yaml").read_text())


def check_reported(rep: dict | None, key: str, runs) -> None:
    """`rep` names a section of reported.yaml, and maps base or one of `runs` to its rows."""
    if not rep:
        return
    sections = reported_sections()
    if rep["paper"] not in sections:
        raise ConfigError(f"config key '{key}.paper': '{rep['paper']}' is not a section of prefalign/reported.yaml "
                          f"({sorted(sections)})")
    paper = sections[rep["paper"]]
    for mine, theirs in rep["rows"].items():
        if mine != "base" and mine not in runs:
            raise ConfigError(f"config key '{key}.rows.{mine}': not 'base' nor one of its runs")
        if theirs not in paper["rows"]:
            raise ConfigError(f"config key '{key}.rows.{mine}': '{theirs}' is not a reported row "
                              f"of {rep['paper']} (rows: {sorted(paper['rows'])})")


@functools.cache
def _schema() -> dict:
    return yaml.safe_load(SCHEMA.read_text())


def _validator(schema: dict):
    """A validator that fills each absent property that has a `default` before checking it,
    also in the `then` branches whose `if` holds (defaults that apply to one kind only)."""
    import jsonschema

    base = jsonschema.Draft202012Validator
    check_properties = base.VALIDATORS["properties"]

    def properties(validator, props, instance, schema):
        if validator.is_type(instance, "object"):
            for key, sub in props.items():
                if "default" in sub and key not in instance:
                    instance[key] = copy.deepcopy(sub["default"])
        yield from check_properties(validator, props, instance, schema)

    return jsonschema.validators.extend(base, {"properties": properties})(schema)


def _message(error) -> str:
    """One line naming the key path (a missing or unexpected key included) and what is wrong."""
    path = [str(p) for p in error.absolute_path]
    if error.validator == "required":
        missing = next(k for k in error.validator_value if k not in error.instance)
        return f"config key '{'.'.join([*path, missing])}': required, missing"
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        allowed = set(error.schema.get("properties", {}))
        extra = sorted(k for k in error.instance if k not in allowed)
        if extra:
            return (f"config key '{'.'.join([*path, extra[0]])}': not a known key here "
                    f"(known: {sorted(allowed)})")
    return f"config key '{'.'.join(path) or '<top level>'}': {error.message}"


def with_defaults(kind: str, entry: dict) -> dict:
    """A copy of one config entry of `kind` (a section whose entries are named, such as
    'training' or 'objectives', or a part of one, such as 'training.lora') with the schema's
    defaults filled in: what a stage receives from a validated config, for code that builds an
    entry itself (tests)."""
    schema = _schema()
    for part in kind.split("."):
        schema = schema["properties"][part]
        if "properties" not in schema and isinstance(schema.get("additionalProperties"), dict):
            schema = schema["additionalProperties"]  # a section of named entries
    entry = copy.deepcopy(entry)
    errors = list(_validator({**schema, "$defs": _schema()["$defs"]}).iter_errors(entry))
    if errors:
        raise ConfigError(_message(errors[0]).replace("config key '", f"config key '{kind}.<entry>.", 1))
    return entry


def consr_references(cfg: dict, name: str, p: dict, samples: int) -> None:
    key = f"preference_sets.{name}"
    if p["consr_prompts"] not in cfg["consr_prompts"]:
        raise ConfigError(f"config key '{key}.consr_prompts': unknown consr_prompts entry '{p['consr_prompts']}' "
                          f"(defined: {sorted(cfg['consr_prompts'])})")
    for field in ("noisy_augmentation", "corrupt_augmentation"):
        if field in p and p[field] not in cfg["augmentations"]:
            raise ConfigError(f"config key '{key}.{field}': unknown augmentation '{p[field]}' "
                              f"(defined: {sorted(cfg['augmentations'])})")
    n = p["candidates"]
    if n["noisy"] and "noisy_augmentation" not in p:
        raise ConfigError(f"config key '{key}.noisy_augmentation': required when candidates.noisy > 0")
    for source in ("sampled", "revised", "noisy"):  # revisions are of the clean samples
        if n[source] > samples:
            raise ConfigError(f"config key '{key}.candidates.{source}': {n[source]} > num_return_sequences "
                              f"{samples} of generation '{p['generation']}'")
    if p["selection"] == "noise_pair" and not n["noisy"]:
        raise ConfigError(f"config key '{key}.selection': noise_pair needs candidates.noisy > 0")


def path_keys(cfg: dict):
    """(key path, container, field) of every config value that is a file system path."""
    yield "base_model.path", cfg["base_model"], "path"
    for name, p in cfg["prompt_sets"].items():
        for f in ("path", "image_root"):
            yield f"prompt_sets.{name}.source.{f}", p["source"], f
    for name, c in cfg["consr_prompts"].items():
        yield f"consr_prompts.{name}.description_model", c, "description_model"
    for name, c in cfg["clip_models"].items():
        yield f"clip_models.{name}.pretrained", c, "pretrained"


def source_reference(cfg: dict, name: str, p: dict) -> None:
    """A `released` set reads its prompt source's own pairs and samples nothing; a `labelled`
    set reads the source's answers (a file outside the world, whose pool keeps its answers
    apart) and samples its rejected responses only where it names a generation."""
    from .released import ANSWER_FORMATS, PAIR_READERS

    source = cfg["prompt_sets"][p["prompts"]]["source"]
    formats = PAIR_READERS if p["method"] == "released" else ANSWER_FORMATS
    if source["format"] not in formats:
        raise ConfigError(f"config key 'preference_sets.{name}.prompts': prompt set '{p['prompts']}' is read as "
                          f"{source['format']}, which holds no {'pairs' if p['method'] == 'released' else 'answers'} "
                          f"(formats that do: {sorted(formats)})")
    if p["method"] == "labelled" and "{world}" in source["path"]:
        raise ConfigError(f"config key 'preference_sets.{name}.prompts': the world's files hold no answers a "
                          "labelled set may read (the miniature's labelled data: method oracle, labels truth)")
    allowed = {"method", "prompts"} | ({"generation"} if p["method"] == "labelled" else set())
    extra = sorted(set(p) - allowed)
    if extra:
        raise ConfigError(f"config key 'preference_sets.{name}': a {p['method']} set takes its answers as they "
                          f"are; {extra} do not apply")


def expand_paths(cfg: dict) -> None:
    """Expand $VARS in paths (e.g. ${PREFALIGN_DATA}); an unset variable names the key."""
    for key, holder, field in path_keys(cfg):
        value = holder.get(field)
        if isinstance(value, str) and "$" in value:
            expanded = os.path.expandvars(value)
            if "$" in expanded:
                raise ConfigError(f"config key '{key}': unset environment variable in {value!r}")
            holder[field] = expanded


def merged(base: dict, over: dict) -> dict:
    """`over` merged into `base`: mappings key by key, anything else replaced."""
    out = dict(base)
    for key, value in over.items():
        out[key] = merged(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def with_extends(cfg: dict, root: Path = ROOT) -> dict:
    """A config that says `extends: <file>` (relative to the workflow folder) is that file's
    config with its own keys merged over it; a config without `extends` is returned as is."""
    if "extends" not in cfg:
        return cfg
    path = Path(root) / cfg["extends"]  # an absolute path stays as it is
    try:
        text = path.read_text()
    except OSError as e:
        raise ConfigError(f"config key 'extends': cannot read {path}: {e.strerror}") from None
    return merged(with_extends(read_yaml(path, text), root), {k: v for k, v in cfg.items() if k != "extends"})


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML keeps the last of two equal keys in a mapping, silently: here that is an error."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep)


def read_yaml(path, text: str | None = None) -> dict:
    """A config file's mapping; a YAML error (a duplicate key too) names the file, line and column."""
    try:
        cfg = yaml.load(Path(path).read_text() if text is None else text, Loader=_UniqueKeyLoader)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        raise ConfigError(f"{where}: not valid YAML: {getattr(e, 'problem', None) or e}") from None
    if not isinstance(cfg, dict):
        raise ConfigError(f"{path}: expected a mapping of config keys, got {type(cfg).__name__}")
    return cfg


def load_config(path) -> dict:
    return validate_config(with_extends(read_yaml(path)))


def load_config_unresolved(path) -> dict:
    """The validated config, for commands that read no model or data file (listing its tables,
    planning its cost): path variables that are not set stand for themselves."""
    from unittest import mock

    unset = {k: f"/{k}" for k in ("PREFALIGN_MODELS", "PREFALIGN_DATA") if k not in os.environ}
    with mock.patch.dict(os.environ, unset):
        return load_config(path)


if __name__ == "__main__":
    # `python -m prefalign.config FILE`: a check before Snakemake, whose own YAML error names no
    # line; `... FILE --results`: the config's results folder (`extends:` followed)
    import sys

    try:
        if sys.argv[2:] == ["--results"]:
            print(load_config(sys.argv[1])["results"])
        else:
            read_yaml(sys.argv[1])
    except ConfigError as e:
        sys.exit(str(e))
